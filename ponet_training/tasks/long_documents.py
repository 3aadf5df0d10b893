"""Long-document classification data: the paper's four datasets, local files, segment ids, padding.

PoNet's long-document results (HND, IMDb, Yelp-5, arXiv-11 at 4096 tokens) pass sentence-level segment
ids (paragraph-level for arXiv-11) so that segment max-pooling pools over sentences. This module loads the
datasets (Hub ids where they exist, or local jsonl/json/csv/tsv with a text and a label column), turns
labels into ids, tokenizes with `text.tokenize_with_segment_ids` and pads batches with
`LongDocCollator` (segment ids padded as one more segment).

- `LongDocDataset`, `LONG_DOC_DATASETS`, `get_long_doc_dataset(name)`: the paper's presets.
- `load_long_doc(preset, ...)`, `load_local_long_docs(files, ...)`, `rows_to_dataset(...)`: (text, label, idx) splits.
- `strip_html(text)`, `LongDocCollator`, `extend_positions(model, max_length)`.
"""

from __future__ import annotations

import html
import logging
import os
import re
from dataclasses import dataclass

from ponet_training.data.labels import infer_label_names, label_id
from ponet_training.data.tables import read_table
from ponet_training.data.segments import SEGMENT_MODES, pad_segment_ids


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LongDocDataset:
    """A long-document benchmark: where it lives on the Hub and how the paper evaluated it."""

    name: str
    pretty_name: str
    hub_id: str | None
    hub_config: str | None
    text_column: str
    label_column: str
    label_names: tuple[str, ...]
    main_metric: str
    segment_level: str = "sentence"
    clean_html: bool = False
    published_ponet: float | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


ARXIV_LABELS = ("math.AC", "cs.CV", "cs.AI", "cs.SY", "math.GR", "cs.CE", "cs.PL", "cs.IT", "cs.DS", "cs.NE",
                "math.ST")

LONG_DOC_DATASETS: dict[str, LongDocDataset] = {
    dataset.name: dataset
    for dataset in (
        # SemEval-2019 Task 4 by-article (645 articles, one split: dev/test are carved out, see load_long_doc).
        LongDocDataset("hnd", "Hyperpartisan News Detection", "SemEvalWorkshop/hyperpartisan_news_detection",
                       "byarticle", "text", "hyperpartisan", ("false", "true"), "f1", clean_html=True,
                       published_ponet=96.2),
        LongDocDataset("imdb", "IMDb", "stanfordnlp/imdb", None, "text", "label", ("neg", "pos"), "f1",
                       clean_html=True, published_ponet=93.0),
        LongDocDataset("yelp5", "Yelp-5", "Yelp/yelp_review_full", None, "text", "label",
                       ("1 star", "2 stars", "3 stars", "4 stars", "5 stars"), "micro_f1", published_ponet=69.13),
        LongDocDataset("arxiv11", "arXiv-11", "ccdv/arxiv-classification", None, "text", "label", ARXIV_LABELS,
                       "macro_f1", segment_level="paragraph", published_ponet=86.11),
    )
}


def get_long_doc_dataset(name: str) -> LongDocDataset:
    """The preset called `name` (hnd, imdb, yelp5, arxiv11); a ValueError lists them otherwise."""
    key = (name or "").lower().replace("-", "").replace("_", "")
    if key in LONG_DOC_DATASETS:
        return LONG_DOC_DATASETS[key]
    raise ValueError(f"Unknown long-document dataset {name!r}; the presets are: {', '.join(LONG_DOC_DATASETS)} "
                     "(or pass --train_file/--validation_file/--test_file)")


_BLOCK_TAGS = re.compile(r"(?i)</p\s*>|<br\s*/?>|</div\s*>|</h\d\s*>|</li\s*>")
_TAGS = re.compile(r"<[^>]+>")


def strip_html(text: str) -> str:
    """Plain text from light HTML (HND articles, IMDb's `<br />`): block ends become paragraph breaks."""
    text = _BLOCK_TAGS.sub("\n\n", text)
    text = _TAGS.sub(" ", text)
    text = html.unescape(text)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\s*\n\s*\n\s*", "\n\n", text).strip()


def rows_to_dataset(rows: list[dict], text_column: str, label_column: str, label_names: list[str], source: str,
                    clean_html: bool = False):
    """A `datasets.Dataset` with `text`, `label` (ids) and `idx` from rows; one clear error lists bad labels."""
    from datasets import Dataset

    texts, labels, errors = [], [], []
    for number, row in enumerate(rows):
        text = row.get(text_column)
        texts.append(strip_html(str(text)) if clean_html and text is not None else ("" if text is None else str(text)))
        try:
            labels.append(label_id(row.get(label_column), label_names))
        except ValueError as err:
            errors.append(f"row {number}: {err}")
    if errors:
        raise ValueError(f"{source}: {len(errors)} label(s) outside the label set {label_names}: "
                         + "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""))
    empty = sum(1 for text in texts if not text.strip())
    if empty:
        logger.warning("%s: %d documents are empty", source, empty)
    return Dataset.from_dict({"text": texts, "label": labels, "idx": list(range(len(rows)))})


def load_local_long_docs(files: dict[str, str | os.PathLike], text_column: str = "text", label_column: str = "label",
                         label_names: list[str] | None = None, clean_html: bool = False,
                         skip_malformed_rows: bool = False):
    """Read {split: path} (jsonl / json / csv / tsv) into a DatasetDict of (text, label, idx); returns
    (splits, label_names). Label names come from `label_names` or, sorted, from the training file."""
    from datasets import DatasetDict

    tables = {}
    for split, path in files.items():
        columns, rows = read_table(path, skip_malformed_rows=skip_malformed_rows)
        missing = [name for name in (text_column, label_column) if name not in columns]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing} (found {columns}); set --text_column_name / "
                             "--label_column_name")
        tables[split] = rows
    if label_names is None:
        if "train" not in tables:
            raise ValueError("Pass --label_names when there is no training file to infer them from")
        label_names = infer_label_names((row.get(label_column) for row in tables["train"]), str(files["train"]))
    splits = DatasetDict({split: rows_to_dataset(rows, text_column, label_column, list(label_names), str(files[split]),
                                                 clean_html)
                          for split, rows in tables.items()})
    return splits, list(label_names)


def load_long_doc(preset: LongDocDataset, cache_dir: str | None = None, seed: int = 42,
                  validation_fraction: float = 0.1):
    """Load a preset from the Hub as a DatasetDict (text, label, idx) with train / validation / test.

    A missing validation split is carved from train (`validation_fraction`, fixed seed), a missing test
    split likewise (HND's by-article set has only train): both are logged.
    """
    from datasets import DatasetDict, load_dataset

    raw = load_dataset(preset.hub_id, preset.hub_config, cache_dir=cache_dir)
    for split in raw:
        missing = [c for c in (preset.text_column, preset.label_column) if c not in raw[split].column_names]
        if missing:
            raise ValueError(f"{preset.hub_id}[{split}] lacks the column(s) {missing}")
    names = list(preset.label_names)

    def convert(batch, indices):
        texts = ["" if t is None else (strip_html(t) if preset.clean_html else t) for t in batch[preset.text_column]]
        labels = []
        for position, value in zip(indices, batch[preset.label_column]):
            try:
                labels.append(label_id(value, names))
            except ValueError as err:
                raise ValueError(f"{preset.hub_id}: row {position}: label {err}") from None
        return {"text": texts, "label": labels, "idx": indices}

    splits = DatasetDict({
        split: raw[split].map(convert, batched=True, with_indices=True, remove_columns=raw[split].column_names,
                              desc=f"Preparing {split}")
        for split in ("train", "validation", "test") if split in raw
    })
    if "train" not in splits:
        raise ValueError(f"{preset.hub_id} has no train split")
    for split in ("test", "validation"):
        if split not in splits:
            parts = splits["train"].train_test_split(test_size=validation_fraction, seed=seed)
            splits["train"], splits[split] = parts["train"], parts["test"]
            logger.warning("%s has no %s split: holding out %d training documents (seed %d) for it",
                           preset.hub_id, split, len(splits[split]), seed)
    return splits


class LongDocCollator:
    """Pads `input_ids` / `attention_mask` / `token_type_ids` with the tokenizer and `segment_ids` as one
    more segment after the last (`text.pad_segment_ids`), to the batch's longest row (a multiple of
    `pad_to_multiple_of` if set)."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]):
        import torch

        segment_ids = [feature.pop("segment_ids") for feature in features] if "segment_ids" in features[0] else None
        batch = self.tokenizer.pad(features, padding=True, pad_to_multiple_of=self.pad_to_multiple_of,
                                   return_tensors="pt")
        if segment_ids is not None:
            width = batch["input_ids"].shape[1]
            batch["segment_ids"] = torch.tensor(pad_segment_ids(segment_ids, width, self.tokenizer.padding_side))
        return batch


def extend_positions(model, max_length: int) -> bool:
    """Make room for `max_length` positions: tile the learned position table when it is shorter (as the
    published 4096-token models were built from the 512-row table). Returns whether it changed."""
    config = model.config
    current = getattr(config, "max_position_embeddings", None)
    if current is None or max_length <= current:
        return False
    if not hasattr(model, "resize_position_embeddings"):
        raise ValueError(f"--max_length {max_length} exceeds the model's {current} positions and "
                         f"{type(model).__name__} cannot extend its position table")
    try:
        model.resize_position_embeddings(max_length)
    except NotImplementedError:
        raise ValueError(f"--max_length {max_length} exceeds the model's {current} positions and "
                         f"{type(model).__name__} cannot extend its position table") from None
    logger.warning("Extended the position table from %d to %d rows by tiling the %d learned rows", current,
                   max_length, current)
    return True


__all__ = [
    "LONG_DOC_DATASETS",
    "LongDocCollator",
    "LongDocDataset",
    "SEGMENT_MODES",
    "extend_positions",
    "get_long_doc_dataset",
    "load_local_long_docs",
    "load_long_doc",
    "rows_to_dataset",
    "strip_html",
]
