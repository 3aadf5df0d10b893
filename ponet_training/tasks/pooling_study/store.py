"""The pooling study's record: `pooling_study.csv` (one row per finished run, appended at once) and
`study_settings.json` (the settings that change results; a resumed study must match them).

- `open_record(accelerator, folder, args)`: on the main process, check the settings against those recorded in the
  study's `RunFolder` (claimed, and cleared by `--overwrite_output_dir`, before) and read the finished runs; every
  process gets the rows (or the error).
- `read_results(csv_path)`, `append_result(csv_path, row)`.
- `study_settings(args, num_processes, mixed_precision)`, `record_run(folder, settings, row, baselines)`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path

from ponet_training.engine.run import total_train_batch_size
from ponet_training.engine.settings import check_settings_record, run_settings, write_settings_record
from ponet_training.tasks.pooling_study.settings import BASELINES_JSON, CSV_COLUMNS, RESULTS_CSV, RUN_KEY, SETTINGS_JSON


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
    settings["total_train_batch_size"] = total_train_batch_size(args, num_processes)
    settings["mixed_precision"] = mixed_precision
    settings["backbones"] = {name: dict(values) for name, values in args.backbone_settings.items()}
    return settings


def check_settings(output_dir: Path, settings: dict) -> None:
    """Refuse to add runs to a study whose recorded runs were made with other settings (one error naming them; a
    backbone only one side has is no difference: a study may gain backbones)."""
    if (output_dir / RESULTS_CSV).is_file():
        check_settings_record(output_dir / SETTINGS_JSON, settings, f"The study in {output_dir}",
                              "Its results would not be comparable: use another --output_dir, or "
                              "--overwrite_output_dir to start over.")


def record_run(folder, settings: dict, row: dict, baselines: dict | None) -> None:
    """Append a finished run to the study's run folder, with the settings (and the data's baselines) it was made
    with; the folder's files appear only now, so a study that fails before its first run leaves nothing behind."""
    output_dir = folder.path
    output_dir.mkdir(parents=True, exist_ok=True)
    write_settings_record(output_dir / SETTINGS_JSON, settings)
    if baselines is not None:
        (output_dir / BASELINES_JSON).write_text(json.dumps(baselines, indent=2))
    append_result(output_dir / RESULTS_CSV, row)
    folder.record_outputs()


def open_record(accelerator, folder, args: argparse.Namespace) -> list[dict]:
    """The finished runs of the study in its run folder, read by the main process (after the settings check) and
    shared with every process, which must skip the same runs; so is an error. Nothing is created here (see
    `record_run`)."""
    from accelerate.utils import broadcast_object_list

    shared = [None, None]
    if accelerator.is_main_process:
        try:
            check_settings(folder.path, study_settings(args, accelerator.num_processes, accelerator.mixed_precision))
            shared[0] = read_results(folder.path / RESULTS_CSV)
        except (OSError, ValueError) as err:
            shared[1] = err
    broadcast_object_list(shared)
    rows, error = shared
    if error is not None:
        raise error
    return rows


__all__ = ["append_result", "check_settings", "open_record", "read_results", "record_run", "study_settings"]
