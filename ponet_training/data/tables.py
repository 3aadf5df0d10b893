"""The one reader of local data tables and the one label normaliser, used by every data module.

- `read_table(path, ...)`: a csv / tsv / json / jsonl file as (column names, rows as dicts), with one clear error
  for a missing, empty or unreadable file.
- `label_key(name)`: the one normalisation rule for label names (case and spacing do not make another class).
- `label_id(value, label_names)`: a raw label (a name, True/False, or an integer id) as its id.
- `infer_label_names(values, source)`: the label set of a training file (sorted; integer labels in numeric order);
  a missing label (empty, None, NaN) is an error naming the file and row, never a class of its own.
- `is_missing_label(value)`, `labels_are_scores(values)`: what counts as no label; float labels mean regression.
- `check_text_file(path)`: a corpus file is UTF-8 and not empty (one error naming the file and the line).
- `keep_first(dataset, limit, what)`: the --max_train_samples / --max_eval_samples rule: the FIRST `limit` rows.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path


logger = logging.getLogger(__name__)


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".tsv", ".csv", ".json", ".jsonl"):
            return suffix[1:]
    raise ValueError(f"{path}: unsupported file type; use .csv, .tsv, .json or .jsonl")


def _decode(path: Path, data: bytes) -> str:
    """`data` as UTF-8; a ValueError names the file, the line and the byte offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}, byte offset "
                         f"{err.start}); re-encode the file as UTF-8") from None


def check_text_file(path: str | os.PathLike, json_lines: bool = False) -> None:
    """A corpus file must be UTF-8 and hold some text (with `json_lines`, one JSON object per non-blank line):
    one ValueError naming the file and the line otherwise. Reads line by line, in constant memory."""
    path = Path(path)
    has_text = False
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at line {number}, column "
                                 f"{err.start + 1}); re-encode the file as UTF-8") from None
            if not line.strip():
                continue
            has_text = True
            if json_lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{path}, line {number}: a JSON lines record must be an object")
    if not has_text:
        raise ValueError(f"Data file {path} is empty")


def read_table(path: str | os.PathLike, headerless_columns: tuple[str, ...] | None = None,
               expected_columns: tuple[str, ...] = (), skip_malformed_rows: bool = False,
               ) -> tuple[list[str], list[dict]]:
    """Read a csv / tsv / json / jsonl file into (column names, rows as dicts).

    TSV files are read without quote handling, as the GLUE distribution needs (its sentences contain
    unbalanced quotes). A row whose field count differs from the header's is an error listing the lines, unless
    `skip_malformed_rows` (then they are dropped and counted in a warning). `headerless_columns` names the columns
    of a file without a header row; it is used when the first row contains none of `expected_columns`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist")
    kind = _file_format(path)
    text = _decode(path, path.read_bytes())
    if kind in ("json", "jsonl"):
        return _read_json(path, text)
    csv.field_size_limit(sys.maxsize)  # GLUE/long-document rows can exceed csv's 128 KiB default
    handle = io.StringIO(text, newline="")
    reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if kind == "tsv" else csv.reader(handle)
    records = []  # (line number where the record starts, fields)
    line = 1
    for record in reader:
        if record and any(cell.strip() for cell in record):
            records.append((line, record))
        line = reader.line_num + 1
    if not records:
        raise ValueError(f"Data file {path} is empty")
    header = [cell.strip().lstrip("\ufeff") for cell in records[0][1]]
    body = records[1:]
    if headerless_columns and not set(header) & (set(expected_columns) | {"label", "sentence"}) \
            and len(header) == len(headerless_columns):
        header, body = list(headerless_columns), records
    rows = [dict(zip(header, record)) for _, record in body if len(record) == len(header)]
    malformed = [number for number, record in body if len(record) != len(header)]
    if malformed:
        shown = ", ".join(map(str, malformed[:10])) + (" ..." if len(malformed) > 10 else "")
        if not skip_malformed_rows:
            raise ValueError(f"{path}: {len(malformed)} malformed row(s) whose field count differs from the "
                             f"header's {len(header)}, at lines {shown}; fix the file or pass --skip_malformed_rows "
                             "to drop them")
        logger.warning("%s: skipped %d malformed rows (field count differs from the header's %d), at lines %s",
                       path, len(malformed), len(header), shown)
    if not rows:
        raise ValueError(f"Data file {path} has a header but no data rows")
    return header, rows


def _read_json(path: Path, text: str) -> tuple[list[str], list[dict]]:
    if not text.strip():
        raise ValueError(f"Data file {path} is empty")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = _parse_json(path, text)
    elif stripped.startswith("{") and path.suffix.lower() == ".json" and "\n{" not in stripped.rstrip():
        document = _parse_json(path, text)
        # datasets' json loader accepts {"data": [...]}; so do we.
        rows = document.get("data") if isinstance(document, dict) and isinstance(document.get("data"), list) \
            else [document]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err})") from None
    if not rows:
        raise ValueError(f"Data file {path} is empty (no records)")
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: every record must be a JSON object")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, rows


def _parse_json(path: Path, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None


def keep_first(dataset, limit: int | None, what: str):
    """The first `limit` rows of `dataset` (all of them when `limit` is None or not smaller): the rule of
    --max_train_samples / --max_eval_samples, as in transformers' examples. Logged when it drops rows."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise ValueError(f"--max_*_samples must be positive, got {limit}")
    logger.info("Keeping the first %d of the %d %s examples", limit, len(dataset), what)
    return dataset.select(range(limit))


# Spellings of "no label" that tools write into files (pandas' NaN, str(None), JSON null as text).
_MISSING_LABEL_TEXTS = ("", "nan", "NaN", "None", "null")


def is_missing_label(value) -> bool:
    """Whether `value` is no label at all: None, NaN, an empty string or a textual NaN/None/null."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in _MISSING_LABEL_TEXTS


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def labels_are_scores(values: Iterable) -> bool:
    """Whether a label column holds scores (regression): every label a number and at least one written as a
    float (a JSON float, or text like "0.5" / "1e-3"), as transformers' run_glue treats float label columns."""
    any_float = False
    for value in values:
        if _as_number(value) is None or is_missing_label(value):
            return False
        any_float = any_float or isinstance(value, float) or (
            isinstance(value, str) and not _is_integer_text(value.strip()))
    return any_float


def _is_integer_text(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def label_key(name) -> str:
    """The one normalisation rule for label names: case and spacing do not make another class ("Positive",
    " positive ", "POSITIVE" are one label)."""
    return " ".join(str(name).split()).casefold()


def label_id(value, label_names: Sequence[str]) -> int:
    """The id of a raw label; ValueError naming the label set when it is not one of them.

    A label is a name of `label_names` (compared by `label_key`: "Positive", " pos "), True/False (matched to the names
    "true"/"false", else 1/0), or an id: an integer, or an integer-valued number or string, in 0..n-1. Names win:
    when the names are themselves integers ("1".."5" stars read from a file), labels are matched by name only.
    """
    if is_missing_label(value):
        raise ValueError(f"missing label ({value!r})")
    names = [str(name) for name in label_names]
    by_name = {label_key(name): i for i, name in enumerate(names)}
    ids_allowed = all(not _is_integer_text(name) or int(name) == i for i, name in enumerate(names))
    if isinstance(value, bool):
        if label_key(value) in by_name:
            return by_name[label_key(value)]
        number = float(value)
    elif isinstance(value, str):
        if label_key(value) in by_name:
            return by_name[label_key(value)]
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not one of {names}") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueError(f"{value!r} is not a label (one of {names})")
    if number.is_integer() and str(int(number)) in by_name:
        return by_name[str(int(number))]
    if not ids_allowed or not number.is_integer() or not 0 <= number < len(names):
        raise ValueError(f"{value!r} is not one of the label ids 0..{len(names) - 1} ({', '.join(names)})")
    return int(number)


def infer_label_names(values: Iterable, source: str = "the training data") -> list[str]:
    """The label set of a training file: its distinct labels as strings, sorted (integer labels in numeric order,
    True/False as "true"/"false"). Numbers must be integers: a classification label is a class, not a score.
    Names equal under `label_key` are one class, named by their most frequent spelling (the merge is logged).
    A missing label (see `is_missing_label`) is a ValueError naming `source` and the rows."""
    spellings: dict[str, Counter] = {}
    missing = []
    for row, value in enumerate(values):
        if is_missing_label(value):
            missing.append(row)
            continue
        elif isinstance(value, bool):
            name = str(value).lower()
        elif isinstance(value, (int, float)):
            if not float(value).is_integer():
                raise ValueError(f"Labels must be class names or integer ids, found the number {value}")
            name = str(int(value))
        else:
            name = " ".join(str(value).split())
        spellings.setdefault(label_key(name), Counter())[name] += 1
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{source}: row {shown}: missing label (empty, None or NaN); {len(missing)} such row(s), "
                         "data rows counted from 0")
    if not spellings:
        raise ValueError(f"{source}: no labels to infer the label set from")
    distinct = set()
    for counts in spellings.values():
        name = min(counts, key=lambda spelling: (-counts[spelling], spelling))
        distinct.add(name)
        if len(counts) > 1:
            logger.warning("%s: labels %s differ only in case or spacing: one class %r", source,
                           ", ".join(repr(spelling) for spelling in sorted(counts)), name)
    if all(_is_integer_text(name) for name in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


__all__ = ["check_text_file", "infer_label_names", "is_missing_label", "keep_first", "label_id", "label_key",
           "labels_are_scores", "read_table"]
