"""The tokenizer story: a trained WordPiece tokenizer behaves like bert-base-uncased's; configs follow its ids."""

import subprocess
import sys

import pytest
from transformers import AutoTokenizer, GPT2TokenizerFast

from conftest import child_env
from ponet_training.data.wordpiece import config_for_tokenizer, train_wordpiece_tokenizer


def test_trained_tokenizer_has_bert_special_tokens_and_pair_template(tiny_tokenizer):
    assert [tiny_tokenizer.pad_token_id, tiny_tokenizer.unk_token_id, tiny_tokenizer.cls_token_id,
            tiny_tokenizer.sep_token_id, tiny_tokenizer.mask_token_id] == [0, 1, 2, 3, 4]
    enc = tiny_tokenizer("The quick fox", "Python is fast", return_offsets_mapping=True)
    tokens = tiny_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    first_sep = tokens.index("[SEP]")
    assert enc["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    # uncased, and offsets point into the original text
    start, end = enc["offset_mapping"][1]
    assert "The quick fox"[start:end].lower() == tokens[1].lstrip("#")


def test_saved_trained_tokenizer_reloads_with_auto_tokenizer(tiny_tokenizer, tiny_tokenizer_dir):
    reloaded = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = "the movie was wonderful"
    assert reloaded(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]


TRAIN_IN_A_CHILD = """
import sys
from ponet_training.data.stdlib_docstrings import stdlib_corpus
from ponet_training.data.wordpiece import train_wordpiece_tokenizer
texts = (text for text in stdlib_corpus()["train"]["text"])  # a one-shot iterator, as a streamed corpus gives
sys.stdout.write(train_wordpiece_tokenizer(texts, vocab_size=5000).backend_tokenizer.to_str())
"""


def test_the_same_corpus_trains_the_same_tokenizer_file_in_another_process():
    # The trainer of `tokenizers` alone gives other ids in every process (hash-map order), and at 5,000 tokens on
    # this corpus other tokens too; ours pins what it orders by, so the JSON is the same byte for byte.
    files = [subprocess.run([sys.executable, "-c", TRAIN_IN_A_CHILD], capture_output=True, text=True, timeout=300,
                            env=child_env(), check=True).stdout for _ in range(2)]
    assert files[0] == files[1] and '"[MASK]":4' in files[0].replace(" ", "")


def test_the_pieces_pinned_for_reproducibility_stay_ordinary_vocabulary(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab()
    assert "##e" in vocab and vocab["##e"] > tiny_tokenizer.mask_token_id
    assert "##e" not in tiny_tokenizer.all_special_tokens
    # never matched as a whole in raw text, never dropped when decoding without special tokens
    assert "##e" not in tiny_tokenizer.tokenize("the ##e")
    ids = tiny_tokenizer.convert_tokens_to_ids(["the", "##e"])
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == "thee"


def test_empty_training_corpus_is_an_error():
    with pytest.raises(ValueError, match="corpus is empty"):
        train_wordpiece_tokenizer(["", "   "], vocab_size=100, min_frequency=1)


def test_config_for_tokenizer_copies_vocabulary_and_special_ids(tiny_tokenizer):
    config = config_for_tokenizer(tiny_tokenizer, hidden_size=32, num_attention_heads=4)
    assert (config.vocab_size, config.pad_token_id, config.cls_token_id, config.sep_token_id) == (
        len(tiny_tokenizer), 0, 2, 3)


def test_config_for_tokenizer_without_pad_or_cls_is_an_error(tiny_tokenizer_dir):
    backend = AutoTokenizer.from_pretrained(tiny_tokenizer_dir).backend_tokenizer
    gpt2_style = GPT2TokenizerFast(tokenizer_object=backend)
    with pytest.raises(ValueError, match="needs a tokenizer with a PAD token; this GPT2Tokenizer(Fast)? has none"):
        config_for_tokenizer(gpt2_style)
    gpt2_style.pad_token = gpt2_style.eos_token
    with pytest.raises(ValueError, match="needs a tokenizer with a CLS token"):
        config_for_tokenizer(gpt2_style)
