"""The label rules every script shares: what a missing label is, when labels are classes or scores, and which class
a raw label is.

- `type_labels(values, source, regression=False)`: the one typing rule of a label column. Labels that are all
  integral numbers are classes, whatever their spelling (`1`, `1.0`, ` 1 `, a JSON `1.0`); non-integral numbers
  are scores (regression), and so is any numeric column when `regression` is asked (`--do_regression`); anything
  else names classes. The choice and its reason are logged. Returns `LabelTyping` (`names`, `is_regression`).
- `infer_label_names(values, source)`: the label set of a classification-only script (long documents, the pooling
  study): `type_labels` that refuses scores.
- `label_key(name)`: case and spacing do not make another class; `label_id(value, label_names)`: a raw label as its
  class id; `is_missing_label(value)`: what counts as no label.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


logger = logging.getLogger(__name__)

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
    """A label as a finite number (an int, a float, or text such as " 1.0 " / "1e-3"); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _is_integer_text(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def _class_spelling(value) -> str:
    """The name a raw class label stands for: an integral number as its integer ("1.0", " 1 ", 1.0 -> "1"),
    True/False as "true"/"false", other text with its spacing collapsed."""
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip()
    if _is_integer_text(text.lstrip("+")):
        return str(int(text))  # exact for integers of any size
    number = _as_number(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return " ".join(text.split())


def _rows(pairs: list, limit: int = 5) -> str:
    shown = ", ".join(f"{value!r} (row {row})" for row, value in pairs[:limit])
    return shown + (" ..." if len(pairs) > limit else "")


@dataclass(frozen=True)
class LabelTyping:
    """A label column's type: its class names in id order, or None for a regression on scores."""

    names: list[str] | None
    reason: str

    @property
    def is_regression(self) -> bool:
        return self.names is None

    def describe(self, source: str) -> str:
        """The log line: "train.csv: classification with 2 classes ['0', '1']: the values are all integral ..."."""
        if self.is_regression:
            return f"{source}: regression: {self.reason}"
        return f"{source}: classification with {len(self.names)} classes {self.names}: {self.reason}"


def type_labels(values: Iterable, source: str = "the training data", regression: bool = False,
                allow_regression: bool = True) -> LabelTyping:
    """The one typing rule of a label column (see the module docstring), logged with its reason. A missing label
    (`is_missing_label`) is an error naming `source` and the rows (data rows counted from 0); so are scores mixed
    with names, non-numbers under `regression`, and scores where `allow_regression` is False (the script only
    classifies)."""
    values = list(values)
    missing = [row for row, value in enumerate(values) if is_missing_label(value)]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{source}: row {shown}: missing label (empty, None or NaN); {len(missing)} such row(s), "
                         "data rows counted from 0")
    if not values:
        raise ValueError(f"{source}: no labels to infer the label set from")
    numbers = [_as_number(value) for value in values]
    not_numbers = [(row, value) for row, (value, number) in enumerate(zip(values, numbers)) if number is None]
    if regression:
        if not_numbers:
            raise ValueError(f"{source}: row {not_numbers[0][0]}: {not_numbers[0][1]!r} is not a number; "
                             f"--do_regression needs a score on every row ({len(not_numbers)} row(s) without)")
        return _logged(source, LabelTyping(None, "regression asked for (--do_regression)"))
    scores = [(row, value) for row, (value, number) in enumerate(zip(values, numbers))
              if number is not None and not number.is_integer()]
    if scores:
        if not_numbers:
            raise ValueError(f"{source}: the labels mix scores ({_rows(scores)}) and names "
                             f"({_rows(not_numbers)}); a label column is either scores or classes")
        if not allow_regression:
            raise ValueError(f"{source}: found the score(s) {_rows(scores)}, but this script needs classes (names "
                             "or integral numbers); finetune/run_glue.py also does regression")
        return _logged(source, LabelTyping(None, f"non-integral values, e.g. {_rows(scores, 1)}"))
    names = _class_names(values, source)
    if len(names) < 2:
        raise ValueError(f"{source}: a single label {names}: classification needs at least two classes")
    if not_numbers:
        reason = "the labels are names"
    else:
        spellings = sorted({str(value) for value in values})
        reason = "the values are all integral numbers" + (
            f", written {len(spellings)} ways ({', '.join(map(repr, spellings[:8]))})" if len(spellings) > len(names)
            else "") + (" (pass --do_regression to regress on them)" if allow_regression else "")
    return _logged(source, LabelTyping(names, reason))


def _logged(source: str, typing: LabelTyping) -> LabelTyping:
    logger.info(typing.describe(source))
    return typing


def _class_names(values: list, source: str) -> list[str]:
    """The distinct classes, sorted (integers in numeric order); names equal under `label_key` are one class,
    named by their most frequent spelling (the merge is logged)."""
    spellings: dict[str, Counter] = {}
    for value in values:
        name = _class_spelling(value)
        spellings.setdefault(label_key(name), Counter())[name] += 1
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


def infer_label_names(values: Iterable, source: str = "the training data") -> list[str]:
    """The class names of a classification-only script's training labels (`type_labels`, scores refused)."""
    return type_labels(values, source, allow_regression=False).names


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
        number = _as_number(value)
        if number is None:
            raise ValueError(f"{value!r} is not one of {names}")
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueError(f"{value!r} is not a label (one of {names})")
    if number.is_integer() and str(int(number)) in by_name:
        return by_name[str(int(number))]
    if not ids_allowed or not number.is_integer() or not 0 <= number < len(names):
        raise ValueError(f"{value!r} is not one of the label ids 0..{len(names) - 1} ({', '.join(names)})")
    return int(number)


__all__ = ["LabelTyping", "infer_label_names", "is_missing_label", "label_id", "label_key", "type_labels"]
