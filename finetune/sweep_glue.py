#!/usr/bin/env python
"""Run the paper's GLUE grid (batch size x learning rate, 4 epochs, max length 128) and report the best dev
score per task plus the GLUE average as a markdown table.

Every configuration is one `run_glue.py` run in `<output_dir>/<task>/bs<B>_lr<LR>/`; finished ones (with an
`all_results.json`) are skipped, so an interrupted sweep picks up where it stopped. Flags after `--` go to
every run_glue.py call; flags the grid sets itself (learning rate, batch size, epochs, max length, seed, ...)
are refused there. The settings that can change a result are recorded in `<output_dir>/sweep_settings.json`,
and a sweep with other settings refuses to add runs to (or report on) that folder.

    python finetune/sweep_glue.py --model_name_or_path chtan/ponet-base-uncased --tasks all \
        --output_dir sweeps/ponet-base -- --with_tracking

    # 4 GPUs per run: the grid's batch sizes are totals, split over the processes
    python finetune/sweep_glue.py --tasks mnli qqp --num_processes 4 --output_dir sweeps/big -- ...

    # Just print the table of an existing sweep
    python finetune/sweep_glue.py --tasks all --output_dir sweeps/ponet-base --report_only
"""

import argparse
import json
import logging
import math
import shlex
import subprocess
import sys
from pathlib import Path

from ponet_training.engine.run_folder import RunFolder
from ponet_training.engine.settings import check_settings_record, run_settings, write_settings_record
from ponet_training.script_loading import load_script
from ponet_training.tasks.glue import registry as glue_tasks


logger = logging.getLogger(__name__)

RUN_GLUE = Path(__file__).resolve().parent / "run_glue.py"


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["all"],
                        help=f"GLUE tasks ({', '.join(glue_tasks.GLUE_TASKS)}) or 'all'.")
    parser.add_argument("--model_name_or_path", type=str, default=None, help="Checkpoint to fine-tune.")
    parser.add_argument("--output_dir", type=str, required=True, help="Root folder of the sweep.")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=list(glue_tasks.PAPER_BATCH_SIZES),
                        help="Total train batch sizes of the grid.")
    parser.add_argument("--learning_rates", type=float, nargs="+", default=list(glue_tasks.PAPER_LEARNING_RATES),
                        help="Learning rates of the grid.")
    parser.add_argument("--num_train_epochs", type=int, default=glue_tasks.PAPER_NUM_EPOCHS)
    parser.add_argument("--max_length", type=int, default=glue_tasks.PAPER_MAX_LENGTH)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--glue_root", type=str, default=None,
                        help="Root of the original GLUE distribution (glue_data/): each task reads its folder "
                             "(CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI) instead of the Hub.")
    parser.add_argument("--num_processes", type=int, default=1,
                        help="Processes per run: >1 launches run_glue.py with `accelerate launch --multi_gpu`; the "
                             "per-device batch is the grid batch divided by this.")
    parser.add_argument("--launcher", type=str, default=None,
                        help="Command prefix for each run instead of the default (e.g. 'accelerate launch "
                             "--config_file fsdp.yaml').")
    parser.add_argument("--in_process", action="store_true",
                        help="Run each configuration inside this Python process (no launcher; one process).")
    parser.add_argument("--report_only", action="store_true", help="Only collect the finished runs and report.")
    args = parser.parse_args(argv)
    args.extra = extra
    args.task_list = list(glue_tasks.GLUE_TASKS) if args.tasks == ["all"] else [glue_tasks.get_task(t).name for t in args.tasks]
    for batch in args.batch_sizes:
        if batch < 1 or batch % args.num_processes:
            raise ValueError(f"Batch size {batch} is not a positive multiple of --num_processes {args.num_processes}")
    check_pass_through(args)
    return args


def check_pass_through(args) -> None:
    """Refuse flags after `--` that would override a flag the grid sets (also abbreviated, as argparse allows)."""
    owned = {flag[2:] for task in args.task_list
             for flag in grid_argv(args, task, args.batch_sizes[0], args.learning_rates[0]) if flag.startswith("--")}
    for token in args.extra:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0]
        clash = sorted(flag for flag in owned if flag == name or flag.startswith(name))
        if clash:
            raise ValueError(f"--{name} after `--` would override the grid's --{clash[0]}; set it with the sweep's "
                             "own flags (--learning_rates, --batch_sizes, --num_train_epochs, --max_length, --seed, "
                             "--model_name_or_path, --glue_root)")


# What the sweep's record leaves out besides the bookkeeping flags (`engine.settings`): the grid (another grid or
# more tasks over the same settings extend one table) and how the runs are started or reported.
SWEEP_AXES = frozenset({"tasks", "task_list", "batch_sizes", "learning_rates", "in_process", "report_only"})


def sweep_settings(args) -> dict:
    """Everything besides the grid that can change a run's result (`engine.settings.run_settings`)."""
    return run_settings(args, exclude=SWEEP_AXES)


SETTINGS_JSON = "sweep_settings.json"


def record_settings(args) -> dict:
    """Write the sweep's settings to `sweep_settings.json`, or check them against those already there: runs
    made under other settings must not be mixed into one table. Returns the settings."""
    settings = sweep_settings(args)
    path = Path(args.output_dir) / SETTINGS_JSON
    check_settings_record(path, settings, f"The sweep in {args.output_dir}", "Use another --output_dir or the same "
                                                                              "settings")
    write_settings_record(path, settings)
    return settings


def run_dir(output_dir, task: str, batch: int, lr: float) -> Path:
    return Path(output_dir) / task / f"bs{batch}_lr{lr:g}"


def run_glue_argv(args, task: str, batch: int, lr: float) -> list[str]:
    """run_glue.py flags of one grid point: the grid's, then the pass-through flags."""
    return grid_argv(args, task, batch, lr) + args.extra


def grid_argv(args, task: str, batch: int, lr: float) -> list[str]:
    """The run_glue.py flags the sweep sets for one grid point."""
    argv = ["--task_name", task, "--output_dir", str(run_dir(args.output_dir, task, batch, lr)),
            "--per_device_train_batch_size", str(batch // args.num_processes), "--learning_rate", f"{lr:g}",
            "--num_train_epochs", str(args.num_train_epochs), "--max_length", str(args.max_length),
            "--seed", str(args.seed)]
    if args.model_name_or_path:
        argv += ["--model_name_or_path", args.model_name_or_path]
    if args.glue_root:
        # The original distribution's folders are named like the tasks (glue_data/SST-2, glue_data/STS-B, ...).
        argv += ["--glue_dir", str(Path(args.glue_root) / glue_tasks.get_task(task).pretty_name)]
        if task == "mnli" and (Path(args.glue_root) / "diagnostic" / "diagnostic.tsv").is_file():
            argv += ["--ax_file", str(Path(args.glue_root) / "diagnostic" / "diagnostic.tsv")]
    return argv


def launch(args, argv: list[str]) -> None:
    """Run one configuration; raise if it fails."""
    if args.in_process:
        load_script(RUN_GLUE).main(argv)
        return
    if args.launcher:
        prefix = shlex.split(args.launcher)
    elif args.num_processes > 1:
        prefix = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(args.num_processes)]
    else:
        prefix = [sys.executable]
    command = prefix + [str(RUN_GLUE)] + argv
    logger.info("Running: %s", shlex.join(command))
    subprocess.run(command, check=True)


def collect(args) -> dict:
    """{task: {"best": figure in percent, "config": (batch, lr), "scores": entries, "runs": n}} of finished runs."""
    summary = {}
    for task_name in args.task_list:
        task = glue_tasks.get_task(task_name)
        best = None
        runs = 0
        for batch in args.batch_sizes:
            for lr in args.learning_rates:
                path = run_dir(args.output_dir, task_name, batch, lr) / "all_results.json"
                if not path.is_file():
                    continue
                runs += 1
                results = json.loads(path.read_text())
                scores = glue_tasks.glue_score_entries(task, results)
                # MNLI: pick the configuration by the mean of matched and mismatched.
                key = sum(scores.values()) / len(scores)
                if not math.isnan(key) and (best is None or key > best[0]):
                    best = (key, batch, lr, scores)
        if best is not None:
            summary[task_name] = {"best": best[0], "config": (best[1], best[2]), "scores": best[3], "runs": runs}
    return summary


def markdown_report(summary: dict, total_configs: int) -> str:
    """The best dev figure per task (%, with its batch size / learning rate) and the GLUE average."""
    lines = ["| Task | Metric | Best dev | Batch | LR | Runs |", "|---|---|---|---|---|---|"]
    scores = {}
    for task_name, entry in summary.items():
        task = glue_tasks.get_task(task_name)
        batch, lr = entry["config"]
        figure = " / ".join(f"{value:.2f}" for value in entry["scores"].values())
        metric = {"matthews_correlation": "Matthews corr."}.get(task.main_metric, task.main_metric)
        if task.name == "mnli":
            metric = "accuracy (m / mm)"
        lines.append(f"| {task.pretty_name} | {metric} | {figure} | {batch} | {lr:g} | {entry['runs']}/{total_configs} |")
        scores.update(entry["scores"])
    average = glue_tasks.glue_average(scores)
    published = glue_tasks.glue_average(glue_tasks.PUBLISHED_PONET_BASE_GLUE)
    if average is not None:
        lines.append(f"| **GLUE average** (MNLI m and mm as two entries, no WNLI) | | **{average:.2f}** | | | |")
    else:
        missing = [entry for entry in glue_tasks.GLUE_AVERAGE_ENTRIES if entry not in scores]
        lines.append(f"| GLUE average | | n/a (missing: {', '.join(missing)}) | | | |")
    lines.append("")
    lines.append(f"Published PoNet-Base GLUE dev average: {published:.2f}.")
    return "\n".join(lines)


def main(argv=None):
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    args = parse_args(argv)
    total = len(args.batch_sizes) * len(args.learning_rates)
    # The sweep's folder follows the rule of every run folder; running it again (its settings record is there)
    # picks up where it stopped. Each grid point is a run_glue.py run with a folder of its own inside.
    with RunFolder(args.output_dir, own_record=SETTINGS_JSON, how_to_resume=None,
                   inputs={"glue_root": Path(args.glue_root).resolve()} if args.glue_root else None) as folder:
        folder.claim()
        record_settings(args)
        if not args.report_only:
            for task in args.task_list:
                for batch in args.batch_sizes:
                    for lr in args.learning_rates:
                        if (run_dir(args.output_dir, task, batch, lr) / "all_results.json").is_file():
                            logger.info("Skipping %s bs=%d lr=%g: already finished", task, batch, lr)
                            continue
                        launch(args, run_glue_argv(args, task, batch, lr))
                        folder.record_outputs()
        summary = collect(args)
        report = markdown_report(summary, total)
        (folder.path / "sweep_results.md").write_text(report + "\n")
        (folder.path / "sweep_results.json").write_text(json.dumps(summary, indent=2))
    print(report)
    return summary


if __name__ == "__main__":
    main()
