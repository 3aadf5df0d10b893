"""The output folder of one run, owned end to end by one object (the rules: docs/output_folders.md).

A script makes one `RunFolder` right after parsing its flags and hands it to whatever writes there (the checkpoint
writer, the best-model step, the evaluation history, the tokenizer loader, the pooling study's record, the
sentence-transformers export). The folder

- refuses, when it is made (on every process, before anything is written), a path that is a file and a non-empty
  folder without `--overwrite_output_dir` or a resume;
- is claimed (`claim`): the main process takes its lock (`.ponet_run.lock`, held while the run runs, freed by the OS
  when the process dies) and, with `--overwrite_output_dir`, deletes only what earlier runs wrote there (listed in
  the manifest, `.ponet_outputs.json`), never an input of this run, and refuses when it holds anything else;
- resolves the checkpoint to resume once (`resume_checkpoint`) and refuses one made with other data
  (`data_identity`: the size and content hash of every input file, stored in each checkpoint; a resume on changed
  files needs `--resume_with_changed_data`, and the record says so), owns `best_model/` (`best_model_dir`), records
  what the run writes (`record_outputs`, after every checkpoint and at the end);
- is released when the `with` block of the script's `main` ends, however it ends; a run that fails before writing
  anything leaves no folder behind.

    with RunFolder.for_run(args) as folder:
        accelerator = run.start_run(args, folder)   # builds the accelerator, then `folder.claim(accelerator)`
        ...

Nothing here reads flags back from `args` after `for_run`: the folder keeps what it was told.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

from ponet_training.engine import checkpoints, preemption
from ponet_training.engine.saving import SaveError, saving, write_json_atomically
from ponet_training.engine.settings import data_differences, data_identity, run_settings


logger = logging.getLogger(__name__)

# Our bookkeeping inside the folder: the lock of the run that owns it, and the list of the entries runs of these
# scripts wrote there (the only ones `--overwrite_output_dir` may delete).
LOCK_FILE = ".ponet_run.lock"
MANIFEST_FILE = ".ponet_outputs.json"
_BOOKKEEPING = (LOCK_FILE, MANIFEST_FILE)
# Flags that name where a run writes, not what it reads.
_NOT_INPUTS = ("output_dir", "resume_from_checkpoint", "logging_dir", "hub_token")
# A value of `resume_checkpoint` not looked up yet.
_UNRESOLVED = object()


def _entries(path: Path) -> list[str]:
    """The names in `path`, without our bookkeeping files."""
    return sorted(item.name for item in path.iterdir() if item.name not in _BOOKKEEPING) if path.is_dir() else []


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def input_paths(args: argparse.Namespace) -> dict[str, Path]:
    """{flag: resolved path} of every flag whose value is an existing file or folder the run reads (data files,
    the model, the tokenizer, ...)."""
    found = {}
    for key, value in vars(args).items():
        if key in _NOT_INPUTS or not isinstance(value, str) or not value or not os.path.exists(value):
            continue
        found[key] = Path(value).resolve()
    return found


def written_entries(path: str | os.PathLike) -> set[str]:
    """The entries of `path` that runs of these scripts wrote (read from its manifest; empty without one)."""
    file = Path(path) / MANIFEST_FILE
    try:
        return set(json.loads(file.read_text())["written"]) if file.is_file() else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_manifest(path: Path, names: set[str]) -> None:
    present = {name for name in names if (path / name).exists() or (path / name).is_symlink()}
    write_json_atomically(path / MANIFEST_FILE, {"written": sorted(present)})


def _lock_holder(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        return "another run"
    return f"another run (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')})"


class RunFolder:
    """One run's output folder, from the refusal of a folder that cannot take the run to its release.

    Args:
        path: the folder (None: a run that writes nothing; every method is then a no-op).
        overwrite: `--overwrite_output_dir`: delete what earlier runs wrote there (never inputs, never other files).
        resume_from: `--resume_from_checkpoint`: a checkpoint folder, "latest" or None.
        settings: the run's fingerprint (`settings.run_settings`), stored in each checkpoint and compared on resume.
        inputs: {flag: path} the run reads (`input_paths(args)`): never deleted, and refused as a victim.
        own_record: a file whose presence makes running again a resume (the pooling study's CSV, a sweep's settings):
            a folder holding it is accepted without a flag.
        resume_needs_tokenizer: a resumed checkpoint must hold its tokenizer (a run that trained its vocabulary).
        identify_inputs: take the identity of `inputs` (`settings.data_identity`) when claimed, for the checkpoints
            to store and a resume to compare (the training scripts; not an export).
        resume_with_changed_data: `--resume_with_changed_data`: resume a checkpoint whose data differ (logged and
            recorded) instead of refusing it.
        name: how errors name the folder (`--output_dir` for the scripts).
        how_to_resume: the advice for a non-empty folder (None: the writer cannot resume).
    """

    def __init__(self, path: str | os.PathLike | None, *, overwrite: bool = False, resume_from: str | None = None,
                 settings: dict | None = None, inputs: dict[str, Path] | None = None, own_record: str | None = None,
                 resume_needs_tokenizer: bool = False, identify_inputs: bool = False,
                 resume_with_changed_data: bool = False, name: str = "`--output_dir`",
                 how_to_resume: str | None = "--resume_from_checkpoint latest to continue the run saved there"):
        self.path = None if path is None else Path(path)
        self.overwrite = overwrite
        self.resume_from = resume_from or None
        self.settings = dict(settings or {})
        self.inputs = dict(inputs or {})
        self.own_record = own_record
        self.resume_needs_tokenizer = resume_needs_tokenizer
        self.identify_inputs = identify_inputs
        self.resume_with_changed_data = resume_with_changed_data
        self.data_identity: dict | None = None  # the main process's, taken when the folder is claimed
        self.changed_data: list[str] | None = None  # what differed from the resumed checkpoint's data (allowed)
        self.name = name
        self.how_to_resume = how_to_resume
        self.resumed_at_step: int | None = None  # set when the checkpoint is loaded (`checkpoints.resume_state`)
        self._resume = _UNRESOLVED
        self._lock = None  # the open lock file, while this process holds the folder
        self._before: set[str] = set()  # entries that were there before the run (never recorded as its own)
        self._accelerator = None
        self._check()

    @classmethod
    def for_run(cls, args: argparse.Namespace, **kwargs) -> "RunFolder":
        """The folder of a training script: `--output_dir`, `--overwrite_output_dir`, `--resume_from_checkpoint`,
        the run's settings (`run_settings(args)`, taken now, before the script adds derived values to `args`) and its
        inputs. `kwargs` go to `RunFolder`."""
        kwargs.setdefault("settings", run_settings(args))
        kwargs.setdefault("identify_inputs", True)
        kwargs.setdefault("resume_with_changed_data", getattr(args, "resume_with_changed_data", False))
        return cls(args.output_dir, overwrite=getattr(args, "overwrite_output_dir", False),
                   resume_from=getattr(args, "resume_from_checkpoint", None), inputs=input_paths(args), **kwargs)

    # ------------------------------------------------------------------------------------------------------
    # Before the run: may this folder take it?
    # ------------------------------------------------------------------------------------------------------

    @property
    def resuming(self) -> bool:
        """Whether this run continues what the folder holds (a checkpoint, or the writer's own record)."""
        return bool(self.resume_from) or bool(self.own_record and self.path and (self.path / self.own_record).is_file())

    def _check(self) -> None:
        """Raise one clear error when the folder cannot take this run: a file, or a non-empty folder without
        `overwrite` or a resume."""
        if self.path is None:
            return
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.name} {self.path} is a file, not a folder: pass a folder path")
        if self.resuming or self.overwrite:
            return
        entries = _entries(self.path)
        if entries:
            choices = ", ".join(filter(None, ["--overwrite_output_dir to replace what an earlier run wrote there",
                                              self.how_to_resume, "another folder"]))
            raise ValueError(f"{self.name} {self.path} is not empty ({_shown(entries)}): pass {choices}")

    # ------------------------------------------------------------------------------------------------------
    # The claim
    # ------------------------------------------------------------------------------------------------------

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        preemption.restore()  # the run is over: SIGTERM / SIGINT act as the process had them again
        if error is None and self._accelerator is not None:
            self._accelerator.wait_for_everyone()
        self.release(failed=error is not None)

    def claim(self, accelerator=None) -> "RunFolder":
        """Take the folder for this run on the main process (every process raises the main one's error), clear it with
        `overwrite`, then resolve the checkpoint to resume (every process). `accelerator=None`: one process."""
        self._accelerator = accelerator
        self._on_main(accelerator, f"could not take {self.name}", self._take_and_clear)
        _ = self.resume_checkpoint  # resolved now: a checkpoint that cannot be resumed fails before any data loads
        self._on_main(accelerator, "refused the data", self._identify_inputs)
        if accelerator is not None:
            accelerator.wait_for_everyone()
        return self

    def _on_main(self, accelerator, failure: str, step) -> None:
        """Run `step` on the main process; every process raises the main one's error (none waits forever for it)."""
        error = None
        if (accelerator is None or accelerator.is_main_process) and self.path is not None:
            try:
                step()
            except (OSError, RuntimeError, ValueError) as err:
                error = err
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            message = [None if error is None else f"{type(error).__name__}: {error}"]
            broadcast_object_list(message)
            if message[0] is not None and error is None:
                raise RuntimeError(f"The main process {failure}: {message[0]}")
        if error is not None:
            raise error

    def _take_and_clear(self) -> None:
        self._take_lock()
        if self.overwrite:
            self._clear()

    def _identify_inputs(self) -> None:
        """Take the identity of the inputs (once, on the main process) and refuse a resumed checkpoint whose data
        differ, naming each file, unless `resume_with_changed_data` (then the log and the record say so)."""
        if not self.identify_inputs:
            return
        self.data_identity = data_identity(self.inputs, skip=self.path)
        checkpoint = self.resume_checkpoint
        if checkpoint is None:
            return
        recorded = checkpoints.read_marker(checkpoint)
        if recorded is None or "data" not in recorded:
            logger.warning("Checkpoint %s records no identity of its data (an older or foreign checkpoint): the "
                           "data cannot be checked against it", checkpoint)
            return
        changes = data_differences(recorded["data"] or {}, self.data_identity)
        if not changes:
            return
        if not self.resume_with_changed_data:
            raise ValueError(f"Checkpoint {checkpoint} was made with other data: {'; '.join(changes)}. A resume "
                             "continues the same run on the same data: restore the files, or start a new run in "
                             "another --output_dir, or pass --resume_with_changed_data to continue on these files "
                             "(the run's record will say so)")
        self.changed_data = changes
        logger.warning("--resume_with_changed_data: resuming %s on data that differ from the checkpoint's: %s",
                       checkpoint, "; ".join(changes))

    def _take_lock(self) -> None:
        """Take the lock of the folder (made if missing), or raise naming the run that holds it.

        `fcntl.flock` on `path/.ponet_run.lock`: the OS drops the lock when its process dies, so the lock of a
        killed run (even `kill -9`) is free for the next one; what that run wrote, told by its lock file, goes to the
        manifest."""
        import fcntl
        import socket
        import time

        path = self.path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(path / LOCK_FILE, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(handle)
                handle.close()
                raise RuntimeError(f"{self.name} {path} is in use by {holder}: wait for it to finish or pass another "
                                   "folder") from None
            # The file may have been unlinked by its releasing owner between our open and our lock: lock it anew.
            if (path / LOCK_FILE).exists() and os.path.samestat(os.fstat(handle.fileno()), os.stat(path / LOCK_FILE)):
                break
            handle.close()
        handle.seek(0)
        stale = handle.read()
        if stale:  # a run that died holding the folder: the entries it wrote are an earlier run's outputs
            try:
                before = set(json.loads(stale).get("entries_before", []))
                _write_manifest(path, written_entries(path) | (set(_entries(path)) - before))
                logger.warning("%s was left by a run that was killed (%s); taking it over", path / LOCK_FILE,
                               stale.strip())
            except ValueError:
                pass
        self._before = set(_entries(path)) - written_entries(path)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "entries_before": sorted(self._before)}))
        handle.flush()
        self._lock = handle

    def _clearable(self) -> list[str]:
        """What `overwrite` deletes: the entries earlier runs wrote (the manifest). Raises when one of them is an
        input of this run, or when the folder holds entries no run of ours wrote that this run does not read."""
        path = self.path
        entries = set(_entries(path))
        ours = sorted(entries & written_entries(path))
        for flag, source in self.inputs.items():
            for name in ours:
                target = (path / name).resolve()
                if source == target or target in source.parents or source in target.parents:
                    raise ValueError(f"`--{flag}` {source} is read by this run, but --overwrite_output_dir would "
                                     f"delete {path / name} (an earlier run's output): pass another folder")
        foreign = [name for name in sorted(entries - set(ours))
                   if not any((path / name).resolve() in (source, *source.parents) for source in self.inputs.values())]
        if foreign:
            raise ValueError(f"{self.name} {path} holds {_shown(foreign)}, which no run of these scripts wrote: "
                             "--overwrite_output_dir deletes only an earlier run's outputs. Move them away or pass "
                             "another folder")
        return ours

    def _clear(self) -> None:
        names = self._clearable()
        for name in names:
            item = self.path / name
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
        _write_manifest(self.path.resolve(), set())
        if names:
            logger.warning("--overwrite_output_dir: deleted %d entries an earlier run wrote in %s (%s)", len(names),
                           self.path, _shown(names, 8))

    # ------------------------------------------------------------------------------------------------------
    # During the run
    # ------------------------------------------------------------------------------------------------------

    @property
    def resume_checkpoint(self) -> Path | None:
        """The checkpoint this run continues from (`checkpoints.resolve_checkpoint`), looked up once; None when not
        resuming."""
        if self._resume is _UNRESOLVED:
            self._resume = checkpoints.resolve_checkpoint(self.path, self.resume_from, self.settings,
                                                          require_tokenizer=self.resume_needs_tokenizer)
        return self._resume

    def resume_record(self) -> dict:
        """Where this run resumed (and on which changed data, when `--resume_with_changed_data` allowed it) and the
        identity of its inputs, for `all_results.json` (complete on the main process, which writes it)."""
        checkpoint = self.resume_checkpoint
        return {"resumed_from": None if checkpoint is None else str(checkpoint),
                "resumed_at_step": self.resumed_at_step,
                "resumed_with_changed_data": self.changed_data, "input_files": self.data_identity}

    @property
    def best_model_dir(self) -> Path | None:
        """`best_model/`: the best dev model so far (`best_model.BestModelTracker`)."""
        return None if self.path is None else self.path / checkpoints.BEST_MODEL_DIR

    def record_outputs(self) -> None:
        """Add what this run has written so far to the manifest (a no-op on a process that does not hold the folder).
        Called after every checkpoint and when the folder is released."""
        if self._lock is None or not self.path.is_dir():
            return
        path = self.path.resolve()
        with saving("the list of the run's outputs", path / MANIFEST_FILE, after="Free space and run again"):
            _write_manifest(path, written_entries(path) | (set(_entries(path)) - self._before))

    def release(self, failed: bool = False) -> None:
        """Record what the run wrote, drop the lock and its file; after a failure, remove the folder when the run
        left nothing in it (a run that fails early leaves no folder behind). Safe to call more than once. After a
        failure it cannot fail itself (a full disk that keeps the manifest from being written is one warning);
        otherwise such a failure is one `saving.SaveError` line, raised once the lock is dropped."""
        if self._lock is None:
            return
        path = self.path.resolve()
        error = None
        try:
            self.record_outputs()
        except SaveError as err:
            error = err
        try:
            (path / LOCK_FILE).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None
            if failed and not written_entries(path):  # a manifest that lists nothing is no record worth leaving
                (path / MANIFEST_FILE).unlink(missing_ok=True)
            if failed and not any(path.iterdir()):
                path.rmdir()
        except OSError as err:
            if not failed:
                raise
            logger.warning("Could not tidy %s after the failure: %s", path, err)
        if error is not None and failed:
            logger.warning("%s", error)
        elif error is not None:
            raise error


__all__ = ["LOCK_FILE", "MANIFEST_FILE", "RunFolder", "input_paths", "written_entries"]
