"""The LRA Image task: CIFAR-10 in grey levels, one pixel a token (1024 per image), and its offline stand-in,
Fashion-MNIST, which is never to be compared with the CIFAR-10 column.

- CIFAR-10 (`load_cifar10`): `datasets.load_dataset("uoft-cs/cifar10")` (or a local folder in that dataset's
  layout: `plain_text/{train,test}-*.parquet`, columns `img` and `label`), turned grey with ITU-R 601-2 luma
  (PIL's `convert("L")`: L = 0.299 R + 0.587 G + 0.114 B) and read row by row.
- Fashion-MNIST (`load_fashion_mnist`): the real files of Zalando's release as Debian's
  `dataset-fashion-mnist` package installs them (`/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz`), 28x28
  images centred on a black 32x32 canvas (2 pixels each side), so the sequence length is CIFAR's.
- Splits: LRA trains on 45,000 of CIFAR-10's 50,000 train images and uses the other 5,000 as its dev set; we
  hold out 10% of the train set (5,000 CIFAR-10, 6,000 Fashion-MNIST images) chosen by a permutation seeded
  with `split_seed` (default 0), the rest keeping their order. Test: the 10,000 test images.
- Ids: `encoding.pixel_ids` (grey level + 1; `published_pixel_ids=True`: the level itself, black = padding).
"""

import gzip
import logging
import os
from pathlib import Path

import numpy as np

from ponet_training.data.lra.encoding import SequenceColumns, pixel_ids, sequence_dataset


logger = logging.getLogger(__name__)

CIFAR10_HUB_NAME = "uoft-cs/cifar10"
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                       "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_MNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                        "Bag", "Ankle boot"]
SIDE = 32
VALIDATION_FRACTION = 0.1


def holdout(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of a train set of `count`: 10% held out by a seeded permutation, each part
    in the original order."""
    chosen = np.random.default_rng(seed).permutation(count)[: round(count * VALIDATION_FRACTION)]
    validation = np.zeros(count, dtype=bool)
    validation[chosen] = True
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def splits_from_arrays(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                       label_names: list[str], split_seed: int, published_pixel_ids: bool, what: str):
    """DatasetDict from (images (N, 32, 32) uint8, labels) of the train and test sets."""
    from datasets import DatasetDict

    train_rows, validation_rows = holdout(len(train[0]), split_seed)
    parts = {"train": (train, train_rows), "validation": (train, validation_rows),
             "test": (test, np.arange(len(test[0])))}
    splits = {}
    for split, ((images, labels), rows) in parts.items():
        columns = SequenceColumns(np.uint16)
        for row in rows:
            columns.add(pixel_ids(images[row], published=published_pixel_ids))
        splits[split] = sequence_dataset(columns, labels[rows], label_names)
    logger.info(f"{what}: {len(train_rows)} / {len(validation_rows)} / {len(test[0])} images "
                f"(train / validation held out with seed {split_seed} / test), {SIDE * SIDE} pixel ids each")
    return DatasetDict(splits)


# ----------------------------------------------------------------------------------------------------------
# Fashion-MNIST, the offline stand-in
# ----------------------------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip or plain): unsigned bytes with the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {data[:4].hex()})")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: the header says {shape}, the file holds {values.size} values")
    return values.reshape(shape)


def read_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "test"}: (images (N, 28, 28) uint8, labels (N,)) from the four gz files."""
    data_dir = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    missing = [name for names in FASHION_MNIST_FILES.values() for name in names if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{data_dir} lacks the Fashion-MNIST files {missing}: install Debian's "
                                f"`dataset-fashion-mnist` package (apt-get install dataset-fashion-mnist) or pass "
                                f"the folder holding them")
    sets = {}
    for split, (image_file, label_file) in FASHION_MNIST_FILES.items():
        images, labels = read_idx(data_dir / image_file), read_idx(data_dir / label_file)
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f"{data_dir}: {image_file} {images.shape} and {label_file} {labels.shape} disagree")
        sets[split] = (images, labels)
        logger.info(f"Read {len(labels)} Fashion-MNIST {split} images ({images.shape[2]}x{images.shape[1]}) "
                    f"from {data_dir}")
    return sets


def pad_to_side(images: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(N, h, w) -> (N, side, side), centred on black."""
    top, left = (side - images.shape[1]) // 2, (side - images.shape[2]) // 2
    if top < 0 or left < 0:
        raise ValueError(f"images of {images.shape[2]}x{images.shape[1]} do not fit in {side}x{side}")
    canvas = np.zeros((len(images), side, side), dtype=np.uint8)
    canvas[:, top: top + images.shape[1], left: left + images.shape[2]] = images
    return canvas


def load_fashion_mnist(data_dir=None, split_seed: int = 0, published_pixel_ids: bool = False):
    sets = read_fashion_mnist(data_dir)
    padded = {split: (pad_to_side(images), labels.astype(np.int64)) for split, (images, labels) in sets.items()}
    return splits_from_arrays(padded["train"], padded["test"], FASHION_MNIST_LABELS, split_seed,
                              published_pixel_ids, "Fashion-MNIST (stand-in for CIFAR-10, padded to 32x32)")


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------------------------


def grey(image) -> np.ndarray:
    """A PIL image -> (32, 32) uint8 ITU-R 601-2 luma."""
    pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    if pixels.shape != (SIDE, SIDE):
        raise ValueError(f"a CIFAR-10 image of {pixels.shape[1]}x{pixels.shape[0]} pixels (expected 32x32)")
    return pixels


def load_cifar10(source: str | os.PathLike | None = None, split_seed: int = 0, published_pixel_ids: bool = False):
    """CIFAR-10 grey from the Hub (`source` None: uoft-cs/cifar10) or a local folder in its layout."""
    from datasets import load_dataset

    name = str(source) if source is not None else CIFAR10_HUB_NAME
    try:
        loaded = load_dataset(name)
    except Exception as error:  # offline without a cached copy, or a wrong folder: say which and what to do
        raise RuntimeError(f"could not load CIFAR-10 from {name!r} ({type(error).__name__}: {error}). It needs "
                           f"the Hub (or its cache, or a local copy in its layout); offline, the task "
                           f"`fashion_mnist_standin` runs on Debian's Fashion-MNIST instead") from error
    missing = [split for split in ("train", "test") if split not in loaded]
    if missing or any(column not in loaded[split].column_names for split in loaded for column in ("img", "label")):
        raise ValueError(f"{name}: expected train and test splits with columns img and label, got "
                         f"{ {split: loaded[split].column_names for split in loaded} }")
    sets = {}
    for split in ("train", "test"):
        data = loaded[split]
        images = np.stack([grey(image) for image in data["img"]]) if len(data) else np.zeros((0, SIDE, SIDE), np.uint8)
        sets[split] = (images, np.asarray(data["label"], dtype=np.int64))
        logger.info(f"Read {len(data)} CIFAR-10 {split} images from {name}, turned grey (ITU-R 601-2 luma)")
    label_names = loaded["train"].features["label"].names
    if label_names != CIFAR10_LABELS:
        raise ValueError(f"{name}: label names {label_names} are not CIFAR-10's {CIFAR10_LABELS}")
    return splits_from_arrays(sets["train"], sets["test"], CIFAR10_LABELS, split_seed, published_pixel_ids,
                              "CIFAR-10 grey")
