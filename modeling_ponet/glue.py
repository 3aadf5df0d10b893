"""The nine GLUE tasks: columns, labels, official metrics, data loading and benchmark submission files.

Data comes from the Hub GLUE dataset (`nyu-mll/glue`, one config per task) or from local files: csv, tsv
(including the original GLUE distribution's tsv layouts, e.g. MRPC's `#1 String` / `Quality` columns or
CoLA's header-less train/dev files) or json/jsonl. Either way a split becomes a `datasets.Dataset` with the
Hub's column names (`sentence1`/`sentence2`, `premise`/`hypothesis`, ...), an integer (or, for STS-B, float)
`label` (-1 for unlabelled test rows) and an integer `idx`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics as M


logger = logging.getLogger(__name__)

GLUE_HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """What one GLUE task is: its inputs, labels, metrics and benchmark file names."""

    name: str
    pretty_name: str
    text_columns: tuple[str, ...]
    # None for the regression task (STS-B); otherwise the label names in the Hub dataset's id order.
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    # The figure reported for the task (BERT / PoNet papers); used to pick the best checkpoint and in sweeps.
    main_metric: str
    # Dev splits: {split name: local-file flag that feeds it}; MNLI has matched + mismatched.
    eval_splits: tuple[str, ...] = ("validation",)
    # Test splits: {split name: GLUE submission file stem}.
    test_splits: dict[str, str] = field(default_factory=dict)
    # The benchmark wants label names (not ids) in the submission for these tasks.
    submission_uses_label_names: bool = False
    # Column names of the original GLUE tsv files (and other common spellings) -> Hub names.
    column_aliases: dict[str, str] = field(default_factory=dict)
    # Column names of a header-less original file (CoLA's train/dev.tsv).
    headerless_columns: tuple[str, ...] | None = None

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def label_range(self) -> tuple[float, float] | None:
        """Allowed target range of the regression task."""
        return (0.0, 5.0) if self.is_regression else None


_COMMON_ALIASES = {"index": "idx", "id": "idx"}

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            "cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",),
            "matthews_correlation", test_splits={"test": "CoLA"},
            headerless_columns=("source", "label", "original_label", "sentence"),
        ),
        GlueTask(
            "sst2", "SST-2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy",
            test_splits={"test": "SST-2"},
        ),
        GlueTask(
            "mrpc", "MRPC", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("accuracy", "f1"), "f1",
            test_splits={"test": "MRPC"},
            column_aliases={"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
        ),
        GlueTask(
            "qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"), "f1",
            test_splits={"test": "QQP"}, column_aliases={"is_duplicate": "label"},
        ),
        GlueTask(
            "stsb", "STS-B", ("sentence1", "sentence2"), None, ("pearson", "spearmanr"), "spearmanr",
            test_splits={"test": "STS-B"}, column_aliases={"score": "label"},
        ),
        GlueTask(
            "mnli", "MNLI", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
            "accuracy", eval_splits=("validation_matched", "validation_mismatched"),
            test_splits={"test_matched": "MNLI-m", "test_mismatched": "MNLI-mm"},
            submission_uses_label_names=True,
            column_aliases={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
        ),
        GlueTask(
            "qnli", "QNLI", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), "accuracy",
            test_splits={"test": "QNLI"}, submission_uses_label_names=True,
        ),
        GlueTask(
            "rte", "RTE", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), "accuracy",
            test_splits={"test": "RTE"}, submission_uses_label_names=True,
        ),
        GlueTask(
            "wnli", "WNLI", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), "accuracy",
            test_splits={"test": "WNLI"},
        ),
    )
}

# The diagnostic set: test-only, predicted with the MNLI model, submitted as AX.tsv.
AX_TASK = GlueTask(
    "ax", "AX", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",), "accuracy",
    eval_splits=(), test_splits={"test": "AX"}, submission_uses_label_names=True,
    column_aliases={"sentence1": "premise", "sentence2": "hypothesis"},
)

# The GLUE average as BERT, FNet and PoNet report it: MNLI-m and MNLI-mm count as two entries; WNLI is left out.
GLUE_AVERAGE_ENTRIES = ("mnli-m", "mnli-mm", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte")

# PoNet-Base's published GLUE dev figures (ponet-spec.md), in percent.
PUBLISHED_PONET_BASE_GLUE = {
    "mnli-m": 76.99, "mnli-mm": 77.21, "qqp": 87.55, "qnli": 84.33, "sst2": 89.22, "cola": 45.36,
    "stsb": 84.57, "mrpc": 81.76, "rte": 64.26,
}

# The paper's fine-tuning grid (ponet-spec.md, "Fine-tuning as published"): 4 epochs, max length 128.
PAPER_BATCH_SIZES = (8, 16, 32, 64, 128)
PAPER_LEARNING_RATES = (3e-5, 5e-5, 1e-4, 3e-4)
PAPER_NUM_EPOCHS = 4
PAPER_MAX_LENGTH = 128


def _normalise_task_name(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def get_task(name: str) -> GlueTask:
    """The GLUE task called `name` ("mrpc", "SST-2", "sts-b" ...); a ValueError lists the tasks otherwise."""
    key = _normalise_task_name(name or "")
    if key in GLUE_TASKS:
        return GLUE_TASKS[key]
    raise ValueError(f"Unknown GLUE task {name!r}; the tasks are: {', '.join(GLUE_TASKS)}")


# --------------------------------------------------------------------------------------------------------------
# Reading local files
# --------------------------------------------------------------------------------------------------------------


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".tsv", ".csv", ".json", ".jsonl"):
            return suffix[1:]
    raise ValueError(f"{path}: unsupported file type; use .csv, .tsv, .json or .jsonl")


def read_table(path: str | os.PathLike, headerless_columns: tuple[str, ...] | None = None,
               expected_columns: tuple[str, ...] = ()) -> tuple[list[str], list[dict]]:
    """Read a csv / tsv / json / jsonl file into (column names, rows as dicts).

    TSV files are read without quote handling, as the GLUE distribution needs (its sentences contain
    unbalanced quotes). Rows whose field count differs from the header are skipped with a warning.
    `headerless_columns` names the columns of a file without a header row; it is used when the first row
    contains none of `expected_columns`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist")
    kind = _file_format(path)
    if kind in ("json", "jsonl"):
        return _read_json(path)
    csv.field_size_limit(sys.maxsize)  # GLUE/long-document rows can exceed csv's 128 KiB default
    with open(path, newline="", encoding="utf-8") as handle:
        if kind == "tsv":
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle)
        records = [record for record in reader if record and any(cell.strip() for cell in record)]
    if not records:
        raise ValueError(f"Data file {path} is empty")
    header = [cell.strip().lstrip("\ufeff") for cell in records[0]]
    body = records[1:]
    if headerless_columns and not set(header) & (set(expected_columns) | {"label", "sentence"}) \
            and len(header) == len(headerless_columns):
        header, body = list(headerless_columns), records
    rows, skipped = [], 0
    for record in body:
        if len(record) != len(header):
            skipped += 1
            continue
        rows.append(dict(zip(header, record)))
    if skipped:
        logger.warning("%s: skipped %d malformed rows (field count differs from the header's %d)",
                       path, skipped, len(header))
    if not rows:
        raise ValueError(f"Data file {path} has a header but no data rows")
    return header, rows


def _read_json(path: Path) -> tuple[list[str], list[dict]]:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"Data file {path} is empty")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    elif stripped.startswith("{") and path.suffix.lower() == ".json" and "\n{" not in stripped.rstrip():
        document = json.loads(text)
        # datasets' json loader accepts {"data": [...]}; so do we.
        rows = document.get("data") if isinstance(document, dict) and isinstance(document.get("data"), list) \
            else [document]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err})") from None
    if not rows:
        raise ValueError(f"Data file {path} is empty")
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: every record must be a JSON object")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, rows


# --------------------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------------------


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "-1", "-")) or \
        (isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1)


def convert_label(task: GlueTask, value):
    """Map a raw label (an id, a numeric string, or a label name) to the task's id / float; ValueError if invalid."""
    if task.is_regression:
        number = float(value)
        low, high = task.label_range
        if not low <= number <= high:
            raise ValueError(f"{number} is outside STS-B's range [{low}, {high}]")
        return number
    if isinstance(value, str):
        text = value.strip()
        lowered = {name.lower(): i for i, name in enumerate(task.label_names)}
        if text.lower() in lowered:
            return lowered[text.lower()]
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not one of {list(task.label_names)}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"{value!r} is not a label of {task.pretty_name}")
    if not number.is_integer() or not 0 <= number < task.num_labels:
        raise ValueError(f"{value!r} is not one of the label ids 0..{task.num_labels - 1} "
                         f"({', '.join(task.label_names)})")
    return int(number)


def _convert_labels(task: GlueTask, raw_labels, source: str, labelled: bool) -> list:
    converted, errors = [], []
    for row_number, value in enumerate(raw_labels):
        if _is_missing(value):
            if labelled:
                errors.append((row_number, value, "missing label"))
            converted.append(-1.0 if task.is_regression else -1)
            continue
        try:
            converted.append(convert_label(task, value))
        except (TypeError, ValueError) as err:
            errors.append((row_number, value, str(err)))
    if errors:
        allowed = "floats in [0, 5]" if task.is_regression else ", ".join(
            f"{i}/{name}" for i, name in enumerate(task.label_names))
        shown = "; ".join(f"row {row}: {value!r} ({why})" for row, value, why in errors[:5])
        raise ValueError(
            f"{source}: {len(errors)} label(s) outside the {task.pretty_name} label set ({allowed}): {shown}"
            + (" ..." if len(errors) > 5 else "")
        )
    return converted


# --------------------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------------------


def rows_to_split(task: GlueTask, columns: list[str], rows: list[dict], source: str, labelled: bool):
    """Turn rows read from `source` into a `datasets.Dataset` with the task's Hub column names.

    `labelled` splits (train / dev) must have a valid label on every row; test splits may omit the column.
    """
    from datasets import Dataset

    aliases = {**_COMMON_ALIASES, **task.column_aliases}
    rename = {}
    for column in columns:
        target = column if column in task.text_columns or column in ("label", "idx") else aliases.get(column)
        # The Hub name wins when both spellings are present (e.g. MNLI's sentence1 *and* premise).
        if target and target not in rename.values() and (target == column or target not in columns):
            rename[column] = target
    present = set(rename.values())
    needed = list(task.text_columns) + (["label"] if labelled else [])
    missing = [name for name in needed if name not in present]
    if missing:
        raise ValueError(
            f"{source} lacks the column(s) {missing} that {task.pretty_name} needs "
            f"(found {columns}; expected {list(task.text_columns) + ['label']}"
            + (f", or the original GLUE names {list(task.column_aliases)}" if task.column_aliases else "") + ")"
        )
    inverse = {target: column for column, target in rename.items()}
    data = {}
    for name in task.text_columns:
        values = [row.get(inverse[name]) for row in rows]
        empty = sum(1 for value in values if value is None or (isinstance(value, str) and not value.strip()))
        if empty:
            logger.warning("%s: %d rows have an empty %r", source, empty, name)
        data[name] = ["" if value is None else str(value) for value in values]
    if "label" in present:
        data["label"] = _convert_labels(task, [row.get(inverse["label"]) for row in rows], source, labelled)
    else:
        data["label"] = [-1.0 if task.is_regression else -1] * len(rows)
    if "idx" in present:
        try:
            data["idx"] = [int(row.get(inverse["idx"])) for row in rows]
        except (TypeError, ValueError):
            logger.warning("%s: the index column is not numeric; using row numbers as idx", source)
            data["idx"] = list(range(len(rows)))
    else:
        data["idx"] = list(range(len(rows)))
    return Dataset.from_dict(data)


def load_local_split(task: GlueTask, path: str | os.PathLike, labelled: bool):
    """Read one local file (csv / tsv / json / jsonl) as a split of `task` (see `rows_to_split`)."""
    columns, rows = read_table(path, headerless_columns=task.headerless_columns,
                               expected_columns=tuple(task.text_columns) + tuple(task.column_aliases))
    dataset = rows_to_split(task, columns, rows, str(path), labelled)
    logger.info("Loaded %d %s examples from %s", len(dataset), task.pretty_name, path)
    return dataset


# File names of the original GLUE distribution, per split (glue_data/<TASK>/...).
_GLUE_DIR_FILES = {
    "train": ("train.tsv",),
    "validation": ("dev.tsv",),
    "validation_matched": ("dev_matched.tsv",),
    "validation_mismatched": ("dev_mismatched.tsv",),
    "test": ("test.tsv",),
    "test_matched": ("test_matched.tsv",),
    "test_mismatched": ("test_mismatched.tsv",),
}


def glue_dir_files(task: GlueTask, glue_dir: str | os.PathLike) -> dict[str, Path]:
    """The split files of an original GLUE folder (e.g. `glue_data/MRPC`) that exist, keyed by split."""
    glue_dir = Path(glue_dir)
    if not glue_dir.is_dir():
        raise FileNotFoundError(f"GLUE data folder {glue_dir} does not exist")
    files = {}
    for split in ("train", *task.eval_splits, *task.test_splits):
        for name in _GLUE_DIR_FILES[split]:
            if (glue_dir / name).is_file():
                files[split] = glue_dir / name
    if "train" not in files and not any(split in files for split in task.eval_splits):
        raise FileNotFoundError(f"{glue_dir} has no train.tsv or dev file for {task.pretty_name}")
    return files


def load_glue(
    task: GlueTask,
    *,
    dataset_name: str | None = GLUE_HUB_ID,
    dataset_config_name: str | None = None,
    data_files: dict[str, str | os.PathLike] | None = None,
    cache_dir: str | None = None,
):
    """Load `task` as a `DatasetDict` with keys "train", `task.eval_splits` and `task.test_splits` (those present).

    With `data_files` ({split: path}, e.g. {"train": ..., "validation_matched": ..., "test_matched": ...})
    the local files are read; otherwise the Hub dataset `dataset_name` (config `dataset_config_name`, by
    default the task name) is loaded and its columns checked.
    """
    from datasets import DatasetDict, load_dataset

    splits = DatasetDict()
    if data_files:
        allowed = ("train", *task.eval_splits, *task.test_splits)
        for split, path in data_files.items():
            if path is None:
                continue
            if split not in allowed:
                raise ValueError(f"{task.pretty_name} has no split {split!r}; its splits are {list(allowed)}")
            splits[split] = load_local_split(task, path, labelled=split not in task.test_splits)
        return splits
    hub = load_dataset(dataset_name, dataset_config_name or task.name, cache_dir=cache_dir)
    for split in ("train", *task.eval_splits, *task.test_splits):
        if split not in hub:
            logger.warning("%s (%s) has no %r split", dataset_name, dataset_config_name or task.name, split)
            continue
        dataset = hub[split]
        missing = [name for name in (*task.text_columns, "label") if name not in dataset.column_names]
        if missing:
            raise ValueError(f"{dataset_name} split {split!r} lacks the column(s) {missing} that "
                             f"{task.pretty_name} needs (found {dataset.column_names})")
        if "idx" not in dataset.column_names:
            dataset = dataset.add_column("idx", list(range(len(dataset))))
        if split not in task.test_splits:
            _check_hub_labels(task, dataset, f"{dataset_name}[{split}]")
        splits[split] = dataset
    return splits


def _check_hub_labels(task: GlueTask, dataset, source: str):
    labels = np.asarray(dataset["label"])
    if task.is_regression:
        low, high = task.label_range
        bad = np.flatnonzero((labels < low) | (labels > high))
    else:
        bad = np.flatnonzero((labels < 0) | (labels >= task.num_labels))
    if bad.size:
        raise ValueError(f"{source}: {bad.size} label(s) outside the {task.pretty_name} label set, "
                         f"e.g. row {bad[0]}: {labels[bad[0]]!r}")


def load_ax(dataset_name: str | None = GLUE_HUB_ID, ax_file: str | os.PathLike | None = None,
            cache_dir: str | None = None):
    """The AX diagnostic set (premise, hypothesis, idx), from `ax_file` (e.g. glue_data/diagnostic/diagnostic.tsv) or the Hub."""
    if ax_file is not None:
        return load_local_split(AX_TASK, ax_file, labelled=False)
    from datasets import load_dataset

    return load_dataset(dataset_name, "ax", split="test", cache_dir=cache_dir)


# --------------------------------------------------------------------------------------------------------------
# Metrics and scores
# --------------------------------------------------------------------------------------------------------------


def compute_glue_metrics(task: GlueTask | str, predictions, references) -> dict[str, float]:
    """The task's official metrics, as `evaluate.load("glue", task)` names them (computed offline).

    `predictions` are class ids (or floats for STS-B). MRPC/QQP/STS-B also get `combined_score`, the
    mean of their two metrics.
    """
    task = get_task(task) if isinstance(task, str) else task
    if task.name == "cola":
        return {"matthews_correlation": M.matthews_correlation(predictions, references)}
    if task.name == "stsb":
        result = {"pearson": M.pearson(predictions, references), "spearmanr": M.spearman(predictions, references)}
    elif task.name in ("mrpc", "qqp"):
        result = {"accuracy": M.accuracy(predictions, references), "f1": M.binary_f1(predictions, references)}
    else:
        return {"accuracy": M.accuracy(predictions, references)}
    result["combined_score"] = M.mean_of(result, list(result))
    return result


def split_suffix(task: GlueTask, split: str) -> str:
    """Key suffix for a dev split's metrics: "" for the first (matched) dev set, "_mm" for MNLI mismatched."""
    return "_mm" if split == "validation_mismatched" else ""


def glue_score_entries(task: GlueTask, eval_metrics: dict[str, float], prefix: str = "eval_") -> dict[str, float]:
    """The per-task figures that enter the GLUE average, in percent: {"mrpc": 81.8} or {"mnli-m": .., "mnli-mm": ..}."""
    key = f"{prefix}{task.main_metric}"
    if task.name == "mnli":
        return {"mnli-m": 100 * eval_metrics[key], "mnli-mm": 100 * eval_metrics[f"{key}_mm"]}
    return {task.name: 100 * eval_metrics[key]}


def glue_average(scores: dict[str, float]) -> float | None:
    """The GLUE average over `GLUE_AVERAGE_ENTRIES` (MNLI m and mm as two entries, WNLI excluded).

    Returns None unless every entry is present.
    """
    if not all(entry in scores for entry in GLUE_AVERAGE_ENTRIES):
        return None
    return float(sum(scores[entry] for entry in GLUE_AVERAGE_ENTRIES) / len(GLUE_AVERAGE_ENTRIES))


# --------------------------------------------------------------------------------------------------------------
# Submission files
# --------------------------------------------------------------------------------------------------------------


def submission_file_name(task: GlueTask, split: str) -> str:
    """The benchmark's file name for a test split ("SST-2.tsv", "MNLI-m.tsv", "AX.tsv", ...)."""
    if split not in task.test_splits:
        raise ValueError(f"{task.pretty_name} has no test split {split!r}; its test splits are {list(task.test_splits)}")
    return f"{task.test_splits[split]}.tsv"


def format_prediction(task: GlueTask, prediction) -> str:
    """One prediction as the benchmark expects it: label name (MNLI, QNLI, RTE, AX), 0/1 id, or STS-B score."""
    if task.is_regression:
        low, high = task.label_range
        return f"{min(max(float(prediction), low), high):.3f}"
    label_id = int(prediction)
    if task.submission_uses_label_names:
        return task.label_names[label_id]
    return str(label_id)


def write_submission(output_dir: str | os.PathLike, task: GlueTask, split: str, indices, predictions) -> Path:
    """Write a GLUE benchmark submission file (`index<TAB>prediction` header) and return its path."""
    if len(indices) != len(predictions):
        raise ValueError(f"{len(indices)} indices but {len(predictions)} predictions")
    path = Path(output_dir) / submission_file_name(task, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("index\tprediction\n")
        for index, prediction in sorted(zip(indices, predictions), key=lambda pair: int(pair[0])):
            handle.write(f"{int(index)}\t{format_prediction(task, prediction)}\n")
    return path


# --------------------------------------------------------------------------------------------------------------
# A learnable toy pair task (tests and the demo)
# --------------------------------------------------------------------------------------------------------------

_TOY_SUBJECTS = ("the movie", "the film", "the story", "the play", "the book", "the show")
_TOY_POSITIVE = ("great", "wonderful", "good", "lovely", "fun", "nice")
_TOY_NEGATIVE = ("terrible", "boring", "bad", "awful", "dull", "poor")
_TOY_FILLERS = ("really", "very", "quite", "so", "truly", "")
_TOY_ENDINGS = ("today", "again", "for me", "to them", "all day", "")


def _toy_sentence(rng: random.Random, positive: bool) -> str:
    words = [rng.choice(_TOY_SUBJECTS), "was", rng.choice(_TOY_FILLERS),
             rng.choice(_TOY_POSITIVE if positive else _TOY_NEGATIVE), rng.choice(_TOY_ENDINGS)]
    return " ".join(word for word in words if word) + "."


def toy_pair_examples(n: int, seed: int) -> list[tuple[str, str, int]]:
    """`n` (sentence1, sentence2, label) pairs: label 1 ("equivalent") iff sentence2 is positive.

    Both sentences carry a polarity word; sentence1's is random (a distractor), so a model has to tell the
    two segments of the pair apart to learn the label, which a 2-layer PoNet does in a few hundred updates.
    Labels are balanced.
    """
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        examples.append((_toy_sentence(rng, rng.random() < 0.5), _toy_sentence(rng, label == 1), label))
    rng.shuffle(examples)
    return examples


def toy_vocabulary_text() -> str:
    """Every word the toy task uses (to train a tokenizer that covers it)."""
    words = [*_TOY_SUBJECTS, "was", *_TOY_POSITIVE, *_TOY_NEGATIVE, *_TOY_FILLERS, *_TOY_ENDINGS]
    return " ".join(word for word in words if word) + " ."


def write_toy_pair_task(output_dir: str | os.PathLike, n_train: int = 800, n_dev: int = 200, n_test: int = 200,
                        seed: int = 0) -> dict[str, Path]:
    """Write a learnable MRPC-style task in the original GLUE MRPC tsv layout: train.tsv, dev.tsv, test.tsv.

    Train/dev have `Quality  #1 ID  #2 ID  #1 String  #2 String`; test has `index` instead of `Quality`,
    exactly like glue_data/MRPC. Load it with `--task_name mrpc --glue_dir <output_dir>` (or the files).
    Returns {split: path}.
    """
    if min(n_train, n_dev, n_test) < 1:
        raise ValueError("n_train, n_dev and n_test must be positive")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Each split is generated (and balanced) on its own, from its own seed.
    parts = {"train": toy_pair_examples(n_train, seed), "validation": toy_pair_examples(n_dev, seed + 1),
             "test": toy_pair_examples(n_test, seed + 2)}
    names = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
    paths = {}
    for split, rows in parts.items():
        path = output_dir / names[split]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            first = "index" if split == "test" else "Quality"
            handle.write(f"{first}\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
            for i, (sentence1, sentence2, label) in enumerate(rows):
                lead = i if split == "test" else label
                handle.write(f"{lead}\t{2 * i}\t{2 * i + 1}\t{sentence1}\t{sentence2}\n")
        paths[split] = path
    return paths




def card_eval_results(task: GlueTask, eval_metrics: dict, dataset_type: str = GLUE_HUB_ID,
                      prefix: str = "eval_") -> list:
    """Model-index entries (`huggingface_hub.EvalResult`) for the dev metrics of a run, one group per dev set."""
    from .hub import eval_results_from_metrics

    results = []
    for split in task.eval_splits:
        suffix = split_suffix(task, split)
        metrics = {key[len(prefix):-len(suffix) if suffix else None]: value for key, value in eval_metrics.items()
                   if key.startswith(prefix) and (key.endswith(suffix) if suffix else not key.endswith("_mm"))}
        metrics = {key: value for key, value in metrics.items() if key in (*task.metrics, "combined_score")}
        name = f"GLUE {task.pretty_name}" + ({"validation_matched": " (matched)",
                                               "validation_mismatched": " (mismatched)"}.get(split, ""))
        results += eval_results_from_metrics(metrics, task_type="text-classification", dataset_type=dataset_type,
                                             dataset_name=name, dataset_config=task.name, dataset_split=split)
    return results


__all__ = [
    "AX_TASK",
    "GLUE_AVERAGE_ENTRIES",
    "GLUE_HUB_ID",
    "GLUE_TASKS",
    "GlueTask",
    "PAPER_BATCH_SIZES",
    "PAPER_LEARNING_RATES",
    "PAPER_MAX_LENGTH",
    "PAPER_NUM_EPOCHS",
    "PUBLISHED_PONET_BASE_GLUE",
    "card_eval_results",
    "compute_glue_metrics",
    "convert_label",
    "format_prediction",
    "get_task",
    "glue_average",
    "glue_dir_files",
    "glue_score_entries",
    "load_ax",
    "load_glue",
    "load_local_split",
    "read_table",
    "rows_to_split",
    "split_suffix",
    "submission_file_name",
    "toy_pair_examples",
    "toy_vocabulary_text",
    "write_submission",
    "write_toy_pair_task",
]
