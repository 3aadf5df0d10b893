"""Saves that fail cleanly: every folder a run publishes (a checkpoint, `best_model/`, the final model, an export) is
written into a staging folder and moved into place only once it is complete, and a failure is one line naming the
path being written and the cause, with the free space when the cause is space (the rules: docs/output_folders.md,
"Save failures").

- `saving(what, destination, staging, accelerator, after)`: the `with` block around a save. A writer's failure
  (`OSError`, safetensors' `SafetensorError`, torch's stream-writer `RuntimeError`) becomes one `SaveError` line,
  the staging folder is removed, and with several processes every one of them raises (the one that failed names
  the file; the others name it). The handler itself cannot fail.
- `publish_folder(staging, final)`: rename a complete folder into place (a `final` being replaced is set aside first
  and removed after); `move_into(staging, folder, last)`: move a complete staging folder's entries into a folder
  that holds other things (the run folder), one atomic rename each, `last` at the end.
- `write_json_atomically(path, content)`.
- `save_model(accelerator, model, tokenizer, output_dir, ...)`: `save_pretrained` of the model and its tokenizer,
  staged; `TRAINING_ONLY_CONFIG` / `inference_config(model)`: the config switches saved at their inference values;
  `own_class(model)`: a model sharded by FSDP2 saved as its own class.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path


logger = logging.getLogger(__name__)

SAVING_DIR = "saving.tmp"
_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class SaveError(OSError):
    """A save that failed, in one line: what was saved where, the file being written, the cause, what was left."""

    def __str__(self) -> str:
        return self.strerror


# ---------------------------------------------------------------------------------------------------------------
# What failed, in words
# ---------------------------------------------------------------------------------------------------------------


def _chain(err: BaseException) -> list[BaseException]:
    found = []
    while err is not None and err not in found and len(found) < 10:
        found.append(err)
        err = err.__cause__ or err.__context__
    return found


def is_write_failure(err: BaseException) -> bool:
    """Whether `err` is a writer's failure (the disk, the file system, permissions), not a bug."""
    for item in _chain(err):
        if isinstance(item, OSError) or type(item).__name__ == "SafetensorError":
            return True
        if isinstance(item, RuntimeError) and re.search(r"PytorchStreamWriter|file write failed|unexpected pos",
                                                         str(item)):
            return True
    return False


def _cause(err: BaseException) -> tuple[str, int | None]:
    """(the cause in words, its errno or None): the first OS error in the chain, else the errno a Rust or C++ writer
    put in its message, else the message's first line."""
    for item in _chain(err):
        if isinstance(item, OSError) and item.errno:
            return item.strerror or os.strerror(item.errno), item.errno
    text = " ".join(str(item) for item in _chain(err))
    found = re.search(r"os error (\d+)", text)
    if found:
        return os.strerror(int(found.group(1))), int(found.group(1))
    if "No space left on device" in text:
        return os.strerror(errno.ENOSPC), errno.ENOSPC
    return (str(err).strip().splitlines() or [type(err).__name__])[0], None


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def free_space(path: Path) -> str:
    """The free space of the file system holding `path` (its nearest existing folder), in words."""
    try:
        folder = Path(path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        usage = shutil.disk_usage(folder)
        return f"{_human(usage.free)} free of {_human(usage.total)} on its file system"
    except OSError as err:
        return f"free space unknown: {err.strerror}"


def _file_being_written(err: BaseException, staging: Path | None, written_before: set[Path]) -> Path | None:
    """The file the failed write was writing: the one an OS error names, when it lies in `staging`, else the newest
    file written to `staging` since the save began (a write cut short leaves its file, often empty)."""
    for item in _chain(err):
        for name in (getattr(item, "filename", None), getattr(item, "filename2", None)):
            if name and (staging is None or Path(staging) in Path(os.path.abspath(name)).parents):
                return Path(name)
    if staging is None or not Path(staging).is_dir():
        return None
    new = [f for f in _files(staging) - written_before]
    # File times tick coarsely (a few ms): a tie goes to the file created last, the higher inode on common file
    # systems.
    return max(new, key=lambda f: (f.stat().st_mtime_ns, f.stat().st_ino)) if new else None


def _files(folder: Path) -> set[Path]:
    """The files in `folder` now. Another process may be moving them away (the main process puts a complete save in
    place while the others enter the block after it): what cannot be listed is left out."""
    try:
        return {f for f in Path(folder).rglob("*") if f.is_file()} if Path(folder).is_dir() else set()
    except OSError:
        return set()


def describe_failure(err: BaseException, what: str, destination: Path, staging: Path | None = None,
                     written_before: set[Path] = frozenset(), after: str = "") -> tuple[str, int | None]:
    """(the one line, the errno) of a failed save of `what` to `destination`."""
    cause, number = _cause(err)
    file = _file_being_written(err, staging, written_before)
    # A writer that removes what it could not finish (safetensors) leaves only the folder it was writing into.
    where = (f" while writing {file}" if file is not None else
             f" while writing into {staging}" if staging is not None else "")
    # A writer that lost the OS error (torch's zip writer: "unexpected pos") leaves the cause open: the free space
    # is shown then too, as it is when the cause is space.
    space = f" ({free_space(destination)})" if number in _SPACE_ERRNOS or number is None else ""
    return f"Saving {what} to {destination} failed{where}: {cause}{space}.{' ' + after if after else ''}", number


# ---------------------------------------------------------------------------------------------------------------
# The block around a save
# ---------------------------------------------------------------------------------------------------------------


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _failed_processes(accelerator, failed: bool) -> list[int]:
    """The processes whose block failed (every process must call this at the same point)."""
    if accelerator is None or accelerator.num_processes == 1:
        return [0] if failed else []
    import torch

    flags = accelerator.gather(torch.tensor([int(failed)], device=accelerator.device)).tolist()
    return [rank for rank, flag in enumerate(flags) if flag]


@contextlib.contextmanager
def saving(what: str, destination: Path, staging: Path | None = None, accelerator=None, after: str = ""):
    """Run a save of `what` (e.g. "checkpoint step_4") to `destination`, written into `staging`. A writer's failure
    removes `staging` (the main process does) and is raised as one `SaveError` line; other errors are raised as
    they are. With an `accelerator` of several processes, every process must enter the block: they learn together
    whether one failed, and all raise (no process waits forever for one that failed)."""
    is_main = accelerator is None or accelerator.is_main_process
    written_before = _files(staging) if staging is not None else set()
    error = message = None
    try:
        yield
    except Exception as err:  # KeyboardInterrupt and the like stop the process at once, below
        error = err
        if not isinstance(err, SaveError) and is_write_failure(err):
            try:  # described before `staging` goes: its newest file is the one being written
                message = describe_failure(err, what, Path(destination), staging, written_before, after)
            except Exception:  # the report of a failure must not fail: fall back to the error's own words
                message = f"Saving {what} to {destination} failed: {err}. {after}".strip(), None
    except BaseException:
        if is_main:
            _remove(staging)
        raise
    failed = _failed_processes(accelerator, error is not None)
    if not failed:
        return
    if is_main:
        _remove(staging)
    if error is not None and message is None:
        raise error  # already one line (a save inside this one), or a bug: as it is
    if error is not None:
        raise SaveError(message[1] or errno.EIO, message[0]) from None
    raise SaveError(errno.EIO, f"Saving {what} to {destination} failed on process "
                               f"{', '.join(map(str, failed))} (its error says why). {after}".strip()) from None


# ---------------------------------------------------------------------------------------------------------------
# Putting a complete folder in place
# ---------------------------------------------------------------------------------------------------------------


def write_json_atomically(path: Path, content) -> None:
    """Write `content` as JSON to `path` through a `.partial` file renamed into place (flushed to disk first)."""
    partial = Path(path).with_name(Path(path).name + ".partial")
    try:
        with open(partial, "w") as handle:
            handle.write(json.dumps(content, indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        if err.filename is None:  # a failed write or flush names no file: this one
            raise OSError(err.errno, err.strerror, str(partial)) from err
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def publish_folder(staging: Path, final: Path) -> None:
    """Rename the complete `staging` folder to `final` (an older `final`, being rewritten, is set aside first as
    `final.old` and removed after)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)


def move_into(staging: Path, folder: Path, last: tuple[str, ...] = ()) -> None:
    """Move the entries of the complete `staging` folder into `folder` (replacing same-named ones), one atomic
    rename each, the names in `last` at the end; then remove `staging`."""
    for item in sorted(staging.iterdir(), key=lambda item: (item.name in last, last.index(item.name)
                                                            if item.name in last else 0, item.name)):
        target = folder / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


# Config switches that only make training faster (the same losses and gradients): a saved model has them at their
# inference value, so that what it returns does not depend on how it was trained.
TRAINING_ONLY_CONFIG = {"sparse_prediction": False}


@contextlib.contextmanager
def inference_config(model):
    """`model.config` with the `TRAINING_ONLY_CONFIG` switches it has at their inference values, for a save."""
    config = model.config
    trained = {key: getattr(config, key) for key in TRAINING_ONLY_CONFIG if hasattr(config, key)}
    for key in trained:
        setattr(config, key, TRAINING_ONLY_CONFIG[key])
    try:
        yield
    finally:
        for key, value in trained.items():
            setattr(config, key, value)


@contextlib.contextmanager
def own_class(model):
    """`model` as its own class during a save. FSDP2's `fully_shard` gives a model a class made on the fly
    (`FSDPPoNetForSequenceClassification`, defined in torch's FSDP module), which `save_pretrained` would write into
    `auto_map`, copying torch's FSDP sources instead of the model's code."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        FSDPModule = None
    sharded = type(model)
    if FSDPModule is None or not isinstance(model, FSDPModule):
        yield
        return
    model.__class__ = next(c for c in sharded.__mro__ if not issubclass(c, FSDPModule))
    try:
        yield
    finally:
        model.__class__ = sharded


def save_model(accelerator, model, tokenizer, output_dir: str | Path, extra_json: dict | None = None,
               whole_folder: bool = False, what: str = "the model", after: str = "") -> None:
    """`save_pretrained` of the unwrapped model (weights gathered from all processes), the tokenizer and `extra_json`
    ({file name: content}, e.g. a record that must travel with the weights), staged, then put in place:

    - `whole_folder=False` (the final model, into the run folder): staged in `output_dir/saving.tmp`, then moved in
      file by file, `config.json` last;
    - `whole_folder=True` (`best_model/`): staged in `output_dir.tmp`, then renamed to `output_dir`, replacing the
      older folder whole, so that `output_dir` always holds one complete model with its record.

    A failed save (a full disk) is one `SaveError` line naming the file and the free space; it leaves the staging
    folder removed and `output_dir` as it was."""
    output_dir = Path(output_dir)
    staging = output_dir.with_name(output_dir.name + ".tmp") if whole_folder else output_dir / SAVING_DIR
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)  # the leftover of an interrupted save
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)  # every process takes part in gathering sharded weights
    with saving(what, output_dir, staging, accelerator, after or "Nothing was replaced there: free space and run "
                                                                  "again"):
        # Only the main process writes: another one's save_pretrained would still list `staging`, which the main
        # process removes once its files are moved into place.
        if accelerator.is_main_process:
            with inference_config(unwrapped), own_class(unwrapped):
                unwrapped.save_pretrained(staging, save_function=accelerator.save, state_dict=state_dict)
            if tokenizer is not None:  # models of ids (LRA) have none
                tokenizer.save_pretrained(staging)
            for name, content in (extra_json or {}).items():
                write_json_atomically(staging / name, content)
            if whole_folder:
                publish_folder(staging, output_dir)
            else:
                move_into(staging, output_dir, last=("config.json",))
    accelerator.wait_for_everyone()


__all__ = ["SAVING_DIR", "SaveError", "TRAINING_ONLY_CONFIG", "describe_failure", "free_space", "inference_config",
           "is_write_failure", "move_into", "own_class", "publish_folder", "save_model", "saving",
           "write_json_atomically"]
