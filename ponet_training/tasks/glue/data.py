"""GLUE data: a task's splits from the Hub GLUE dataset (`nyu-mll/glue`) or from local files.

Local files are csv, tsv (including the original GLUE distribution's tsv layouts, e.g. MRPC's `#1 String` /
`Quality` columns or CoLA's header-less train/dev files) or json/jsonl, read by `tables.read_table` (the files of an
original GLUE folder as GLUE wrote them: tab-separated without quoting). Either way a split becomes a
`datasets.Dataset` with the Hub's column names (`sentence1`/`sentence2`, `premise`/`hypothesis`, ...), an integer
(or, for STS-B, float) `label` (-1 for unlabelled test rows) and an integer `idx`.

- `convert_label(task, value)`: a raw label as the task's id (`labels.label_id`) or STS-B score.
- `rows_to_split(...)`, `load_local_split(task, path, labelled)`: one local file as a split.
- `glue_dir_files(task, glue_dir)`: the split files of an original GLUE folder (glue_data/MRPC, ...).
- `local_task_from_file(path, ...)`: a `tasks.local_task` from a training file's columns and label set.
- `load_glue(task, ...)`: the task's DatasetDict (local files or the Hub); `load_ax(...)`: the diagnostic set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ponet_training.data.labels import is_missing_label, label_id, type_labels
from ponet_training.data.tables import read_table
from ponet_training.tasks.glue.registry import COMMON_COLUMN_ALIASES, AX_TASK, GLUE_HUB_ID, GlueTask, local_task


logger = logging.getLogger(__name__)


def _is_missing(value) -> bool:
    """No label: `labels.is_missing_label`, or GLUE's placeholders for unlabelled test rows (-1, "-")."""
    return is_missing_label(value) or (isinstance(value, str) and value.strip() in ("-1", "-")) or \
        (isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1)


def convert_label(task: GlueTask, value):
    """Map a raw label (an id, a numeric string, or a label name) to the task's id / float; ValueError if invalid."""
    if task.is_regression:
        number = float(value)
        if not np.isfinite(number):
            raise ValueError(f"{value!r} is not a finite score")
        if task.label_range is not None:
            low, high = task.label_range
            if not low <= number <= high:
                raise ValueError(f"{number} is outside {task.pretty_name}'s range [{low}, {high}]")
        return number
    return label_id(value, task.label_names)


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
        allowed = f"scores in {list(task.label_range or ('-inf', 'inf'))}" if task.is_regression else ", ".join(
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

    aliases = {**COMMON_COLUMN_ALIASES, **task.column_aliases}
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
        data["idx"] = _indices(task, [row.get(inverse["idx"]) for row in rows], source)
    else:
        data["idx"] = list(range(len(rows)))
    return Dataset.from_dict(data)


def _indices(task: GlueTask, values: list, source: str) -> list[int]:
    """The file's own example indices. A GLUE submission is matched by them, so a non-numeric one is an error;
    other data falls back to row numbers, with a warning."""
    for row, value in enumerate(values):
        try:
            if float(value) != int(float(value)):
                raise ValueError
        except (TypeError, ValueError):
            if task.is_glue:
                raise ValueError(f"{source}: row {row}: index {value!r} is not a number; GLUE submission files are "
                                 "matched by the test file's own indices") from None
            logger.warning("%s: the index column is not numeric (row %d: %r); using row numbers as idx", source,
                           row, value)
            return list(range(len(values)))
    return [int(float(value)) for value in values]


def load_local_split(task: GlueTask, path: str | os.PathLike, labelled: bool, skip_malformed_rows: bool = False,
                     glue_distribution: bool = False):
    """Read one local file (csv / tsv / json / jsonl) as a split of `task` (see `rows_to_split`);
    `glue_distribution`: the file is the original GLUE distribution's, tab-separated without quoting."""
    columns, rows = read_table(path, headerless_columns=task.headerless_columns,
                               expected_columns=tuple(task.text_columns) + tuple(task.column_aliases),
                               skip_malformed_rows=skip_malformed_rows,
                               quoting="none" if glue_distribution else "auto")
    dataset = rows_to_split(task, columns, rows, str(path), labelled)
    logger.info("Loaded %d %s examples from %s", len(dataset), task.pretty_name, path)
    return dataset


# Default text columns of a local file without --text_column_name, in order of preference (transformers'
# run_glue reads sentence1/sentence2 pairs, else a single sentence).
_DEFAULT_TEXT_COLUMNS = (("sentence1", "sentence2"), ("sentence",), ("text",))


def local_task_from_file(path: str | os.PathLike, text_column: str | None = None, text_pair_column: str | None = None,
                         label_column: str = "label", skip_malformed_rows: bool = False,
                         regression: bool = False) -> GlueTask:
    """The task of a user's training file: its text column(s) (the flags, else sentence1+sentence2, sentence or
    text), and its labels typed by `labels.type_labels`: classes (sorted), or a regression on non-integral scores
    or when `regression` is asked (--do_regression)."""
    columns, rows = read_table(path, skip_malformed_rows=skip_malformed_rows)
    if text_column is None:
        if text_pair_column is not None:
            raise ValueError("--text_pair_column_name needs --text_column_name")
        found = next((names for names in _DEFAULT_TEXT_COLUMNS if all(name in columns for name in names)), None)
        if found is None:
            raise ValueError(f"{path}: no text column (sentence1+sentence2, sentence or text) among {columns}; "
                             "pass --text_column_name (and --text_pair_column_name for pairs)")
        text_columns = found
    else:
        text_columns = (text_column,) if text_pair_column is None else (text_column, text_pair_column)
        missing = [name for name in text_columns if name not in columns]
        if missing:
            raise ValueError(f"{path}: no text column {missing} among {columns}; check --text_column_name / "
                             "--text_pair_column_name")
    if label_column not in columns:
        raise ValueError(f"{path}: no label column {label_column!r} among {columns}; pass --label_column_name")
    typed = type_labels((row.get(label_column) for row in rows), str(path), regression=regression)
    return local_task(text_columns, typed.names, label_column, label_typing=typed.describe(str(path)))


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
    skip_malformed_rows: bool = False,
    glue_dir: str | os.PathLike | None = None,
):
    """Load `task` as a `DatasetDict` with keys "train", `task.eval_splits` and `task.test_splits` (those present).

    With `data_files` ({split: path}, e.g. {"train": ..., "validation_matched": ..., "test_matched": ...})
    the local files are read (those of `glue_dir`, the original GLUE distribution, as GLUE wrote them: without
    quoting); otherwise the Hub dataset `dataset_name` (config `dataset_config_name`, by default the task name) is
    loaded and its columns checked.
    """
    from datasets import DatasetDict, load_dataset

    splits = DatasetDict()
    if data_files:
        allowed = ("train", *task.eval_splits, *task.test_splits)
        distribution = {Path(file).resolve() for file in glue_dir_files(task, glue_dir).values()} if glue_dir else ()
        for split, path in data_files.items():
            if path is None:
                continue
            if split not in allowed:
                raise ValueError(f"{task.pretty_name} has no split {split!r}; its splits are {list(allowed)}")
            splits[split] = load_local_split(task, path, labelled=split not in task.test_splits,
                                             skip_malformed_rows=skip_malformed_rows,
                                             glue_distribution=Path(path).resolve() in distribution)
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


__all__ = ["convert_label", "glue_dir_files", "load_ax", "load_glue", "load_local_split", "local_task_from_file",
           "rows_to_split"]
