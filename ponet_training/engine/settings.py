"""The settings that change what a run computes: the one fingerprint of a run, and how two of them differ.

- `run_settings(args)`: the flags that change a result, as plain values (existing paths made absolute); stored in
  every checkpoint (and compared on resume), recorded by the pooling study and the sweep.
- `settings_differences(recorded, settings)`, `describe_differences(differences)`: what changed, for a refusal that
  names every difference; `RESUMABLE_CHANGES`, the ones a resume may make.
"""

from __future__ import annotations

import argparse
import os


# Flags that do not change the model a run computes: a resume may differ in them.
_BOOKKEEPING_FLAGS = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "checkpointing_steps", "eval_steps",
    "logging_steps", "with_tracking", "report_to", "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo",
    "dataloader_num_workers", "preprocessing_num_workers", "overwrite_cache", "cache_dir", "trust_remote_code",
    "no_predict", "run_settings",
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


# Settings a resume may change, applied for real: the length of the run (the schedule is rebuilt over the new
# --max_train_steps; the scheduler state restores the position in it). The bookkeeping flags above may change too.
RESUMABLE_CHANGES = frozenset({"max_train_steps", "num_train_epochs"})


def settings_differences(recorded: dict, settings: dict) -> dict:
    return {key: (recorded.get(key), settings.get(key)) for key in sorted(set(recorded) | set(settings))
            if recorded.get(key) != settings.get(key) and key not in RESUMABLE_CHANGES}


def describe_differences(differences: dict, limit: int | None = 5) -> str:
    return ", ".join(f"--{key} {old!r} (now {new!r})" for key, (old, new) in list(differences.items())[:limit])
