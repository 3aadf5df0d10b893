"""The LRA Retrieval task: whether two papers of the ACL Anthology Network (AAN) cite each other, from their
texts read as UTF-8 bytes (a pair task: two sequences per example).

Files (the release's `lra_release/tsv_data/`): `new_aan_pairs.train.tsv`, `new_aan_pairs.eval.tsv` (our
validation), `new_aan_pairs.test.tsv`; no header, one pair per line, five tab-separated fields
`label id1 id2 text1 text2` (label written as a float, 0.0 or 1.0), no quoting. Lines are split as bytes, so the
ids are the file's own bytes. A line with another number of fields, or a label other than 0 / 1, is an error
naming the file and line.
Ids: byte + 1 of each text, cut to 4,000 (`MAX_LENGTH`) each; the cuts are counted and logged per split and text.
"""

import logging
import os
from pathlib import Path

import numpy as np

from ponet_training.data.lra.encoding import SequenceColumns, Truncation, byte_ids, sequence_dataset
from ponet_training.data.lra.layout import split_files


logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "new_aan_pairs.train.tsv", "validation": "new_aan_pairs.eval.tsv",
               "test": "new_aan_pairs.test.tsv"}
COLUMNS = ("input_ids", "input_ids_2")
LABEL_NAMES = ["unrelated", "cited"]
MAX_LENGTH = 4000


def find_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    files = split_files(data_dir, SPLIT_FILES, "tsv_data")
    if files:
        return files
    raise FileNotFoundError(f"{data_dir} holds no AAN pair files ({', '.join(SPLIT_FILES.values())}): they are "
                            f"in the LRA release (lra_release/tsv_data/)")


def read_split(path: Path, max_length: int = MAX_LENGTH):
    columns, labels = SequenceColumns(np.uint16, COLUMNS), []
    cuts = [Truncation(max_length, f"AAN {path.name} text{side}") for side in (1, 2)]
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            fields = line.split(b"\t")
            if len(fields) != 5:
                raise ValueError(f"{path}:{line_number}: expected 5 tab-separated fields "
                                 f"(label, id1, id2, text1, text2), got {len(fields)}")
            try:
                label = float(fields[0])
            except ValueError:
                label = None
            if label not in (0.0, 1.0):
                raise ValueError(f"{path}:{line_number}: the label must be 0 or 1, got {fields[0][:20]!r}")
            columns.add(*(cut.cut(byte_ids(text)) for cut, text in zip(cuts, fields[3:])))
            labels.append(int(label))
    for cut in cuts:
        cut.log()
    logger.info(f"Read {len(labels)} AAN pairs from {path} ({sum(labels)} cited)")
    return columns, labels


def load(data_dir: str | os.PathLike, max_length: int = MAX_LENGTH):
    """`datasets.DatasetDict` train / validation / test of `input_ids`, `input_ids_2` (uint16) and `label`."""
    from datasets import DatasetDict

    splits = {}
    for split, path in find_files(data_dir).items():
        columns, labels = read_split(path, max_length)
        splits[split] = sequence_dataset(columns, labels, LABEL_NAMES)
    return DatasetDict(splits)
