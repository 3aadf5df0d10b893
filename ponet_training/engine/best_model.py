"""The best dev model and the final model of a training run (fine-tuning and pretraining).

- `BestModelTracker(folder, metric)`: handed the run's `RunFolder`; after each `loop.Update` it evaluates when that is
  due, keeps the best model in the folder's `best_model/` (no `metric`: the last model is the final one), and has
  the run's `checkpoints.CheckpointWriter` save a checkpoint with the tracker in it. `resume` loads the checkpoint
  the folder resumes and the tracker stored there.
- `promote_best_model`, `finalize_model`: at the end, the best model becomes the final model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from pathlib import Path

from ponet_training.engine.checkpoints import BEST_STATE_FILE, CheckpointWriter, TrainingProgress, resume_state
from ponet_training.engine.loop import log_metrics
from ponet_training.engine.preemption import stop_run
from ponet_training.engine.saving import save_model


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
    """Keeps the best dev score seen so far and the model that reached it (in the run folder's `best_model/`).

    `metric` is a key of the metrics dict the evaluation returns (e.g. "eval_f1"); None keeps the last model.
    Its state is written into every training checkpoint, so a resumed run knows what to beat.
    """

    folder: object = dataclasses.field(repr=False)  # the run's `RunFolder`
    metric: str | None
    greater_is_better: bool = True
    best_value: float | None = None
    best_step: int | None = None
    best_metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def best_dir(self) -> Path | None:
        return self.folder.best_model_dir

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
            # The new best model and its record are written together into best_model.tmp/, which then replaces
            # best_model/ whole: best_model/ always holds one complete model with its own record.
            kept = (f"{self.best_dir} still holds the previous best model, with its record" if
                    (self.best_dir / BEST_STATE_FILE).is_file() else "No best model was kept yet")
            save_model(accelerator, model, tokenizer, self.best_dir, extra_json={BEST_STATE_FILE: self.state()},
                       whole_folder=True, after=f"{kept}: free space, then resume with --resume_from_checkpoint latest")
        return True

    def after_update(self, accelerator, args, update, model, tokenizer, evaluate, progress: TrainingProgress,
                     checkpoints: CheckpointWriter) -> None:
        """What every training loop does after each `loop.Update`: evaluate (`evaluate()` returns the metrics) when the
        update asks for it (`loop.evaluation_due`) and keep the best model; then let the run's checkpoint writer save
        what is due, with this tracker in it (a resume knows what to beat). A `stop` update (SIGTERM / SIGINT) is
        saved now, and the run stops (`preemption.stop_run`)."""
        if update.stop:
            path = checkpoints.save_now(accelerator, progress, extra_json={BEST_STATE_FILE: self.state()})
            stop_run(accelerator, update.stop, progress.completed_steps, args.max_train_steps, path,
                     unsaved="no --output_dir")
        if update.evaluate:
            self.record(accelerator, args, model, tokenizer, evaluate(), update.epoch, update.step)
        if update.checkpoint:
            checkpoints.maybe_save(accelerator, progress, update.end_of_epoch, extra_json={BEST_STATE_FILE: self.state()})

    def record(self, accelerator, args, model, tokenizer, metrics: dict, epoch: int, step: int) -> dict:
        """An evaluation during training: its figures (with `epoch` and `step`) to the log and the trackers, then
        `update`. Returns the metrics."""
        metrics = {**metrics, "epoch": epoch, "step": step}
        log_metrics(accelerator, args, metrics, step)
        self.update(accelerator, model, tokenizer, metrics, step)
        return metrics

    def resume(self, accelerator, args, batches_per_epoch: int | None) -> TrainingProgress:
        """`checkpoints.resume_state` of the run folder, plus this tracker as stored in the checkpoint resumed."""
        progress = resume_state(accelerator, self.folder, args, batches_per_epoch)
        if self.folder.resume_checkpoint is not None:
            self.restore_from(self.folder.resume_checkpoint)
        return progress

    def state(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "folder"}

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


def promote_best_model(accelerator, tracker: BestModelTracker) -> bool:
    """Move the files of `best_model/` into the run folder (the final model) and remove `best_model/`.

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
            target = tracker.folder.path / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        (tracker.best_dir / BEST_STATE_FILE).unlink()  # the figures go to all_results.json
        tracker.best_dir.rmdir()
    accelerator.wait_for_everyone()
    return True


def finalize_model(accelerator, model, tokenizer, tracker: BestModelTracker, load_model):
    """The model to evaluate and publish: the best dev model, moved into the run folder and re-loaded on this
    process's device with `load_model(folder)` (the task's class: e.g. a sequence classifier), or (no best model, or
    no `tracker.metric`) the last model, saved there. A run without a folder keeps the last model."""
    folder = tracker.folder.path
    if folder is None:
        return model
    if not promote_best_model(accelerator, tracker):
        save_model(accelerator, model, tokenizer, folder)
        return model
    logger.info("Keeping the best checkpoint: %s = %.4f at step %d", tracker.metric, tracker.best_value,
                tracker.best_step)
    return load_model(folder).to(accelerator.device)
