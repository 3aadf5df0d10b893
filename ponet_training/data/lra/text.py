"""The LRA Text task: IMDb movie reviews (Maas et al. 2011) read as UTF-8 bytes, positive or negative.

Sources (`load`):
- `datasets.load_dataset("stanfordnlp/imdb")` (columns `text`, `label`: 0 negative, 1 positive), or a local
  folder in that dataset's layout (`plain_text/{train,test}-*.parquet`);
- an `aclImdb` folder as the authors distribute it (`aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt`; the
  folder itself or its parent), read in the order neg then pos, by review id; `unsup/` is not used.
Ids: the review's UTF-8 bytes, byte + 1, cut to 4,000 (`MAX_LENGTH`); the cuts are counted and logged per split.
Splits as the published code ran them: train 25,000; validation = test = the 25,000 test reviews (there is no
separate dev set, so the best-dev checkpoint is chosen on test; a log line says so).
"""

import logging
import os
import re
from pathlib import Path

import numpy as np

from ponet_training.data.lra.encoding import SequenceColumns, Truncation, byte_ids, sequence_dataset


logger = logging.getLogger(__name__)

IMDB_HUB_NAME = "stanfordnlp/imdb"
LABEL_NAMES = ["neg", "pos"]
MAX_LENGTH = 4000
REVIEW_FILE = re.compile(r"(\d+)_(\d+)\.txt")


def find_aclimdb(data_dir: str | os.PathLike) -> Path | None:
    """The aclImdb folder at or below `data_dir`, or None."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / "aclImdb"):
        if all((folder / split / label).is_dir() for split in ("train", "test") for label in LABEL_NAMES):
            return folder
    return None


def read_aclimdb(folder: Path, split: str) -> tuple[list[bytes], list[int]]:
    """The reviews (bytes, as stored) and labels of one split of an aclImdb folder."""
    texts, labels = [], []
    for label, name in enumerate(LABEL_NAMES):
        directory = folder / split / name
        files = []
        for path in directory.iterdir():
            match = REVIEW_FILE.fullmatch(path.name)
            if match is None:
                raise ValueError(f"{path}: not an aclImdb review file (<id>_<rating>.txt)")
            files.append((int(match.group(1)), path))
        for _, path in sorted(files):
            texts.append(path.read_bytes())
            labels.append(label)
    logger.info(f"Read {len(texts)} reviews from {folder / split} ({labels.count(0)} neg, {labels.count(1)} pos)")
    return texts, labels


def read_hub(source: str) -> dict[str, tuple[list[bytes], list[int]]]:
    from datasets import load_dataset

    try:
        loaded = load_dataset(source)
    except Exception as error:  # offline without a cached copy, or a wrong folder
        raise RuntimeError(f"could not load IMDb from {source!r} ({type(error).__name__}: {error}): it needs the "
                           f"Hub (or its cache), or pass an aclImdb folder as data_dir") from error
    splits = {}
    for split in ("train", "test"):
        if split not in loaded or not {"text", "label"} <= set(loaded[split].column_names):
            raise ValueError(f"{source}: expected train and test splits with columns text and label")
        names = loaded[split].features["label"].names
        if names != LABEL_NAMES:
            raise ValueError(f"{source}: label names {names}, expected {LABEL_NAMES}")
        splits[split] = ([text.encode("utf-8") for text in loaded[split]["text"]], list(loaded[split]["label"]))
        logger.info(f"Read {len(splits[split][0])} IMDb {split} reviews from {source}")
    return splits


def encode(texts: list[bytes], labels: list[int], what: str, max_length: int = MAX_LENGTH):
    columns, truncation = SequenceColumns(np.uint16), Truncation(max_length, what)
    for text in texts:
        columns.add(truncation.cut(byte_ids(text)))
    truncation.log()
    return sequence_dataset(columns, labels, LABEL_NAMES)


def load(data_dir: str | os.PathLike | None = None, max_length: int = MAX_LENGTH):
    """`datasets.DatasetDict` train / validation (= test) / test of `input_ids` (uint16) and `label`."""
    from datasets import DatasetDict

    folder = find_aclimdb(data_dir) if data_dir is not None else None
    if folder is not None:
        raw = {split: read_aclimdb(folder, split) for split in ("train", "test")}
    else:
        raw = read_hub(str(data_dir) if data_dir is not None else IMDB_HUB_NAME)
    train = encode(*raw["train"], "IMDb train bytes", max_length)
    test = encode(*raw["test"], "IMDb test bytes", max_length)
    logger.warning("IMDb has no dev set: validation is the test set, as in the published LRA code")
    return DatasetDict({"train": train, "validation": test, "test": test})
