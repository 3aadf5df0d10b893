"""Evaluation metrics computed offline with scikit-learn and scipy.

These are the computations behind `evaluate.load("glue", ...)` (which would download a metric script):
Matthews correlation for CoLA, F1 + accuracy for MRPC/QQP, Pearson + Spearman for STS-B, accuracy
elsewhere; plus accuracy / micro-F1 / macro-F1 (and binary F1) for long-document classification.
Every function takes plain sequences or numpy arrays of predictions and references and returns floats:
`accuracy`, `binary_f1`, `matthews_correlation`, `pearson`, `spearman`, `classification_metrics` (long documents,
the pooling study), `compute_glue_metrics(task, ...)` (a GLUE task's official set) and `mean_of`.
`predicted_classes(predictions, label_names, prefix)` counts the classes a classifier predicts and says (in the
results and the log) when it predicts one class only: a majority-class model, whatever its accuracy.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import ConstantInputWarning, pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from ponet_training.tasks.glue.registry import GlueTask, get_task


logger = logging.getLogger(__name__)


def _arrays(predictions, references):
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.shape != references.shape:
        raise ValueError(f"predictions and references differ in shape: {predictions.shape} vs {references.shape}")
    if predictions.size == 0:
        raise ValueError("Cannot compute a metric on zero examples")
    return predictions, references


def accuracy(predictions, references) -> float:
    """Fraction of predictions equal to the reference labels."""
    predictions, references = _arrays(predictions, references)
    return float(accuracy_score(references, predictions))


def binary_f1(predictions, references, pos_label: int = 1) -> float:
    """F1 of the positive class (`pos_label`), as GLUE reports for MRPC and QQP."""
    predictions, references = _arrays(predictions, references)
    return float(f1_score(references, predictions, pos_label=pos_label, average="binary", zero_division=0))


def matthews_correlation(predictions, references) -> float:
    """Matthews correlation coefficient (CoLA); 0 when predictions or references are constant."""
    predictions, references = _arrays(predictions, references)
    return float(matthews_corrcoef(references, predictions))


def _correlation(fn, predictions, references) -> float:
    predictions, references = _arrays(np.asarray(predictions, dtype=float), np.asarray(references, dtype=float))
    # A constant prediction vector (a collapsed regressor) has no defined correlation: report NaN, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        value = fn(predictions, references)[0]
    return float(value)


def pearson(predictions, references) -> float:
    """Pearson correlation (STS-B); NaN when either side is constant."""
    return _correlation(pearsonr, predictions, references)


def spearman(predictions, references) -> float:
    """Spearman rank correlation (STS-B); NaN when either side is constant."""
    return _correlation(spearmanr, predictions, references)


def classification_metrics(predictions, references, num_labels: int | None = None,
                           binary: bool | None = None) -> dict[str, float]:
    """Accuracy, micro-F1 and macro-F1 (over all `num_labels` classes), plus binary `f1` for 2-class tasks.

    `binary` defaults to `num_labels == 2` (HND and IMDb report the positive-class F1).
    """
    predictions, references = _arrays(predictions, references)
    labels = list(range(num_labels)) if num_labels is not None else None
    if binary is None:
        binary = num_labels == 2
    result = {
        "accuracy": float(accuracy_score(references, predictions)),
        "micro_f1": float(f1_score(references, predictions, labels=labels, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0)),
    }
    if binary:
        result["f1"] = binary_f1(predictions, references)
    return result


def mean_of(metrics: dict[str, float], keys: Sequence[str]) -> float:
    """Mean of `metrics[k]` for `k` in keys (NaN if any is NaN)."""
    values = [metrics[key] for key in keys]
    return float(sum(values) / len(values))


def macro_f1(predictions, references, num_labels: int | None = None) -> float:
    """F1 averaged over the classes (all `num_labels` of them when given), each class weighing the same."""
    predictions, references = _arrays(predictions, references)
    labels = list(range(num_labels)) if num_labels is not None else None
    return float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0))


def predicted_classes(predictions, label_names: Sequence[str], split: str = "validation") -> dict:
    """How often a classifier predicted each class on one split, and whether it predicted a single class.

    Returns `predicted_class_counts` ({label name: count}, every class listed) and `one_class` (the one class
    predicted for every example, else None); the scripts name them like their metrics (`eval_one_class`). A model that predicts one class has learned nothing beyond
    the class frequencies: its accuracy is that class's share, so it is logged as a warning, not as a score.
    """
    predictions = np.asarray(predictions)
    if predictions.size == 0:
        raise ValueError("Cannot count the predicted classes of zero examples")
    counts = np.bincount(predictions.astype(np.int64), minlength=len(label_names))
    histogram = {str(name): int(count) for name, count in zip(label_names, counts)}
    used = np.flatnonzero(counts)
    one_class = str(label_names[used[0]]) if len(used) == 1 else None
    if one_class is not None:
        logger.warning("%s: the model predicts %r for all %d examples: a majority-class model (it learned no more "
                       "than the class frequencies); its accuracy is the share of that class", split, one_class,
                       predictions.size)
    return {"predicted_class_counts": histogram, "one_class": one_class}


_TASK_METRICS = {
    "accuracy": lambda task, p, r: accuracy(p, r),
    "f1": lambda task, p, r: binary_f1(p, r),
    "macro_f1": lambda task, p, r: macro_f1(p, r, task.num_labels),
    "matthews_correlation": lambda task, p, r: matthews_correlation(p, r),
    "pearson": lambda task, p, r: pearson(p, r),
    "spearmanr": lambda task, p, r: spearman(p, r),
}


def compute_glue_metrics(task: GlueTask | str, predictions, references) -> dict[str, float]:
    """The task's metrics (`task.metrics`), as `evaluate.load("glue", task)` names them (computed offline).

    `predictions` are class ids (or floats for regression). A task with two metrics (MRPC, QQP, STS-B, local
    data) also gets `combined_score`, their mean.
    """
    task = get_task(task) if isinstance(task, str) else task
    result = {name: _TASK_METRICS[name](task, predictions, references) for name in task.metrics}
    if len(result) > 1:
        result["combined_score"] = mean_of(result, list(result))
    return result


__all__ = [
    "accuracy",
    "binary_f1",
    "classification_metrics",
    "compute_glue_metrics",
    "macro_f1",
    "matthews_correlation",
    "mean_of",
    "pearson",
    "predicted_classes",
    "spearman",
]
