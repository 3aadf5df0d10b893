"""Checkpoints, exact resume and the best model: the one place a run saves and reloads its state.

- `TrainingProgress`: where the loop stands (epoch, batches consumed in it, optimizer updates).
- `save_checkpoint`, `maybe_save_checkpoint`: `step_N` / `epoch_N` folders written with
  `accelerator.save_state`, plus `training_progress.json` (and the tokenizer, the best-model tracker), first into
  `step_N.tmp`, then the completion marker `checkpoint_complete.json` (the run's settings, every file) is written
  last and the folder renamed into place: a kill at any point leaves no folder that looks complete.
- `run_settings(args)`: the flags that change what a run computes, stored in each checkpoint.
- `list_checkpoints`, `resolve_checkpoint`, `resume_state`: find and load `--resume_from_checkpoint`; `latest` takes
  the newest complete checkpoint made with this run's settings (what it skips is logged); a checkpoint lacking a
  file resume needs is one clear error.
- `save_model`: `save_pretrained` of the unwrapped model and the tokenizer.
- `BestModelTracker` (`record` an evaluation, `save_checkpoint` with the tracker in it), `resume` (resume_state +
  the tracker), `promote_best_model`, `finalize_model`: the best
  dev checkpoint kept in `output_dir/best_model` and, at the end, made the final model.

Evaluate before saving a checkpoint at the same step (or use `dataloaders.build_eval_dataloader`, which never
touches the global RNG) so that the saved RNG state is the one the next update starts from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

from .tokenizer_loading import TOKENIZER_FILES, has_tokenizer_files


logger = logging.getLogger(__name__)

PROGRESS_FILE = "training_progress.json"
_CHECKPOINT_RE = re.compile(r"^(step|epoch)_(\d+)$")
BEST_MODEL_DIR = "best_model"
BEST_STATE_FILE = "best_model_state.json"
COMPLETE_FILE = "checkpoint_complete.json"


@dataclasses.dataclass
class TrainingProgress:
    """Where the loop stands: `epoch` being run, `batches_in_epoch` already consumed in it, and the
    number of optimizer updates done. Saved next to every checkpoint so that a resume continues exactly."""

    epoch: int = 0
    batches_in_epoch: int = 0
    completed_steps: int = 0

    def advance(self, sync_gradients: bool) -> None:
        """Count one batch (call after each batch; `sync_gradients` is True when it ended an update)."""
        self.batches_in_epoch += 1
        if sync_gradients:
            self.completed_steps += 1

    def end_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch += 1
        self.batches_in_epoch = 0

    def skip_batches(self, epoch: int) -> int:
        """Batches to skip at the start of `epoch` (non-zero only for the epoch a resume lands in)."""
        return self.batches_in_epoch if epoch == self.epoch else 0


# Flags that do not change the model a run computes: a resume may differ in them.
_BOOKKEEPING_FLAGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "checkpointing_steps", "eval_steps",
    "logging_steps", "with_tracking", "report_to", "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
    "dataloader_num_workers", "preprocessing_num_workers", "overwrite_cache", "cache_dir", "trust_remote_code",
    "no_predict", "run_settings",
    "sparse_prediction", "torch_compile",  # the same computation to float rounding: a run may resume across them
})


def run_settings(args: argparse.Namespace) -> dict:
    """The flags that change what a run computes (plain values; existing paths made absolute). A checkpoint stores
    them, so that `latest` never continues another run's checkpoint (`run.check_training_args` records them)."""
    settings = {}
    for key, value in sorted(vars(args).items()):
        if key in _BOOKKEEPING_FLAGS:
            continue
        value = getattr(value, "value", value)  # enums such as SchedulerType
        if isinstance(value, str) and os.path.exists(value):
            value = os.path.abspath(value)
        if value is None or isinstance(value, (bool, int, float, str)) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value)):
            settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


def _read_marker(path: Path) -> dict | None:
    file = Path(path) / COMPLETE_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `step_N` / `epoch_N` folders of `output_dir`, complete or not, oldest first (by the progress they record)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        if path.is_dir() and _CHECKPOINT_RE.match(path.name):
            progress = _read_progress(path)
            key = (progress.completed_steps, progress.epoch) if progress else (-1, path.stat().st_mtime)
            found.append((key, path))
    return [path for _, path in sorted(found)]


def _read_progress(path: Path) -> TrainingProgress | None:
    file = Path(path) / PROGRESS_FILE
    if not file.is_file():
        return None
    return TrainingProgress(**json.loads(file.read_text()))


def _settings_differences(recorded: dict, settings: dict) -> dict:
    return {key: (recorded.get(key), settings.get(key)) for key in sorted(set(recorded) | set(settings))
            if recorded.get(key) != settings.get(key)}


def _describe_differences(differences: dict) -> str:
    return ", ".join(f"--{key} {old!r} (now {new!r})" for key, (old, new) in list(differences.items())[:5])


def latest_checkpoint(output_dir: str | os.PathLike, settings: dict | None = None) -> Path | None:
    """The newest complete checkpoint of `output_dir` made with `settings` (None: any settings); every folder
    passed over (unfinished, torn, another run's) is logged with the reason."""
    for path in sorted(Path(output_dir).glob("*.tmp")) if Path(output_dir).is_dir() else []:
        if _CHECKPOINT_RE.match(path.name[:-len(".tmp")]):
            logger.warning("Skipping %s: a checkpoint whose save was interrupted", path)
    for path in reversed(list_checkpoints(output_dir)):
        marker = _read_marker(path)
        if marker is None:
            logger.warning("Skipping checkpoint %s: it has no %s (its save was interrupted, or it was not written by "
                           "these scripts)", path, COMPLETE_FILE)
            continue
        missing = [name for name in marker.get("files", []) if not (path / name).is_file()]
        if missing:
            logger.warning("Skipping checkpoint %s: files are missing (%s)", path, ", ".join(missing[:5]))
            continue
        differences = _settings_differences(marker.get("settings", {}), settings) if settings is not None else {}
        if differences:
            logger.warning("Skipping checkpoint %s: it belongs to a run with other settings: %s", path,
                           _describe_differences(differences))
            continue
        return path
    return None


def check_checkpoint(path: Path, settings: dict | None = None, require_tokenizer: bool = False) -> None:
    """Raise one clear error when `path` lacks anything a resume needs (its save was interrupted, or files were
    removed); warn when it was made with other settings."""
    path = Path(path)
    marker = _read_marker(path)
    if marker is not None:
        missing = [name for name in marker.get("files", []) if not (path / name).is_file()]
        differences = _settings_differences(marker.get("settings", {}), settings) if settings is not None else {}
        if differences:
            logger.warning("Resuming from %s, made with other settings: %s", path, _describe_differences(differences))
    else:  # a checkpoint of transformers' examples, or a torn one: check what `load_state` reads
        names = {item.name for item in path.iterdir()}
        needs = {"model weights (model.safetensors / pytorch_model.bin)":
                 lambda n: n.startswith(("model", "pytorch_model")) and n.endswith((".safetensors", ".bin")),
                 "optimizer.bin": lambda n: n.startswith("optimizer") and n.endswith(".bin"),
                 "random_states_0.pkl": lambda n: n.startswith("random_states_")}
        missing = [what for what, present in needs.items() if not any(present(n) for n in names)]
    if require_tokenizer and not has_tokenizer_files(path):
        missing.append(f"the tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if missing:
        raise FileNotFoundError(f"Checkpoint {path} cannot be resumed: it lacks {', '.join(missing)}"
                                + ("" if marker else f" and has no {COMPLETE_FILE} (its save was interrupted?)")
                                + ". Resume from another checkpoint.")


def save_checkpoint(accelerator, output_dir: str | os.PathLike, name: str, progress: TrainingProgress,
                    tokenizer=None, extra_json: dict | None = None, settings: dict | None = None) -> Path:
    """`accelerator.save_state` (model, optimizer, scheduler, scaler, RNG states), the loop position
    (`training_progress.json`), the tokenizer and `extra_json` ({file name: dict}) into `output_dir/name.tmp`; then
    the completion marker (`settings` and the file list) is written last and the folder renamed to `name`."""
    final = Path(output_dir) / name
    staging = final.with_name(name + ".tmp")
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)  # the leftover of an interrupted save
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        (staging / PROGRESS_FILE).write_text(json.dumps(dataclasses.asdict(progress), indent=2))
        for file_name, content in (extra_json or {}).items():
            (staging / file_name).write_text(json.dumps(content, indent=2))
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = sorted(str(f.relative_to(staging)) for f in staging.rglob("*") if f.is_file())
        marker = {"progress": dataclasses.asdict(progress), "settings": settings or {}, "files": files}
        _write_json_atomically(staging / COMPLETE_FILE, marker)
        _publish(staging, final)
    accelerator.wait_for_everyone()
    logger.info(f"Saved checkpoint {final} ({progress})")
    return final


def _write_json_atomically(path: Path, content: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as handle:
        handle.write(json.dumps(content, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _publish(staging: Path, final: Path) -> None:
    """Rename the finished `staging` folder to `final` (an older `final`, being rewritten, is set aside first and
    removed after)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)


def maybe_save_checkpoint(accelerator, args: argparse.Namespace, progress: TrainingProgress,
                          end_of_epoch: bool = False, tokenizer=None, extra_json: dict | None = None) -> Path | None:
    """Save a checkpoint when `--checkpointing_steps` asks for one (with the tokenizer when given).

    Call after every update (`step_{completed_steps}` when it is a multiple of N) and, with
    `end_of_epoch=True`, after `progress.end_epoch()` (`epoch_{finished epoch}` for "epoch").
    """
    every = getattr(args, "checkpointing_steps", None)
    if every is None or args.output_dir is None:
        return None
    if end_of_epoch and every == "epoch":
        name = f"epoch_{progress.epoch - 1}"
    elif not end_of_epoch and isinstance(every, int) and progress.completed_steps % every == 0:
        name = f"step_{progress.completed_steps}"
    else:
        return None
    return save_checkpoint(accelerator, args.output_dir, name, progress, tokenizer=tokenizer, extra_json=extra_json,
                           settings=getattr(args, "run_settings", None))


def resolve_checkpoint(args: argparse.Namespace, require_tokenizer: bool = False) -> Path | None:
    """The folder `--resume_from_checkpoint` names (a path, or "latest": the newest complete `step_N`/`epoch_N` of
    this run's settings in `--output_dir`), checked by `check_checkpoint`; None when not resuming. Raises
    FileNotFoundError when there is nothing (complete) to resume."""
    target = getattr(args, "resume_from_checkpoint", None)
    if not target:
        return None
    settings = getattr(args, "run_settings", None)
    if target == "latest":
        if args.output_dir is None:
            raise ValueError("`--resume_from_checkpoint latest` needs `--output_dir` to look in")
        path = latest_checkpoint(args.output_dir, settings)
        if path is None:
            raise FileNotFoundError(f"`--resume_from_checkpoint latest`: no complete step_N/epoch_N checkpoint of this "
                                    f"run in {args.output_dir} (see the warnings above for the folders skipped)")
    else:
        path = Path(target)
        if not path.is_dir():
            raise FileNotFoundError(f"`--resume_from_checkpoint`: no checkpoint folder at {path}")
    check_checkpoint(path, settings, require_tokenizer=require_tokenizer)
    return path


def resume_state(accelerator, args: argparse.Namespace, batches_per_epoch: int | None = None) -> TrainingProgress:
    """Load `--resume_from_checkpoint` (see `resolve_checkpoint`) with `accelerator.load_state` and return
    where the loop continues; a fresh `TrainingProgress` when not resuming.

    Call after `accelerator.prepare` (and after registering anything with `register_for_checkpointing`).
    Checkpoints without `training_progress.json` (e.g. from transformers' examples) are located from
    their `step_N` / `epoch_N` name, which needs `batches_per_epoch` (per process, prepared loader).
    """
    return _resume_from(accelerator, args, resolve_checkpoint(args), batches_per_epoch)


def _resume_from(accelerator, args, path: Path | None, batches_per_epoch: int | None) -> TrainingProgress:
    if path is None:
        return TrainingProgress()
    accelerator.print(f"Resumed from checkpoint: {path}")
    accelerator.load_state(str(path))
    progress = _read_progress(path)
    if progress is not None:
        return progress
    match = _CHECKPOINT_RE.match(path.name)
    if match is None or batches_per_epoch is None:
        raise ValueError(f"Cannot tell where {path} stopped: it has no {PROGRESS_FILE} and is not named "
                         "step_N/epoch_N (or the dataset has no length)")
    kind, number = match.group(1), int(match.group(2))
    updates_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    if kind == "epoch":
        return TrainingProgress(epoch=number + 1, batches_in_epoch=0, completed_steps=(number + 1) * updates_per_epoch)
    epoch, updates_in_epoch = divmod(number, updates_per_epoch)
    return TrainingProgress(epoch=epoch, batches_in_epoch=updates_in_epoch * args.gradient_accumulation_steps,
                            completed_steps=number)


def is_better(candidate: float | None, best: float | None, greater_is_better: bool = True) -> bool:
    """Whether `candidate` beats `best`; NaN never wins and anything beats None/NaN."""
    if candidate is None or (isinstance(candidate, float) and math.isnan(candidate)):
        return False
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return candidate > best if greater_is_better else candidate < best


@dataclasses.dataclass
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
    best_metrics: dict = dataclasses.field(default_factory=dict)

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
            # Without its state file a half-rewritten best_model/ is never taken for the current best.
            if accelerator.is_main_process:
                (self.best_dir / BEST_STATE_FILE).unlink(missing_ok=True)
            save_model(accelerator, model, tokenizer, self.best_dir)
            if accelerator.is_main_process:
                (self.best_dir / BEST_STATE_FILE).write_text(json.dumps(self.state(), indent=2))
            accelerator.wait_for_everyone()
        return True

    def after_update(self, accelerator, args, update, model, tokenizer, evaluate, progress: TrainingProgress) -> None:
        """What a fine-tuning loop does after each `loop.Update`: evaluate (`evaluate()` returns the metrics) when the
        update asks for it (every `--eval_steps`, each epoch's end) and keep the best model; then checkpoint."""
        if update.evaluate:
            self.record(accelerator, args, model, tokenizer, evaluate(), update.epoch, update.step)
        if update.checkpoint:
            self.save_checkpoint(accelerator, args, progress, update.end_of_epoch)

    def record(self, accelerator, args, model, tokenizer, metrics: dict, epoch: int, step: int) -> dict:
        """An evaluation during training: its figures (with `epoch` and `step`) to the log and the trackers, then
        `update`. Returns the metrics."""
        from .loop import log_metrics

        metrics = {**metrics, "epoch": epoch, "step": step}
        log_metrics(accelerator, args, metrics, step)
        self.update(accelerator, model, tokenizer, metrics, step)
        return metrics

    def save_checkpoint(self, accelerator, args, progress: TrainingProgress, end_of_epoch: bool = False) -> Path | None:
        """`maybe_save_checkpoint`, with this tracker stored in the checkpoint so that a resume knows what to beat."""
        return maybe_save_checkpoint(accelerator, args, progress, end_of_epoch=end_of_epoch,
                                     extra_json={BEST_STATE_FILE: self.state()})

    def state(self) -> dict:
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "output_dir"}

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

    Each file moves with one atomic rename and `best_model_state.json` goes last: a promotion killed midway leaves
    `best_model/` still current, and the resumed run (`--resume_from_checkpoint latest`) finishes the move rather
    than publishing its last model. Returns False (and leaves things as they are) when there is no current best
    model."""
    is_current = tracker.best_model_is_current()
    # Every process must read best_model/ before the main one moves it: a process that looked afterwards would
    # take the other branch (saving the last model) and its collectives would never meet the main process's.
    accelerator.wait_for_everyone()
    if not is_current:
        return False
    if accelerator.is_main_process:
        for item in sorted(tracker.best_dir.iterdir()):
            if item.name == BEST_STATE_FILE:
                continue
            target = Path(output_dir) / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        (tracker.best_dir / BEST_STATE_FILE).unlink()  # the figures go to all_results.json
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



def resume(accelerator, args, batches_per_epoch: int, tracker: BestModelTracker) -> TrainingProgress:
    """`resume_state` plus the best-model tracker stored in the checkpoint resumed from."""
    path = resolve_checkpoint(args)
    progress = _resume_from(accelerator, args, path, batches_per_epoch)
    if path is not None:
        tracker.restore_from(path)
    return progress


__all__ = [
    "BEST_MODEL_DIR",
    "BestModelTracker",
    "COMPLETE_FILE",
    "TrainingProgress",
    "check_checkpoint",
    "finalize_model",
    "latest_checkpoint",
    "list_checkpoints",
    "maybe_save_checkpoint",
    "promote_best_model",
    "resolve_checkpoint",
    "resume",
    "resume_state",
    "run_settings",
    "save_checkpoint",
    "save_model",
]
