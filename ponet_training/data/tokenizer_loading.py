"""`load_tokenizer(source)`: `AutoTokenizer.from_pretrained`, but never an empty tokenizer;
`check_token_ids(dataset, config, where)`: the tokenized data fits the model's embedding tables.

A folder without vocabulary files (e.g. a config-only folder passed as `--config_name`) makes transformers build a
tokenizer of only its special tokens: every word becomes [UNK] and a run still "works". Here it is one clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

# Any of these makes a folder loadable with AutoTokenizer (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")


def has_tokenizer_files(folder: str | os.PathLike) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(source: str, flag: str = "--tokenizer_name", **kwargs):
    """`AutoTokenizer.from_pretrained(source, **kwargs)`; a local folder without vocabulary files, or a tokenizer
    holding only special tokens, is a ValueError that names the missing files and `flag`."""
    from transformers import AutoTokenizer

    if os.path.isdir(source) and not has_tokenizer_files(source):
        raise ValueError(f"{source} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}): pass {flag} with "
                         "the tokenizer the model was pretrained with")
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise ValueError(f"The tokenizer loaded from {source} has no vocabulary besides its {len(tokenizer)} special "
                         f"tokens: pass {flag} with the tokenizer the model was pretrained with")
    return tokenizer


def check_token_ids(dataset, config, where: str) -> None:
    """Raise one clear error when a tokenized `dataset` holds an `input_ids` id outside the model's `vocab_size`, or
    a `token_type_ids` id outside its `type_vocab_size` (the embedding lookup would fail deep inside the model with
    "index out of range in self"). `where` names the data (e.g. "train")."""
    import pyarrow.compute as pc

    for column, limit_name in (("input_ids", "vocab_size"), ("token_type_ids", "type_vocab_size")):
        limit = getattr(config, limit_name, None)
        if limit is None or column not in dataset.column_names:
            continue
        values = pc.list_flatten(dataset.data.column(column))
        if len(values) == 0:
            continue
        extremes = pc.min_max(values)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        if low < 0 or high >= limit:
            bad = low if low < 0 else high
            raise ValueError(f"{where}: {column} holds the id {bad}, outside the model's {limit_name} {limit} (ids "
                             f"0..{limit - 1}): the tokenizer does not match the model; use the tokenizer the model "
                             "was trained with" + (" (or a model with type_vocab_size 2 for sentence pairs)"
                                                   if column == "token_type_ids" else ""))


__all__ = ["TOKENIZER_FILES", "check_token_ids", "has_tokenizer_files", "load_tokenizer"]
