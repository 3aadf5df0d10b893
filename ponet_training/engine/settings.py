"""The settings that change what a run computes: the one fingerprint of a run, and how two of them differ.

- `run_settings(args, exclude=())`: the flags that change a result, as plain values (existing paths made absolute);
  stored in every checkpoint (and compared on resume), recorded by the pooling study and the GLUE sweep, which
  pass what else their records leave out (their grid axes) as `exclude`.
- `settings_differences(recorded, settings, may_change=())`, `describe_differences(differences)`: what changed;
  `RESUMABLE_CHANGES`, the ones a checkpoint resume may make.
- `refuse_other_settings(recorded, settings, what, advice)`: the one refusal naming every difference (a checkpoint
  resumed, a study or a sweep run again); `check_settings_record(path, ...)` / `write_settings_record(path, ...)`:
  the same around a JSON record of the settings (the pooling study's, the GLUE sweep's).
- `plain(value)`: JSON-ready values (enums, tensors, numpy scalars, tuples), for settings and `all_results.json`.
- `data_identity(inputs, skip)`: what the run reads, by content: the size and a hash of every input file (a folder:
  of each file in it), stored in every checkpoint; `data_differences(recorded, identity)`: what changed, by file,
  for the refusal of a resume on other data (`RunFolder.claim`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


# Flags that do not change the model a run computes (where files go, logging, cadence, speed, credentials):
# never part of a fingerprint, and never a difference, also when an older record holds them.
_BOOKKEEPING_FLAGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "checkpointing_steps", "eval_steps",
    "logging_steps", "with_tracking", "report_to", "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
    "dataloader_num_workers", "preprocessing_num_workers", "overwrite_cache", "cache_dir", "trust_remote_code",
    "no_predict", "resume_with_changed_data",
    "sparse_prediction", "torch_compile",  # the same computation up to float rounding: a resume may change them
})


def plain(value):
    """`value` as JSON-ready Python values: an enum's value, a one-element tensor or numpy value as its number, a
    larger one as nested lists, tuples as lists, recursively through dicts and lists."""
    value = getattr(value, "value", value)  # enums such as SchedulerType
    if hasattr(value, "tolist") and hasattr(value, "item"):  # torch tensors, numpy arrays and scalars
        size = value.numel() if callable(getattr(value, "numel", None)) else value.size
        return value.item() if size == 1 else value.tolist()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def run_settings(args: argparse.Namespace, exclude=frozenset()) -> dict:
    """The flags of `args` that change what a run computes, minus `exclude` (plain values; existing paths made
    absolute; values that are not numbers, strings or lists of them are left out). A checkpoint stores them, so
    that `latest` never continues another run's checkpoint (`RunFolder.for_run` takes them once per run)."""
    settings = {}
    for key, value in sorted(vars(args).items()):
        if key in _BOOKKEEPING_FLAGS or key in exclude:
            continue
        value = plain(value)
        if isinstance(value, str) and os.path.exists(value):
            value = os.path.abspath(value)
        if _is_scalar(value) or (isinstance(value, list) and all(_is_scalar(v) for v in value)):
            settings[key] = value
    return settings


# Settings a checkpoint resume may change, applied for real: the length of the run (the schedule is rebuilt over
# the new --max_train_steps; the scheduler state restores the position in it). Bookkeeping flags may change too.
RESUMABLE_CHANGES = frozenset({"max_train_steps", "num_train_epochs"})


def settings_differences(recorded: dict, settings: dict, may_change=frozenset()) -> dict:
    """{key: (recorded value, current value)} for every setting that differs (one side missing: None), but the
    bookkeeping flags and `may_change`; sorted by key. A table of settings (a dict on both sides, e.g. the pooling
    study's per-backbone settings) may gain entries: its common entries are compared, each difference keyed
    `(key, entry, name)`."""
    differences, nested = {}, {}
    for key in sorted(set(recorded) | set(settings)):
        old, new = recorded.get(key), settings.get(key)
        if key in may_change or key in _BOOKKEEPING_FLAGS or old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for entry in sorted(set(old) & set(new)):
                for name, change in settings_differences(old[entry], new[entry]).items():
                    nested[(key, entry, name)] = change
        else:
            differences[key] = (old, new)
    return {**differences, **nested}


def describe_differences(differences: dict, limit: int | None = 5) -> str:
    def one(key, old, new):
        if isinstance(key, tuple):
            return f"{key[2]} of {key[1]} {old!r} (now {new!r})"
        return f"--{key} {old!r} (now {new!r})"

    return ", ".join(one(key, old, new) for key, (old, new) in list(differences.items())[:limit])


def refuse_other_settings(recorded: dict, settings: dict, what: str, advice: str, may_change=frozenset()) -> None:
    """Raise one ValueError naming every way `settings` differ from those `recorded` for `what` (a checkpoint, a
    study, a sweep), then `advice`; nothing when they agree."""
    differences = settings_differences(recorded, settings, may_change)
    if differences:
        raise ValueError(f"{what} was made with other settings: {describe_differences(differences, None)}. {advice}")


def check_settings_record(path: str | os.PathLike, settings: dict, what: str, advice: str) -> None:
    """`refuse_other_settings` against the record in `path` (a JSON file), when there is one."""
    path = Path(path)
    if path.is_file():
        refuse_other_settings(json.loads(path.read_text()), settings, what, advice)


def write_settings_record(path: str | os.PathLike, settings: dict) -> None:
    """Write `settings` to `path` (JSON); a table of settings keeps the entries the record already had."""
    path = Path(path)
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    merged = {key: {**recorded[key], **value} if isinstance(value, dict) and isinstance(recorded.get(key), dict)
              else value for key, value in settings.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# The identity of the data: sizes and content hashes
# ---------------------------------------------------------------------------------------------------------------

# xxh3-128 (the `xxhash` package datasets depends on): ~28 GiB/s on one core, so a full hash of every byte costs what
# reading the file costs; a change anywhere in a file changes it, whatever the file's mtime says.
HASH_NAME = "xxh3_128"
_CHUNK = 8 << 20


def file_identity(path: str | os.PathLike) -> dict:
    """{"size": bytes, "xxh3_128": hex digest of every byte} of one file."""
    import xxhash

    digest = xxhash.xxh3_128()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, HASH_NAME: digest.hexdigest()}


def _folder_files(folder: Path, skip: Path | None) -> list[Path]:
    """The files of `folder`, recursively, sorted; hidden entries (.git, caches) and `skip` (the run's own folder)
    left out."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        root = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (root / d).resolve() != skip))
        found += [root / name for name in sorted(files) if not name.startswith(".")]
    return found


# A folder of more files (the LRA release's Pathfinder: hundreds of thousands of images) is identified by the names
# and sizes of its files (one stat each), not their bytes, and without a list of them in every checkpoint.
MAX_FILES_BY_CONTENT = 1000


def _folder_identity(path: Path, skip: Path | None) -> dict:
    files = _folder_files(path, skip)
    if len(files) <= MAX_FILES_BY_CONTENT:
        return {"path": str(path), "files": {str(f.relative_to(path)): file_identity(f) for f in files}}
    import xxhash

    digest, total = xxhash.xxh3_128(), 0
    for file in files:
        size = file.stat().st_size
        total += size
        digest.update(f"{file.relative_to(path)}\0{size}\n".encode())
    return {"path": str(path), "file_count": len(files), "size": total, "listing_xxh3_128": digest.hexdigest()}


def data_identity(inputs: dict, skip: str | os.PathLike | None = None) -> dict:
    """{flag: identity} of every input (`{flag: path}`): a file's `{"path", "size", "xxh3_128"}`; a folder's
    `{"path", "files": {relative path: {"size", "xxh3_128"}}}`, or, past `MAX_FILES_BY_CONTENT` files,
    `{"path", "file_count", "size", "listing_xxh3_128"}` (a hash of their names and sizes). Hidden entries and
    `skip` (the run's own folder) are left out; flags that only say where the run keeps things (`--cache_dir`, ...)
    are not data."""
    skip = None if skip is None else Path(skip).resolve()
    identity = {}
    for flag, path in sorted(inputs.items()):
        path = Path(path)
        if flag in _BOOKKEEPING_FLAGS or (skip is not None and path.resolve() == skip):
            continue
        if path.is_file():
            identity[flag] = {"path": str(path), **file_identity(path)}
        elif path.is_dir():
            identity[flag] = _folder_identity(path, skip)
    return identity


def _describe_change(name: str, old: dict | None, new: dict | None) -> str | None:
    if old == new:
        return None
    if old is None:
        return f"{name} is new ({new['size']} bytes)"
    if new is None:
        return f"{name} is gone (it had {old['size']} bytes)"
    if old["size"] != new["size"]:
        return f"{name} has {new['size']} bytes, the checkpoint's had {old['size']}"
    return f"{name} has other contents of the same size ({HASH_NAME} {new[HASH_NAME]}, the checkpoint's " \
           f"{old[HASH_NAME]})"


def data_differences(recorded: dict, identity: dict) -> list[str]:
    """What differs between the data a checkpoint `recorded` and the run's `identity`, one phrase per file, naming the
    flag and the file; inputs only one side has are left to the settings' comparison (their flag changed)."""
    changes = []
    for flag in sorted(set(recorded) & set(identity)):
        old, new = recorded[flag], identity[flag]
        kinds = {key for key in ("files", "listing_xxh3_128", HASH_NAME) if key in old}, \
            {key for key in ("files", "listing_xxh3_128", HASH_NAME) if key in new}
        if kinds[0] == kinds[1] == {"files"}:
            for name in sorted(set(old["files"]) | set(new["files"])):
                change = _describe_change(str(Path(new["path"]) / name), old["files"].get(name), new["files"].get(name))
                if change:
                    changes.append(f"--{flag}: {change}")
        elif kinds[0] == kinds[1] == {"listing_xxh3_128"}:
            if old != {**new, "path": old["path"]}:
                changes.append(f"--{flag} {new['path']}: its files differ in names or sizes ({new['file_count']} "
                               f"files of {new['size']} bytes, the checkpoint's {old['file_count']} of {old['size']})")
        elif kinds[0] != kinds[1]:
            count = old.get("file_count", len(old.get("files", {})))
            was = "a file" if HASH_NAME in kinds[0] else f"a folder of {count} files"
            changes.append(f"--{flag} {new['path']} is not what the checkpoint read ({was})")
        else:
            change = _describe_change(new["path"], {k: v for k, v in old.items() if k != "path"},
                                      {k: v for k, v in new.items() if k != "path"})
            if change:
                changes.append(f"--{flag} {change}")
    return changes
