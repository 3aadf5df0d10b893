"""The Long Range Arena tasks' data facts (`TASKS`) and the one loader every LRA script calls
(`load_lra_dataset`).

Each task gives a `datasets.DatasetDict` with splits train / validation / test and columns `input_ids`
(unpadded ids, 0 never used: it is the padding id; uint8 for ListOps, uint16 otherwise), `input_ids_2` for the
pair task (Retrieval) and `label` (ClassLabel). Where the data come from, by task:
- listops, pathfinder, pathfinder_intermediate, pathfinder_easy: generated here (`listops.py`, `snakes.py`),
  seeded, into the cache folder on first use; or read from `data_dir` (our files or the LRA release's);
- image: CIFAR-10 through the Hub (`uoft-cs/cifar10`) or a local copy in its layout;
- fashion_mnist_standin: Debian's Fashion-MNIST, offline; a stand-in for `image`, never its result;
- text: IMDb through the Hub (`stanfordnlp/imdb`) or an aclImdb folder;
- retrieval: the release's AAN pair files (`data_dir`, required).
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ponet_training.data.lra import images, listops, pathfinder, retrieval, snakes, text
from ponet_training.data.lra.encoding import BYTE_VOCAB_SIZE, PIXEL_VOCAB_SIZE


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LraTask:
    """What a model needs to know about a task's data (training settings are the training script's)."""

    name: str
    description: str
    num_classes: int
    label_names: tuple[str, ...]
    max_length: int  # ids per sequence (per document for a pair task)
    vocab_size: int  # including the padding id 0
    source: str  # "generated", "release files", "hub" or "stand-in"
    sizes: dict = field(default_factory=dict)  # train / validation / test rows at the published size
    pair: bool = False
    stands_in_for: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return retrieval.COLUMNS if self.pair else ("input_ids",)


def _pathfinder_task(name: str, contour_length: int, level: str) -> LraTask:
    sizes = pathfinder.split_sizes(pathfinder.PUBLISHED_IMAGES)
    return LraTask(name, f"Pathfinder 32x32, {level} (contour length {contour_length}): are the two markers "
                   f"on one snake?", 2, tuple(pathfinder.LABEL_NAMES), 1024, PIXEL_VOCAB_SIZE, "generated", sizes)


TASKS = {task.name: task for task in (
    LraTask("listops", "ListOps: the value of a nested MIN / MAX / MED / SM expression", 10, listops.DIGITS,
            listops.MAX_LENGTH, len(listops.VOCABULARY), "generated", dict(listops.PUBLISHED_SIZES)),
    LraTask("text", "IMDb reviews as UTF-8 bytes: positive or negative", 2, tuple(text.LABEL_NAMES),
            text.MAX_LENGTH, BYTE_VOCAB_SIZE, "hub", {"train": 25_000, "validation": 25_000, "test": 25_000}),
    LraTask("retrieval", "AAN paper pairs as UTF-8 bytes: does one cite the other?", 2,
            tuple(retrieval.LABEL_NAMES), retrieval.MAX_LENGTH, BYTE_VOCAB_SIZE, "release files",
            {"train": 147_086, "validation": 18_090, "test": 17_437}, pair=True),
    LraTask("image", "CIFAR-10 in grey levels, one pixel a token", 10, tuple(images.CIFAR10_LABELS), 1024,
            PIXEL_VOCAB_SIZE, "hub", {"train": 45_000, "validation": 5_000, "test": 10_000}),
    LraTask("fashion_mnist_standin", "Fashion-MNIST padded to 32x32: an offline stand-in for `image`, not "
            "comparable with its results", 10, tuple(images.FASHION_MNIST_LABELS), 1024, PIXEL_VOCAB_SIZE,
            "stand-in", {"train": 54_000, "validation": 6_000, "test": 10_000}, stands_in_for="image"),
    _pathfinder_task("pathfinder", 14, "hard, the paper's task"),
    _pathfinder_task("pathfinder_intermediate", 9, "intermediate"),
    _pathfinder_task("pathfinder_easy", 6, "easy"),
)}
PATHFINDER_CONTOURS = {"pathfinder": 14, "pathfinder_intermediate": 9, "pathfinder_easy": 6}


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _generated_listops(seed: int, train_size: int, workers: int) -> Path:
    from ponet_training.data.cache import cache_dir, filling

    target = cache_dir("lra") / f"listops-v{listops.GENERATOR_VERSION}-seed{seed}-train{train_size}"
    if not (target / listops.GENERATION_FILE).is_file():
        logger.info(f"Generating ListOps (seed {seed}, {train_size} train rows) into {target}")
        sizes = {**listops.PUBLISHED_SIZES, "train": train_size}
        splits, stats = listops.generate(seed, sizes, workers=workers)
        with filling(target) as scratch:
            listops.write(scratch, splits, stats)
    return target


def _generated_pathfinder(seed: int, contour_length: int, num_images: int, workers: int) -> Path:
    from ponet_training.data.cache import cache_dir, filling

    target = (cache_dir("lra") / f"pathfinder32-v{snakes.GENERATOR_VERSION}-seed{seed}-images{num_images}"
              f"-contour{contour_length}")
    if not (target / pathfinder.folder_name(contour_length) / pathfinder.GENERATION_FILE).is_file():
        logger.info(f"Generating {num_images} Pathfinder images (contour length {contour_length}, seed {seed}) "
                    f"into {target} with {workers} worker(s)")
        with filling(target) as scratch:
            pathfinder.generate(scratch, contour_length, num_images, seed, workers)
    return target


def _provenance(folder: Path, generation_file: str) -> str:
    if (folder / generation_file).is_file():
        return f"generated by ponet_training ({folder / generation_file})"
    return f"files in {folder} (the LRA release, or made elsewhere)"


def load_lra_dataset(task: str, data_dir: str | os.PathLike | None = None, seed: int = 0,
                     max_train_samples: int | None = None, published_pixel_ids: bool = False,
                     generated_size: int | None = None, workers: int | None = None):
    """The task's `datasets.DatasetDict` (train / validation / test; columns `TASKS[task].columns` + `label`).

    - `data_dir`: where the task's files are (ListOps: basic_*.tsv; Pathfinder: the release's or our folder;
      Image / Text: a local copy in the Hub dataset's layout, or an aclImdb folder; Retrieval: new_aan_pairs.*;
      the stand-in: the Fashion-MNIST gz files). None: generate (ListOps, Pathfinder; cached by seed and size),
      the Hub (Image, Text), `/usr/share/datasets/fashion-mnist` (the stand-in); Retrieval needs it.
    - `seed`: what is random in the data: the generator (ListOps, Pathfinder) or the dev hold-out (Image, the
      stand-in). Text and Retrieval have fixed splits.
    - `max_train_samples`: keep the first N train rows (validation and test stay whole).
    - `published_pixel_ids`: Image / Pathfinder ids as published (grey level, black = padding 0) instead of
      level + 1.
    - `generated_size`: when generating, ListOps train rows (validation and test stay 2,000 each, the same rows)
      or Pathfinder images in all (80/10/10); default the published size.
    - `workers`: processes for generating (the data do not depend on it); default all usable CPUs.
    """
    if task not in TASKS:
        raise ValueError(f"unknown LRA task {task!r}; the tasks are {sorted(TASKS)}")
    workers = workers or _default_workers()
    if task == "listops":
        folder = Path(data_dir) if data_dir is not None else _generated_listops(
            seed, generated_size or listops.PUBLISHED_SIZES["train"], workers)
        source = _provenance(listops.find_files(folder)["train"].parent, listops.GENERATION_FILE)
        splits = listops.load(folder)
    elif task in PATHFINDER_CONTOURS:
        contour = PATHFINDER_CONTOURS[task]
        root = Path(data_dir) if data_dir is not None else _generated_pathfinder(
            seed, contour, generated_size or pathfinder.PUBLISHED_IMAGES, workers)
        source = _provenance(pathfinder.find_folder(root, contour), pathfinder.GENERATION_FILE)
        splits = pathfinder.load(root, contour, published_pixel_ids)
    elif task == "image":
        source = f"CIFAR-10 from {data_dir or images.CIFAR10_HUB_NAME}"
        splits = images.load_cifar10(data_dir, seed, published_pixel_ids)
    elif task == "fashion_mnist_standin":
        source = f"Fashion-MNIST from {data_dir or images.FASHION_MNIST_DIR} (a stand-in for CIFAR-10)"
        splits = images.load_fashion_mnist(data_dir, seed, published_pixel_ids)
    elif task == "text":
        source = f"IMDb from {data_dir or text.IMDB_HUB_NAME}"
        splits = text.load(data_dir)
    else:
        if data_dir is None:
            raise ValueError("retrieval needs data_dir: the LRA release's folder with new_aan_pairs.*.tsv "
                             "(lra_release/tsv_data/); there is no other source")
        source = f"AAN pairs from {data_dir}"
        splits = retrieval.load(data_dir)
    if max_train_samples is not None and max_train_samples < len(splits["train"]):
        logger.info(f"{task}: keeping the first {max_train_samples} of {len(splits['train'])} train rows")
        splits["train"] = splits["train"].select(range(max_train_samples))
    for dataset in splits.values():
        dataset.info.description = f"LRA {task}: {source}"
    sizes = ", ".join(f"{split} {len(dataset)}" for split, dataset in splits.items())
    megabytes = sum(dataset.data.nbytes for dataset in {id(d): d for d in splits.values()}.values()) / 2**20
    logger.info(f"LRA {task}: {source}; {sizes} rows; {megabytes:.0f} MiB of Arrow data")
    return splits
