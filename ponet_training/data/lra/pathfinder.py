"""Pathfinder 32x32 in the Long Range Arena release's layout: our generator (`snakes.py`) writes it, and one
reader serves those files and the release's.

The layout (`lra_release/pathfinder32/<difficulty>/`, difficulty `curv_baseline` (contour length 6, "easy"),
`curv_contour_length_9`, `curv_contour_length_14` ("hard", the paper's task)):
- `imgs/<shard>/sample_<j>.png`: 32x32 grey PNGs, the j-th image of the shard;
- `metadata/<shard>.npy`: despite the name, text: one line per image, fields separated by spaces:
  `imgs/<shard> sample_<j>.png <j> <label> <continuity> <contour_length> <distractor_length> <paddle_length>
  <paddle_thickness> <margin> <number of paddle contrasts>`. Readers use fields 0, 1 (the image) and 3 (label).
We also write `generation.json` (settings, seed, counts, speed); readers ignore it.

Reading (`read_examples`, `load`): metadata files in numeric order, lines in order; the first 80% of the images
are train, the next 10% validation, the last 10% test (LRA's 80/10/10 of 200,000). An image that is missing or
does not decode is an error; an empty file is skipped and logged (the release has one, in `curv_baseline`).
Ids: `encoding.pixel_ids` (grey level + 1 by default), row-major, 1024 per image.

Generation (`generate`): image i (global, in that order) comes from its own seeded generator, so the files are
the same for any `--workers` and `--images_per_shard`. Command: `python -m ponet_training.data.lra.pathfinder
--output_dir D --contour_length 14 --num_images N --seed S --workers W` writes `D/curv_contour_length_14/`.
"""

import argparse
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ponet_training.data.lra import snakes
from ponet_training.data.lra.encoding import SequenceColumns, pixel_ids, sequence_dataset


logger = logging.getLogger(__name__)

RELEASE_FOLDERS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}
PUBLISHED_IMAGES = 200_000
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
LABEL_NAMES = ["different snakes", "same snake"]
GENERATION_FILE = "generation.json"
IMAGES_PER_SHARD = 1000


def folder_name(contour_length: int) -> str:
    if contour_length not in RELEASE_FOLDERS:
        raise ValueError(f"contour length {contour_length}: the release has {sorted(RELEASE_FOLDERS)}")
    return RELEASE_FOLDERS[contour_length]


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def metadata_line(settings: snakes.Settings, shard: int, index: int, label: int) -> str:
    fields = [f"imgs/{shard}", f"sample_{index}.png", index, label, settings.continuity, settings.contour_length,
              settings.distractor_length, settings.paddle_length, settings.paddle_thickness, settings.margin, 1]
    return " ".join(str(field) for field in fields)


def _write_shard(job) -> dict:
    """Draw and write one shard's images, then its metadata file (so a shard with metadata is complete)."""
    from PIL import Image

    folder, settings, seed, shard, first, count = job
    image_dir = Path(folder) / "imgs" / str(shard)
    image_dir.mkdir(parents=True, exist_ok=True)
    lines, labels, left_out = [], 0, 0
    for index in range(count):
        sample = snakes.draw(settings, snakes.image_rng(seed, settings, first + index))
        Image.fromarray(sample.image).save(image_dir / f"sample_{index}.png")
        lines.append(metadata_line(settings, shard, index, sample.label))
        labels += sample.label
        left_out += sample.distractors_left_out
    (Path(folder) / "metadata" / f"{shard}.npy").write_text("\n".join(lines) + "\n")
    return {"images": count, "label_1": labels, "distractors_left_out": left_out}


def generate(output_dir: str | os.PathLike, contour_length: int = 14, num_images: int = PUBLISHED_IMAGES,
             seed: int = 0, workers: int = 1, images_per_shard: int = IMAGES_PER_SHARD,
             settings: snakes.Settings | None = None) -> Path:
    """Write `num_images` images of one difficulty into `output_dir/<release folder>/`; returns that folder.
    The folder must be new or empty (a folder holding other files would be read with them)."""
    settings = replace(settings or snakes.Settings(), contour_length=contour_length)
    folder = Path(output_dir) / folder_name(contour_length)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: choose another --output_dir or remove it first")
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), settings, seed, shard, first, min(images_per_shard, num_images - first))
            for shard, first in enumerate(range(0, num_images, images_per_shard))]
    start = time.perf_counter()
    if workers > 1:
        # spawn: safe beside torch's threads; an executor (unlike a Pool) fails instead of hanging if a worker dies
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_write_shard, jobs))
    else:
        results = [_write_shard(job) for job in jobs]
    seconds = time.perf_counter() - start
    totals = {key: sum(result[key] for result in results) for key in results[0]} if results else {}
    stats = {"generator_version": snakes.GENERATOR_VERSION, "seed": seed, "num_images": num_images, "images_per_shard": images_per_shard,
             "settings": asdict(settings), "num_distractors": settings.num_distractors,
             "distractor_length": settings.distractor_length, **totals, "workers": workers,
             "seconds": round(seconds, 2), "images_per_second": round(num_images / seconds, 1) if seconds else None}
    (folder / GENERATION_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    logger.info(f"Pathfinder: wrote {num_images} images (contour length {contour_length}, seed {seed}) to "
                f"{folder} in {seconds:.1f} s with {workers} worker(s) ({stats['images_per_second']} images/s); "
                f"{totals.get('label_1', 0)} labelled 1; {totals.get('distractors_left_out', 0)} of "
                f"{num_images * settings.num_distractors} distractors left out for lack of room")
    return folder


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def find_folder(data_dir: str | os.PathLike, contour_length: int = 14) -> Path:
    """The difficulty folder (holding `metadata/`): `data_dir` itself, or its `<release folder>` below it or
    below `pathfinder32/` (so the release root, `pathfinder32/` or the folder itself all work)."""
    data_dir, name = Path(data_dir), folder_name(contour_length)
    for folder in (data_dir, data_dir / name, data_dir / "pathfinder32" / name):
        if (folder / "metadata").is_dir():
            return folder
    raise FileNotFoundError(f"{data_dir} holds no Pathfinder folder with metadata/ ({name}); make one with "
                            f"`python -m ponet_training.data.lra.pathfinder --output_dir {data_dir} "
                            f"--contour_length {contour_length}` or point at the release's lra_release/pathfinder32")


def read_examples(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """(image path, label) for every metadata line, in the release's order."""
    folder = Path(folder)
    metadata = sorted((folder / "metadata").glob("*.npy"), key=lambda path: int(path.stem))
    if not metadata:
        raise FileNotFoundError(f"{folder / 'metadata'} holds no <shard>.npy files")
    examples = []
    for path in metadata:
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4 or fields[3] not in ("0", "1"):
                raise ValueError(f"{path}:{line_number}: expected `<folder> <image> <index> <label 0|1> ...`, "
                                 f"got {line!r}")
            examples.append((folder / fields[0] / fields[1], int(fields[3])))
    return examples


def read_image(path: Path) -> np.ndarray | None:
    """The grey levels of one PNG (uint8, 2-D); None for an empty file."""
    from PIL import Image

    if not path.is_file():
        raise FileNotFoundError(f"{path}: listed in the metadata but missing")
    if path.stat().st_size == 0:
        return None
    with Image.open(path) as image:
        return np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)


def split_sizes(total: int) -> dict[str, int]:
    train, validation = int(total * SPLIT_FRACTIONS["train"]), int(total * SPLIT_FRACTIONS["validation"])
    return {"train": train, "validation": validation, "test": total - train - validation}


def load(data_dir: str | os.PathLike, contour_length: int = 14, published_pixel_ids: bool = False):
    """`datasets.DatasetDict` (train / validation / test) of `input_ids` (uint16, 1024 per image) and `label`."""
    from datasets import DatasetDict

    folder = find_folder(data_dir, contour_length)
    examples = read_examples(folder)
    images, labels, empty, shape = [], [], [], None
    for path, label in examples:
        pixels = read_image(path)
        if pixels is None:
            empty.append(str(path.relative_to(folder)))
            continue
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise ValueError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, the others are "
                             f"{shape[1]}x{shape[0]}")
        images.append(pixel_ids(pixels, published=published_pixel_ids))
        labels.append(label)
    if empty:
        logger.warning(f"Pathfinder: skipped {len(empty)} empty image file(s) in {folder}: {empty[:10]}")
    sizes = split_sizes(len(images))
    logger.info(f"Read {len(images)} Pathfinder images ({shape[1]}x{shape[0]}) from {folder}: "
                f"{sizes['train']} / {sizes['validation']} / {sizes['test']} (train / validation / test), "
                f"{sum(labels)} labelled 1")
    splits, offset = {}, 0
    for split, size in sizes.items():
        columns = SequenceColumns(np.uint16)
        for ids in images[offset: offset + size]:
            columns.add(ids)
        splits[split] = sequence_dataset(columns, labels[offset: offset + size], LABEL_NAMES)
        offset += size
    return DatasetDict(splits)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True,
                        help="The pathfinder32 folder: the images go into <output_dir>/<difficulty folder>/.")
    parser.add_argument("--contour_length", type=int, default=14, choices=sorted(RELEASE_FOLDERS),
                        help="14: hard (the paper's task), 9: intermediate, 6: easy (curv_baseline).")
    parser.add_argument("--num_images", type=int, default=PUBLISHED_IMAGES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="Processes (the output does not depend on it).")
    parser.add_argument("--images_per_shard", type=int, default=IMAGES_PER_SHARD,
                        help="Images per imgs/<shard>/ folder and metadata/<shard>.npy file.")
    parser.add_argument("--dashed", action="store_true",
                        help="Draw the snakes as the published dashes (paddles with gaps), not joined strokes.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    generate(args.output_dir, args.contour_length, args.num_images, args.seed, args.workers,
             args.images_per_shard, snakes.Settings(dashed=args.dashed))


if __name__ == "__main__":
    main()
