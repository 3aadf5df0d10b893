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
    "no_predict",
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
