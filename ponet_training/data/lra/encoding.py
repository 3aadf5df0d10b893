"""The id rules every Long Range Arena task shares: id 0 is padding, and the rest of the vocabulary starts at 1.

- Bytes (Text, Retrieval): a UTF-8 byte b is id b + 1 (vocabulary 257 with padding), as the published code does.
- Pixels (Image, Pathfinder): a grey level v in 0..255 is id v + 1 by default, so black is a real token and
  images carry no padding. The published code fed v itself, which made every black pixel padding (id 0): the
  padding mask hid them from the mixer and the mean pooling. `pixel_ids(..., published=True)` reproduces that.
- Truncation to a task's `max_length` is counted per split and logged, never silent (`Truncation`).
- `sequence_dataset` builds a `datasets.Dataset` of unpadded id sequences in a small unsigned dtype (uint8 for
  ListOps, uint16 for bytes and pixels) straight from numpy, without a Python list per token.
"""

import logging
from dataclasses import dataclass, field

import numpy as np


logger = logging.getLogger(__name__)

PAD_ID = 0
BYTE_VOCAB_SIZE = 257  # padding + 256 byte values
PIXEL_VOCAB_SIZE = 257  # padding + 256 grey levels (the published rule uses only 0..255)


@dataclass
class Truncation:
    """Counts the sequences cut to `max_length` in one split, and the ids dropped, for the log line."""

    max_length: int
    what: str
    sequences: int = 0
    truncated: int = 0
    dropped_ids: int = 0
    longest: int = 0

    def cut(self, ids: np.ndarray) -> np.ndarray:
        self.sequences += 1
        self.longest = max(self.longest, len(ids))
        if len(ids) > self.max_length:
            self.truncated += 1
            self.dropped_ids += len(ids) - self.max_length
            return ids[: self.max_length]
        return ids

    def log(self) -> None:
        logger.info(f"{self.what}: {self.truncated} of {self.sequences} sequences truncated to {self.max_length} "
                    f"ids ({self.dropped_ids} ids dropped; longest {self.longest})")


def byte_ids(data: bytes) -> np.ndarray:
    """UTF-8 bytes -> ids 1..256 (uint16): byte + 1, so 0 stays padding."""
    return np.frombuffer(data, dtype=np.uint8).astype(np.uint16) + 1


def pixel_ids(pixels: np.ndarray, published: bool = False) -> np.ndarray:
    """A uint8 grey image -> its row-major ids (uint16): value + 1 (black is id 1, a real token), or with
    `published` the value itself (black is id 0, i.e. padding, as in the published code)."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixel_ids takes uint8 grey levels, got {pixels.dtype}")
    flat = pixels.reshape(-1).astype(np.uint16)
    return flat if published else flat + 1


@dataclass
class SequenceColumns:
    """Unpadded id sequences gathered for one split, turned into Arrow list columns at the end."""

    dtype: type
    names: tuple[str, ...] = ("input_ids",)
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = {name: [] for name in self.names}

    def add(self, *sequences: np.ndarray) -> None:
        for name, ids in zip(self.names, sequences, strict=True):
            self.values[name].append(ids)

    def arrow(self, name: str):
        import pyarrow as pa

        sequences = self.values[name]
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in sequences], out=offsets[1:])
        if offsets[-1] >= 2**31:
            raise ValueError(f"{offsets[-1]} ids in one column: more than an Arrow list column holds")
        flat = np.concatenate(sequences).astype(self.dtype, copy=False) if sequences else np.zeros(0, self.dtype)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))


def sequence_dataset(columns: SequenceColumns, labels, label_names: list[str]):
    """A `datasets.Dataset` with the id columns (List of the columns' dtype) and `label` (ClassLabel)."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    dtype_name = np.dtype(columns.dtype).name
    features = Features({**{name: List(Value(dtype_name)) for name in columns.names},
                         "label": ClassLabel(names=list(label_names))})
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(label_names)):
        raise ValueError(f"labels outside 0..{len(label_names) - 1}: {sorted(set(labels.tolist()))[:10]}")
    data = {name: columns.arrow(name) for name in columns.names}
    return Dataset.from_dict({**data, "label": labels}, features=features)
