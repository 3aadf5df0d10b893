"""The pretraining data pipeline: corpus loading, SSO examples, and the MLM masking collator."""

import json
import logging
import math
import random
from collections import Counter

import pytest
import torch

from conftest import pretraining_data_args
from ponet_training.tasks.pretraining.collators import DataCollatorForPoNetPretraining
from ponet_training.tasks.pretraining.corpus import load_pretraining_corpus
from ponet_training.tasks.pretraining.sso_examples import (SSO_IN_ORDER, SSO_RANDOM, SSO_SWAPPED, build_sso_dataset,
                                                           create_sso_examples)
from ponet_training.data.stdlib_docstrings import stdlib_documents
from ponet_training.data.segments import split_sentences
from ponet_training.data.wordpiece import train_wordpiece_tokenizer


CLS, SEP = 2, 3


def synthetic_documents(num_documents=60, seed=0):
    """Token-level documents in which every token names its (document, sentence): 1000 * (doc + 1) + sentence.

    Sentences are 3-20 tokens long, documents 1-25 sentences (some have a single sentence).
    """
    rng = random.Random(seed)
    batch = {"input_ids": [], "sentence_ends": []}
    for doc in range(num_documents):
        ids, ends = [], []
        for sentence in range(rng.randint(1, 25)):
            ids += [1000 * (doc + 1) + sentence] * rng.randint(3, 20)
            ends.append(len(ids))
        batch["input_ids"].append(ids)
        batch["sentence_ends"].append(ends)
    return batch


def parts(example):
    """(A, B) token lists of a `[CLS] A [SEP] B [SEP]` example."""
    ids = example["input_ids"]
    assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
    middle = ids.index(SEP)
    return ids[1:middle], ids[middle + 1:-1]


def sso_examples(num_documents=60, seed=0, max_seq_length=64, **kwargs):
    batch = synthetic_documents(num_documents, seed)
    output = create_sso_examples(batch, list(range(num_documents)), max_seq_length=max_seq_length,
                                 cls_token_id=CLS, sep_token_id=SEP, seed=seed, **kwargs)
    return [dict(zip(output, values)) for values in zip(*output.values())]


def test_sso_labels_are_balanced():
    examples = sso_examples(num_documents=120) + sso_examples(num_documents=120, seed=1)
    counts = Counter(e["sentence_structural_label"] for e in examples)
    assert len(examples) >= 600
    for label in (SSO_IN_ORDER, SSO_SWAPPED, SSO_RANDOM):
        assert abs(counts[label] / len(examples) - 1 / 3) < 0.05, counts


def test_in_order_swapped_and_random_examples_have_the_promised_structure():
    examples = sso_examples(num_documents=80)
    for example in examples:
        first, second = parts(example)
        assert first and second
        doc_first, doc_second = {t // 1000 for t in first}, {t // 1000 for t in second}
        assert len(doc_first) == 1 and len(doc_second) == 1  # each part comes from one document
        label = example["sentence_structural_label"]
        if label == SSO_RANDOM:
            assert doc_first != doc_second  # random B: ANOTHER document
            continue
        assert doc_first == doc_second
        sentences_first, sentences_second = [t % 1000 for t in first], [t % 1000 for t in second]
        if label == SSO_IN_ORDER:  # A then B: consecutive sentences, in order
            assert sentences_first[-1] + 1 == sentences_second[0]
        else:  # swapped: the second part holds the sentences that come first in the document
            assert sentences_second[-1] + 1 == sentences_first[0]
        assert len(first) + len(second) <= 64 - 3


def test_sso_examples_have_token_types_and_sentence_level_segment_ids():
    for example in sso_examples(num_documents=40):
        first, second = parts(example)
        assert example["token_type_ids"] == [0] * (len(first) + 2) + [1] * (len(second) + 1)
        # Reference: a new segment at [CLS], at each sentence change, at each [SEP].
        keys = [None] + [("a", t) for t in first] + [None] + [("b", t) for t in second] + [None]
        expected, current = [], -1
        for position, key in enumerate(keys):
            if key is None or position == 0 or keys[position - 1] != key:
                current += 1
            expected.append(current)
        assert example["segment_ids"] == expected


def test_sso_examples_are_deterministic_given_the_seed():
    assert sso_examples(seed=3) == sso_examples(seed=3)
    batch = synthetic_documents(60, 3)
    other = create_sso_examples(batch, list(range(60)), max_seq_length=64, cls_token_id=CLS, sep_token_id=SEP, seed=4)
    assert other["sentence_structural_label"] != [e["sentence_structural_label"] for e in sso_examples(seed=3)]


def test_single_sentence_documents_give_no_example_but_serve_as_negatives():
    batch = {"input_ids": [[1001] * 5, [2001] * 4 + [2002] * 4 + [2003] * 4],
             "sentence_ends": [[5], [4, 8, 12]]}
    output = create_sso_examples(batch, [0, 1], max_seq_length=64, cls_token_id=CLS, sep_token_id=SEP, seed=0,
                                 short_seq_prob=0.0)
    for ids, label in zip(output["input_ids"], output["sentence_structural_label"]):
        assert ids[1] // 1000 == 2  # A always from the multi-sentence document
        if label == SSO_RANDOM:
            assert ids[-2] // 1000 == 1


# ---------------------------------------------------------------- text corpora end to end

FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "orange", "peach", "pear"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]


def fruit_corpus():
    """Documents whose sentences say which document and sentence they are."""
    return [" ".join(f"The {fruit} story says {number} things." for number in NUMBERS) for fruit in FRUITS]


@pytest.fixture(scope="module")
def fruit_tokenizer():
    return train_wordpiece_tokenizer(fruit_corpus() * 3, vocab_size=200, min_frequency=1)


def test_text_pipeline_aligns_segments_with_sentences(tmp_path, fruit_tokenizer):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(fruit_corpus()) + "\n")  # one document per line
    args = pretraining_data_args("--train_file", train, "--validation_file", train, "--max_seq_length", 40)
    corpus = load_pretraining_corpus(args)
    assert corpus["train"].num_rows == len(FRUITS)
    examples = build_sso_dataset(corpus["train"], fruit_tokenizer, args)
    sentences = {s.lower() for doc in fruit_corpus() for s in split_sentences(doc)}
    for example in examples:
        ids, segment_ids = example["input_ids"], example["segment_ids"]
        assert segment_ids == sorted(segment_ids)
        for segment in sorted(set(segment_ids)):
            tokens = [t for t, s in zip(ids, segment_ids) if s == segment]
            text = fruit_tokenizer.decode(tokens)
            if tokens in ([fruit_tokenizer.cls_token_id], [fruit_tokenizer.sep_token_id]):
                continue
            # Each segment is one sentence (cut at the edges when the pair was truncated).
            assert any(text in sentence for sentence in sentences), text
        first, second = fruit_tokenizer.decode(ids).split("[SEP]")[:2]
        fruit_a = {f for f in FRUITS if f in first}
        fruit_b = {f for f in FRUITS if f in second}
        if example["sentence_structural_label"] == SSO_RANDOM:
            assert fruit_a.isdisjoint(fruit_b)
        else:
            assert fruit_a == fruit_b


def test_blank_line_separated_documents_and_jsonl_columns(tmp_path, fruit_tokenizer):
    text_file = tmp_path / "docs.txt"
    text_file.write_text("\n\n".join(doc.replace(". ", ".\n") for doc in fruit_corpus()))
    corpus = load_pretraining_corpus(pretraining_data_args("--train_file", text_file, "--validation_split_percentage", 20))
    assert corpus["train"].num_rows + corpus["validation"].num_rows == len(FRUITS)
    assert all(row["text"].count("\n") == len(NUMBERS) - 1 for row in corpus["train"])

    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"body": doc, "id": i}) + "\n" for i, doc in enumerate(fruit_corpus())))
    corpus = load_pretraining_corpus(pretraining_data_args("--train_file", jsonl, "--validation_file", jsonl,
                                               "--text_column_name", "body"))
    assert corpus["validation"].column_names == ["text"]
    assert corpus["validation"][0]["text"] == fruit_corpus()[0]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_file.*nowhere.txt"):
        load_pretraining_corpus(pretraining_data_args("--train_file", tmp_path / "nowhere.txt"))


def test_missing_text_column_is_a_clear_error(tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"body": "One. Two."}) + "\n" + json.dumps({"body": "Three. Four."}) + "\n")
    with pytest.raises(ValueError, match="'content' is not a column.*body"):
        load_pretraining_corpus(pretraining_data_args("--train_file", jsonl, "--validation_file", jsonl,
                                          "--text_column_name", "content"))


def test_empty_corpus_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises(ValueError, match="empty"):
        load_pretraining_corpus(pretraining_data_args("--train_file", empty, "--validation_file", empty,
                                          "--document_format", "line"))


def test_single_sentence_documents_are_counted_and_an_all_single_corpus_raises(tmp_path, fruit_tokenizer, caplog):
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("\n".join(fruit_corpus() + ["Just one sentence here.", "Another lonely line."]) + "\n")
    args = pretraining_data_args("--train_file", mixed, "--validation_file", mixed, "--max_seq_length", 40)
    corpus = load_pretraining_corpus(args)
    with caplog.at_level(logging.WARNING, logger="ponet_training.tasks.pretraining.sso_examples"):
        build_sso_dataset(corpus["train"], fruit_tokenizer, args)
    assert "2 of 12 documents have fewer than two sentences" in caplog.text

    single = tmp_path / "single.txt"
    single.write_text("Just one sentence here.\nAnother lonely line.\n")
    args = pretraining_data_args("--train_file", single, "--validation_file", single)
    corpus = load_pretraining_corpus(args)
    with pytest.raises(ValueError, match="no document with two or more sentences"):
        build_sso_dataset(corpus["train"], fruit_tokenizer, args)


def test_embedded_corpus_is_offline_prose_and_deterministic():
    documents = stdlib_documents(("json", "textwrap", "heapq"))
    assert documents == stdlib_documents(("json", "textwrap", "heapq"))
    assert len(documents) == 3
    assert all(">>>" not in doc and len(split_sentences(doc)) >= 2 for doc in documents)


# ---------------------------------------------------------------- masking collator


def features_for(tokenizer, count=64, length=48, seed=0):
    rng = random.Random(seed)
    normal = [i for i in range(len(tokenizer)) if i not in tokenizer.all_special_ids]
    features = []
    for _ in range(count):
        n = rng.randint(length // 2, length)
        ids = [tokenizer.cls_token_id] + [rng.choice(normal) for _ in range(n)] + [tokenizer.sep_token_id]
        split = rng.randint(2, n - 1)
        ids.insert(split, tokenizer.sep_token_id)
        features.append({
            "input_ids": ids,
            "token_type_ids": [0] * (split + 1) + [1] * (len(ids) - split - 1),
            "segment_ids": list(range(len(ids))),
            "sentence_structural_label": rng.randrange(3),
        })
    return features


def binomial_margin(p: float, n: int) -> float:
    """Five standard deviations of a rate of n draws with probability p: a real bias shows, chance does not."""
    return 5 * math.sqrt(p * (1 - p) / n)


def test_masking_rates_and_special_tokens_never_masked(tiny_tokenizer):
    collator = DataCollatorForPoNetPretraining(tiny_tokenizer, mlm_probability=0.15)
    features = features_for(tiny_tokenizer, count=400)
    batch = collator(features)
    original = collator.pad(features)["input_ids"]
    special = torch.isin(original, torch.tensor(tiny_tokenizer.all_special_ids))
    chosen = batch["labels"] != -100
    assert not (chosen & special).any()
    assert torch.equal(batch["labels"][chosen], original[chosen])
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])
    rate = chosen.sum().item() / (~special).sum().item()
    assert abs(rate - 0.15) < binomial_margin(0.15, (~special).sum().item())
    n = chosen.sum().item()
    masked = (batch["input_ids"] == tiny_tokenizer.mask_token_id) & chosen
    kept = (batch["input_ids"] == original) & chosen
    replaced = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < binomial_margin(0.8, n)
    assert abs((replaced.sum().item() + kept.sum().item()) / n - 0.2) < binomial_margin(0.2, n)
    # random draws may hit the original token: ~0.1 + 0.1/V
    assert abs(kept.sum().item() / n - 0.1) < binomial_margin(0.1, n) + 0.1 / len(tiny_tokenizer)
    assert not torch.isin(batch["input_ids"][replaced], torch.tensor(tiny_tokenizer.all_special_ids)).any()


def test_collator_pads_every_field_consistently(tiny_tokenizer):
    collator = DataCollatorForPoNetPretraining(tiny_tokenizer, pad_to_multiple_of=8)
    features = features_for(tiny_tokenizer, count=4, length=20)
    batch = collator(features)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= max(len(f["input_ids"]) for f in features)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["input_ids"][row, n:].eq(tiny_tokenizer.pad_token_id).all()
        assert batch["labels"][row, n:].eq(-100).all()
        assert batch["token_type_ids"][row].tolist() == feature["token_type_ids"] + [0] * (width - n)
        assert batch["segment_ids"][row].tolist() == feature["segment_ids"] + [n] * (width - n)
    assert batch["sentence_structural_label"].tolist() == [f["sentence_structural_label"] for f in features]


def test_whole_word_masking_masks_all_pieces_of_a_word(tiny_tokenizer):
    collator = DataCollatorForPoNetPretraining(tiny_tokenizer, whole_word_masking=True)
    pieces = [i for i, t in enumerate(tiny_tokenizer.convert_ids_to_tokens(list(range(len(tiny_tokenizer)))))
              if t.startswith("##")]
    starts = [i for i, t in enumerate(tiny_tokenizer.convert_ids_to_tokens(list(range(len(tiny_tokenizer)))))
              if not t.startswith("##") and i not in tiny_tokenizer.all_special_ids]
    rng = random.Random(0)
    features = []
    for _ in range(200):
        ids = [tiny_tokenizer.cls_token_id]
        for _ in range(12):
            ids += [rng.choice(starts)] + [rng.choice(pieces) for _ in range(rng.randint(0, 2))]
        features.append({"input_ids": ids + [tiny_tokenizer.sep_token_id]})
    batch = collator(features)
    original = collator.pad(features)["input_ids"]
    chosen = batch["labels"] != -100
    is_piece = torch.isin(original, torch.tensor(pieces))
    # A continuation piece is chosen exactly when the token before it is.
    assert torch.equal(chosen[:, 1:][is_piece[:, 1:]], chosen[:, :-1][is_piece[:, 1:]])
    word_starts = torch.isin(original, torch.tensor(starts))
    rate = chosen[word_starts].float().mean().item()
    assert abs(rate - 0.15) < binomial_margin(0.15, int(word_starts.sum()))


def test_masks_are_reproducible_per_epoch_and_change_across_epochs(tiny_tokenizer):
    collator = DataCollatorForPoNetPretraining(tiny_tokenizer, seed=5)
    features = features_for(tiny_tokenizer, count=16)
    first = collator(features)
    torch.manual_seed(123)  # the global RNG plays no part
    again = collator(features)
    assert torch.equal(first["input_ids"], again["input_ids"])
    collator.set_epoch(1)
    assert not torch.equal(collator(features)["labels"], first["labels"])
