"""The pretraining corpus: the data flags of `pretrain/run_pretraining.py` and the documents they name.

- `add_pretraining_data_args(parser)` / `has_data_args(args)`: the data flags (names as in transformers'
  `run_mlm_no_trainer.py`), and whether any names a corpus.
- `load_pretraining_corpus(args)`: documents from a Hub dataset (optionally streamed), local text / jsonl files,
  or the embedded corpus (`stdlib_corpus()`: docstrings of Python's standard library, offline everywhere). One
  column, `text`, one document per row; `train` and `validation` splits.
- `corpus_text_batches(...)`: the documents' text in batches, e.g. to train a tokenizer.

The next steps: `sso_examples` (documents -> MLM + SSO examples), `collators` (padding, masking).
"""

import argparse
import logging
import os
import re
from pathlib import Path

from ponet_training.data.stdlib_docstrings import stdlib_corpus
from ponet_training.data.text_files import check_text_file


logger = logging.getLogger(__name__)


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
    group.add_argument("--allow_control_characters", action="store_true",
                       help="Keep control characters (NUL, form feeds, ...) found in --train_file/--validation_file "
                            "(counted in the log; the tokenizer deletes them) instead of refusing the file.")
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
    file_format = {".jsonl": "jsonl", ".json": "json"}.get(extension, "text")
    for path in files.values():  # one clear error naming the file, before datasets' own
        check_text_file(path, file_format, allow_control_characters=args.allow_control_characters)
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


__all__ = ["add_pretraining_data_args", "corpus_text_batches", "has_data_args", "load_pretraining_corpus"]
