"""Tokenize with truncation at a cost linear in the text length.

A fast tokenizer that truncates a pair also builds the overflow windows of both texts and their combinations, so
time and memory grow with the square of the text length (a pair of two 3,600-word texts needs several GB).
`tokenize_truncated` tokenizes each text alone first (linear, no truncation), cuts it after whole words a little
beyond what truncation can keep, checks that the cut text's tokens are the full text's first tokens, and only then
tokenizes with truncation. The result is exactly that of truncating the full texts: longest-first truncation
depends only on the kept prefixes, on the length of a side short enough to be kept whole, and on which side is
longer (it gets the odd token), all of which the cut preserves.

- `tokenize_truncated(tokenizer, texts, pairs, max_length, **kwargs)` -> (encoding, truncated flags).
"""

from __future__ import annotations

import re
from bisect import bisect_left


_WHITESPACE = re.compile(r"\s")


def _cut(text: str, offsets, keep: int) -> tuple[str, int]:
    """`text` up to the end of the word holding its token `keep - 1`, and how many tokens that keeps."""
    if keep >= len(offsets):
        return text, len(offsets)
    after = _WHITESPACE.search(text, offsets[keep - 1][1])
    if after is None:
        return text, len(offsets)
    return text[:after.start()], bisect_left([start for start, _ in offsets], after.start())


def _cut_row(texts: list[str], encodings, keep: int) -> tuple[list[str], list[int]]:
    """Cut one example's texts (one, or a pair) to at least `keep` tokens each, keeping which side is longer."""
    lengths = [len(encoding["input_ids"]) for encoding in encodings]
    cut = [_cut(text, encoding["offset_mapping"], keep) for text, encoding in zip(texts, encodings)]
    if len(cut) == 2:
        (_, kept_a), (_, kept_b) = cut
        if lengths[0] > lengths[1] and kept_a <= kept_b:
            cut[0] = _cut(texts[0], encodings[0]["offset_mapping"], kept_b + 1)
        elif lengths[0] <= lengths[1] and kept_a > kept_b:
            cut[1] = _cut(texts[1], encodings[1]["offset_mapping"], kept_a)
    return [text for text, _ in cut], lengths


def tokenize_truncated(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, **kwargs):
    """`tokenizer(texts, pairs, truncation=True, max_length=max_length, **kwargs)` at linear cost, and for each
    example whether truncation dropped tokens."""
    texts = list(texts)
    pairs = None if pairs is None else list(pairs)
    sides = [texts] if pairs is None else [texts, pairs]
    specials = tokenizer.num_special_tokens_to_add(pair=pairs is not None)
    if not getattr(tokenizer, "is_fast", False) or tokenizer.truncation_side != "right":
        full = [tokenizer(side, add_special_tokens=False)["input_ids"] for side in sides]
        truncated = [sum(map(len, row)) + specials > max_length for row in zip(*full)]
        return tokenizer(texts, pairs, truncation=True, max_length=max_length, **kwargs), truncated
    # Longest-first keeps at most max_length tokens of a side: max_length + 1 decide everything (see above).
    keep = max_length + 1
    full = [tokenizer(side, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
                      return_token_type_ids=False) for side in sides]
    rows = [[encoding[row] for encoding in full] for row in range(len(texts))]
    truncated, cut_sides = [], [[] for _ in sides]
    for row, encodings in enumerate(rows):
        row_texts = [side[row] for side in sides]
        cut, lengths = _cut_row(row_texts, [{"input_ids": e.ids, "offset_mapping": e.offsets} for e in encodings], keep)
        truncated.append(sum(lengths) + specials > max_length)
        for side, text in zip(cut_sides, cut):
            side.append(text)
    # A tokenizer whose tokens change at a word cut (no whitespace pre-tokenization) gets the full texts back.
    changed = [(index, row) for index in range(len(sides)) for row in range(len(texts))
               if len(cut_sides[index][row]) < len(sides[index][row])]
    if changed:
        recut = tokenizer([cut_sides[index][row] for index, row in changed], add_special_tokens=False)["input_ids"]
        for (index, row), ids in zip(changed, recut):
            if ids != full[index]["input_ids"][row][:len(ids)]:
                for side, cut_side in zip(sides, cut_sides):
                    cut_side[row] = side[row]
    encoding = tokenizer(*cut_sides, truncation=True, max_length=max_length, **kwargs)
    return encoding, truncated


__all__ = ["tokenize_truncated"]
