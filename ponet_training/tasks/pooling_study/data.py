"""The pooling study's data: train and evaluation splits of a sentiment dataset, tokenized once per backbone.

- `SentimentData`, `load_sentiment_data(args)`: SST-2 or IMDb from the Hub, any Hub dataset with a text and a label
  column, or local csv / tsv / json / jsonl files (`tables.read_table`); labels typed and normalised by `labels`.
  `vader_movies` / `vader_tweets` / `vader_amazon` / `vader_nyt`: the human-rated sentences of Hutto & Gilbert
  (2014), prepared once from the vaderSentiment sdist (`vader.prepared_domain`), train and dev splits.
- `baseline_scores(data)`: the majority class of the training data (and VADER on the vader presets), in every metric.
- `tokenize_for_backbone(accelerator, args, tokenizer, data, name)`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from collections import Counter

import numpy as np

from ponet_training.data import vader, vader_ratings
from ponet_training.tasks.metrics import classification_metrics
from ponet_training.data.labels import infer_label_names, label_id
from ponet_training.data.tables import keep_first, read_table
from ponet_training.tasks.pooling_study.settings import HUB_DATASETS, TEXT_COLUMN_CANDIDATES, VADER_PRESETS


logger = logging.getLogger(__name__)


@dataclass
class SentimentData:
    """Train and evaluation splits with columns `text` (str) and `label` (int in [0, num_labels))."""

    train: object  # datasets.Dataset
    eval: object
    label_names: list[str]
    source: str
    vader_domain: str | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def _read_local(path: str):
    from datasets import Dataset

    columns, rows = read_table(path)
    return Dataset.from_dict({column: [row.get(column) for row in rows] for column in columns})


def _load_raw(args):
    """(train, eval or None, description, default text column) before any cleaning."""
    if args.train_file:
        train = _read_local(args.train_file)
        evaluation = _read_local(args.validation_file) if args.validation_file else None
        return train, evaluation, args.train_file, None
    if args.dataset_name in VADER_PRESETS:
        domain = VADER_PRESETS[args.dataset_name]
        folder = vader.prepared_domain(domain)
        return (_read_local(str(folder / "train.csv")), _read_local(str(folder / "dev.csv")),
                f"{args.dataset_name} ({vader_ratings.DOMAINS[domain].description}, rated by people; Hutto & Gilbert 2014)",
                "sentence")
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



def _label_names(train, label_column: str, source: str) -> list:
    """The dataset's `ClassLabel` names, or the label set inferred from the training labels."""
    names = getattr(train.features[label_column], "names", None)
    return list(names) if names else infer_label_names(train[label_column], source)


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
    label_names = _label_names(train, label_column, source)
    if evaluation is None:
        split = train.train_test_split(test_size=args.validation_split_percentage / 100, seed=args.seed)
        train, evaluation = split["train"], split["test"]
        logger.info("No evaluation split: held out %d%% of the training data (%d examples)",
                    args.validation_split_percentage, len(evaluation))
    else:
        evaluation = clean(evaluation, "evaluation")
    if len(label_names) < 2:
        raise ValueError(f"The training data of {source} has a single label ({label_names}); need at least two classes")

    def to_id(value):
        try:
            return label_id(value, label_names)
        except ValueError:
            return None

    def map_labels(split, split_name):
        ids = [to_id(v) for v in split[label_column]]
        bad = sorted({str(v) for v, i in zip(split[label_column], ids) if i is None})
        if bad:
            raise ValueError(f"The {split_name} data of {source} has labels outside the training label set "
                             f"{label_names}: {bad[:10]} (a test split without labels cannot be used for evaluation)")
        split = split.remove_columns(label_column).add_column("label", ids)
        return split.rename_column(text_column, "text") if text_column != "text" else split

    train, evaluation = map_labels(train, "training"), map_labels(evaluation, "evaluation")
    # The first N rows, as run_glue does: the same rows whatever the seed.
    train = keep_first(train, args.max_train_samples, "training")
    evaluation = keep_first(evaluation, args.max_eval_samples, "evaluation")
    logger.info("Data: %s, %d training / %d evaluation examples, labels %s", source, len(train), len(evaluation),
                label_names)
    return SentimentData(train=train, eval=evaluation, label_names=label_names, source=source,
                         vader_domain=VADER_PRESETS.get(args.dataset_name))


def baseline_scores(data: SentimentData) -> dict[str, dict[str, float]]:
    """Every metric of the study (accuracy, f1, macro_f1) for the majority class of the training data predicted
    for every evaluation example, and for VADER's calls on the vader presets (`vader.vader_label`)."""
    labels = np.asarray(data.eval["label"])
    majority = Counter(data.train["label"]).most_common(1)[0][0]
    predictions = {"majority class": np.full_like(labels, majority)}
    if data.vader_domain is not None:
        positive = data.label_names.index("1")  # vader's files: 1 positive, 0 negative
        calls = vader.vader_predictions(data.eval["text"], int(data.label_names[majority]))
        predictions["VADER"] = np.asarray([positive if call == 1 else 1 - positive for call in calls])
    scores = {}
    for name, predicted in predictions.items():
        metrics = classification_metrics(predicted, labels, num_labels=data.num_labels)
        scores[name] = {"accuracy": metrics["accuracy"], "f1": metrics.get("f1", metrics["macro_f1"]),
                        "macro_f1": metrics["macro_f1"]}
    return scores


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



__all__ = ["SentimentData", "baseline_scores", "load_sentiment_data", "tokenize_for_backbone"]
