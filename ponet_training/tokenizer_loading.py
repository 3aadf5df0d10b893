"""`load_tokenizer(source)`: `AutoTokenizer.from_pretrained`, but never an empty tokenizer.

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


__all__ = ["TOKENIZER_FILES", "has_tokenizer_files", "load_tokenizer"]
