"""The run-directory rule of every script (docs/output_folders.md).

- `check_output_dir(args)`: a non-empty `--output_dir` is refused unless `--overwrite_output_dir` or
  `--resume_from_checkpoint`.
- `prepare_output_dir(accelerator, args)`: the main process claims the folder (a lock held while the run runs, freed
  by the OS when it dies) and, with `--overwrite_output_dir`, deletes only what earlier runs of these scripts wrote
  (listed in the folder's manifest), never an input.
- `record_outputs`, `release_output_dir`, `releases_output_dir` (a decorator for a script's `main`): the manifest,
  the end of the claim, and no folder left behind by a run that failed early.
"""

import argparse
import json
import logging
import os
import shutil
from pathlib import Path


logger = logging.getLogger(__name__)


# Our bookkeeping inside `--output_dir`: the lock of the run that owns the folder, and the list of the entries runs
# of these scripts wrote there (the only ones `--overwrite_output_dir` may delete).
LOCK_FILE = ".ponet_run.lock"
MANIFEST_FILE = ".ponet_outputs.json"
_BOOKKEEPING = (LOCK_FILE, MANIFEST_FILE)
# Flags that name where a run writes, not what it reads.
_NOT_INPUTS = ("output_dir", "resume_from_checkpoint", "logging_dir", "hub_token")

# Output folders this process owns: resolved path -> (open lock file, entries that were there before the run).
_claims: dict[Path, tuple] = {}


def _entries(path: Path) -> list[str]:
    """The names in `path`, without our bookkeeping files."""
    return sorted(item.name for item in path.iterdir() if item.name not in _BOOKKEEPING) if path.is_dir() else []


def check_output_dir(args: argparse.Namespace, resuming: bool | None = None) -> None:
    """Raise one clear error when `--output_dir` cannot take this run: a file, or a non-empty folder without
    `--overwrite_output_dir` or a resume (`resuming`, default: `--resume_from_checkpoint` was given). Every process
    calls it before the main one claims the folder (`prepare_output_dir`)."""
    if args.output_dir is None:
        return
    path = Path(args.output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`--output_dir` {path} is a file, not a folder: pass a folder path")
    if resuming is None:
        resuming = bool(getattr(args, "resume_from_checkpoint", None))
    if path.is_dir() and not (resuming or getattr(args, "overwrite_output_dir", False)):
        entries = _entries(path)
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise ValueError(f"`--output_dir` {path} is not empty ({shown}): pass --overwrite_output_dir to replace "
                             "what an earlier run wrote there, --resume_from_checkpoint latest to continue the run "
                             "saved there, or another --output_dir")


def input_paths(args: argparse.Namespace) -> dict[str, Path]:
    """{flag: resolved path} of every flag whose value is an existing file or folder the run reads (data files,
    the model, the tokenizer, ...)."""
    found = {}
    for key, value in vars(args).items():
        if key in _NOT_INPUTS or not isinstance(value, str) or not value or not os.path.exists(value):
            continue
        found[key] = Path(value).resolve()
    return found


def written_entries(output_dir: str | os.PathLike) -> set[str]:
    """The entries of `output_dir` that runs of these scripts wrote (read from its manifest; empty without one)."""
    file = Path(output_dir) / MANIFEST_FILE
    try:
        return set(json.loads(file.read_text())["written"]) if file.is_file() else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_manifest(output_dir: Path, names: set[str]) -> None:
    present = {name for name in names if (output_dir / name).exists() or (output_dir / name).is_symlink()}
    partial = output_dir / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps({"written": sorted(present)}, indent=2))
    os.replace(partial, output_dir / MANIFEST_FILE)


def record_outputs(output_dir: str | os.PathLike | None) -> None:
    """Add what this run has written to `output_dir` so far to its manifest (main process; a no-op for a folder this
    process does not own). Called after every checkpoint and at the end of the run."""
    if output_dir is None:
        return
    path = Path(output_dir).resolve()
    if path not in _claims or not path.is_dir():
        return
    before = _claims[path][1]
    _write_manifest(path, written_entries(path) | (set(_entries(path)) - before))


def _lock_holder(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        return "another run"
    return f"another run (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')})"


def _claim(path: Path) -> None:
    """Take the lock of `path` (made if missing) for this process, or raise naming the run that holds it.

    `fcntl.flock` on `path/.ponet_run.lock`: the OS drops the lock when its process dies, so the lock of a killed run
    (even `kill -9`) is free for the next one; what that run wrote, recorded in its lock file, goes to the
    manifest."""
    import fcntl
    import socket
    import time

    path = path.resolve()
    if path in _claims:  # an earlier run in this very process (a script's `main` called twice)
        return
    path.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(handle)
            handle.close()
            raise RuntimeError(f"`--output_dir` {path} is in use by {holder}: wait for it to finish or pass "
                               "another --output_dir") from None
        # The file may have been unlinked by its releasing owner between our open and our lock: lock it anew.
        if os.path.exists(path / LOCK_FILE) and os.path.samestat(os.fstat(handle.fileno()), os.stat(path / LOCK_FILE)):
            break
        handle.close()
    handle.seek(0)
    stale = handle.read()
    if stale:  # a run that died holding the folder: the entries it wrote are ours to clear
        try:
            before = set(json.loads(stale).get("entries_before", []))
            _write_manifest(path, written_entries(path) | (set(_entries(path)) - before))
            logger.warning("%s was left by a run that was killed (%s); taking it over", path / LOCK_FILE, stale.strip())
        except ValueError:
            pass
    before = set(_entries(path)) - written_entries(path)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S"), "entries_before": sorted(before)}))
    handle.flush()
    _claims[path] = (handle, before)


def release_output_dir(output_dir: str | os.PathLike | None, failed: bool = False) -> None:
    """Record what the run wrote (`record_outputs`), drop the lock and its file; after a failure, remove the folder
    when the run left nothing in it (so that a run that fails early leaves no folder behind)."""
    if output_dir is None or Path(output_dir).resolve() not in _claims:
        return
    path = Path(output_dir).resolve()
    record_outputs(path)
    handle, before = _claims.pop(path)
    (path / LOCK_FILE).unlink(missing_ok=True)
    handle.close()
    if failed and not _entries(path):
        (path / MANIFEST_FILE).unlink(missing_ok=True)
        discard_if_empty(path)


def releases_output_dir(main):
    """Decorator for a script's `main`: whatever way it ends (an exception too), the `--output_dir` it claimed is
    released (`release_output_dir`). A killed process releases the lock through the OS."""
    import functools

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        claimed = set(_claims)
        try:
            result = main(*args, **kwargs)
        except BaseException:
            for path in set(_claims) - claimed:
                release_output_dir(path, failed=True)
            raise
        for path in set(_claims) - claimed:
            release_output_dir(path)
        return result

    return wrapper


def _clearable(path: Path, args: argparse.Namespace) -> list[str]:
    """What `--overwrite_output_dir` deletes in `path`: the entries earlier runs of these scripts wrote (its manifest).
    Raises when one of them is an input of this run, or when `path` holds entries no run of ours wrote and that this
    run does not read (they are never deleted)."""
    entries = set(_entries(path))
    ours = sorted(entries & written_entries(path))
    inputs = input_paths(args)
    for flag, source in inputs.items():
        for name in ours:
            target = (path / name).resolve()
            if source == target or target in source.parents or source in target.parents:
                raise ValueError(f"`--{flag}` {source} is read by this run, but --overwrite_output_dir would delete "
                                 f"{path / name} (an earlier run's output): pass another --output_dir")
    foreign = [name for name in sorted(entries - set(ours))
               if not any((path / name).resolve() in (source, *source.parents) for source in inputs.values())]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"`--output_dir` {path} holds {shown}, which no run of these scripts wrote: "
                         "--overwrite_output_dir deletes only an earlier run's outputs. Move them away or pass "
                         "another --output_dir")
    return ours


def prepare_output_dir(accelerator, args: argparse.Namespace) -> None:
    """Claim `--output_dir` for this run on the main process (a lock: a second run into the same folder is refused
    while this one runs) and, with `--overwrite_output_dir`, delete what earlier runs of these scripts wrote there
    (logged; inputs of this run and files no run of ours wrote are never deleted, see `_clearable`). Every process
    raises the main process's error."""
    error = None
    if accelerator.is_main_process and args.output_dir is not None:
        try:
            path = Path(args.output_dir)
            _claim(path)
            if getattr(args, "overwrite_output_dir", False):
                names = _clearable(path, args)
                for name in names:
                    item = path / name
                    if item.is_dir() and not item.is_symlink():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                _write_manifest(path, set())
                if names:
                    logger.warning("--overwrite_output_dir: deleted %d entries an earlier run wrote in %s (%s)",
                                   len(names), path, ", ".join(names[:8]) + (", ..." if len(names) > 8 else ""))
        except (OSError, RuntimeError, ValueError) as err:
            error = err
    if accelerator.num_processes > 1:  # every process stops with the main one's error, none waits forever
        from accelerate.utils import broadcast_object_list

        message = [None if error is None else f"{type(error).__name__}: {error}"]
        broadcast_object_list(message)
        if message[0] is not None and error is None:
            raise RuntimeError(f"The main process could not take --output_dir: {message[0]}")
    if error is not None:
        if args.output_dir is not None and Path(args.output_dir).resolve() in _claims:
            release_output_dir(args.output_dir, failed=True)
        raise error
    accelerator.wait_for_everyone()


def discard_if_empty(output_dir: str | os.PathLike | None) -> None:
    """Remove `output_dir` when it exists and holds nothing (for a script that made it and then failed)."""
    if output_dir is not None and Path(output_dir).is_dir() and not any(Path(output_dir).iterdir()):
        Path(output_dir).rmdir()
