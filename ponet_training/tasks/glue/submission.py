"""GLUE benchmark submission files (gluebenchmark.com): `<TASK>.tsv` with an `index<TAB>prediction` header.

- `submission_file_name(task, split)`: "SST-2.tsv", "MNLI-m.tsv", "AX.tsv", ...
- `format_prediction(task, prediction)`: a label name (MNLI, QNLI, RTE, AX), a 0/1 id, or an STS-B score.
- `write_submission(output_dir, task, split, indices, predictions)`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ponet_training.tasks.glue.registry import GlueTask


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


__all__ = ["format_prediction", "submission_file_name", "write_submission"]
