"""Pretraining data for PoNet: a corpus of documents -> MLM + SSO examples, and the masking collator.

The pipeline (as published, after StructBERT's sentence structural objective: Tan et al., ICLR 2022,
arXiv:2110.02442, and the original repository github.com/lxchtan/PoNet):

1. `load_pretraining_corpus(args)`: documents from a Hub dataset (optionally streamed), local text / jsonl
   files, or the embedded default corpus (`stdlib_corpus()`: docstrings of Python's standard library,
   available offline everywhere). One column, `text`, one document per row.
2. `tokenize_documents(...)`: each document is tokenized ONCE; sentences (pysbd) are mapped onto its tokens
   through the offsets, and stored as cumulative token counts (`sentence_ends`).
3. `create_sso_examples(...)`: chunks of consecutive sentences of one document up to `max_seq_length`, split
   at a random sentence boundary into A and B; label 0 (A B in order), 1 (swapped: B A), 2 (B replaced by
   sentences of ANOTHER document), each with probability 1/3. Inputs are `[CLS] A [SEP] B [SEP]` with token
   types and sentence-level `segment_ids`. Both steps are batched datasets `map`s (multiprocess, cached),
   and the examples are a pure function of (seed, batch of documents).
4. `DataCollatorForPoNetPretraining`: pads and masks on the fly (15% of non-special tokens, 80% [MASK],
   10% random, 10% kept; optional whole-word masking). The masks are a pure function of (seed, epoch,
   batch contents), so a resumed run re-creates exactly the masks an uninterrupted one would.

Also: `add_pretraining_data_args(parser)` / `has_data_args(args)` (the data flags), `corpus_text_batches(...)`
(text for training a tokenizer) and `build_sso_dataset(...)` (steps 2 and 3 over a corpus split).
"""

import argparse
import hashlib
import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from ponet_training.data.stdlib_docstrings import stdlib_corpus
from ponet_training.data.tables import check_text_file
from ponet_training.data.segments import pad_segment_ids, segment_ids_from_keys, sentence_spans, token_sentence_index


logger = logging.getLogger(__name__)

SSO_IN_ORDER, SSO_SWAPPED, SSO_RANDOM = 0, 1, 2


# ----------------------------------------------------------------------------------------------------------
# Loading a corpus
# ----------------------------------------------------------------------------------------------------------


def add_pretraining_data_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The data flags of `run_pretraining.py` (names as in transformers' `run_mlm_no_trainer.py`)."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset_name", type=str, default=None, help="A dataset on the Hub (or a local dataset folder).")
    group.add_argument("--dataset_config_name", type=str, default=None, help="The configuration of --dataset_name.")
    group.add_argument("--train_file", type=str, default=None,
                       help="Plain text (.txt: one document per line, or documents separated by blank lines) or "
                            "JSON lines (.json/.jsonl with a text column).")
    group.add_argument("--validation_file", type=str, default=None, help="Same formats as --train_file.")
    group.add_argument("--text_column_name", type=str, default=None,
                       help="The column holding the documents (default: 'text', or the only string column).")
    group.add_argument("--document_format", choices=["auto", "line", "blank_line"], default="auto",
                       help="How .txt files hold documents: one per line, or separated by blank lines "
                            "(auto: blank_line if the file has blank lines).")
    group.add_argument("--validation_split_percentage", type=int, default=5,
                       help="Share of the training documents held out for validation when there is no "
                            "validation split.")
    group.add_argument("--streaming", action="store_true",
                       help="Stream the Hub dataset (for corpora that do not fit on disk); needs --max_train_steps.")
    group.add_argument("--shuffle_buffer_size", type=int, default=10_000,
                       help="Shuffle buffer of the streamed training examples.")
    group.add_argument("--max_eval_documents", type=int, default=1000,
                       help="Documents held out for validation from a streamed corpus without a validation split.")
    group.add_argument("--max_seq_length", type=int, default=512,
                       help="Length of the `[CLS] A [SEP] B [SEP]` examples, in tokens.")
    group.add_argument("--dupe_factor", type=int, default=1,
                       help="Build the SSO examples this many times with different random splits and labels "
                            "(BERT's dupe_factor); not with --streaming.")
    group.add_argument("--short_seq_prob", type=float, default=0.1,
                       help="Probability of a shorter random target length for a chunk (as BERT does).")
    group.add_argument("--mlm_probability", type=float, default=0.15, help="Share of the tokens to mask.")
    group.add_argument("--whole_word_masking", action="store_true",
                       help="Mask whole words (all the WordPiece pieces of a chosen word).")
    group.add_argument("--sentence_language", type=str, default="en", help="Language of the sentence splitter (pysbd).")
    group.add_argument("--max_train_samples", type=int, default=None,
                       help="Keep only this many training examples (debugging).")
    group.add_argument("--max_eval_samples", type=int, default=None,
                       help="Keep only this many validation examples.")
    return parser


def has_data_args(args: argparse.Namespace) -> bool:
    """True when the user named a corpus (otherwise the embedded default corpus is used)."""
    return bool(args.dataset_name or args.train_file or args.validation_file)


def _detect_document_format(path: str, document_format: str) -> str:
    if document_format != "auto":
        return document_format
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(1 << 20)
    found = "blank_line" if re.search(r"\n[ \t]*\n", head) else "line"
    logger.info(f"{path}: documents are {'separated by blank lines' if found == 'blank_line' else 'one per line'} "
                f"(pass --document_format to override)")
    return found


def _load_local_files(args: argparse.Namespace):
    from datasets import load_dataset

    files = {}
    for split, path in (("train", args.train_file), ("validation", args.validation_file)):
        if path is None:
            continue
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--{split if split == 'train' else 'validation'}_file: no such file: {path}")
        files[split] = path
    extensions = {Path(path).suffix.lower() for path in files.values()}
    if len(extensions) > 1:
        raise ValueError(f"--train_file and --validation_file must have the same format, got {sorted(extensions)}")
    extension = extensions.pop()
    for path in files.values():  # one clear error naming the file, before datasets' own
        check_text_file(path, json_lines=extension == ".jsonl")
    if extension in (".json", ".jsonl"):
        return load_dataset("json", data_files=files)
    if extension in (".txt", ".text", ""):
        formats = {_detect_document_format(path, args.document_format) for path in files.values()}
        if len(formats) > 1:
            raise ValueError("--train_file and --validation_file hold documents differently (one per line vs "
                             "blank-line separated); pass --document_format")
        sample_by = "paragraph" if formats.pop() == "blank_line" else "line"
        return load_dataset("text", data_files=files, sample_by=sample_by, keep_linebreaks=True)
    raise ValueError(f"Unsupported data file extension {extension!r}: use .txt, .json or .jsonl")


def _text_column(dataset, requested: str | None) -> str:
    features = dataset.features
    if features is None:  # some streamed datasets do not know their columns before reading
        return requested or "text"
    columns = list(features)
    if requested is not None:
        if requested not in columns:
            raise ValueError(f"--text_column_name {requested!r} is not a column of the dataset; columns: {columns}")
        return requested
    if "text" in columns:
        return "text"
    string_columns = [name for name, feature in features.items() if getattr(feature, "dtype", None) in ("string", "large_string")]
    if len(string_columns) == 1:
        return string_columns[0]
    raise ValueError(f"Cannot tell which column holds the documents among {columns}: pass --text_column_name")


def load_pretraining_corpus(args: argparse.Namespace):
    """The corpus as a `DatasetDict` (or `IterableDatasetDict` with `--streaming`) with `train` and
    `validation` splits and one column, `text`: a Hub dataset, local files, or (no data flags) the
    embedded standard-library corpus. Empty documents are dropped with a log line; an empty corpus raises."""
    from datasets import DatasetDict, IterableDatasetDict, load_dataset

    if not has_data_args(args):
        logger.info("No data flags: using the embedded corpus of Python standard-library docstrings")
        raw = stdlib_corpus()
    elif args.dataset_name is not None:
        raw = load_dataset(args.dataset_name, args.dataset_config_name, streaming=args.streaming)
    else:
        if args.train_file is None:
            raise ValueError("--validation_file needs a --train_file (or use --dataset_name)")
        if args.streaming:
            raise ValueError("--streaming applies to --dataset_name; local files are read with memory mapping")
        raw = _load_local_files(args)

    if "train" not in raw:
        raise ValueError(f"The dataset has no 'train' split; splits: {list(raw)}")
    column = _text_column(raw["train"], args.text_column_name)

    if "validation" not in raw:
        if isinstance(raw, IterableDatasetDict):
            n = args.max_eval_documents
            logger.info(f"No validation split: holding out the first {n} streamed documents")
            raw = IterableDatasetDict(train=raw["train"].skip(n), validation=raw["train"].take(n))
        else:
            percentage = args.validation_split_percentage
            if not 0 < percentage < 100:
                raise ValueError(f"--validation_split_percentage must be in (0, 100), got {percentage}")
            if len(raw["train"]) < 2:
                source = args.train_file or args.dataset_name or "the corpus"
                raise ValueError(f"{source} holds {len(raw['train'])} document(s): holding out a validation share "
                                 "needs at least 2; add documents (check --document_format) or pass --validation_file")
            split = raw["train"].train_test_split(test_size=percentage / 100, seed=args.seed, shuffle=True)
            raw = DatasetDict(train=split["train"], validation=split["test"])
            logger.info(f"No validation split: held out {percentage}% of the documents ({len(split['test'])})")

    corpus = {}
    for split in ("train", "validation"):
        dataset = raw[split]
        if column not in (dataset.column_names or [column]):
            raise ValueError(f"The {split} split has no column {column!r}; columns: {dataset.column_names}")
        extra = [name for name in (dataset.column_names or []) if name != column]
        if extra:
            dataset = dataset.remove_columns(extra)
        if column != "text":
            dataset = dataset.rename_column(column, "text")
        if isinstance(raw, IterableDatasetDict):
            dataset = dataset.filter(lambda text: bool(text and text.strip()), input_columns="text")
        else:
            before = len(dataset)
            if before == 0:
                raise ValueError(f"The {split} corpus is empty: no document to pretrain on")
            dataset = dataset.filter(lambda texts: [bool(t and t.strip()) for t in texts], input_columns="text",
                                     batched=True, num_proc=args.preprocessing_num_workers,
                                     load_from_cache_file=not args.overwrite_cache, desc="Dropping empty documents")
            if len(dataset) < before:
                logger.warning(f"{split}: dropped {before - len(dataset)} empty documents of {before}")
            if len(dataset) == 0:
                raise ValueError(f"The {split} corpus is empty: all {before} documents are blank")
        corpus[split] = dataset
    return (IterableDatasetDict if isinstance(raw, IterableDatasetDict) else DatasetDict)(corpus)


def corpus_text_batches(dataset, batch_size: int = 1000, max_documents: int | None = None):
    """Yield lists of document texts from a (streamed or not) dataset with a `text` column, e.g. to train
    a tokenizer without holding the corpus in memory."""
    seen = 0
    for batch in dataset.iter(batch_size=batch_size):
        texts = batch["text"]
        if max_documents is not None:
            texts = texts[: max_documents - seen]
        seen += len(texts)
        if texts:
            yield texts
        if max_documents is not None and seen >= max_documents:
            return


# ----------------------------------------------------------------------------------------------------------
# Documents -> tokens and sentences -> SSO examples
# ----------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------
# Masking collator
# ----------------------------------------------------------------------------------------------------------


class DataCollatorForPoNetPretraining:
    """Pad a list of SSO examples and mask them for MLM.

    Padding: `input_ids` with the PAD id, `token_type_ids` with 0, `attention_mask` 1/0, `segment_ids` with
    one more segment (`pad_segment_ids`), on the tokenizer's padding side, to the longest example (rounded up
    to `pad_to_multiple_of`). Masking: each non-special token is chosen with probability `mlm_probability`
    (with `whole_word_masking`, each word, i.e. a token and its `##` continuations); a chosen token becomes
    [MASK] 80% of the time, a random non-special token 10%, and stays 10%; `labels` hold the original id
    there and -100 elsewhere. The random draws depend only on (seed, epoch, batch contents): see `set_epoch`.
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, whole_word_masking: bool = False, seed: int = 0,
                 pad_to_multiple_of: int | None = None, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1):
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("MLM needs a tokenizer with [MASK] and [PAD] tokens")
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError("mask_replace_prob + random_replace_prob must be at most 1")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word_masking = whole_word_masking
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.epoch = 0
        vocab_size = len(tokenizer)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[self.special_ids[self.special_ids < vocab_size]] = True
        self.replacement_ids = torch.nonzero(~special).flatten()  # random replacements are never special tokens
        self.is_continuation = None
        if whole_word_masking:
            tokens = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
            self.is_continuation = torch.tensor([bool(t) and t.startswith("##") for t in tokens], dtype=torch.bool)

    def set_epoch(self, epoch: int) -> None:
        """Masks differ from epoch to epoch (dynamic masking) but are reproducible for a given epoch."""
        self.epoch = epoch

    def _generator(self, rows: list[list[int]]) -> torch.Generator:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(np.asarray([self.seed, self.epoch, len(rows)], dtype=np.int64).tobytes())
        for row in rows:
            digest.update(np.asarray(row, dtype=np.int64).tobytes())
            digest.update(b"|")
        return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1))

    def pad(self, features: list[dict]) -> dict:
        """Pad without masking: `input_ids`, `token_type_ids`, `attention_mask`, `segment_ids` (+ labels kept)."""
        rows = [list(f["input_ids"]) for f in features]
        length = max(len(row) for row in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        left = self.tokenizer.padding_side == "left"

        def pad_row(row, value):
            filler = [value] * (length - len(row))
            return filler + list(row) if left else list(row) + filler

        batch = {
            "input_ids": torch.tensor([pad_row(r, self.tokenizer.pad_token_id) for r in rows], dtype=torch.long),
            "attention_mask": torch.tensor([pad_row([1] * len(r), 0) for r in rows], dtype=torch.long),
        }
        if "token_type_ids" in features[0]:
            batch["token_type_ids"] = torch.tensor([pad_row(f["token_type_ids"], 0) for f in features], dtype=torch.long)
        if "segment_ids" in features[0]:
            batch["segment_ids"] = torch.tensor(
                pad_segment_ids([f["segment_ids"] for f in features], length, "left" if left else "right"),
                dtype=torch.long)
        if "sentence_structural_label" in features[0]:
            batch["sentence_structural_label"] = torch.tensor(
                [f["sentence_structural_label"] for f in features], dtype=torch.long)
        return batch

    def mask_tokens(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked input_ids, labels) for a padded batch."""
        special = torch.isin(input_ids, self.special_ids)
        if self.whole_word_masking:
            # A word starts at every non-continuation token; continuations follow their word's choice.
            starts = ~self.is_continuation[input_ids.clamp(max=len(self.is_continuation) - 1)] | special
            word_index = torch.cumsum(starts.long(), dim=1) - 1
            word_chosen = torch.rand(input_ids.shape, generator=generator) < self.mlm_probability
            chosen = torch.gather(word_chosen, 1, word_index) & ~special
        else:
            chosen = (torch.rand(input_ids.shape, generator=generator) < self.mlm_probability) & ~special
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        draw = torch.rand(input_ids.shape, generator=generator)
        to_mask = chosen & (draw < self.mask_replace_prob)
        to_random = chosen & (draw >= self.mask_replace_prob) & (draw < self.mask_replace_prob + self.random_replace_prob)
        random_tokens = self.replacement_ids[
            torch.randint(len(self.replacement_ids), input_ids.shape, generator=generator)]
        masked = input_ids.clone()
        masked[to_mask] = self.tokenizer.mask_token_id
        masked[to_random] = random_tokens[to_random]
        return masked, labels

    def __call__(self, features: list[dict]) -> dict:
        batch = self.pad(features)
        generator = self._generator([list(f["input_ids"]) for f in features])
        batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], generator)
        return batch


__all__ = [
    "SSO_IN_ORDER",
    "SSO_SWAPPED",
    "SSO_RANDOM",
    "add_pretraining_data_args",
    "has_data_args",
    "load_pretraining_corpus",
    "corpus_text_batches",
    "tokenize_documents",
    "create_sso_examples",
    "build_sso_dataset",
    "DataCollatorForPoNetPretraining",
]
