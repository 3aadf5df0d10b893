"""ListOps (Nangia & Bowman 2018) as Long Range Arena made it: a seeded generator of our own, written in the LRA
release's files, and the one reader for those files and ours.

The task: evaluate a nested expression of MIN, MAX, MED (median, integer part) and SM (sum mod 10) over digits;
the answer is a digit (10 classes).

Generation (`generate`), the algorithm LRA describes:
- A node above the depth limit (10, the root at depth 1) is an operator with probability 0.25, drawn uniformly
  from the four, with 2 to 10 children drawn the same way; otherwise, and always at the limit, a digit 0-9.
- The length counts one per digit and two per operator (its `[OP` and its `]`); a tree is kept when
  500 < length < 2000. Drawing stops as soon as a tree reaches 2000, which changes nothing about the trees kept.
- Kept expressions are deduplicated (on the written source) across all splits, then dealt out in the order drawn:
  validation first, then test, then train. So the validation and test sets do not depend on the train size
  (a small train set is a prefix-compatible slice of the same stream), and no expression is in two splits.
- Randomness: the stream is cut in chunks of `CHUNK_SIZE` kept trees; chunk c draws from its own
  `random.Random("ponet-listops/<seed>/<c>")`, and chunks are merged in order. The result is a function of the
  seed and the sizes only, the same for any `--workers`.

Files (the release's `lra_release/listops-1000/` layout): `basic_train.tsv`, `basic_val.tsv`, `basic_test.tsv`,
tab-separated with the header `Source<TAB>Target`, the source written as LRA writes it (nested pairs in
parentheses, e.g. `( ( ( [MAX 2 ) 9 ) ] )` for `[MAX 2 9 ]`), the target the answer. We also write
`generation.json` (seed, sizes, counts, timing); readers ignore it.

Reading (`read_split`, the rule of the published input pipeline): split the source on spaces, drop `(` and `)`,
keep `]` as a token, map to ids: 0 padding, 1-10 the digits 0-9, 11-14 the operators, 15 `]` (vocabulary 16).
An unknown token or a target outside 0-9 is an error naming the file and line.

Command: `python -m ponet_training.data.lra.listops --output_dir D --seed S [--num_train N --num_validation N
--num_test N --workers W]`.
"""

import argparse
import csv
import json
import logging
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ponet_training.data.lra.encoding import SequenceColumns, Truncation, sequence_dataset
from ponet_training.data.lra.layout import split_files


logger = logging.getLogger(__name__)

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
DIGITS = tuple(str(digit) for digit in range(10))
VOCABULARY = ("<pad>", *DIGITS, *OPERATORS, CLOSE)  # the id of a token is its index; 0 is padding
TOKEN_IDS = {token: index for index, token in enumerate(VOCABULARY)}
DROPPED_TOKENS = frozenset("()")

SPLIT_FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}
HEADER = ("Source", "Target")
GENERATION_FILE = "generation.json"
PUBLISHED_SIZES = {"train": 96_000, "validation": 2_000, "test": 2_000}
MAX_LENGTH = 2000  # the input length of the task; the generated lengths stay below it
CHUNK_SIZE = 250
GENERATOR_VERSION = 1  # raise when the same seed would give other data (cached sets carry it in their name)


@dataclass(frozen=True)
class Settings:
    """The generator's parameters (LRA's values as defaults)."""

    max_depth: int = 10
    operator_probability: float = 0.25
    min_args: int = 2
    max_args: int = 10
    min_length: int = 500  # kept when min_length < length < max_length
    max_length: int = 2000


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2


APPLY = {"[MIN": min, "[MAX": max, "[MED": _median, "[SM": lambda values: sum(values) % 10}


# ----------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------


class _TooLong(Exception):
    """Raised while drawing a tree that has reached the maximum length: it would be rejected anyway."""


class _Drawer:
    """Draws one tree at a time, writing its source into `parts` and returning its value."""

    def __init__(self, rng: random.Random, settings: Settings):
        self.rng = rng
        self.settings = settings
        self.parts: list[str] = []
        self.length = 0

    def tree(self) -> tuple[str, int, int] | None:
        """(source, answer, length) of one drawn tree, or None when it is outside the length bounds."""
        self.parts, self.length = [], 0
        try:
            value = self._node(depth=1)
        except _TooLong:
            return None
        if self.length <= self.settings.min_length:
            return None
        return "".join(self.parts), value, self.length

    def _grow(self, tokens: int) -> None:
        self.length += tokens
        if self.length >= self.settings.max_length:
            raise _TooLong

    def _node(self, depth: int) -> int:
        rng, settings, parts = self.rng, self.settings, self.parts
        if depth < settings.max_depth and rng.random() < settings.operator_probability:
            operator = OPERATORS[rng.randrange(len(OPERATORS))]
            arity = rng.randint(settings.min_args, settings.max_args)
            self._grow(2)
            # LRA's left-nested pairs: ( ( ( [OP a ) b ) ] ) for [OP a b ]
            parts.append("( " * (arity + 1) + operator)
            values = []
            for _ in range(arity):
                parts.append(" ")
                values.append(self._node(depth + 1))
                parts.append(" )")
            parts.append(" ] )")
            return APPLY[operator](values)
        self._grow(1)
        digit = rng.randrange(10)
        parts.append(DIGITS[digit])
        return digit


def generate_chunk(seed: int, index: int, settings: Settings = Settings(), size: int = CHUNK_SIZE):
    """Chunk `index` of the stream of seed `seed`: `size` kept (source, answer, length) and the trees drawn."""
    drawer = _Drawer(random.Random(f"ponet-listops/{seed}/{index}"), settings)
    kept, drawn = [], 0
    while len(kept) < size:
        drawn += 1
        example = drawer.tree()
        if example is not None:
            kept.append(example)
    return kept, drawn


def _chunk_job(job):
    return generate_chunk(*job)


def generate(seed: int, sizes: dict[str, int] = PUBLISHED_SIZES, settings: Settings = Settings(),
             workers: int = 1) -> tuple[dict[str, list[tuple[str, int]]], dict]:
    """The splits (validation, test, train in stream order) as lists of (source, answer), and the counts."""
    wanted = sum(sizes.values())
    start = time.perf_counter()
    unique: dict[str, int] = {}
    lengths: list[int] = []
    drawn = duplicates = next_chunk = 0
    # spawn: safe beside torch's threads; an executor (unlike a Pool) fails instead of hanging if a worker dies
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    try:
        while len(unique) < wanted:
            count = -(-(wanted - len(unique)) // CHUNK_SIZE)
            jobs = [(seed, next_chunk + c, settings) for c in range(count)]
            next_chunk += count
            results = pool.map(_chunk_job, jobs) if pool else map(_chunk_job, jobs)
            for kept, chunk_drawn in results:
                drawn += chunk_drawn
                for source, answer, length in kept:
                    if len(unique) == wanted:
                        break
                    if source in unique:
                        duplicates += 1
                        continue
                    unique[source] = answer
                    lengths.append(length)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    examples = list(unique.items())
    splits, offset = {}, 0
    for split in ("validation", "test", "train"):
        splits[split] = examples[offset: offset + sizes[split]]
        offset += sizes[split]
    seconds = time.perf_counter() - start
    stats = {"generator_version": GENERATOR_VERSION, "seed": seed, "sizes": dict(sizes), "settings": asdict(settings), "chunk_size": CHUNK_SIZE,
             "chunks": next_chunk, "trees_drawn": drawn, "trees_kept": next_chunk * CHUNK_SIZE,
             "acceptance": next_chunk * CHUNK_SIZE / drawn, "duplicates_dropped": duplicates,
             "median_length": float(np.median(lengths)), "workers": workers, "seconds": round(seconds, 2)}
    logger.info(f"ListOps: {wanted} expressions (seed {seed}) from {drawn} trees drawn in {next_chunk} chunks "
                f"({stats['acceptance']:.2%} kept), {duplicates} duplicates dropped, median length "
                f"{stats['median_length']:.0f}, {seconds:.1f} s with {workers} worker(s)")
    return splits, stats


def refuse_existing(output_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """ListOps files already in `output_dir` are an error unless `overwrite` (checked before generating)."""
    existing = [name for name in (*SPLIT_FILES.values(), GENERATION_FILE) if (Path(output_dir) / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir} already holds {existing}: pass --overwrite to replace them")


def write(output_dir: str | os.PathLike, splits: dict, stats: dict, overwrite: bool = False) -> Path:
    """The three release files and generation.json in `output_dir`; existing ones are refused unless `overwrite`."""
    output_dir = Path(output_dir)
    refuse_existing(output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    for split, name in SPLIT_FILES.items():
        with open(output_dir / name, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t")  # the csv module's dialect, as the release was written
            writer.writerow(HEADER)
            writer.writerows(splits[split])
        logger.info(f"Wrote {len(splits[split])} rows to {output_dir / name}")
    (output_dir / GENERATION_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    return output_dir


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def tokens(source: str) -> list[str]:
    """The tokens the model sees: the source split on spaces, without `(` and `)`."""
    return [token for token in source.split(" ") if token and token not in DROPPED_TOKENS]


def read_split(path: str | os.PathLike, max_length: int = MAX_LENGTH):
    """One TSV file -> (SequenceColumns of uint8 ids, answers); truncations to `max_length` are logged."""
    path = Path(path)
    columns, answers = SequenceColumns(np.uint8), []
    truncation = Truncation(max_length, f"ListOps {path.name}")
    with open(path, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header[:2]) != HEADER:
            raise ValueError(f"{path}: the first line must be the header Source<TAB>Target, got {header}")
        for line, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 tab-separated fields, got {len(row)}")
            source, target = row
            try:
                ids = np.array([TOKEN_IDS[token] for token in tokens(source)], dtype=np.uint8)
            except KeyError as error:
                raise ValueError(f"{path}:{line}: unknown ListOps token {error.args[0]!r}") from None
            if target not in DIGITS:
                raise ValueError(f"{path}:{line}: the target must be a digit 0-9, got {target!r}")
            columns.add(truncation.cut(ids))
            answers.append(int(target))
    truncation.log()
    logger.info(f"Read {len(answers)} ListOps rows from {path}")
    return columns, answers


def find_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The split files in `data_dir`: the folder holding `basic_*.tsv` (ours, or the release's `listops-1000/`)."""
    files = split_files(data_dir, SPLIT_FILES, "listops-1000")
    if files:
        return files
    raise FileNotFoundError(f"{data_dir} holds no ListOps files ({', '.join(SPLIT_FILES.values())}); make them "
                            f"with `python -m ponet_training.data.lra.listops --output_dir {data_dir}` or point "
                            f"at the release's lra_release/listops-1000/")


def load(data_dir: str | os.PathLike, max_length: int = MAX_LENGTH):
    """`datasets.DatasetDict` (train / validation / test) of `input_ids` (uint8) and `label` (0-9)."""
    from datasets import DatasetDict

    splits = {}
    for split, path in find_files(data_dir).items():
        columns, answers = read_split(path, max_length)
        splits[split] = sequence_dataset(columns, answers, list(DIGITS))
    return DatasetDict(splits)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="Folder for basic_{train,val,test}.tsv.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_train", type=int, default=PUBLISHED_SIZES["train"])
    parser.add_argument("--num_validation", type=int, default=PUBLISHED_SIZES["validation"])
    parser.add_argument("--num_test", type=int, default=PUBLISHED_SIZES["test"])
    parser.add_argument("--workers", type=int, default=1, help="Processes (the output does not depend on it).")
    parser.add_argument("--overwrite", action="store_true", help="Replace ListOps files already in --output_dir.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    sizes = {"train": args.num_train, "validation": args.num_validation, "test": args.num_test}
    refuse_existing(args.output_dir, args.overwrite)
    splits, stats = generate(args.seed, sizes, workers=args.workers)
    write(args.output_dir, splits, stats, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
