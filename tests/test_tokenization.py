"""The tokenizer story: a trained WordPiece tokenizer behaves like bert-base-uncased's; configs follow its ids."""

import pytest
from transformers import AutoTokenizer, GPT2TokenizerFast

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
