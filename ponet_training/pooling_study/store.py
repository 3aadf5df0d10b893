"""The pooling study's record: `pooling_study.csv` (one row per finished run, appended at once) and
`study_settings.json` (the settings that change results; a resumed study must match them).

- `open_record(accelerator, args)`: on the main process, prepare `--output_dir` (`--overwrite_output_dir`
  starts over), check or write the settings and read the finished runs; every process gets the rows (or the error).
- `read_results(csv_path)`, `append_result(csv_path, row)`.
- `study_settings(args, num_processes, mixed_precision)`, `check_or_write_settings(output_dir, settings)`.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
from pathlib import Path

from .settings import CSV_COLUMNS, FIGURE_PNG, RESULTS_CSV, RUN_KEY, SETTINGS_JSON, TABLE_MD


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


def study_settings(args: argparse.Namespace, num_processes: int, mixed_precision: str) -> dict:
    """The settings that change a run's result: runs recorded under other settings are not comparable."""
    return {
        "dataset_name": args.dataset_name or (None if args.train_file else "sst2"),
        "dataset_config_name": args.dataset_config_name,
        "train_file": os.path.abspath(args.train_file) if args.train_file else None,
        "validation_file": os.path.abspath(args.validation_file) if args.validation_file else None,
        "text_column_name": args.text_column_name,
        "label_column_name": args.label_column_name,
        "validation_split_percentage": args.validation_split_percentage,
        "max_train_samples": args.max_train_samples,
        "max_eval_samples": args.max_eval_samples,
        "data_seed": args.seed,
        "max_length": args.max_length,
        "learning_rate": args.learning_rate,
        "probe_learning_rate": args.probe_learning_rate,
        "weight_decay": args.weight_decay,
        "num_train_epochs": args.num_train_epochs,
        "max_train_steps": args.max_train_steps,
        "total_train_batch_size": args.per_device_train_batch_size * num_processes * args.gradient_accumulation_steps,
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "num_warmup_steps": args.num_warmup_steps,
        "warmup_ratio": args.warmup_ratio,
        "max_grad_norm": args.max_grad_norm,
        "no_cls_pooler": args.no_cls_pooler,
        "mixed_precision": mixed_precision,
    }


def check_or_write_settings(output_dir: Path, settings: dict) -> None:
    """Write `study_settings.json`, or check that a resumed study's recorded settings are the same."""
    path = output_dir / SETTINGS_JSON
    if path.is_file():
        recorded = json.loads(path.read_text())
        differing = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
        if differing and (output_dir / RESULTS_CSV).is_file():
            details = ", ".join(f"{k}: recorded {old!r}, now {new!r}" for k, (old, new) in differing.items())
            raise ValueError(f"{output_dir} holds runs made with other settings ({details}). Their results would not "
                             "be comparable: use another --output_dir, or --overwrite_output_dir to start over.")
    path.write_text(json.dumps(settings, indent=2, sort_keys=True))



def open_record(accelerator, args: argparse.Namespace) -> list[dict]:
    """The finished runs of the study in `--output_dir`, read by the main process (after `--overwrite_output_dir`
    and the settings check) and shared with every process, which must skip the same runs; so is an error."""
    from accelerate.utils import broadcast_object_list

    output_dir = Path(args.output_dir)
    shared = [None, None]
    if accelerator.is_main_process:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            if args.overwrite_output_dir:
                for name in (RESULTS_CSV, TABLE_MD, FIGURE_PNG, SETTINGS_JSON, "all_results.json"):
                    (output_dir / name).unlink(missing_ok=True)
                logger.info("--overwrite_output_dir: starting the study in %s over", output_dir)
            check_or_write_settings(output_dir,
                                    study_settings(args, accelerator.num_processes, accelerator.mixed_precision))
            shared[0] = read_results(output_dir / RESULTS_CSV)
        except (OSError, ValueError) as err:
            shared[1] = err
    broadcast_object_list(shared)
    rows, error = shared
    if error is not None:
        raise error
    return rows


__all__ = ["append_result", "check_or_write_settings", "open_record", "read_results", "study_settings"]
