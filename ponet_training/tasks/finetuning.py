"""What the fine-tuning scripts (`finetune/run_glue.py`, `finetune/run_long_doc.py`) share besides the loop: model
loading before it; the best-model metric, the prediction files and the model card around it.

- `add_finetuning_args(parser)`: `--model_name_or_path`, `--config_name`, `--tokenizer_name`, `--cache_dir`,
  `--ignore_mismatched_sizes`, `--pad_to_max_length`, `--classifier_pooling`, `--metric_for_best_model`.
- `load_model_and_tokenizer(args, num_labels, ...)`: any `AutoModelForSequenceClassification` model;
  `readable_weights(source)`: a truncated weights file is an error naming it; `classifier_loader(args)`: how the
  best checkpoint is re-loaded (`best_model.finalize_model`).
- `label_permutation(model_config, label_names)`: {task id: model id} for a checkpoint fine-tuned on the same
  labels in another order.
- `selection_metric(requested, default, allowed, what)`: the dev metric that picks the kept checkpoint.
- `write_predictions(path, indices, predictions, label_names, references)`: one split's predictions as a TSV.
- `card_hyperparameters(args, accelerator, total_batch, selection)`, `write_finetuned_card(...)`: the model card;
  `glue_eval_results(task, eval_metrics, dataset_type)`: its model-index entries for a GLUE task.

The loop itself is `engine/loop.py`; checkpoints and the best model are `engine/checkpoints.py` and
`engine/best_model.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from pathlib import Path


logger = logging.getLogger(__name__)


def add_finetuning_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Model and selection flags shared by the fine-tuning scripts (the loop flags come from `run.add_training_args`)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model_name_or_path", type=str, default=None,
                       help="Checkpoint to fine-tune: a Hub id (e.g. chtan/ponet-base-uncased) or a local folder.")
    group.add_argument("--config_name", type=str, default=None,
                       help="Config name or path if not the model's (with no --model_name_or_path: train from "
                            "scratch with this config).")
    group.add_argument("--tokenizer_name", type=str, default=None,
                       help="Tokenizer name or path if not the model's.")
    group.add_argument("--cache_dir", type=str, default=None, help="Where to cache Hub downloads.")
    group.add_argument("--ignore_mismatched_sizes", action="store_true",
                       help="Load a checkpoint whose classification head has another number of labels.")
    group.add_argument("--pad_to_max_length", action="store_true",
                       help="Pad every example to --max_length (default: pad each batch to its longest).")
    group.add_argument("--classifier_pooling", type=str, default=None,
                       help="PoNet only: how the classification head turns tokens into one vector "
                            "(`config.classifier_pooling`: cls, the published pooler; mean, max, last, weighted_sum, "
                            "weighted_mean, attention, or several joined by '+'); default: the checkpoint's.")
    group.add_argument("--metric_for_best_model", type=str, default=None,
                       help="Dev metric that picks the checkpoint kept at the end (default: the task's main "
                            "metric); 'none' keeps the last model.")
    return parser


def load_model_and_tokenizer(args, num_labels: int, problem_type: str, finetuning_task: str | None = None,
                             label_names: list[str] | None = None):
    """Config, tokenizer and `AutoModelForSequenceClassification` from `--model_name_or_path` (or, from
    scratch, `--config_name`), with `num_labels`, `problem_type` and, when given, the task's label names."""
    import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ponet_training.data.tokenizer_loading import load_tokenizer

    source = args.config_name or args.model_name_or_path
    if source is None:
        raise ValueError("Pass `--model_name_or_path` (a checkpoint to fine-tune) or `--config_name` (from scratch)")
    tokenizer_source = args.tokenizer_name or args.model_name_or_path or args.config_name
    common = dict(cache_dir=args.cache_dir, trust_remote_code=args.trust_remote_code)
    pooling = {} if args.classifier_pooling is None else {"classifier_pooling": args.classifier_pooling}
    config = AutoConfig.from_pretrained(source, num_labels=num_labels, finetuning_task=finetuning_task, **common,
                                        **pooling)
    if pooling and config.model_type != "ponet":  # another config would keep the value without using it
        raise ValueError(f"--classifier_pooling applies to PoNet models; {source} is a {config.model_type} model "
                         "(finetune/run_pooling_study.py compares poolings on any backbone)")
    config.problem_type = problem_type
    tokenizer = load_tokenizer(tokenizer_source, **common)
    if args.model_name_or_path:
        with readable_weights(args.model_name_or_path):
            model = AutoModelForSequenceClassification.from_pretrained(
                args.model_name_or_path, config=config, ignore_mismatched_sizes=args.ignore_mismatched_sizes, **common
            )
    else:
        logger.info("Training a new %s model from scratch", config.model_type)
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=args.trust_remote_code)
    if label_names is not None and not _has_named_labels(model.config):
        model.config.label2id = {name: i for i, name in enumerate(label_names)}
        model.config.id2label = dict(enumerate(label_names))
    if tokenizer.pad_token is None:
        raise ValueError(f"The tokenizer of {tokenizer_source} has no padding token; set one before fine-tuning")
    return config, tokenizer, model


def classifier_loader(args):
    """`load_model(folder)` for `best_model.finalize_model`: the sequence classifier saved there."""
    from transformers import AutoModelForSequenceClassification

    return lambda folder: AutoModelForSequenceClassification.from_pretrained(
        folder, trust_remote_code=args.trust_remote_code)


@contextlib.contextmanager
def readable_weights(source: str):
    """Turn safetensors' error for a truncated or corrupt weights file (which names no file) into one naming it."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as err:
        files = sorted(Path(source).glob("*.safetensors")) if Path(source).is_dir() else []
        named = ", ".join(map(str, files)) or source
        raise ValueError(f"Cannot read the weights in {named}: {err} (the file is truncated or corrupt: save or "
                         "download it again)") from None


def _has_named_labels(config) -> bool:
    """Whether the config already carries real label names (a checkpoint fine-tuned on some task)."""
    id2label = getattr(config, "id2label", None) or {}
    return bool(id2label) and not all(str(name) == f"LABEL_{i}" for i, name in id2label.items())


def label_permutation(model_config, label_names: list[str]) -> dict[int, int] | None:
    """When a checkpoint was already fine-tuned on the same labels in another order, {task id: model id}.

    None when the model's labels are generic (LABEL_i) or already in the task's order; a warning when they
    are named differently (the head is then used as is, by position).
    """
    if not _has_named_labels(model_config):
        return None
    model_ids = {str(name).lower(): int(i) for name, i in model_config.label2id.items()}
    wanted = [name.lower() for name in label_names]
    if sorted(model_ids) != sorted(wanted):
        logger.warning("The model's labels %s differ from the task's %s; using the head by position",
                       list(model_ids), label_names)
        return None
    mapping = {task_id: model_ids[name] for task_id, name in enumerate(wanted)}
    if all(task_id == model_id for task_id, model_id in mapping.items()):
        return None
    logger.info("Mapping the task's labels to the model's label ids: %s", mapping)
    return mapping


# ----------------------------------------------------------------------------------------------------------
# Around the loop: which dev metric is best, the prediction files, the model card
# ----------------------------------------------------------------------------------------------------------


def selection_metric(requested: str | None, default: str, allowed: list[str], what: str) -> str | None:
    """The key of the dev metric that picks the checkpoint kept at the end (`--metric_for_best_model`, else
    `default`; with or without its `eval_` prefix); None for 'none' (the last model is kept). Every metric is
    greater-is-better. One the task does not report (not in `allowed`) is a ValueError naming `what` and the choices."""
    name = requested or default
    if name.lower() == "none":
        return None
    key = name if name.startswith("eval_") else f"eval_{name}"
    if key not in allowed:
        raise ValueError(f"`--metric_for_best_model` {name!r} is not a {what} dev metric; choose one of {allowed} "
                         "or 'none'")
    return key


def write_predictions(path: str | os.PathLike, indices, predictions, label_names=None, references=None) -> Path:
    """One split's predictions as a TSV, a row per example (`label_names`: the task's, in id order; None for
    regression). With `references` (a labelled split), to re-check the metrics: `index prediction label` as label ids
    (scores at full precision), plus `prediction_name` when labels have names. Without (a test split):
    `index prediction`, the predicted label name or the score (6 significant digits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled = references is not None
    header = ["index", "prediction"] + (["label"] + (["prediction_name"] if label_names else []) if labelled else [])

    def number(value) -> str:
        return str(int(value)) if label_names else repr(float(value))

    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n")
        for row, (index, prediction) in enumerate(zip(indices, predictions)):
            if labelled:
                cells = [number(prediction), number(references[row])]
                cells += [str(label_names[int(prediction)])] if label_names else []
            else:
                cells = [str(label_names[int(prediction)]) if label_names else f"{float(prediction):.6g}"]
            handle.write("\t".join([str(int(index)), *cells]) + "\n")
    return path


def card_hyperparameters(args, accelerator, total_batch: int, selection: str | None, **extra) -> dict:
    """The model card's training facts every fine-tuning run has, plus the script's own (`extra`)."""
    return {
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "total_train_batch_size": total_batch,
        "num_processes": accelerator.num_processes,
        "num_train_epochs": args.num_train_epochs,
        "max_train_steps": args.max_train_steps,
        "max_length": args.max_length,
        "weight_decay": args.weight_decay,
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "num_warmup_steps": args.num_warmup_steps,
        "seed": args.seed,
        "mixed_precision": accelerator.mixed_precision,
        "metric_for_best_model": selection or "none",
        **extra,
    }


def glue_eval_results(task, eval_metrics: dict, dataset_type: str, prefix: str = "eval_") -> list:
    """Model-index entries (`huggingface_hub.EvalResult`) for the dev metrics of a GLUE run, one group per dev set
    (`dataset_type`: the Hub dataset the data came from, e.g. nyu-mll/glue)."""
    from ponet_training.hub.model_cards import eval_results_from_metrics
    from ponet_training.tasks.glue.registry import split_suffix

    results = []
    for split in task.eval_splits:
        suffix = split_suffix(split)
        metrics = {key[len(prefix):-len(suffix) if suffix else None]: value for key, value in eval_metrics.items()
                   if key.startswith(prefix) and (key.endswith(suffix) if suffix else not key.endswith("_mm"))}
        metrics = {key: value for key, value in metrics.items() if key in (*task.metrics, "combined_score")}
        name = f"GLUE {task.pretty_name}" + ({"validation_matched": " (matched)",
                                               "validation_mismatched": " (mismatched)"}.get(split, ""))
        results += eval_results_from_metrics(metrics, task_type="text-classification", dataset_type=dataset_type,
                                             dataset_name=name, dataset_config=task.name, dataset_split=split)
    return results


def write_finetuned_card(accelerator, args, output_dir, config, model, *, trained_on: str,
                         datasets: list[str] | None, training_data: str | None, eval_results: list,
                         hyperparameters: dict) -> Path:
    """`README.md` of the fine-tuned model in `output_dir` (the run folder): its base model, the data (`datasets`:
    Hub ids, or a description in `training_data`), `eval_results` for the model index, the hyperparameters and the
    architecture."""
    from ponet_training.hub import model_cards

    base_model, base_model_name = model_cards.base_model_reference(args.model_name_or_path, config)
    return model_cards.write_model_card(
        output_dir, "finetuned",
        hub_model_id=args.hub_model_id,
        base_model=base_model,
        base_model_name=base_model_name,
        datasets=datasets,
        training_data=training_data,
        model_summary=f"{base_model_name or config.model_type} fine-tuned on {trained_on}",
        eval_results=eval_results,
        hyperparameters=hyperparameters,
        config=accelerator.unwrap_model(model).config,
    )


__all__ = ["add_finetuning_args", "card_hyperparameters", "classifier_loader", "glue_eval_results", "label_permutation",
           "load_model_and_tokenizer", "readable_weights", "selection_metric", "write_finetuned_card",
           "write_predictions"]
