"""The best dev checkpoint and the final model of a training run (fine-tuning and pretraining).

- `BestModelTracker`: after each `loop.Update`, evaluate when it is due, keep the best model in
  `output_dir/best_model` (no `metric`: the last model is the final one), and `save_checkpoint` with the tracker
  in it.
- `resume(accelerator, args, batches_per_epoch, tracker)`: `checkpoints.resume_state` plus the tracker.
- `promote_best_model`, `finalize_model`: at the end, the best checkpoint made the final model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from pathlib import Path

from ponet_training.engine.checkpoints import (
    BEST_MODEL_DIR, BEST_STATE_FILE, TrainingProgress, _resume_from, maybe_save_checkpoint, resolve_checkpoint,
    save_model,
)
from ponet_training.engine.loop import log_metrics


logger = logging.getLogger(__name__)


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

    def after_update(self, accelerator, args, update, model, tokenizer, evaluate, progress: TrainingProgress,
                     checkpoint_tokenizer: bool = False, checkpoint_files=None) -> None:
        """What every training loop does after each `loop.Update`: evaluate (`evaluate()` returns the metrics) when the
        update asks for it (`loop.evaluation_due`) and keep the best model; then checkpoint. `checkpoint_tokenizer`
        saves the tokenizer into each checkpoint too (one trained by the run); `checkpoint_files()` returns more
        JSON files for it ({name: content})."""
        if update.evaluate:
            self.record(accelerator, args, model, tokenizer, evaluate(), update.epoch, update.step)
        if update.checkpoint:
            self.save_checkpoint(accelerator, args, progress, update.end_of_epoch,
                                 tokenizer=tokenizer if checkpoint_tokenizer else None,
                                 extra_json=checkpoint_files() if checkpoint_files else None)

    def record(self, accelerator, args, model, tokenizer, metrics: dict, epoch: int, step: int) -> dict:
        """An evaluation during training: its figures (with `epoch` and `step`) to the log and the trackers, then
        `update`. Returns the metrics."""
        metrics = {**metrics, "epoch": epoch, "step": step}
        log_metrics(accelerator, args, metrics, step)
        self.update(accelerator, model, tokenizer, metrics, step)
        return metrics

    def save_checkpoint(self, accelerator, args, progress: TrainingProgress, end_of_epoch: bool = False,
                        tokenizer=None, extra_json: dict | None = None) -> Path | None:
        """`maybe_save_checkpoint`, with this tracker stored in the checkpoint so that a resume knows what to beat."""
        return maybe_save_checkpoint(accelerator, args, progress, end_of_epoch=end_of_epoch, tokenizer=tokenizer,
                                     extra_json={**(extra_json or {}), BEST_STATE_FILE: self.state()})

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


def finalize_model(accelerator, args, model, tokenizer, tracker: BestModelTracker, load_model):
    """The model to evaluate and publish: the best dev checkpoint, moved into `--output_dir` and re-loaded on this
    process's device with `load_model(folder)` (the task's class: e.g. a sequence classifier), or (no best
    checkpoint, or no `tracker.metric`) the last model, saved there. Without `--output_dir`, the last model."""
    if args.output_dir is None:
        return model
    if not promote_best_model(accelerator, tracker, args.output_dir):
        save_model(accelerator, model, tokenizer, args.output_dir)
        return model
    logger.info("Keeping the best checkpoint: %s = %.4f at step %d", tracker.metric, tracker.best_value,
                tracker.best_step)
    return load_model(args.output_dir).to(accelerator.device)



def resume(accelerator, args, batches_per_epoch: int, tracker: BestModelTracker) -> TrainingProgress:
    """`resume_state` plus the best-model tracker stored in the checkpoint resumed from."""
    path = resolve_checkpoint(args)
    progress = _resume_from(accelerator, args, path, batches_per_epoch)
    if path is not None:
        tracker.restore_from(path)
    return progress
