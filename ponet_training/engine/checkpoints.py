"""Checkpoints and exact resume: the one place a run saves and reloads its training state.

- `TrainingProgress`: where the loop stands (epoch, batches consumed in it, optimizer updates).
- `CheckpointWriter(folder, every)`: the checkpoint writer of a run, handed its `RunFolder`; `maybe_save` writes a
  `step_N` / `epoch_N` folder when `--checkpointing_steps` asks for one (`save_checkpoint`): `accelerator.save_state`,
  `training_progress.json`, the tokenizer and extra JSON files, first into `step_N.tmp`, then the completion marker
  `checkpoint_complete.json` (the run's settings, the identity of its data, every file) written last and the folder
  renamed into place: a kill at any point leaves no folder that looks complete, a failure is one line
  (`saving.saving`). `save_now` saves where a stopped run stands (`preemption`).
- `list_checkpoints`, `latest_checkpoint`, `check_checkpoint`, `resolve_checkpoint`: find and check the checkpoint
  of `--resume_from_checkpoint` (`RunFolder.resume_checkpoint` calls it once per run); `latest` takes the newest
  complete checkpoint made with this run's settings (what it skips is logged); a checkpoint lacking a file resume
  needs, or made with other settings, is one clear error.
- `resume_state(accelerator, folder, args, batches_per_epoch)`: load that checkpoint, return where the loop goes on.
- Model saves (staged, a failure in one line): `saving.py`; the best dev model and the final model: `best_model.py`;
  the settings stored and compared: `settings.py`.

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

from ponet_training.data.tokenizer_loading import TOKENIZER_FILES, has_tokenizer_files
from ponet_training.engine.saving import publish_folder, saving, write_json_atomically
from ponet_training.engine.settings import (RESUMABLE_CHANGES, describe_differences, refuse_other_settings,
                                            settings_differences)


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


def read_marker(path: Path) -> dict | None:
    """The completion marker of a checkpoint folder (its progress, settings, data and files), or None."""
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


def latest_checkpoint(output_dir: str | os.PathLike, settings: dict | None = None) -> Path | None:
    """The newest complete checkpoint of `output_dir` made with `settings` (None: any settings); every folder
    passed over (unfinished, torn, another run's) is logged with the reason."""
    for path in sorted(Path(output_dir).glob("*.tmp")) if Path(output_dir).is_dir() else []:
        if _CHECKPOINT_RE.match(path.name[:-len(".tmp")]):
            logger.warning("Skipping %s: a checkpoint whose save was interrupted", path)
    for path in reversed(list_checkpoints(output_dir)):
        marker = read_marker(path)
        if marker is None:
            logger.warning("Skipping checkpoint %s: it has no %s (its save was interrupted, or it was not written by "
                           "these scripts)", path, COMPLETE_FILE)
            continue
        missing = [name for name in marker.get("files", []) if not (path / name).is_file()]
        if missing:
            logger.warning("Skipping checkpoint %s: files are missing (%s)", path, ", ".join(missing[:5]))
            continue
        differences = {} if settings is None else settings_differences(marker.get("settings", {}), settings,
                                                                        RESUMABLE_CHANGES)
        if differences:
            logger.warning("Skipping checkpoint %s: it belongs to a run with other settings: %s", path,
                           describe_differences(differences))
            continue
        return path
    return None


def check_checkpoint(path: Path, settings: dict | None = None, require_tokenizer: bool = False) -> None:
    """Raise one clear error when `path` lacks anything a resume needs (its save was interrupted, or files were
    removed), or when it was made with other settings than `settings` (all of them listed; only the length of the run,
    `RESUMABLE_CHANGES`, and bookkeeping flags such as the eval / logging / checkpointing cadence may change)."""
    path = Path(path)
    marker = read_marker(path)
    if marker is not None:
        missing = [name for name in marker.get("files", []) if not (path / name).is_file()]
        if settings is not None:
            refuse_other_settings(marker.get("settings", {}), settings, f"Checkpoint {path}",
                                  "A resume continues the same run: pass the checkpoint's settings (only "
                                  "--max_train_steps / --num_train_epochs and the eval, logging and checkpointing "
                                  "cadence may change), or start a new run in another --output_dir",
                                  may_change=RESUMABLE_CHANGES)
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


def save_checkpoint(accelerator, folder, name: str, progress: TrainingProgress, tokenizer=None,
                    extra_json: dict | None = None) -> Path:
    """`accelerator.save_state` (model, optimizer, scheduler, scaler, RNG states), the loop position
    (`training_progress.json`), the tokenizer and `extra_json` ({file name: dict}) into `folder.path/name.tmp`; then
    the completion marker (the folder's settings, its data and the file list) is written last, the folder renamed to
    `name` and recorded in the run folder's manifest. A failure is one `saving.SaveError` line on every process and
    leaves no `name.tmp` behind (`saving.saving`)."""
    final = folder.path / name
    staging = final.with_name(name + ".tmp")
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)  # the leftover of an interrupted save
    accelerator.wait_for_everyone()
    after = "Nothing was left there: free space, then resume with --resume_from_checkpoint latest"
    with saving(f"checkpoint {name}", final, staging, accelerator, after):
        accelerator.save_state(str(staging))
        if accelerator.is_main_process:
            (staging / PROGRESS_FILE).write_text(json.dumps(dataclasses.asdict(progress), indent=2))
            for file_name, content in (extra_json or {}).items():
                (staging / file_name).write_text(json.dumps(content, indent=2))
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
    with saving(f"checkpoint {name}", final, staging, accelerator, after):
        if accelerator.is_main_process:
            files = sorted(str(f.relative_to(staging)) for f in staging.rglob("*") if f.is_file())
            marker = {"progress": dataclasses.asdict(progress), "settings": folder.settings,
                      "data": folder.data_identity, "files": files}
            write_json_atomically(staging / COMPLETE_FILE, marker)
            publish_folder(staging, final)
            folder.record_outputs()
    logger.info(f"Saved checkpoint {final} ({progress})")
    return final


class CheckpointWriter:
    """The checkpoint writer of a run: `maybe_save` after every update writes `step_{completed_steps}` when that is a
    multiple of `every` (an integer), and, at an epoch's end (after `progress.end_epoch()`), `epoch_{finished epoch}`
    when `every` is "epoch"; nothing when `every` is None or the run has no folder. `tokenizer` (a vocabulary the run
    trained) and `extra_files()` ({name: content}, e.g. the training clock) go into every checkpoint."""

    def __init__(self, folder, every: int | str | None, tokenizer=None, extra_files=None):
        self.folder = folder
        self.every = every if folder.path is not None else None
        self.tokenizer = tokenizer
        self.extra_files = extra_files
        self.last_saved: tuple[TrainingProgress, Path] | None = None  # (where the run stood, the folder)

    def due(self, progress: TrainingProgress, end_of_epoch: bool = False) -> str | None:
        """The name of the checkpoint due now, or None."""
        if end_of_epoch and self.every == "epoch":
            return f"epoch_{progress.epoch - 1}"
        if not end_of_epoch and isinstance(self.every, int) and progress.completed_steps % self.every == 0:
            return f"step_{progress.completed_steps}"
        return None

    def maybe_save(self, accelerator, progress: TrainingProgress, end_of_epoch: bool = False,
                   extra_json: dict | None = None) -> Path | None:
        """Save the checkpoint that is due (with `extra_json` besides the writer's own files); None when none is."""
        name = self.due(progress, end_of_epoch)
        return None if name is None else self._save(accelerator, name, progress, extra_json)

    def save_now(self, accelerator, progress: TrainingProgress, extra_json: dict | None = None) -> Path | None:
        """The checkpoint of where the run stands, for a run that stops here (`preemption`): the one just saved at
        this very point, or a new `step_N` (whatever `every` is); None when the run has no folder."""
        if self.folder.path is None:
            return None
        if self.last_saved is not None and self.last_saved[0] == progress:
            return self.last_saved[1]
        return self._save(accelerator, f"step_{progress.completed_steps}", progress, extra_json)

    def _save(self, accelerator, name: str, progress: TrainingProgress, extra_json: dict | None) -> Path:
        files = {**(self.extra_files() if self.extra_files else {}), **(extra_json or {})}
        path = save_checkpoint(accelerator, self.folder, name, progress, tokenizer=self.tokenizer, extra_json=files)
        self.last_saved = (dataclasses.replace(progress), path)
        return path


def resolve_checkpoint(output_dir: str | os.PathLike | None, target: str | None, settings: dict | None = None,
                       require_tokenizer: bool = False) -> Path | None:
    """The folder `--resume_from_checkpoint` (`target`) names: a path, or "latest" (the newest complete
    `step_N`/`epoch_N` of this run's `settings` in `output_dir`), checked by `check_checkpoint`; None when not
    resuming. Raises FileNotFoundError when there is nothing (complete) to resume."""
    if not target:
        return None
    if target == "latest":
        if output_dir is None:
            raise ValueError("`--resume_from_checkpoint latest` needs `--output_dir` to look in")
        path = latest_checkpoint(output_dir, settings)
        if path is None:
            raise FileNotFoundError(f"`--resume_from_checkpoint latest`: no complete step_N/epoch_N checkpoint of this "
                                    f"run in {output_dir} (see the warnings above for the folders skipped)")
    else:
        path = Path(target)
        if not path.is_dir():
            raise FileNotFoundError(f"`--resume_from_checkpoint`: no checkpoint folder at {path}")
    check_checkpoint(path, settings, require_tokenizer=require_tokenizer)
    return path


def resume_state(accelerator, folder, args: argparse.Namespace, batches_per_epoch: int | None = None
                 ) -> TrainingProgress:
    """Load the checkpoint the run folder resumes (`folder.resume_checkpoint`) with `accelerator.load_state` and
    return where the loop continues (also recorded as `folder.resumed_at_step`); a fresh `TrainingProgress` when not
    resuming. `args` gives the length of the run (`--max_train_steps`, `--num_train_epochs`) and the accumulation.

    Call after `accelerator.prepare` (and after registering anything with `register_for_checkpointing`).
    Checkpoints without `training_progress.json` (e.g. from transformers' examples) are located from
    their `step_N` / `epoch_N` name, which needs `batches_per_epoch` (per process, prepared loader).
    """
    path = folder.resume_checkpoint
    if path is None:
        return TrainingProgress()
    accelerator.print(f"Resumed from checkpoint: {path}")
    accelerator.load_state(str(path))
    progress = _read_progress(path) or _progress_from_name(args, path, batches_per_epoch)
    _check_steps_left(args, path, progress)
    folder.resumed_at_step = progress.completed_steps
    return progress


def _check_steps_left(args, path: Path, progress: TrainingProgress) -> None:
    """A resume that would train nothing is an error, not a success; resuming the last step (a run killed during its
    final save) only redoes the final evaluation and save."""
    total = getattr(args, "max_train_steps", None)
    if total is None:
        return
    if progress.completed_steps > total:
        raise ValueError(f"Checkpoint {path} is at step {progress.completed_steps}, past --max_train_steps {total}: "
                         "pass a larger --max_train_steps to train on")
    if progress.completed_steps < total and progress.epoch >= args.num_train_epochs:
        raise ValueError(f"Checkpoint {path} is in epoch {progress.epoch + 1}, but this run has "
                         f"{args.num_train_epochs} epoch(s): it would train 0 of the {total - progress.completed_steps}"
                         " remaining steps (was the batch size or the data changed?)")
    if progress.completed_steps == total:
        logger.warning("Checkpoint %s is at the last step (%d): no training left, only the final evaluation and save",
                       path, total)


def _progress_from_name(args, path: Path, batches_per_epoch: int | None) -> TrainingProgress:
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


__all__ = [
    "BEST_MODEL_DIR",
    "COMPLETE_FILE",
    "CheckpointWriter",
    "TrainingProgress",
    "check_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "read_marker",
    "resolve_checkpoint",
    "resume_state",
    "save_checkpoint",
]
