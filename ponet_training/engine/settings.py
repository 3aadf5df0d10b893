"""The settings that change what a run computes: the one fingerprint of a run, and how two of them differ.

- `run_settings(args, exclude=())`: the flags that change a result, as plain values (existing paths made absolute);
  stored in every checkpoint (and compared on resume), recorded by the pooling study and the GLUE sweep, which
  pass what else their records leave out (their grid axes) as `exclude`.
- `settings_differences(recorded, settings, may_change=())`, `describe_differences(differences)`: what changed, for
  a refusal that names every difference; `RESUMABLE_CHANGES`, the ones a checkpoint resume may make.
- `plain(value)`: JSON-ready values (enums, tensors, numpy scalars, tuples), for settings and `all_results.json`.
"""

from __future__ import annotations

import argparse
import os


# Flags that do not change the model a run computes (where files go, logging, cadence, speed, credentials):
# never part of a fingerprint, and never a difference, also when an older record holds them.
_BOOKKEEPING_FLAGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "checkpointing_steps", "eval_steps",
    "logging_steps", "with_tracking", "report_to", "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
    "dataloader_num_workers", "preprocessing_num_workers", "overwrite_cache", "cache_dir", "trust_remote_code",
    "no_predict", "run_settings",
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
    that `latest` never continues another run's checkpoint (`run.check_training_args` records them)."""
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
    bookkeeping flags and `may_change`; sorted by key."""
    return {key: (recorded.get(key), settings.get(key)) for key in sorted(set(recorded) | set(settings))
            if recorded.get(key) != settings.get(key) and key not in may_change and key not in _BOOKKEEPING_FLAGS}


def describe_differences(differences: dict, limit: int | None = 5) -> str:
    return ", ".join(f"--{key} {old!r} (now {new!r})" for key, (old, new) in list(differences.items())[:limit])
