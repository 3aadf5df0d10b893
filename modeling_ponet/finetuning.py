"""The fine-tuning loop shared by `finetune/run_glue.py` and `finetune/run_long_doc.py`.

Sequence classification / regression with Accelerate: train, evaluate on the dev set(s) every epoch (or
every `--eval_steps`), keep the best checkpoint by a dev metric, predict. The optimisation, checkpointing and
exact-resume pieces come from `training.py`; this module adds what classification needs on top:

- `add_finetuning_args(parser)`: `--metric_for_best_model`, `--pad_to_max_length`, `--ignore_mismatched_sizes`.
- `load_model_and_tokenizer(args, num_labels, ...)`: any `AutoModelForSequenceClassification` model.
- `predict(accelerator, model, dataloader)`: logits -> predictions (and references) gathered over processes.
- `BestModelTracker`: saves the best model to `output_dir/best_model` and survives a resume.
- `train_classifier(...)`: the loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import training as T
from .metrics import is_better


logger = logging.getLogger(__name__)

BEST_MODEL_DIR = "best_model"
BEST_STATE_FILE = "best_model_state.json"


def add_finetuning_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Model and selection flags shared by the fine-tuning scripts (the loop flags come from `training.py`)."""
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
    group.add_argument("--metric_for_best_model", type=str, default=None,
                       help="Dev metric that picks the checkpoint kept at the end (default: the task's main "
                            "metric); 'none' keeps the last model.")
    return parser


def load_model_and_tokenizer(args, num_labels: int, problem_type: str, finetuning_task: str | None = None,
                             label_names: list[str] | None = None):
    """Config, tokenizer and `AutoModelForSequenceClassification` from `--model_name_or_path` (or, from
    scratch, `--config_name`), with `num_labels`, `problem_type` and, when given, the task's label names."""
    import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = args.config_name or args.model_name_or_path
    if source is None:
        raise ValueError("Pass `--model_name_or_path` (a checkpoint to fine-tune) or `--config_name` (from scratch)")
    tokenizer_source = args.tokenizer_name or args.model_name_or_path or args.config_name
    common = dict(cache_dir=args.cache_dir, trust_remote_code=args.trust_remote_code)
    config = AutoConfig.from_pretrained(source, num_labels=num_labels, finetuning_task=finetuning_task, **common)
    config.problem_type = problem_type
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **common)
    if args.model_name_or_path:
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


@torch.no_grad()
def predict(accelerator, model, dataloader, is_regression: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Run `model` over `dataloader` and return (predictions, references), gathered from all processes in
    dataset order (duplicates of the last uneven batch dropped). Predictions are argmax ids, or floats for
    regression; references are the batches' `labels` (None when the batches carry none)."""
    model.eval()
    predictions, references = [], []
    for batch in dataloader:
        labels = batch.pop("labels", None)
        with accelerator.autocast():
            logits = model(**batch).logits.float()
        output = logits.squeeze(-1) if is_regression else logits.argmax(dim=-1)
        if labels is None:
            predictions.append(accelerator.gather_for_metrics(output).cpu())
        else:
            output, labels = accelerator.gather_for_metrics((output, labels))
            predictions.append(output.cpu())
            references.append(labels.cpu())
    predictions = torch.cat(predictions).float().numpy() if is_regression else torch.cat(predictions).numpy()
    if not references:
        return predictions, None
    references = torch.cat(references)
    return predictions, (references.float().numpy() if is_regression else references.numpy())


@dataclass
class BestModelTracker:
    """Keeps the best dev score seen so far and the model that reached it (in `output_dir/best_model`).

    `metric` is a key of the metrics dict the evaluation returns (e.g. "eval_f1"); None keeps the last model.
    Its state is written into every training checkpoint, so a resumed run knows what to beat.
    """

    output_dir: str | None
    metric: str | None
    greater_is_better: bool = True
    best_value: float | None = None
    best_step: int | None = None
    best_metrics: dict = field(default_factory=dict)

    @property
    def best_dir(self) -> Path | None:
        return None if self.output_dir is None else Path(self.output_dir) / BEST_MODEL_DIR

    def update(self, accelerator, model, tokenizer, metrics: dict, step: int) -> bool:
        """Record `metrics` of the model at `step`; save the model when it is the best so far."""
        if self.metric is None:
            return False
        if self.metric not in metrics:
            raise ValueError(f"`--metric_for_best_model`: {self.metric!r} is not among the dev metrics "
                             f"{sorted(metrics)}")
        value = metrics[self.metric]
        if not is_better(value, self.best_value, self.greater_is_better):
            return False
        self.best_value, self.best_step, self.best_metrics = float(value), step, dict(metrics)
        logger.info("New best %s = %.4f at step %d", self.metric, value, step)
        if self.best_dir is not None:
            save_model(accelerator, model, tokenizer, self.best_dir)
            if accelerator.is_main_process:
                (self.best_dir / BEST_STATE_FILE).write_text(json.dumps(self.state(), indent=2))
            accelerator.wait_for_everyone()
        return True

    def state(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "output_dir"}

    def save_into(self, accelerator, checkpoint: Path | None) -> None:
        """Store the tracker in a training checkpoint folder."""
        if checkpoint is not None and accelerator.is_main_process:
            (Path(checkpoint) / BEST_STATE_FILE).write_text(json.dumps(self.state(), indent=2))

    def restore_from(self, checkpoint: str | Path) -> None:
        """Load the tracker stored in a checkpoint folder (if any)."""
        path = Path(checkpoint) / BEST_STATE_FILE
        if path.is_file():
            for key, value in json.loads(path.read_text()).items():
                setattr(self, key, value)

    def best_model_is_current(self) -> bool:
        """Whether `best_model/` holds the model this tracker's best score belongs to (not a stale one
        from an abandoned run)."""
        if self.best_dir is None or self.best_step is None:
            return False
        path = self.best_dir / BEST_STATE_FILE
        return path.is_file() and json.loads(path.read_text()).get("best_step") == self.best_step


def save_model(accelerator, model, tokenizer, output_dir: str | Path) -> None:
    """`save_pretrained` of the unwrapped model (weights gathered from all processes) and the tokenizer."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir, is_main_process=accelerator.is_main_process,
                              save_function=accelerator.save, state_dict=accelerator.get_state_dict(model))
    if accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)
    accelerator.wait_for_everyone()


def promote_best_model(accelerator, tracker: BestModelTracker, output_dir: str | Path) -> bool:
    """Move the files of `best_model/` into `output_dir` (the final model) and remove the folder.

    Returns False (and leaves things as they are) when there is no current best model."""
    is_current = tracker.best_model_is_current()
    # Every process must read best_model/ before the main one moves it: a process that looked afterwards would
    # take the other branch (saving the last model) and its collectives would never meet the main process's.
    accelerator.wait_for_everyone()
    if not is_current:
        return False
    if accelerator.is_main_process:
        (tracker.best_dir / BEST_STATE_FILE).unlink()  # the figures go to all_results.json
        for item in tracker.best_dir.iterdir():
            target = Path(output_dir) / item.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))
        tracker.best_dir.rmdir()
    accelerator.wait_for_everyone()
    return True


def finalize_model(accelerator, args, model, tokenizer, tracker: BestModelTracker):
    """The model to evaluate and publish: the best dev checkpoint, moved into `--output_dir` and re-loaded on this
    process's device, or (no best checkpoint) the last model, saved there. Without `--output_dir`, the last model."""
    if args.output_dir is None:
        return model
    if not promote_best_model(accelerator, tracker, args.output_dir):
        save_model(accelerator, model, tokenizer, args.output_dir)
        return model
    logger.info("Keeping the best checkpoint: %s = %.4f at step %d", tracker.metric, tracker.best_value,
                tracker.best_step)
    from transformers import AutoModelForSequenceClassification

    best = AutoModelForSequenceClassification.from_pretrained(args.output_dir, trust_remote_code=args.trust_remote_code)
    return best.to(accelerator.device)


def resume(accelerator, args, batches_per_epoch: int, tracker: BestModelTracker) -> T.TrainingProgress:
    """`training.resume_state` plus the best-model tracker stored in the checkpoint resumed from."""
    progress = T.resume_state(accelerator, args, batches_per_epoch=batches_per_epoch)
    target = getattr(args, "resume_from_checkpoint", None)
    if target:
        path = T.list_checkpoints(args.output_dir)[-1] if target == "latest" else Path(target)
        tracker.restore_from(path)
    return progress


def train_classifier(
    accelerator,
    args,
    model,
    tokenizer,
    optimizer,
    lr_scheduler,
    train_dataloader,
    evaluate: Callable[[], dict],
    tracker: BestModelTracker,
    progress: T.TrainingProgress,
) -> dict:
    """The training loop: updates with gradient accumulation and clipping, evaluation (`evaluate()` returns
    a flat metrics dict) at every epoch end or every `--eval_steps`, best-model tracking, `--checkpointing_steps`
    checkpoints (which store the tracker) and tracker logging. Returns the last evaluation's metrics.

    `progress` comes from `training.resume_state` (a fresh one without `--resume_from_checkpoint`).
    """
    bar = T.ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)
    last_metrics: dict = {}
    running_loss, running_count = 0.0, 0

    def run_evaluation(epoch: int):
        nonlocal last_metrics
        metrics = evaluate()
        metrics["epoch"] = epoch
        metrics["step"] = progress.completed_steps
        logger.info("step %d (epoch %d): %s", progress.completed_steps, epoch,
                    {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
        tracker.update(accelerator, model, tokenizer, metrics, progress.completed_steps)
        if args.with_tracking:
            accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                            step=progress.completed_steps)
        last_metrics = metrics
        model.train()

    def checkpoint(end_of_epoch: bool = False):
        tracker.save_into(accelerator, T.maybe_save_checkpoint(accelerator, args, progress, end_of_epoch))

    done = progress.completed_steps >= args.max_train_steps
    for epoch in range(progress.epoch, args.num_train_epochs):
        if done:
            break
        model.train()
        evaluated_at = None
        for batch in T.epoch_dataloader(accelerator, train_dataloader, epoch, progress.skip_batches(epoch)):
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                T.optimization_step(accelerator, model, loss, optimizer, lr_scheduler, args.max_grad_norm)
            progress.advance(accelerator.sync_gradients)
            running_loss += loss.detach().float().item()
            running_count += 1
            tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
            if not accelerator.sync_gradients:
                bar.add_tokens(tokens)
                continue
            bar.update(loss=loss.item(), tokens=tokens)
            step = progress.completed_steps
            if args.with_tracking and step % args.logging_steps == 0:
                accelerator.log({"train_loss": running_loss / max(running_count, 1),
                                 "learning_rate": lr_scheduler.get_last_lr()[0]}, step=step)
                running_loss, running_count = 0.0, 0
            if args.eval_steps and step % args.eval_steps == 0:
                run_evaluation(epoch)
                evaluated_at = step
            checkpoint()
            if step >= args.max_train_steps:
                done = True
                break
        if not done:
            progress.end_epoch()
        if evaluated_at != progress.completed_steps:
            run_evaluation(epoch)
        if not done:
            checkpoint(end_of_epoch=True)
    bar.close()
    if not last_metrics:
        # A resume that landed after the last update still needs figures for the final model.
        run_evaluation(max(progress.epoch - 1, 0))
    return last_metrics


__all__ = [
    "BEST_MODEL_DIR",
    "BestModelTracker",
    "add_finetuning_args",
    "label_permutation",
    "load_model_and_tokenizer",
    "predict",
    "promote_best_model",
    "resume",
    "save_model",
    "train_classifier",
]
