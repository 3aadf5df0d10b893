"""Sentences and paragraphs -> PoNet `segment_ids` aligned with a tokenization.

PoNet's segment max-pooling pools over segments. Given plain `[CLS] A [SEP] B [SEP]` inputs the model derives
segments from CLS/SEP; pretraining (SSO) and long documents instead pass sentence-level (or paragraph-level)
`segment_ids`. The convention (the one PoNet derives from CLS/SEP, refined to sentences) is: ids are
non-decreasing along a row, `[CLS]` is a segment of its own, every sentence is a segment, every `[SEP]` is
a segment of its own, and the padding run is one more segment::

    [CLS] s1 s1 s2 [SEP] s3 [SEP] PAD PAD  ->  0 1 1 2 3 4 5 6 6

The text is tokenized ONCE and tokens are mapped to sentences through the fast tokenizer's
`offset_mapping` (no per-sentence re-tokenization, so the ids are exactly those of the full encoding).
Sentence splitting uses pysbd (rule-based, offline).

- `sentence_spans`, `paragraph_spans`, `split_sentences`: where the sentences (or paragraphs) of a text are.
- `token_sentence_index`, `segment_ids_from_keys`, `segment_ids_from_offsets`: tokens -> segment ids.
- `pad_segment_ids`, `tokenize_with_segment_ids(tokenizer, text, text_pair, mode, ...)`; `SEGMENT_MODES`.
"""

import functools
import re
from bisect import bisect_right
from collections.abc import Sequence

# A single newline inside a paragraph is line wrapping, not a sentence end (pysbd would split there).
_SINGLE_NEWLINE = re.compile(r"(?<!\n)\n(?!\n)")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")

SEGMENT_MODES = ("sentence", "paragraph")

# The most characters given to pysbd at once (its cost is quadratic in its input; see _windowed_sentence_spans).
MAX_SEGMENTER_CHARS = 5000


@functools.lru_cache(maxsize=4)
def _segmenter(language: str):
    import pysbd

    return pysbd.Segmenter(language=language, clean=False, char_span=False)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink [start, end) to exclude surrounding whitespace; None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the paragraphs of `text` (blocks separated by blank lines)."""
    spans, start = [], 0
    for match in _BLANK_LINE.finditer(text):
        span = _trim(text, start, match.start())
        if span:
            spans.append(span)
        start = match.end()
    span = _trim(text, start, len(text))
    if span:
        spans.append(span)
    return spans


def sentence_spans(text: str, mode: str = "sentence", language: str = "en") -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the sentences (or, with `mode="paragraph"`, the paragraphs) of
    `text`, in order, without surrounding whitespace. Sentences never cross a paragraph break.

    Sentences come from pysbd's rule-based segmenter (abbreviations, decimals, quotes handled), run on windows of
    at most `MAX_SEGMENTER_CHARS` characters so the cost is linear in the text length; single newlines are
    treated as line wrapping. `text[start:end]` is the sentence.
    """
    if mode not in SEGMENT_MODES:
        raise ValueError(f"Unknown segment mode {mode!r}; choose one of {SEGMENT_MODES}")
    paragraphs = paragraph_spans(text)
    if mode == "paragraph":
        return paragraphs
    spans = []
    for p_start, p_end in paragraphs:
        # Same length as the paragraph, so offsets in it map back one to one.
        paragraph = _SINGLE_NEWLINE.sub(" ", text[p_start:p_end])
        spans.extend((p_start + start, p_start + end) for start, end in _windowed_sentence_spans(paragraph, language))
    return spans


def _piece_spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Where pysbd's `pieces` of `text` are, trimmed of whitespace, in order."""
    spans, position = [], 0
    for piece in pieces:
        found = text.find(piece, position)
        if found < 0:  # pysbd altered the text (should not happen with clean=False): stay aligned anyway
            piece = piece.strip()
            found = text.find(piece, position) if piece else -1
            if found < 0:
                continue
        span = _trim(text, found, found + len(piece))
        position = found + len(piece)
        if span:
            spans.append(span)
    return spans


def _windowed_sentence_spans(paragraph: str, language: str) -> list[tuple[int, int]]:
    """Sentence spans of one paragraph, segmenting at most `MAX_SEGMENTER_CHARS` characters at a time.

    pysbd's time grows with the square of its input, so a long paragraph (a whole document on one line) is cut
    into windows: each window's last sentence may be cut off, so it is dropped and the next window starts where
    it started. A sentence longer than a window is cut at the window's last space.
    """
    segmenter = _segmenter(language)
    spans, start = [], 0
    while start < len(paragraph):
        end = start + MAX_SEGMENTER_CHARS
        if end >= len(paragraph):
            end = len(paragraph)
        else:
            space = paragraph.rfind(" ", start + MAX_SEGMENTER_CHARS // 2, end)
            end = space if space > start else end
        found = [(start + a, start + b) for a, b in _piece_spans(paragraph[start:end],
                                                                  segmenter.segment(paragraph[start:end]))]
        if end == len(paragraph) or len(found) < 2:
            spans.extend(found)
            start = end
        else:
            spans.extend(found[:-1])
            start = found[-1][0]
    return spans


def split_sentences(text: str, mode: str = "sentence", language: str = "en") -> list[str]:
    """The sentences (or paragraphs) of `text` as strings; see `sentence_spans`."""
    return [text[start:end] for start, end in sentence_spans(text, mode=mode, language=language)]


def token_sentence_index(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[tuple[int, int]],
    special_tokens_mask: Sequence[int] | None = None,
) -> list[int]:
    """For each token, the index of the span (sentence) its first character falls in; -1 for special
    tokens (given by `special_tokens_mask`, or recognised by an empty `(0, 0)` offset).

    A token starting between two spans (e.g. on whitespace) belongs to the preceding span.
    """
    starts = [start for start, _ in spans]
    result = []
    for position, (start, end) in enumerate(offsets):
        special = special_tokens_mask[position] if special_tokens_mask is not None else (start == end == 0)
        if special or not spans:
            result.append(-1)
        else:
            result.append(max(bisect_right(starts, start) - 1, 0))
    return result


def segment_ids_from_keys(keys: Sequence) -> list[int]:
    """Segment ids from one key per token: consecutive tokens with the same key share a segment, and a
    `None`/-1 key (a special token) is a segment of its own. Ids start at 0 and increase by one."""
    segment_ids, current, previous = [], -1, object()
    for key in keys:
        if key is None or key == -1 or key != previous:
            current += 1
        segment_ids.append(current)
        previous = object() if key is None or key == -1 else key
    return segment_ids


def segment_ids_from_offsets(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[tuple[int, int]] | Sequence[Sequence[tuple[int, int]]],
    special_tokens_mask: Sequence[int] | None = None,
    sequence_ids: Sequence[int | None] | None = None,
) -> list[int]:
    """Sentence-level `segment_ids` of one (unpadded) encoding, from its `offset_mapping`.

    Args:
        offsets: the encoding's `offset_mapping` (character spans in the text each token came from).
        spans: sentence spans of the text (`sentence_spans(text)`); for a pair encoding, a pair
            `(spans_of_text, spans_of_text_pair)` together with `sequence_ids`.
        special_tokens_mask: 1 for [CLS]/[SEP]/... (`return_special_tokens_mask=True`); if omitted, tokens
            with an empty `(0, 0)` offset count as special.
        sequence_ids: `encoding.sequence_ids(i)` (0 / 1 / None per token), needed for pairs.

    Returns one id per token, following the convention of this module: `[CLS]`, each sentence and each
    `[SEP]` are segments, numbered 0, 1, 2, ... in order.
    """
    if sequence_ids is None:
        keys = token_sentence_index(offsets, spans, special_tokens_mask)
        return segment_ids_from_keys(keys)
    if len(spans) != 2:
        raise ValueError("With `sequence_ids`, `spans` must be a pair (spans of text, spans of text_pair)")
    per_sequence = [token_sentence_index(offsets, s, special_tokens_mask) for s in spans]
    keys = []
    for position, sequence in enumerate(sequence_ids):
        index = -1 if sequence is None else per_sequence[sequence][position]
        keys.append(-1 if index == -1 else (sequence, index))
    return segment_ids_from_keys(keys)


def pad_segment_ids(
    batch: Sequence[Sequence[int]], max_length: int | None = None, padding_side: str = "right"
) -> list[list[int]]:
    """Pad rows of segment ids to `max_length` (default: the longest row). The padding run is one more
    segment: `last id + 1` after the row (right padding), or segment 0 before a row whose ids are shifted
    by one (left padding), so ids stay non-decreasing. Rows longer than `max_length` raise."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"`padding_side` must be 'right' or 'left', got {padding_side!r}")
    if max_length is None:
        max_length = max((len(row) for row in batch), default=0)
    padded = []
    for row in batch:
        row = list(row)
        missing = max_length - len(row)
        if missing < 0:
            raise ValueError(f"A row of {len(row)} segment ids is longer than max_length={max_length}")
        if missing == 0:
            padded.append(row)
        elif padding_side == "right":
            padded.append(row + [(row[-1] + 1) if row else 0] * missing)
        else:
            padded.append([0] * missing + [value + 1 for value in row])
    return padded


def tokenize_with_segment_ids(tokenizer, text, text_pair=None, mode: str = "sentence", language: str = "en",
                              padding=False, max_length: int | None = None, return_tensors=None, **kwargs):
    """Tokenize `text` (a string or a list of strings, optionally with `text_pair`) and add sentence-level
    (or `mode="paragraph"`) `segment_ids` computed from the offsets of this very tokenization.

    Keyword arguments go to the tokenizer (e.g. `truncation=True`, `max_length`); `padding` and
    `return_tensors` are applied after the segment ids exist, padding them as `pad_segment_ids` does.
    Needs a fast tokenizer (offsets).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("Sentence-level segment ids need a fast tokenizer (it provides `offset_mapping`)")
    single = isinstance(text, str)
    texts = [text] if single else list(text)
    pairs = None
    if text_pair is not None:
        pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
        if len(pairs) != len(texts):
            raise ValueError(f"Got {len(texts)} texts but {len(pairs)} text pairs")
    encoding = tokenizer(texts, pairs, max_length=max_length, return_offsets_mapping=True,
                         return_special_tokens_mask=True, **kwargs)
    all_segment_ids = []
    for row in range(len(encoding["input_ids"])):
        # Overflowing rows (return_overflowing_tokens) point back at their source text.
        source = encoding["overflow_to_sample_mapping"][row] if "overflow_to_sample_mapping" in encoding else row
        spans_a = sentence_spans(texts[source], mode=mode, language=language)
        offsets, special = encoding["offset_mapping"][row], encoding["special_tokens_mask"][row]
        if pairs is None:
            all_segment_ids.append(segment_ids_from_offsets(offsets, spans_a, special))
        else:
            spans_b = sentence_spans(pairs[source], mode=mode, language=language)
            all_segment_ids.append(
                segment_ids_from_offsets(offsets, (spans_a, spans_b), special, encoding.sequence_ids(row))
            )
    encoding.pop("offset_mapping")
    encoding.pop("special_tokens_mask")
    if padding:
        encoding = tokenizer.pad(encoding, padding=padding, max_length=max_length)
        width = len(encoding["input_ids"][0]) if encoding["input_ids"] else 0
        all_segment_ids = pad_segment_ids(all_segment_ids, width, tokenizer.padding_side)
    encoding["segment_ids"] = all_segment_ids
    if single and not padding and return_tensors is None and "overflow_to_sample_mapping" not in encoding:
        return type(encoding)({key: value[0] for key, value in encoding.items()})
    if return_tensors is not None:
        encoding = type(encoding)(dict(encoding), tensor_type=return_tensors)
    return encoding


__all__ = [
    "SEGMENT_MODES",
    "sentence_spans",
    "paragraph_spans",
    "split_sentences",
    "token_sentence_index",
    "segment_ids_from_keys",
    "segment_ids_from_offsets",
    "pad_segment_ids",
    "tokenize_with_segment_ids",
]
