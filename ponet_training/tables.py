"""The one reader of local data tables and the one label normaliser, used by every data module.

- `read_table(path, ...)`: a csv / tsv / json / jsonl file as (column names, rows as dicts), with one clear error
  for a missing, empty or unreadable file.
- `label_id(value, label_names)`: a raw label (a name, True/False, or an integer id) as its id.
- `infer_label_names(values)`: the label set of a training file (sorted; integer labels in numeric order).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


logger = logging.getLogger(__name__)


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".tsv", ".csv", ".json", ".jsonl"):
            return suffix[1:]
    raise ValueError(f"{path}: unsupported file type; use .csv, .tsv, .json or .jsonl")


def read_table(path: str | os.PathLike, headerless_columns: tuple[str, ...] | None = None,
               expected_columns: tuple[str, ...] = ()) -> tuple[list[str], list[dict]]:
    """Read a csv / tsv / json / jsonl file into (column names, rows as dicts).

    TSV files are read without quote handling, as the GLUE distribution needs (its sentences contain
    unbalanced quotes). Rows whose field count differs from the header are skipped with a warning.
    `headerless_columns` names the columns of a file without a header row; it is used when the first row
    contains none of `expected_columns`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist")
    kind = _file_format(path)
    if kind in ("json", "jsonl"):
        return _read_json(path)
    csv.field_size_limit(sys.maxsize)  # GLUE/long-document rows can exceed csv's 128 KiB default
    with open(path, newline="", encoding="utf-8") as handle:
        if kind == "tsv":
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle)
        records = [record for record in reader if record and any(cell.strip() for cell in record)]
    if not records:
        raise ValueError(f"Data file {path} is empty")
    header = [cell.strip().lstrip("\ufeff") for cell in records[0]]
    body = records[1:]
    if headerless_columns and not set(header) & (set(expected_columns) | {"label", "sentence"}) \
            and len(header) == len(headerless_columns):
        header, body = list(headerless_columns), records
    rows, skipped = [], 0
    for record in body:
        if len(record) != len(header):
            skipped += 1
            continue
        rows.append(dict(zip(header, record)))
    if skipped:
        logger.warning("%s: skipped %d malformed rows (field count differs from the header's %d)",
                       path, skipped, len(header))
    if not rows:
        raise ValueError(f"Data file {path} has a header but no data rows")
    return header, rows


def _read_json(path: Path) -> tuple[list[str], list[dict]]:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"Data file {path} is empty")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    elif stripped.startswith("{") and path.suffix.lower() == ".json" and "\n{" not in stripped.rstrip():
        document = json.loads(text)
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
        raise ValueError(f"Data file {path} is empty")
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: every record must be a JSON object")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, rows


def _is_integer_text(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def label_id(value, label_names: Sequence[str]) -> int:
    """The id of a raw label; ValueError naming the label set when it is not one of them.

    A label is a name of `label_names` (case-insensitive: "Positive", " pos "), True/False (matched to the names
    "true"/"false", else 1/0), or an id: an integer, or an integer-valued number or string, in 0..n-1. Names win:
    when the names are themselves integers ("1".."5" stars read from a file), labels are matched by name only.
    """
    names = [str(name) for name in label_names]
    by_name = {name.strip().lower(): i for i, name in enumerate(names)}
    ids_allowed = all(not _is_integer_text(name) or int(name) == i for i, name in enumerate(names))
    if isinstance(value, bool):
        if str(value).lower() in by_name:
            return by_name[str(value).lower()]
        number = float(value)
    elif isinstance(value, str):
        if value.strip().lower() in by_name:
            return by_name[value.strip().lower()]
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


def infer_label_names(values: Iterable) -> list[str]:
    """The label set of a training file: its distinct labels as strings, sorted (integer labels in numeric order,
    True/False as "true"/"false"). Numbers must be integers: a classification label is a class, not a score."""
    distinct = set()
    for value in values:
        if isinstance(value, bool):
            distinct.add(str(value).lower())
        elif isinstance(value, (int, float)):
            if not float(value).is_integer():
                raise ValueError(f"Labels must be class names or integer ids, found the number {value}")
            distinct.add(str(int(value)))
        else:
            distinct.add(str(value).strip())
    if not distinct:
        raise ValueError("No labels to infer the label set from")
    if all(_is_integer_text(name) for name in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


__all__ = ["infer_label_names", "label_id", "read_table"]
