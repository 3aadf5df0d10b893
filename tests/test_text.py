"""Sentence splitting and sentence-level segment ids aligned with the tokenization (ponet_training.data.segments)."""

from types import SimpleNamespace

import pytest
import torch

from modeling_ponet.modeling_ponet import segment_ids_from_special_tokens
from ponet_training.data.segments import (
    pad_segment_ids,
    paragraph_spans,
    segment_ids_from_keys,
    segment_ids_from_offsets,
    sentence_spans,
    split_sentences,
    tokenize_with_segment_ids,
)


TEXT = (
    "Dr. Smith went to Washington. He arrived at 5 p.m. on a\n"
    "rainy day! Was it cold?\n\n"
    "A new paragraph starts here. It has two sentences."
)


def test_sentence_spans_index_the_text_and_respect_abbreviations_and_line_wrapping():
    spans = sentence_spans(TEXT)
    sentences = [TEXT[start:end] for start, end in spans]
    assert sentences == [
        "Dr. Smith went to Washington.",
        "He arrived at 5 p.m. on a\nrainy day!",  # "Dr." and "p.m." do not end sentences; "\n" is wrapping
        "Was it cold?",
        "A new paragraph starts here.",
        "It has two sentences.",
    ]
    assert split_sentences(TEXT) == sentences
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_paragraph_mode_splits_on_blank_lines_only():
    assert split_sentences(TEXT, mode="paragraph") == [
        "Dr. Smith went to Washington. He arrived at 5 p.m. on a\nrainy day! Was it cold?",
        "A new paragraph starts here. It has two sentences.",
    ]
    assert paragraph_spans("one\n \n\n two\n\n") == [(0, 3), (8, 11)]
    assert sentence_spans("   \n\n  ") == []


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="Unknown segment mode"):
        sentence_spans(TEXT, mode="chapter")


def _reference_segment_ids(tokenizer, sentences):
    """Naive reference: tokenize each sentence on its own; CLS, each sentence, SEP are segments."""
    ids, segments = [tokenizer.cls_token_id], [0]
    for number, sentence in enumerate(sentences, start=1):
        pieces = tokenizer(sentence, add_special_tokens=False)["input_ids"]
        ids += pieces
        segments += [number] * len(pieces)
    return ids + [tokenizer.sep_token_id], segments + [len(sentences) + 1]


def test_segment_ids_follow_sentences_of_the_single_tokenization(tiny_tokenizer):
    encoding = tokenize_with_segment_ids(tiny_tokenizer, TEXT)
    ids, expected = _reference_segment_ids(tiny_tokenizer, split_sentences(TEXT))
    assert encoding["input_ids"] == ids  # WordPiece splits at whitespace: same tokens as per-sentence
    assert encoding["segment_ids"] == expected


def test_segment_ids_from_offsets_matches_the_convention_example():
    # [CLS] s1 s1 s2 [SEP] with spans s1 = chars 0-9, s2 = chars 10-14
    offsets = [(0, 0), (0, 4), (5, 9), (10, 14), (0, 0)]
    special = [1, 0, 0, 0, 1]
    assert segment_ids_from_offsets(offsets, [(0, 9), (10, 14)], special) == [0, 1, 1, 2, 3]
    # Without a special-tokens mask, empty offsets mark the special tokens.
    assert segment_ids_from_offsets(offsets, [(0, 9), (10, 14)]) == [0, 1, 1, 2, 3]
    # Full convention example, padded: [CLS] s1 s1 s2 [SEP] s3 [SEP] PAD PAD -> 0 1 1 2 3 4 5 6 6
    keys = [None, ("a", 0), ("a", 0), ("a", 1), None, ("b", 0), None]
    assert pad_segment_ids([segment_ids_from_keys(keys)], 9) == [[0, 1, 1, 2, 3, 4, 5, 6, 6]]


def test_pair_encoding_gets_sentences_of_both_texts(tiny_tokenizer):
    first, second = "The dog sleeps. A fox is quick.", "Rivers flow to the sea."
    encoding = tokenize_with_segment_ids(tiny_tokenizer, first, second)
    ids_a, seg_a = _reference_segment_ids(tiny_tokenizer, split_sentences(first))
    ids_b, seg_b = _reference_segment_ids(tiny_tokenizer, split_sentences(second))
    offset = seg_a[-1] + 1
    assert encoding["input_ids"] == ids_a + ids_b[1:]
    assert encoding["segment_ids"] == seg_a + [s - 1 + offset for s in seg_b[1:]]
    assert encoding["token_type_ids"] == [0] * len(ids_a) + [1] * (len(ids_b) - 1)


def test_one_sentence_per_part_gives_the_segments_ponet_derives_from_cls_and_sep(tiny_tokenizer):
    texts, pairs = ["The dog sleeps all day.", "Python is a language."], ["A fox is quick.", "Tests keep code honest."]
    encoding = tokenize_with_segment_ids(tiny_tokenizer, texts, pairs, padding=True, return_tensors="pt")
    special = torch.isin(encoding["input_ids"], torch.tensor([tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id]))
    derived = segment_ids_from_special_tokens(special.long())
    real = encoding["attention_mask"].bool()
    assert torch.equal(encoding["segment_ids"][real], derived[real])


def test_padded_batches_have_one_more_segment_for_padding_on_either_side(tiny_tokenizer):
    texts = ["The dog sleeps all day. A fox is quick.", "Rivers flow."]
    right = tokenize_with_segment_ids(tiny_tokenizer, texts, padding="max_length", max_length=24, return_tensors="pt")
    assert right["segment_ids"].shape == (2, 24)
    short = right["segment_ids"][1]
    length = int(right["attention_mask"][1].sum())
    assert torch.all(short[length:] == short[length - 1] + 1)
    assert torch.all(right["segment_ids"][:, 1:] >= right["segment_ids"][:, :-1])

    tiny_tokenizer.padding_side = "left"
    try:
        left = tokenize_with_segment_ids(tiny_tokenizer, texts, padding=True, return_tensors="pt")
    finally:
        tiny_tokenizer.padding_side = "right"
    pads = int((left["attention_mask"][1] == 0).sum())
    assert pads > 0
    assert torch.all(left["segment_ids"][1, :pads] == 0)
    unpadded = tokenize_with_segment_ids(tiny_tokenizer, texts[1])["segment_ids"]
    assert left["segment_ids"][1, pads:].tolist() == [s + 1 for s in unpadded]
    assert torch.all(left["segment_ids"][:, 1:] >= left["segment_ids"][:, :-1])


def test_truncation_keeps_segment_ids_aligned(tiny_tokenizer):
    full = tokenize_with_segment_ids(tiny_tokenizer, TEXT)
    cut = tokenize_with_segment_ids(tiny_tokenizer, TEXT, truncation=True, max_length=10)
    assert len(cut["input_ids"]) == len(cut["segment_ids"]) == 10
    assert cut["segment_ids"][:9] == full["segment_ids"][:9]
    assert cut["segment_ids"][9] == cut["segment_ids"][8] + 1  # the final [SEP] is its own segment


def test_pad_segment_ids_checks_its_input():
    assert pad_segment_ids([[0, 1, 2], [0, 1]], padding_side="right") == [[0, 1, 2], [0, 1, 2]]
    assert pad_segment_ids([[0, 1, 2], [0, 1]], 4, "left") == [[0, 1, 2, 3], [0, 0, 1, 2]]
    assert pad_segment_ids([[]], 2) == [[0, 0]]
    with pytest.raises(ValueError, match="longer than max_length"):
        pad_segment_ids([[0, 1, 2]], 2)
    with pytest.raises(ValueError, match="padding_side"):
        pad_segment_ids([[0]], 2, "middle")


def test_tokenizers_without_offsets_are_rejected():
    slow = SimpleNamespace(is_fast=False)  # a Python-only tokenizer gives no offset_mapping
    with pytest.raises(ValueError, match="fast tokenizer"):
        tokenize_with_segment_ids(slow, TEXT)
