"""The pooling study: how the choice of sentence pooling changes sentiment classification, per backbone.

Sweeps backbones (any model ids or folders: encoders such as PoNet and BERT, decoders such as GPT-2)
x regimes (`frozen`: a linear probe on pooled features of a frozen backbone; `full`: full fine-tuning)
x pooling modes (`SequencePooler`'s, alone or concatenated with `+`) x seeds, on a sentiment dataset
(SST-2 or IMDb from the Hub, or local csv/tsv/json files with a text and a label column).

Every finished run is appended to `pooling_study.csv` at once; that file is the record of the study:
running again with the same output folder skips the runs it already holds, so an interrupted sweep
resumes where it stopped and a sweep can be extended with more backbones, modes or seeds. The settings
that change results (data, lengths, learning rates, steps, batch size, ...) are kept in
`study_settings.json`; resuming with different ones is refused rather than mixing incomparable runs.
From the CSV the study writes `pooling_study.md` (mean +- std over seeds, the best pooling of each
backbone and regime in bold), `pooling_study.png` (grouped bars with error bars) and `all_results.json`.

`finetune/run_pooling_study.py` is the command line; `run_study(args)` is the whole study.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import logging
import math
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import training as T
from .metrics import classification_metrics
from .pooled_classifier import PooledSequenceClassifier, ensure_pad_token
from .pooling import POOLING_MODES, parse_pooling_modes


logger = logging.getLogger(__name__)

DEFAULT_BACKBONES = ("chtan/ponet-base-uncased", "bert-base-uncased", "gpt2")
REGIMES = ("frozen", "full")
DEFAULT_SEEDS = (42, 43, 44)
METRICS = ("accuracy", "f1", "macro_f1")

# Shortcuts for the two sentiment datasets of the study: (Hub id, config, text column, evaluation split).
HUB_DATASETS = {
    "sst2": ("nyu-mll/glue", "sst2", "sentence", "validation"),
    "imdb": ("stanfordnlp/imdb", None, "text", "test"),
}
TEXT_COLUMN_CANDIDATES = ("sentence", "text", "review", "content", "document")

RESULTS_CSV = "pooling_study.csv"
TABLE_MD = "pooling_study.md"
FIGURE_PNG = "pooling_study.png"
SETTINGS_JSON = "study_settings.json"
CSV_COLUMNS = (
    "backbone", "regime", "pooling", "seed",
    "accuracy", "f1", "macro_f1", "eval_loss", "train_loss", "majority_baseline",
    "num_train_examples", "num_eval_examples", "train_steps", "learning_rate", "trainable_parameters",
    "train_time_s", "eval_time_s", "finished_at",
)
RUN_KEY = ("backbone", "regime", "pooling", "seed")


# ------------------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------------------


def add_study_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The study's flags, plus `training.add_training_args`' (batch sizes, learning rate, epochs, ...)."""
    group = parser.add_argument_group("study")
    group.add_argument("--model_name_or_path", nargs="+", default=list(DEFAULT_BACKBONES),
                       help="Backbones to compare: Hub ids or local folders (loaded with AutoModel and "
                            "AutoTokenizer). Default: %(default)s.")
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
    group.add_argument("--overwrite_output_dir", action="store_true",
                       help="Start the study over: delete the CSV, table, figure and settings in --output_dir.")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", type=str, default=None,
                      help="'sst2' (nyu-mll/glue), 'imdb' (stanfordnlp/imdb) or any Hub dataset with a text and a "
                           "label column. Default: sst2 unless --train_file is given.")
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
                      help="Use a random subset of this many training examples (seeded by --seed).")
    data.add_argument("--max_eval_samples", type=int, default=None,
                      help="Use a random subset of this many evaluation examples (seeded by --seed).")
    data.add_argument("--max_length", type=int, default=128, help="Longer texts are truncated (and counted in the log).")
    data.add_argument("--cache_dir", type=str, default=None, help="Where to cache Hub downloads.")

    T.add_training_args(parser)
    parser.set_defaults(learning_rate=2e-5, per_device_train_batch_size=32, per_device_eval_batch_size=64,
                        num_train_epochs=3, output_dir="pooling_study", weight_decay=0.01)
    return parser


def check_study_args(args: argparse.Namespace) -> None:
    """Raise one clear error for flags the study cannot honour; normalise the sweep lists."""
    T.check_training_args(args)
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
    args.model_name_or_path = list(dict.fromkeys(args.model_name_or_path))
    args.regimes = list(dict.fromkeys(args.regimes))
    args.seeds = list(dict.fromkeys(args.seeds))
    for name in ("max_train_samples", "max_eval_samples", "max_length"):
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


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------


@dataclass
class SentimentData:
    """Train and evaluation splits with columns `text` (str) and `label` (int in [0, num_labels))."""

    train: object  # datasets.Dataset
    eval: object
    label_names: list[str]
    source: str

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def _read_local(path: str):
    from datasets import Dataset

    from .glue import read_table

    columns, rows = read_table(path)
    return Dataset.from_dict({column: [row.get(column) for row in rows] for column in columns})


def _load_raw(args):
    """(train, eval or None, description, default text column) before any cleaning."""
    if args.train_file:
        train = _read_local(args.train_file)
        evaluation = _read_local(args.validation_file) if args.validation_file else None
        return train, evaluation, args.train_file, None
    from datasets import load_dataset

    name = args.dataset_name or "sst2"
    config, text_column, eval_split = args.dataset_config_name, None, None
    if name.lower() in HUB_DATASETS:
        name, default_config, text_column, eval_split = HUB_DATASETS[name.lower()]
        config = config or default_config
    raw = load_dataset(name, config, cache_dir=args.cache_dir)
    if "train" not in raw:
        raise ValueError(f"Dataset {name} ({config}) has no 'train' split; it has {list(raw)}")
    if eval_split is None:
        eval_split = next((s for s in ("validation", "test") if s in raw), None)
    description = name + (f" ({config})" if config else "")
    return raw["train"], (raw[eval_split] if eval_split else None), description, text_column


def _label_names(train, label_column: str) -> list:
    feature = train.features[label_column]
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    values = set(train[label_column])
    for value in values:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"Label column {label_column!r} holds non-integer numbers ({value}); the pooling study "
                             "is a classification study")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [str(int(v)) for v in sorted(values)]
    names = sorted({str(v).strip() for v in values})
    if all(n.lstrip("-").isdigit() for n in names):  # "0"/"1"/"10" read from csv: numeric order
        names.sort(key=int)
    return names


def load_sentiment_data(args: argparse.Namespace) -> SentimentData:
    """Load the study's data (Hub or local files) as `SentimentData`; raise a clear error for anything unusable.

    Rows with an empty text are dropped (and counted in the log); labels may be ints or strings (mapped to ids
    in sorted order, or by the dataset's `ClassLabel` names); evaluation labels must occur in the training data.
    """
    train, evaluation, source, hub_text_column = _load_raw(args)
    text_column = args.text_column_name or hub_text_column or next(
        (c for c in TEXT_COLUMN_CANDIDATES if c in train.column_names), None)
    label_column = args.label_column_name
    for split_name, split in (("training", train), ("evaluation", evaluation)):
        if split is None:
            continue
        if len(split) == 0:
            raise ValueError(f"The {split_name} data of {source} is empty")
        for kind, column in (("text", text_column), ("label", label_column)):
            if column is None or column not in split.column_names:
                named = f"{column!r} " if column else ""
                raise ValueError(f"The {split_name} data of {source} has no {kind} column {named}"
                                 f"(columns: {split.column_names}); pass --{kind}_column_name")

    def clean(split, split_name):
        split = split.select_columns([text_column, label_column])
        before = len(split)
        split = split.filter(lambda t: [isinstance(x, str) and x.strip() != "" for x in t], input_columns=text_column,
                             batched=True)
        if len(split) < before:
            logger.warning("Dropped %d of %d %s examples with an empty text", before - len(split), before, split_name)
        if len(split) == 0:
            raise ValueError(f"The {split_name} data of {source} has no example with a non-empty text")
        return split

    train = clean(train, "training")
    label_names = _label_names(train, label_column)
    if evaluation is None:
        split = train.train_test_split(test_size=args.validation_split_percentage / 100, seed=args.seed)
        train, evaluation = split["train"], split["test"]
        logger.info("No evaluation split: held out %d%% of the training data (%d examples)",
                    args.validation_split_percentage, len(evaluation))
    else:
        evaluation = clean(evaluation, "evaluation")
    if len(label_names) < 2:
        raise ValueError(f"The training data of {source} has a single label ({label_names}); need at least two classes")

    has_class_names = getattr(train.features[label_column], "names", None) is not None
    index = {name: i for i, name in enumerate(label_names)}

    def to_id(value):
        if has_class_names:
            return value if isinstance(value, int) and 0 <= value < len(label_names) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(int(value))
        return index.get(str(value).strip())

    def map_labels(split, split_name):
        ids = [to_id(v) for v in split[label_column]]
        bad = sorted({str(v) for v, i in zip(split[label_column], ids) if i is None})
        if bad:
            raise ValueError(f"The {split_name} data of {source} has labels outside the training label set "
                             f"{label_names}: {bad[:10]} (a test split without labels cannot be used for evaluation)")
        split = split.remove_columns(label_column).add_column("label", ids)
        return split.rename_column(text_column, "text") if text_column != "text" else split

    train, evaluation = map_labels(train, "training"), map_labels(evaluation, "evaluation")
    for split_name, limit in (("training", args.max_train_samples), ("evaluation", args.max_eval_samples)):
        split = train if split_name == "training" else evaluation
        if limit is not None and limit < len(split):
            logger.info("Using a random subset of %d of the %d %s examples (--max_%s_samples)", limit, len(split),
                        split_name, "train" if split_name == "training" else "eval")
            split = split.shuffle(seed=args.seed).select(range(limit))
            if split_name == "training":
                train = split
            else:
                evaluation = split
    logger.info("Data: %s, %d training / %d evaluation examples, labels %s", source, len(train), len(evaluation),
                label_names)
    return SentimentData(train=train, eval=evaluation, label_names=label_names, source=source)


def tokenize_for_backbone(accelerator, args, tokenizer, data: SentimentData, name: str):
    """Tokenize both splits with `tokenizer` (truncating to --max_length, logged); returns (train, eval) datasets
    with `input_ids`, `attention_mask` (and `token_type_ids` when the tokenizer makes them) and `labels`."""

    def tokenize(batch):
        encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
        # One token more than allowed tells which texts the truncation cut.
        longer = tokenizer(batch["text"], truncation=True, max_length=args.max_length + 1)["input_ids"]
        encoded["truncated"] = [len(ids) > args.max_length for ids in longer]
        encoded["labels"] = batch["label"]
        return encoded

    splits = []
    for split_name, split in (("training", data.train), ("evaluation", data.eval)):
        with accelerator.main_process_first():
            tokenized = split.map(tokenize, batched=True, remove_columns=split.column_names,
                                  num_proc=args.preprocessing_num_workers,
                                  load_from_cache_file=not args.overwrite_cache,
                                  desc=f"Tokenizing the {split_name} data for {name}")
        truncated = sum(tokenized["truncated"])
        if truncated:
            logger.info("%s: %d of %d %s examples are longer than --max_length %d tokens and were truncated",
                        name, truncated, len(tokenized), split_name, args.max_length)
        splits.append(tokenized.remove_columns("truncated"))
    return splits


# ------------------------------------------------------------------------------------------------------------
# One run
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Backbone:
    """What every run of one backbone shares: its name, tokenizer, config, loaded weights and tokenized data."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    train_dataset: object
    eval_dataset: object


def load_backbone(accelerator, args, name: str, data: SentimentData) -> Backbone:
    """Tokenizer (with a pad token: decoders get EOS, logged), config and weights of one backbone, and its data."""
    import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    common = dict(cache_dir=args.cache_dir, trust_remote_code=args.trust_remote_code)
    config = AutoConfig.from_pretrained(name, **common)
    tokenizer = AutoTokenizer.from_pretrained(name, **common)
    try:
        ensure_pad_token(tokenizer, config, use_eos_as_pad=True)
    except ValueError as err:
        raise ValueError(f"Backbone {name!r}: {err}") from None
    model = AutoModel.from_pretrained(name, config=config, **common)
    train_dataset, eval_dataset = tokenize_for_backbone(accelerator, args, tokenizer, data, name)
    return Backbone(name=name, tokenizer=tokenizer, model=model, train_dataset=train_dataset, eval_dataset=eval_dataset)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the sweep."""

    backbone: str
    regime: str
    pooling: str
    seed: int

    def key(self) -> tuple[str, str, str, str]:
        return (self.backbone, self.regime, self.pooling, str(self.seed))

    def __str__(self) -> str:
        return f"backbone={self.backbone} regime={self.regime} pooling={self.pooling} seed={self.seed}"


@torch.no_grad()
def evaluate_classifier(accelerator, model, dataloader, num_labels: int) -> dict[str, float]:
    """Accuracy, F1 (binary for two classes), macro-F1 and loss on `dataloader`, gathered over processes."""
    model.eval()
    logits_all, labels_all = [], []
    for batch in dataloader:
        labels = batch.pop("labels")
        with accelerator.autocast():
            logits = model(**batch).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, labels))
        logits_all.append(logits.cpu())
        labels_all.append(labels.cpu())
    logits, labels = torch.cat(logits_all), torch.cat(labels_all)
    scores = classification_metrics(logits.argmax(-1).numpy(), labels.numpy(), num_labels=num_labels)
    return {
        "accuracy": scores["accuracy"],
        "f1": scores.get("f1", scores["macro_f1"]),
        "macro_f1": scores["macro_f1"],
        "eval_loss": float(torch.nn.functional.cross_entropy(logits, labels)),
    }


def train_and_evaluate(accelerator, args, backbone: Backbone, spec: RunSpec, data: SentimentData) -> dict:
    """Train one pooled classifier (frozen or full regime) and evaluate it on the evaluation split; one CSV row."""
    from accelerate.utils import set_seed
    from transformers import DataCollatorWithPadding

    set_seed(spec.seed)
    run_args = copy.copy(args)
    frozen = spec.regime == "frozen"
    run_args.learning_rate = args.probe_learning_rate if frozen else args.learning_rate
    model = PooledSequenceClassifier(
        copy.deepcopy(backbone.model), spec.pooling, num_labels=data.num_labels,
        problem_type="single_label_classification", freeze_backbone=frozen, cls_from_pooler=not args.no_cls_pooler,
        id2label=dict(enumerate(data.label_names)),
    )
    if not frozen:
        T.maybe_enable_gradient_checkpointing(model.backbone, run_args)
    pad_multiple = 8 if accelerator.mixed_precision in ("fp16", "bf16") else None
    collator = DataCollatorWithPadding(backbone.tokenizer, pad_to_multiple_of=pad_multiple)
    train_dataloader = T.build_train_dataloader(backbone.train_dataset, args.per_device_train_batch_size,
                                                collate_fn=collator, seed=spec.seed,
                                                num_workers=args.dataloader_num_workers)
    eval_dataloader = T.build_eval_dataloader(backbone.eval_dataset, args.per_device_eval_batch_size,
                                              collate_fn=collator, num_workers=args.dataloader_num_workers)
    optimizer = T.create_optimizer(model, run_args)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader)
    T.resolve_train_steps(run_args, len(train_dataloader))
    if run_args.num_warmup_steps == 0 and args.warmup_ratio > 0:
        run_args.num_warmup_steps = math.ceil(args.warmup_ratio * run_args.max_train_steps)
    lr_scheduler = accelerator.prepare(T.create_scheduler(optimizer, run_args, accelerator.num_processes))

    run_name = f"{display_name(spec.backbone)}/{spec.regime}/{spec.pooling}/seed{spec.seed}"
    bar = T.ProgressBar(accelerator, run_args.max_train_steps, desc=f"{spec.regime} {spec.pooling} s{spec.seed}")
    start, completed_steps, losses = time.perf_counter(), 0, []
    for epoch in range(run_args.num_train_epochs):
        model.train()
        for batch in T.epoch_dataloader(accelerator, train_dataloader, epoch):
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                T.optimization_step(accelerator, model, loss, optimizer, lr_scheduler, args.max_grad_norm)
            losses.append(loss.item())
            if accelerator.sync_gradients:
                completed_steps += 1
                bar.update(loss=losses[-1], tokens=int(batch["attention_mask"].sum()))
                if args.with_tracking and completed_steps % args.logging_steps == 0:
                    accelerator.log({f"{run_name}/train_loss": losses[-1]}, step=completed_steps)
                if completed_steps >= run_args.max_train_steps:
                    break
            else:
                bar.add_tokens(int(batch["attention_mask"].sum()))
        if completed_steps >= run_args.max_train_steps:
            break
    bar.close()
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate_classifier(accelerator, model, eval_dataloader, data.num_labels)
    eval_time = time.perf_counter() - start
    if args.with_tracking:
        accelerator.log({f"{run_name}/{k}": v for k, v in scores.items()}, step=completed_steps)
    trainable = accelerator.unwrap_model(model).num_trainable_parameters()

    # Drop the accelerator's references to this run's model and optimizer (and collect them) before the next run.
    del model, optimizer, lr_scheduler, train_dataloader, eval_dataloader
    accelerator.free_memory()

    majority = Counter(data.eval["label"]).most_common(1)[0][1] / len(data.eval)
    return {
        "backbone": spec.backbone, "regime": spec.regime, "pooling": spec.pooling, "seed": spec.seed,
        **scores,
        "train_loss": sum(losses) / max(len(losses), 1),
        "majority_baseline": majority,
        "num_train_examples": len(data.train),
        "num_eval_examples": len(data.eval),
        "train_steps": completed_steps,
        "learning_rate": run_args.learning_rate,
        "trainable_parameters": trainable,
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------------------------
# The record: CSV, settings, resume
# ------------------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------------------
# Summary: markdown table and figure
# ------------------------------------------------------------------------------------------------------------


def describe_data(args: argparse.Namespace) -> str:
    """The dataset in a few words, for the figure."""
    if args.train_file:
        return os.path.basename(args.train_file)
    name = args.dataset_name or "sst2"
    return name + (f"/{args.dataset_config_name}" if args.dataset_config_name else "")


def display_name(backbone: str) -> str:
    """A short name for tables: the folder name of a local path, the Hub id as it is otherwise."""
    return os.path.basename(os.path.normpath(backbone)) if os.path.isdir(backbone) else backbone


@dataclass
class Cell:
    """Mean and sample standard deviation of a metric over the seeds of one (backbone, regime, pooling)."""

    backbone: str
    regime: str
    pooling: str
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0


def summarize(rows: list[dict], metric: str = "accuracy") -> list[Cell]:
    """One `Cell` per (backbone, regime, pooling), in the order the CSV first lists them."""
    cells: dict[tuple, Cell] = {}
    for row in rows:
        key = (row["backbone"], row["regime"], row["pooling"])
        cells.setdefault(key, Cell(*key)).values.append(float(row[metric]))
    return list(cells.values())


def _ordered(values):
    return list(dict.fromkeys(values))


def markdown_table(cells: list[Cell], metric: str = "accuracy", baselines: dict | None = None) -> str:
    """Markdown table: one row per backbone and regime, one column per pooling, `mean ± std` of the metric in %
    over seeds (just the mean for a single seed); the best pooling of each row in bold."""
    poolings = _ordered(c.pooling for c in cells)
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    seeds = sorted({c.n for c in cells})
    header = ["backbone", "regime", *poolings]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + [":---:"] * len(poolings)) + "|"]
    for backbone in _ordered(c.backbone for c in cells):
        for regime in [r for r in REGIMES if any(c.backbone == backbone and c.regime == r for c in cells)]:
            row_cells = [by_key.get((backbone, regime, p)) for p in poolings]
            best = max(c.mean for c in row_cells if c is not None)
            entries = []
            for cell in row_cells:
                if cell is None:
                    entries.append("–")
                    continue
                text = f"{100 * cell.mean:.1f}" + (f" ± {100 * cell.std:.1f}" if cell.n > 1 else "")
                entries.append(f"**{text}**" if cell.mean == best else text)
            lines.append("| " + " | ".join([display_name(backbone), regime, *entries]) + " |")
    note = f"Dev {metric.replace('_', '-')} (%), mean ± standard deviation over {' / '.join(map(str, seeds))} seed(s)"
    if baselines:
        note += "; majority-class baseline " + ", ".join(f"{100 * v:.1f}" for v in sorted(set(baselines.values())))
    note += ". Bold: the best pooling of each backbone and regime."
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot_study(cells: list[Cell], path: str | os.PathLike, metric: str = "accuracy",
               baseline: float | None = None, title: str | None = None) -> Path:
    """Grouped bar chart (PNG): one panel per regime, a group of bars per backbone, one bar per pooling,
    error bars = standard deviation over seeds; a dashed line at the majority-class baseline when given."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    poolings = _ordered(c.pooling for c in cells)
    backbones = _ordered(c.backbone for c in cells)
    regimes = [r for r in REGIMES if any(c.regime == r for c in cells)]
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    width = 0.8 / len(poolings)
    colors = plt.get_cmap("tab10" if len(poolings) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(regimes), figsize=(max(4.5, 1.1 + 0.32 * len(poolings) * len(backbones)) * len(regimes),
                                                       3.8), sharey=True, squeeze=False)
    low = min(c.mean - c.std for c in cells)
    floor = max(0.0, min(low, baseline if baseline is not None else low) - 0.05)
    for ax, regime in zip(axes[0], regimes):
        for j, pooling in enumerate(poolings):
            xs, means, stds = [], [], []
            for i, backbone in enumerate(backbones):
                cell = by_key.get((backbone, regime, pooling))
                if cell is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    means.append(100 * cell.mean)
                    stds.append(100 * cell.std)
            ax.bar(xs, means, width, yerr=stds, capsize=2, color=colors(j), label=pooling, edgecolor="black",
                   linewidth=0.3, error_kw=dict(linewidth=0.8))
        if baseline is not None:
            ax.axhline(100 * baseline, color="gray", linestyle="--", linewidth=1, label="majority class")
        ax.set_xticks(range(len(backbones)))
        ax.set_xticklabels([display_name(b) for b in backbones], fontsize=8)
        ax.set_title({"frozen": "frozen backbone (linear probe)", "full": "full fine-tuning"}[regime], fontsize=10)
        ax.set_ylim(bottom=100 * floor)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"dev {metric.replace('_', '-')} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9, y=0.02, va="bottom")
    fig.tight_layout(rect=(0, 0.05 if title else 0, 1, 0.93))
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_summary(output_dir: str | os.PathLike, metric: str = "accuracy", title: str | None = None) -> dict:
    """(Re)write the table, the figure and `all_results.json` from the CSV; returns what went into all_results."""
    output_dir = Path(output_dir)
    rows = read_results(output_dir / RESULTS_CSV)
    if not rows:
        raise ValueError(f"No finished run in {output_dir / RESULTS_CSV}: nothing to summarise")
    cells = summarize(rows, metric)
    baselines = {(r["backbone"], r["regime"]): r["majority_baseline"] for r in rows if r.get("majority_baseline") != ""}
    baseline_values = sorted(set(baselines.values()))
    table = markdown_table(cells, metric, baselines)
    (output_dir / TABLE_MD).write_text(table)
    plot_study(cells, output_dir / FIGURE_PNG, metric,
               baseline=baseline_values[0] if len(baseline_values) == 1 else None, title=title)
    results = {
        "metric": metric,
        "num_runs": len(rows),
        "results": [
            {"backbone": c.backbone, "regime": c.regime, "pooling": c.pooling, "seeds": c.n,
             f"{metric}_mean": c.mean, f"{metric}_std": c.std}
            for c in cells
        ],
    }
    T.write_all_results(output_dir, results)
    return results


# ------------------------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------------------------


@dataclass
class StudyResult:
    """What `run_study` did: runs trained now, runs skipped as already finished, and the files written."""

    num_trained: int
    num_skipped: int
    rows: list[dict]
    csv_path: Path
    table_path: Path | None
    figure_path: Path | None


def run_study(args: argparse.Namespace, accelerator=None) -> StudyResult:
    """Run (or resume) the sweep described by `args` (see `add_study_args`) and write the CSV, table and figure."""
    from accelerate.utils import broadcast_object_list

    check_study_args(args)
    if accelerator is None:
        accelerator = T.build_accelerator(args)
    output_dir = Path(args.output_dir)
    csv_path = output_dir / RESULTS_CSV
    # The main process reads the record (every process must skip the same runs) and shares it, or its error.
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
            shared[0] = read_results(csv_path)
        except (OSError, ValueError) as err:
            shared[1] = err
    broadcast_object_list(shared)
    rows, error = shared
    if error is not None:
        raise error
    done = {tuple(str(row[k]) for k in RUN_KEY) for row in rows}

    specs = [RunSpec(b, r, p, s) for b in args.model_name_or_path for r in args.regimes for p in args.pooling
             for s in args.seeds]
    todo = [spec for spec in specs if spec.key() not in done]
    num_skipped = len(specs) - len(todo)
    if num_skipped:
        logger.info("Resuming: %d of the %d runs of this sweep are already in %s and are skipped", num_skipped,
                    len(specs), csv_path)
    T.init_tracking(accelerator, args, "pooling_study")

    data = load_sentiment_data(args) if todo else None
    if data is not None and args.metric == "f1" and data.num_labels != 2:
        logger.info("%d classes: the 'f1' column holds macro-F1", data.num_labels)
    trained = 0
    for backbone_name in _ordered(spec.backbone for spec in todo):
        backbone = load_backbone(accelerator, args, backbone_name, data)
        for spec in [s for s in todo if s.backbone == backbone_name]:
            logger.info("Run %d/%d: %s", num_skipped + trained + 1, len(specs), spec)
            row = train_and_evaluate(accelerator, args, backbone, spec, data)
            if accelerator.is_main_process:
                append_result(csv_path, row)
            accelerator.wait_for_everyone()
            rows.append(row)
            trained += 1
            logger.info("Finished %s: accuracy %.4f, f1 %.4f (%.1f s)", spec, row["accuracy"], row["f1"],
                        row["train_time_s"] + row["eval_time_s"])
        del backbone
        gc.collect()

    table_path = figure_path = None
    if accelerator.is_main_process and rows:
        write_summary(output_dir, args.metric, title=args.figure_title or f"data: {describe_data(args)}")
        table_path, figure_path = output_dir / TABLE_MD, output_dir / FIGURE_PNG
        logger.info("Pooling study (%d runs in %s):\n%s", len(rows), csv_path, (output_dir / TABLE_MD).read_text())
    if args.with_tracking:
        accelerator.end_training()
    return StudyResult(num_trained=trained, num_skipped=num_skipped, rows=rows, csv_path=csv_path,
                       table_path=table_path, figure_path=figure_path)


__all__ = [
    "DEFAULT_BACKBONES",
    "REGIMES",
    "RESULTS_CSV",
    "TABLE_MD",
    "FIGURE_PNG",
    "CSV_COLUMNS",
    "add_study_args",
    "check_study_args",
    "load_sentiment_data",
    "SentimentData",
    "RunSpec",
    "train_and_evaluate",
    "read_results",
    "summarize",
    "markdown_table",
    "plot_study",
    "write_summary",
    "run_study",
    "StudyResult",
]
