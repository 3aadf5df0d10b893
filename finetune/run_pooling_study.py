#!/usr/bin/env python
"""The pooling study: sentence pooling (cls, last, mean, max, weighted sum, weighted mean, attention) x backbones
(encoders and decoders) x seeds, frozen (linear probe) and fully fine-tuned, on a sentiment dataset.

    # SST-2 on a GPU, the three default backbones (PoNet, BERT, GPT-2), every pooling mode, 3 seeds:
    accelerate launch finetune/run_pooling_study.py --output_dir outputs/pooling_study

    # IMDb, two backbones, a few modes (and a concatenation), 2 seeds:
    accelerate launch finetune/run_pooling_study.py --dataset_name imdb --max_length 512 \\
        --model_name_or_path bert-base-uncased gpt2 --pooling cls last mean max mean+max --seeds 1 2

    # Local data (csv / tsv / json / jsonl with a text and a label column):
    python finetune/run_pooling_study.py --train_file train.csv --validation_file dev.csv ...

    # Human-rated movie-review sentences (prepared once from the vaderSentiment sdist), the real MiniLM at its own
    # learning rate and a random-init BERT of the same shape at another, frozen runs for 10 epochs:
    python finetune/run_pooling_study.py --dataset_name vader_movies \
        --model_name_or_path "$(python -m ponet_training.data.minilm)" --config_name configs/bert-mini \
        --tokenizer_name "$(python -m ponet_training.data.minilm)" --backbone_learning_rate all-MiniLM-L6-v2-0.1.2=5e-5 \
        "bert-mini (random init)=5e-4" --frozen_num_train_epochs 10

Run the same command again to resume an interrupted sweep, or to extend it with more backbones, modes or seeds:
the runs already in `<output_dir>/pooling_study.csv` are skipped; every other flag that can change a result is
recorded in `study_settings.json`, and a run under other settings is refused. The table and the figure are
rewritten after every finished run. The pieces (data, one run, the record, the
report) live in `ponet_training/tasks/pooling_study/`.
"""

import argparse
import gc
import logging
from dataclasses import dataclass
from pathlib import Path

from modeling_ponet import POOLING_MODES, parse_pooling_modes
from ponet_training.engine import run
from ponet_training.engine.run_folder import RunFolder
from ponet_training.provenance import write_provenance
from ponet_training.tasks.pooling_study import report, runs, store
from ponet_training.tasks.pooling_study.data import baseline_scores, load_sentiment_data
from ponet_training.tasks.pooling_study.settings import (
    DEFAULT_BACKBONES,
    DEFAULT_SEEDS,
    FIGURE_PNG,
    METRICS,
    RANDOM_INIT_PREFIX,
    REGIMES,
    RESULTS_CSV,
    RUN_KEY,
    TABLE_MD,
    TEXT_COLUMN_CANDIDATES,
    VADER_PRESETS,
    RunSpec,
    display_name,
)


logger = logging.getLogger(__name__)


def add_study_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The study's flags, plus `run.add_training_args`' (batch sizes, learning rate, epochs, ...)."""
    group = parser.add_argument_group("study")
    group.add_argument("--model_name_or_path", nargs="+", default=None,
                       help="Pretrained backbones to compare: Hub ids or local folders (loaded with AutoModel and "
                            f"AutoTokenizer). Default (with no --config_name): {list(DEFAULT_BACKBONES)}.")
    group.add_argument("--config_name", nargs="+", default=None,
                       help="Backbones with random weights built from these configs (Hub ids, folders or "
                            "config.json files), e.g. a random-init baseline of a pretrained backbone's shape.")
    group.add_argument("--tokenizer_name", type=str, default=None,
                       help="Tokenizer of the --config_name backbones and of backbone folders without tokenizer "
                            "files (default: the config folder's own).")
    group.add_argument("--backbone_learning_rate", nargs="+", default=[], metavar="BACKBONE=LR",
                       help="Full fine-tuning learning rate of one backbone (named as given, or as the table shows "
                            "it), overriding --learning_rate; a random-init backbone usually needs a larger one.")
    group.add_argument("--frozen_num_train_epochs", type=int, default=None,
                       help="Epochs of the frozen regime (default: --num_train_epochs).")
    group.add_argument("--full_num_train_epochs", type=int, default=None,
                       help="Epochs of the full regime (default: --num_train_epochs).")
    group.add_argument("--recompute_frozen_states", action="store_true",
                       help="Run the frozen backbone at every step instead of computing its token states once per "
                            "backbone (same result up to float rounding; slower; for checking).")
    group.add_argument("--pooling", nargs="+", default=list(POOLING_MODES),
                       help=f"Pooling modes to compare, from {POOLING_MODES}; join several with '+' to "
                            "concatenate them (e.g. mean+max). Default: all single modes.")
    group.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES,
                       help="frozen: linear probe on the pooled features of a frozen backbone; full: fine-tune "
                            "everything. Default: both.")
    group.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS),
                       help="One run per seed (classifier initialisation, data order, dropout). Default: %(default)s.")
    group.add_argument("--probe_learning_rate", type=float, default=1e-3,
                       help="Learning rate of the frozen regime (--learning_rate is the full fine-tuning one).")
    group.add_argument("--warmup_ratio", type=float, default=0.1,
                       help="Warm-up as a fraction of each run's updates, used when --num_warmup_steps is 0.")
    group.add_argument("--no_cls_pooler", action="store_true",
                       help="`cls` pools the first token's hidden state, not the backbone's pooler output "
                            "(BERT/PoNet's tanh(Dense(h[CLS])), used by default as in their classification heads; "
                            "use this flag for checkpoints whose pooler was never trained).")
    group.add_argument("--metric", default="accuracy", choices=METRICS,
                       help="Dev metric of the table and the figure (every metric goes to the CSV).")
    group.add_argument("--figure_title", type=str, default=None,
                       help="Caption of the figure (default: the dataset).")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", type=str, default=None,
                      help=f"{', '.join(VADER_PRESETS)}: sentences rated by people (Hutto & Gilbert 2014), "
                           "prepared once from the vaderSentiment sdist, with majority and VADER baselines; 'sst2' "
                           "(nyu-mll/glue), 'imdb' (stanfordnlp/imdb) or any Hub dataset with a text and a label "
                           "column. Default: sst2 unless --train_file is given.")
    data.add_argument("--dataset_config_name", type=str, default=None, help="Configuration of --dataset_name.")
    data.add_argument("--train_file", type=str, default=None, help="Local training data: csv, tsv, json or jsonl.")
    data.add_argument("--validation_file", type=str, default=None,
                      help="Local evaluation data (default: --validation_split_percentage of the training file).")
    data.add_argument("--text_column_name", type=str, default=None,
                      help=f"Text column (default: the first of {TEXT_COLUMN_CANDIDATES} present).")
    data.add_argument("--label_column_name", type=str, default="label", help="Label column (ints or strings).")
    data.add_argument("--validation_split_percentage", type=int, default=10,
                      help="Percentage of the training data held out for evaluation when there is no "
                           "evaluation split.")
    data.add_argument("--max_train_samples", type=int, default=None,
                      help="Use the first this many training examples (as run_glue).")
    data.add_argument("--max_eval_samples", type=int, default=None,
                      help="Use the first this many evaluation examples.")
    data.add_argument("--max_length", type=int, default=128, help="Longer texts are truncated (and counted in the log).")
    data.add_argument("--cache_dir", type=str, default=None, help="Where to cache Hub downloads.")

    run.add_training_args(parser)
    parser.set_defaults(learning_rate=2e-5, per_device_train_batch_size=32, per_device_eval_batch_size=64,
                        num_train_epochs=3, output_dir="pooling_study", weight_decay=0.01)
    return parser


def check_study_args(args: argparse.Namespace) -> None:
    """Raise one clear error for flags the study cannot honour; normalise the sweep lists."""
    run.check_training_args(args)
    if args.resume_from_checkpoint or args.checkpointing_steps:
        raise ValueError("The pooling study resumes at the granularity of runs (finished runs are read back from "
                         f"{RESULTS_CSV}); it does not take --checkpointing_steps / --resume_from_checkpoint. "
                         "Run the same command again to resume.")
    if args.push_to_hub:
        raise ValueError("The pooling study saves no model, so there is nothing to --push_to_hub; publish the CSV, "
                         "table and figure it writes instead.")
    if args.output_dir is None:
        raise ValueError("`--output_dir` is required: the study keeps its record of finished runs there")
    args.pooling = list(dict.fromkeys("+".join(parse_pooling_modes(p)) for p in args.pooling))
    if not (args.model_name_or_path or args.config_name):
        args.model_name_or_path = list(DEFAULT_BACKBONES)
    args.backbones = list(dict.fromkeys([*(args.model_name_or_path or []),
                                         *(RANDOM_INIT_PREFIX + c for c in args.config_name or [])]))
    args.backbone_settings = backbone_settings(args)
    args.regimes = list(dict.fromkeys(args.regimes))
    args.seeds = list(dict.fromkeys(args.seeds))
    for name in ("max_train_samples", "max_eval_samples", "max_length", "frozen_num_train_epochs",
                 "full_num_train_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"`--{name}` must be at least 1, got {value}")
    if not 0 < args.validation_split_percentage < 100:
        raise ValueError(f"`--validation_split_percentage` must be in (0, 100), got {args.validation_split_percentage}")
    if not 0 <= args.warmup_ratio < 1:
        raise ValueError(f"`--warmup_ratio` must be in [0, 1), got {args.warmup_ratio}")
    if args.validation_file and not args.train_file:
        raise ValueError("`--validation_file` needs a `--train_file`")
    if args.train_file and args.dataset_name:
        raise ValueError("Pass either `--dataset_name` or `--train_file`, not both")


def backbone_settings(args: argparse.Namespace) -> dict[str, dict]:
    """Each backbone's learning rate and epochs per regime (recorded with the study), from --learning_rate,
    --probe_learning_rate, --backbone_learning_rate and the epoch flags."""
    by_name = {}
    for entry in args.backbone_learning_rate:
        name, sep, value = entry.rpartition("=")
        try:
            by_name[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"--backbone_learning_rate takes BACKBONE=LR entries, got {entry!r}")
    unknown = [n for n in by_name if not any(n in (b, display_name(b)) for b in args.backbones)]
    if unknown:
        raise ValueError(f"--backbone_learning_rate names no backbone of this study: {unknown}; the backbones are "
                         f"{[display_name(b) for b in args.backbones]}")
    settings = {}
    for backbone in args.backbones:
        full = next((by_name[n] for n in (backbone, display_name(backbone)) if n in by_name), args.learning_rate)
        settings[backbone] = {
            "full_learning_rate": full, "frozen_learning_rate": args.probe_learning_rate,
            "full_num_train_epochs": args.full_num_train_epochs or args.num_train_epochs,
            "frozen_num_train_epochs": args.frozen_num_train_epochs or args.num_train_epochs,
            "tokenizer": args.tokenizer_name if backbone.startswith(RANDOM_INIT_PREFIX) else None,
        }
    return settings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_args(parser)
    args = parser.parse_args(argv)
    check_study_args(args)
    return args


@dataclass
class StudyResult:
    """What a sweep did: runs trained now, runs skipped as already finished, and the files written."""

    num_trained: int
    num_skipped: int
    rows: list[dict]
    csv_path: Path
    table_path: Path | None
    figure_path: Path | None


def main(argv=None) -> StudyResult:
    args = parse_args(argv)
    # The study resumes by being run again: its own record is the one content its folder may hold without a flag.
    with RunFolder.for_run(args, own_record=RESULTS_CSV, how_to_resume=None) as folder:
        accelerator = run.build_accelerator(args)
        run.setup_logging(accelerator)
        folder.claim(accelerator)
        accelerator.print(f"Pooling study on {accelerator.num_processes} process(es), device {accelerator.device}, "
                          f"mixed precision {accelerator.mixed_precision}")
        output_dir = folder.path
        csv_path = output_dir / RESULTS_CSV
        rows = store.open_record(accelerator, folder, args)
        done = {tuple(str(row[k]) for k in RUN_KEY) for row in rows}

        specs = [RunSpec(b, r, p, s) for b in args.backbones for r in args.regimes for p in args.pooling
                 for s in args.seeds]
        todo = [spec for spec in specs if spec.key() not in done]
        num_skipped = len(specs) - len(todo)
        if num_skipped:
            logger.info("Resuming: %d of the %d runs of this sweep are already in %s and are skipped", num_skipped,
                        len(specs), csv_path)
        run.init_tracking(accelerator, args, "pooling_study")

        data = load_sentiment_data(args) if todo else None
        if data is not None and args.metric == "f1" and data.num_labels != 2:
            logger.info("%d classes: the 'f1' column holds macro-F1", data.num_labels)
        settings = store.study_settings(args, accelerator.num_processes, accelerator.mixed_precision)
        baselines = baseline_scores(data) if data is not None and accelerator.is_main_process else None
        title = args.figure_title or f"data: {report.describe_data(args)}"
        trained = 0
        for backbone_name in dict.fromkeys(spec.backbone for spec in todo):
            backbone = runs.load_backbone(accelerator, args, backbone_name, data)
            for spec in [s for s in todo if s.backbone == backbone_name]:
                logger.info("Run %d/%d: %s", num_skipped + trained + 1, len(specs), spec)
                row = runs.train_and_evaluate(accelerator, args, backbone, spec, data)
                if accelerator.is_main_process:
                    store.record_run(folder, settings, row, baselines)
                    if trained == 0:  # what made the runs of this session (a resumed study keeps the earlier ones)
                        write_provenance(output_dir, keep_earlier=True)
                    # After every run, so that an interrupted sweep still has its table and figure.
                    report.write_summary(output_dir, args.metric, title=title)
                accelerator.wait_for_everyone()
                rows.append(row)
                trained += 1
                logger.info("Finished %s: accuracy %.4f, f1 %.4f (%.1f s)", spec, row["accuracy"], row["f1"],
                            row["train_time_s"] + row["eval_time_s"])
            del backbone
            gc.collect()

        table_path = figure_path = None
        if accelerator.is_main_process and rows:
            report.write_summary(output_dir, args.metric, title=title)
            table_path, figure_path = output_dir / TABLE_MD, output_dir / FIGURE_PNG
            logger.info("Pooling study (%d runs in %s):\n%s", len(rows), csv_path,
                        (output_dir / TABLE_MD).read_text())
        if args.with_tracking:
            accelerator.end_training()
        accelerator.print(f"Trained {trained} run(s), skipped {num_skipped} finished run(s); results in {csv_path}")
    return StudyResult(num_trained=trained, num_skipped=num_skipped, rows=rows, csv_path=csv_path,
                       table_path=table_path, figure_path=figure_path)


if __name__ == "__main__":
    main()
