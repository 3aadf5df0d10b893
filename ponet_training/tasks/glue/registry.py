"""The nine GLUE tasks: columns, labels, official metrics, benchmark file names and the paper's fine-tuning grid.

- `GlueTask`, `GLUE_TASKS`, `AX_TASK` (the diagnostic set), `get_task(name)`.
- `local_task(text_columns, label_names, label_column)`: the same description for a user's own classification (or
  regression) files, with the metrics that fit its label set and no benchmark submission.
- `GLUE_HUB_ID`, `PAPER_*` (the published grid), `PUBLISHED_PONET_BASE_GLUE`, `GLUE_AVERAGE_ENTRIES`.
- `split_suffix(split)`, `glue_score_entries(task, eval_metrics)`, `glue_average(scores)`.

Published figures and the fine-tuning grid are those of the PoNet paper (Tan et al., ICLR 2022, arXiv:2110.02442)
and its original repository (github.com/lxchtan/PoNet).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # Dev split names (MNLI has two: matched and mismatched).
    eval_splits: tuple[str, ...] = ("validation",)
    # Test splits: {split name: GLUE submission file stem}.
    test_splits: dict[str, str] = field(default_factory=dict)
    # The benchmark wants label names (not ids) in the submission for these tasks.
    submission_uses_label_names: bool = False
    # Column names of the original GLUE tsv files (and other common spellings) -> Hub names.
    column_aliases: dict[str, str] = field(default_factory=dict)
    # Column names of a header-less original file (CoLA's train/dev.tsv).
    headerless_columns: tuple[str, ...] | None = None
    # Allowed target range of a regression task (STS-B: [0, 5]); None: any finite number.
    label_range: tuple[float, float] | None = None
    # A GLUE benchmark task (test predictions become submission files, the GLUE average applies).
    is_glue: bool = True
    # A local task: why its labels are classes or scores (`labels.LabelTyping.describe`), for the run's log.
    label_typing: str = ""

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


COMMON_COLUMN_ALIASES = {"index": "idx", "id": "idx"}

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
            test_splits={"test": "STS-B"}, column_aliases={"score": "label"}, label_range=(0.0, 5.0),
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

# PoNet-Base's published GLUE dev figures (the paper's GLUE dev results), in percent.
PUBLISHED_PONET_BASE_GLUE = {
    "mnli-m": 76.99, "mnli-mm": 77.21, "qqp": 87.55, "qnli": 84.33, "sst2": 89.22, "cola": 45.36,
    "stsb": 84.57, "mrpc": 81.76, "rte": 64.26,
}

# The paper's fine-tuning grid: batch size x learning rate, 4 epochs, max length 128.
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



def local_task(text_columns: tuple[str, ...], label_names: list[str] | None, label_column: str = "label",
               label_typing: str = "") -> GlueTask:
    """A task on the user's own files: its text column(s), its label set (None: regression on scores) and
    the metrics that fit it: accuracy + F1 (binary), accuracy + macro-F1 (multi-class), Pearson + Spearman
    (regression). Dev splits "validation", test split "test" (predictions, no submission file)."""
    if label_names is None:
        metrics, main = ("pearson", "spearmanr"), "pearson"
    elif len(label_names) == 2:
        metrics, main = ("accuracy", "f1"), "accuracy"
    else:
        metrics, main = ("accuracy", "macro_f1"), "accuracy"
    aliases = {label_column: "label"} if label_column != "label" else {}
    return GlueTask("local", "local data", tuple(text_columns), None if label_names is None else tuple(label_names),
                    metrics, main, test_splits={"test": ""}, column_aliases=aliases, is_glue=False,
                    label_typing=label_typing)


def split_suffix(split: str) -> str:
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
    "get_task",
    "glue_average",
    "local_task",
    "glue_score_entries",
    "split_suffix",
]
