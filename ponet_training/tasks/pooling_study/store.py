"""The pooling study's record: `pooling_study.csv` (one row per finished run, appended at once) and
`study_settings.json` (the settings that change results; a resumed study must match them).

- `open_record(accelerator, args)`: on the main process, prepare `--output_dir` (`--overwrite_output_dir`
  starts over), check or write the settings and read the finished runs; every process gets the rows (or the error).
- `read_results(csv_path)`, `append_result(csv_path, row)`.
- `study_settings(args, num_processes, mixed_precision)`, `check_settings(output_dir, settings)`,
  `record_run(output_dir, settings, row, baselines)`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path

from ponet_training.engine.settings import describe_differences, run_settings
from ponet_training.engine.settings import settings_differences as flag_differences
from ponet_training.tasks.pooling_study.settings import BASELINES_JSON, CSV_COLUMNS, FIGURE_PNG, RESULTS_CSV, RUN_KEY, SETTINGS_JSON, TABLE_MD


logger = logging.getLogger(__name__)


def read_results(csv_path: str | os.PathLike) -> list[dict]:
    """Rows of a study CSV (numbers converted), [] when it does not exist; a foreign CSV raises."""
    path = Path(csv_path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            return []
        missing = [c for c in RUN_KEY + ("accuracy",) if c not in reader.fieldnames]
        if missing:
            raise ValueError(f"{path} is not a pooling-study CSV (missing columns {missing}); use another --output_dir")
        rows = list(reader)
    for row in rows:
        for key, value in row.items():
            if key in ("backbone", "regime", "pooling", "finished_at") or value in (None, ""):
                continue
            number = float(value)
            row[key] = int(number) if key in ("seed", "num_train_examples", "num_eval_examples", "train_steps",
                                              "trainable_parameters") else number
    return rows


def append_result(csv_path: str | os.PathLike, row: dict) -> None:
    """Append one finished run to the CSV (header first when the file is new), flushed to disk at once."""
    path = Path(csv_path)
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


# What the study's record leaves out besides the bookkeeping flags (`engine.settings`): its axes (each run is
# one cell; extending the sweep is allowed), the per-backbone flags (recorded under `backbones`), the flags
# recorded by their effect (`total_train_batch_size`, the accelerator's `mixed_precision`) and the report's.
STUDY_AXES = frozenset({
    "model_name_or_path", "config_name", "pooling", "regimes", "seeds", "backbones", "backbone_learning_rate",
    "backbone_settings", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
    "mixed_precision", "figure_title", "metric",
})


def study_settings(args: argparse.Namespace, num_processes: int, mixed_precision: str) -> dict:
    """Every flag that can change a run's result (`engine.settings.run_settings`, but the study's axes), plus
    `backbones`: each backbone's own settings (learning rate and epochs per regime, tokenizer). Runs recorded under
    other settings are not comparable."""
    settings = run_settings(args, exclude=STUDY_AXES)
    settings["total_train_batch_size"] = (args.per_device_train_batch_size * num_processes
                                          * args.gradient_accumulation_steps)
    settings["mixed_precision"] = mixed_precision
    settings["backbones"] = {name: dict(values) for name, values in args.backbone_settings.items()}
    return settings


def settings_differences(recorded: dict, settings: dict) -> list[str]:
    """What differs between recorded and current settings (the flags as in `engine.settings`), and per
    backbone; a backbone only one of them has is no difference."""
    flags = flag_differences({k: v for k, v in recorded.items() if k != "backbones"},
                             {k: v for k, v in settings.items() if k != "backbones"})
    differing = [describe_differences({key: change}) for key, change in flags.items()]
    old_backbones = recorded.get("backbones", {})
    for backbone, values in settings.get("backbones", {}).items():
        for k, v in values.items():
            if backbone in old_backbones and old_backbones[backbone].get(k) != v:
                differing.append(f"{k} of {backbone}: recorded {old_backbones[backbone].get(k)!r}, now {v!r}")
    return differing


def check_settings(output_dir: Path, settings: dict) -> None:
    """Refuse to add runs to a study whose recorded runs were made with other settings (one error naming them)."""
    path = output_dir / SETTINGS_JSON
    if not (path.is_file() and (output_dir / RESULTS_CSV).is_file()):
        return
    differing = settings_differences(json.loads(path.read_text()), settings)
    if differing:
        raise ValueError(f"{output_dir} holds runs made with other settings ({'; '.join(differing)}). Their results "
                         "would not be comparable: use another --output_dir, or --overwrite_output_dir to start over.")


def write_settings(output_dir: Path, settings: dict) -> None:
    """Record the settings (backbones merged with the recorded ones), next to the first finished run."""
    path = output_dir / SETTINGS_JSON
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**settings, "backbones": {**recorded.get("backbones", {}), **settings["backbones"]}}
    path.write_text(json.dumps(merged, indent=2, sort_keys=True))


def record_run(output_dir: Path, settings: dict, row: dict, baselines: dict | None) -> None:
    """Append a finished run, with the settings (and the data's baselines) it was made with; the folder and the
    settings file appear only now, so a study that fails before its first run leaves nothing behind."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_settings(output_dir, settings)
    if baselines is not None:
        (output_dir / BASELINES_JSON).write_text(json.dumps(baselines, indent=2))
    append_result(output_dir / RESULTS_CSV, row)


def open_record(accelerator, args: argparse.Namespace) -> list[dict]:
    """The finished runs of the study in `--output_dir`, read by the main process (after `--overwrite_output_dir`
    and the settings check) and shared with every process, which must skip the same runs; so is an error.
    Nothing is created here (see `record_run`)."""
    from accelerate.utils import broadcast_object_list

    output_dir = Path(args.output_dir)
    shared = [None, None]
    if accelerator.is_main_process:
        try:
            if output_dir.exists() and not output_dir.is_dir():
                raise ValueError(f"--output_dir {output_dir} is a file, not a folder")
            if args.overwrite_output_dir and output_dir.is_dir():
                for name in (RESULTS_CSV, TABLE_MD, FIGURE_PNG, SETTINGS_JSON, BASELINES_JSON, "all_results.json"):
                    (output_dir / name).unlink(missing_ok=True)
                logger.info("--overwrite_output_dir: starting the study in %s over", output_dir)
            check_settings(output_dir, study_settings(args, accelerator.num_processes, accelerator.mixed_precision))
            shared[0] = read_results(output_dir / RESULTS_CSV)
        except (OSError, ValueError) as err:
            shared[1] = err
    broadcast_object_list(shared)
    rows, error = shared
    if error is not None:
        raise error
    return rows


__all__ = ["append_result", "check_settings", "open_record", "read_results", "record_run", "settings_differences",
           "study_settings", "write_settings"]
