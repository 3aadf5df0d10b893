"""Documents -> MLM + SSO examples, as published (after StructBERT's sentence structural objective: Tan et al.,
ICLR 2022, arXiv:2110.02442, and the original repository github.com/lxchtan/PoNet).

1. `tokenize_documents(...)`: each document is tokenized ONCE; sentences (pysbd) are mapped onto its tokens
   through the offsets, and stored as cumulative token counts (`sentence_ends`).
2. `create_sso_examples(...)`: chunks of consecutive sentences of one document up to `max_seq_length`, split
   at a random sentence boundary into A and B; label 0 (A B in order), 1 (swapped: B A), 2 (B replaced by
   sentences of ANOTHER document), each with probability 1/3. Inputs are `[CLS] A [SEP] B [SEP]` with token
   types and sentence-level `segment_ids`. Both steps are batched datasets `map`s (multiprocess, cached),
   and the examples are a pure function of (seed, batch of documents).
3. `build_sso_dataset(...)`: steps 1 and 2 over a corpus split (`corpus.load_pretraining_corpus`).

The masks are drawn later, on the fly, by `collators`.
"""

import argparse
import logging
import random

from ponet_training.data.segments import segment_ids_from_keys, sentence_spans, token_sentence_index


logger = logging.getLogger(__name__)

SSO_IN_ORDER, SSO_SWAPPED, SSO_RANDOM = 0, 1, 2


def tokenize_documents(batch: dict, tokenizer, mode: str = "sentence", language: str = "en") -> dict:
    """Batched `map` function: tokenize each document once (no special tokens) and record where its
    sentences end in tokens. Returns `input_ids` (all tokens of the document) and `sentence_ends`
    (cumulative token counts, one per non-empty sentence)."""
    encoding = tokenizer(batch["text"], add_special_tokens=False, return_offsets_mapping=True,
                         return_attention_mask=False, return_token_type_ids=False, verbose=False)
    all_ends = []
    for text, offsets in zip(batch["text"], encoding["offset_mapping"]):
        sentence_of_token = token_sentence_index(offsets, sentence_spans(text, mode=mode, language=language),
                                                 [0] * len(offsets))
        ends = [position for position in range(1, len(offsets))
                if sentence_of_token[position] != sentence_of_token[position - 1]]
        all_ends.append(ends + [len(offsets)] if offsets else [])
    return {"input_ids": encoding["input_ids"], "sentence_ends": all_ends}


def _truncate_pair(tokens_a: list, tokens_b: list, max_tokens: int) -> None:
    """Trim the longer of A and B until they fit, at its far end in document order (A's front, B's back),
    so that the junction between A and B, which SSO is about, stays intact."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        if len(tokens_a) > len(tokens_b):
            del tokens_a[0]
        else:
            tokens_b.pop()


def create_sso_examples(batch: dict, indices: list[int], *, max_seq_length: int, cls_token_id: int,
                        sep_token_id: int, short_seq_prob: float = 0.1, seed: int = 42) -> dict:
    """Batched `map` function (`with_indices=True`) turning tokenized documents (`input_ids`,
    `sentence_ends`) into SSO examples.

    For each document, consecutive sentences are gathered into chunks of up to `max_seq_length - 3` tokens
    (a shorter random target with probability `short_seq_prob`), each chunk split at a random sentence
    boundary into A and B, and labelled 0 (A B), 1 (B A) or 2 (A, then sentences of another document of the
    batch of the same length budget) with probability 1/3 each; for label 2 the unused B sentences go back
    to the document (as BERT does). Pairs too long are trimmed at A's front and B's back, never at their
    junction. Chunks of a single sentence cannot be split and are dropped; documents
    of a single sentence only serve as random negatives.

    Returns `input_ids` (`[CLS] A [SEP] B [SEP]`), `token_type_ids`, `segment_ids` (sentence-level) and
    `sentence_structural_label`. The result depends only on `seed`, the batch and its first index.
    """
    rng = random.Random(seed * 1_000_003 + (indices[0] if len(indices) else 0))
    max_tokens = max_seq_length - 3
    if max_tokens < 2:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for two sentences after [CLS]/[SEP]")
    documents = []
    for ids, ends in zip(batch["input_ids"], batch["sentence_ends"]):
        starts = [0] + list(ends[:-1])
        documents.append([list(ids[start:end]) for start, end in zip(starts, ends)])
    output = {"input_ids": [], "token_type_ids": [], "segment_ids": [], "sentence_structural_label": []}
    usable_negatives = [i for i, doc in enumerate(documents) if doc]

    for doc_index, sentences in enumerate(documents):
        target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
        chunk, chunk_length, i = [], 0, 0
        while i < len(sentences):
            chunk.append(i)
            chunk_length += len(sentences[i])
            if i == len(sentences) - 1 or chunk_length >= target:
                if len(chunk) >= 2:
                    split = rng.randint(1, len(chunk) - 1)
                    part_a = [(s, token) for s in chunk[:split] for token in sentences[s]]
                    part_b = [(s, token) for s in chunk[split:] for token in sentences[s]]
                    others = [d for d in usable_negatives if d != doc_index]
                    label = rng.randrange(3) if others else rng.randrange(2)
                    if label == SSO_RANDOM:
                        other = documents[rng.choice(others)]
                        start = rng.randrange(len(other))
                        budget = max(target - len(part_a), 1)
                        part_b = []
                        for s in range(start, len(other)):
                            part_b += [(s, token) for token in other[s]]
                            if len(part_b) >= budget:
                                break
                        i -= len(chunk) - split  # B's own sentences start the next chunk
                    _truncate_pair(part_a, part_b, max_tokens)
                    if label == SSO_SWAPPED:
                        part_a, part_b = part_b, part_a
                    if part_a and part_b:
                        keys = ([None] + [("a", s) for s, _ in part_a] + [None]
                                + [("b", s) for s, _ in part_b] + [None])
                        output["input_ids"].append([cls_token_id] + [t for _, t in part_a] + [sep_token_id]
                                                   + [t for _, t in part_b] + [sep_token_id])
                        output["token_type_ids"].append([0] * (len(part_a) + 2) + [1] * (len(part_b) + 1))
                        output["segment_ids"].append(segment_ids_from_keys(keys))
                        output["sentence_structural_label"].append(label)
                target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
                chunk, chunk_length = [], 0
            i += 1
    return output


def build_sso_dataset(documents, tokenizer, args: argparse.Namespace, split: str = "train", seed_offset: int = 0,
                      dupe_factor: int = 1):
    """Documents (column `text`) -> SSO examples, with batched, cached `map`s: tokenization and sentence
    splitting once, then `dupe_factor` differently seeded rounds of `create_sso_examples` (concatenated).
    Uses `args.max_seq_length`, `short_seq_prob`, `seed`, `preprocessing_num_workers`, `overwrite_cache`,
    `sentence_language`. Logs how many documents are too short to give an example; raises if none gives any."""
    from datasets import IterableDataset

    streaming = isinstance(documents, IterableDataset)
    map_kwargs = {} if streaming else dict(num_proc=args.preprocessing_num_workers,
                                            load_from_cache_file=not args.overwrite_cache)
    language = getattr(args, "sentence_language", "en")
    tokenized = documents.map(
        tokenize_documents, batched=True, remove_columns=["text"],
        fn_kwargs=dict(tokenizer=tokenizer, language=language),
        **map_kwargs, **({} if streaming else {"desc": f"Tokenizing and splitting {split} documents"}),
    )
    if not streaming:
        import pyarrow.compute as pc

        counts = pc.list_value_length(tokenized.data.column("sentence_ends")).to_numpy(zero_copy_only=False)
        single = int((counts < 2).sum())
        if single:
            logger.warning(f"{split}: {single} of {len(counts)} documents have fewer than two sentences; they give "
                           "no SSO example (they only serve as random negatives)")
        if single == len(counts):
            raise ValueError(f"The {split} corpus has no document with two or more sentences: SSO needs sentence "
                             "pairs (are the documents split correctly? see --document_format)")
        if len(counts) < 2:
            raise ValueError(f"The {split} corpus has a single document: SSO needs another document for its "
                             "random-negative class")
    if dupe_factor < 1 or (streaming and dupe_factor > 1):
        raise ValueError(f"--dupe_factor must be >= 1 (and 1 with --streaming), got {dupe_factor}")
    copies = []
    for copy in range(dupe_factor):
        copies.append(tokenized.map(
            create_sso_examples, batched=True, with_indices=True, remove_columns=["input_ids", "sentence_ends"],
            fn_kwargs=dict(max_seq_length=args.max_seq_length, cls_token_id=tokenizer.cls_token_id,
                           sep_token_id=tokenizer.sep_token_id, short_seq_prob=args.short_seq_prob,
                           seed=args.seed + seed_offset + 1009 * copy),
            **map_kwargs, **({} if streaming else {"desc": f"Creating {split} SSO examples ({copy + 1}/{dupe_factor})"}),
        ))
    if streaming:
        return copies[0]
    from datasets import concatenate_datasets

    examples = copies[0] if dupe_factor == 1 else concatenate_datasets(copies)
    if len(examples) == 0:
        raise ValueError(f"No SSO example could be built from the {split} corpus: every sentence is longer than "
                         f"--max_seq_length - 3 = {args.max_seq_length - 3} tokens (an example holds two sentence "
                         "chunks, [CLS] and two [SEP]), or no sentence boundary was found (long lines without '.', '!' "
                         "or '?'). Pass a larger --max_seq_length, or a corpus split into shorter sentences")
    return examples


__all__ = ["SSO_IN_ORDER", "SSO_RANDOM", "SSO_SWAPPED", "build_sso_dataset", "create_sso_examples",
           "tokenize_documents"]
