"""The one reader of local data tables, behind every script: csv / tsv / json / jsonl files as their writers wrote
them.

- `read_table(path, ...)`: a file as (column names, rows as dicts), with one clear error naming the file and the
  line for a missing, empty, unreadable or malformed file.
- `keep_first(dataset, limit, what)`: the --max_train_samples / --max_eval_samples rule: the FIRST `limit` rows.

How csv and tsv files are read:
- csv: RFC 4180, strictly. A field enclosed in quotes may hold commas, line breaks and doubled quotes (`""`); text
  after a closing quote, or a quote never closed, is an error naming the line (never a quote silently dropped, or
  the rest of the file swallowed into one field).
- tsv has two kinds of writers. pandas, spreadsheets and Python's csv module quote as RFC 4180 does, with tabs;
  GLUE's files and most command-line tools write plain tab-separated values, where a quote is text (MNLI's reported
  speech, CoLA's unbalanced quotes). Both readings are made when a field starts with a quote. The file is read as
  quoted fields when something in it needs quoting (a quoted tab, line break or doubled quote, or a quoted header)
  and the quoted reading holds together; otherwise as plain values: when the quoted reading fails (a quote inside
  text), or when nothing needs quoting (quotes around a whole field are then kept as text, and the lines logged).
  `quoting="none"` reads a tsv as plain values whatever it holds (the original GLUE distribution's files).
- Every line is accounted for: when the rows read are fewer than the file's lines, the log names the rows that
  span several lines (quoted line breaks), the blank lines skipped and the malformed rows dropped.
- Control characters and U+FFFD are reported by line (`text_files`): the text is read as written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ponet_training.data.text_files import count_characters


logger = logging.getLogger(__name__)


def _file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".tsv", ".csv", ".json", ".jsonl"):
            return suffix[1:]
    raise ValueError(f"{path}: unsupported file type; use .csv, .tsv, .json or .jsonl")


def _decode(path: Path, data: bytes) -> str:
    """`data` as UTF-8, without a byte-order mark; a ValueError names the file, the line and the byte offset of the
    first bad byte."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # Excel's "CSV UTF-8" starts with one
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at line {line}, byte offset "
                         f"{err.start}); re-encode the file as UTF-8") from None


@dataclass
class _Record:
    first: int  # the lines it spans, from 1
    last: int
    fields: list[str]

    @property
    def blank(self) -> bool:
        return not any(cell.strip() for cell in self.fields)


class _QuotingError(ValueError):
    """A file that is not valid RFC 4180: where, and why, in words."""


def _parse(path: Path, text: str, delimiter: str, quoted: bool) -> tuple[list[_Record], int]:
    """The records of `text` with the lines each spans, and the file's line count. `quoted`: RFC 4180, strictly
    (a `_QuotingError` names the line); else plain values, a quote being text."""
    handle = io.StringIO(text, newline="")
    reader = csv.reader(handle, delimiter=delimiter, strict=True) if quoted else \
        csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    records, line = [], 1
    try:
        for fields in reader:
            records.append(_Record(line, reader.line_num, fields))
            line = reader.line_num + 1
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise _QuotingError(f"{path}, line {line}: the quote that opens a field on this line is never closed "
                                "(the rest of the file would be one field)") from None
        opened = f" (the quoted field opens on line {line})" if reader.line_num != line else ""
        raise _QuotingError(f"{path}, line {reader.line_num}: text after the closing quote of a quoted field"
                            f"{opened}; a quoted field ends at its closing quote, and a quote inside it is doubled "
                            '("")') from None
    return records, reader.line_num


def _holds_together(records: list[_Record]) -> bool:
    rows = [record for record in records if not record.blank]
    return all(len(record.fields) == len(rows[0].fields) for record in rows[1:])


def _shown(numbers: list, limit: int = 10) -> str:
    """ "line 3" or "lines 3, 5, ..." (the first `limit`)."""
    listed = ", ".join(map(str, numbers[:limit])) + (" ..." if len(numbers) > limit else "")
    return f"line{'s' if len(numbers) > 1 else ''} {listed}"


# A whole field in quotes with a quote written twice inside: what only an RFC 4180 writer writes.
_DOUBLED_QUOTES = re.compile(r'"(?:[^"]|"")*""(?:[^"]|"")*"')


def _tsv_records(path: Path, text: str, quoting: str) -> tuple[list[_Record], int, str | None]:
    """The records of a tsv file, read plain or as quoted fields (see the module docstring), its line count, and,
    when it is read plain after the quoted reading failed, why that failed (for a later error)."""
    plain, lines = _parse(path, text, "\t", quoted=False)
    if quoting == "none" or not any(cell.startswith('"') for record in plain for cell in record.fields):
        return plain, lines, None  # no field opens with a quote: both readings agree
    try:
        quoted, _ = _parse(path, text, "\t", quoted=True)
    except _QuotingError as err:
        if any(_DOUBLED_QUOTES.fullmatch(cell) for record in plain for cell in record.fields):
            raise  # the writer quoted as RFC 4180 does elsewhere in the file: this line is broken
        logger.info("%s: read as plain tab-separated values, quotes being text (as quoted fields: %s)", path,
                    str(err).removeprefix(f"{path}, "))
        return plain, lines, str(err).removeprefix(f"{path}, ")
    needed, needless = False, []
    plain_at = {record.first: record for record in plain}
    for record in quoted:
        same_line = plain_at.get(record.first)
        if record.last != record.first or same_line is None or len(same_line.fields) != len(record.fields):
            needed = True  # a quoted line break or tab
            break
        for cell, as_written in zip(record.fields, same_line.fields):
            if cell != as_written:
                if '"' in cell or record is quoted[0]:
                    needed = True  # a doubled quote, or a quoted header
                    break
                if record.first not in needless[-1:]:
                    needless.append(record.first)
        if needed:
            break
    if needed and (_holds_together(quoted) or not _holds_together(plain)):
        return quoted, lines, None
    if needed:
        logger.warning("%s: read as plain tab-separated values: as quoted fields (RFC 4180) its rows would not "
                       "have one field count", path)
    elif needless:
        logger.warning("%s: quotes around whole fields that hold nothing needing quotes (%s) are read as "
                       "written, quotes kept (plain tab-separated values, as GLUE's files are)", path,
                       _shown(needless))
    return plain, lines, None


def read_table(path: str | os.PathLike, headerless_columns: tuple[str, ...] | None = None,
               expected_columns: tuple[str, ...] = (), skip_malformed_rows: bool = False, quoting: str = "auto",
               ) -> tuple[list[str], list[dict]]:
    """Read a csv / tsv / json / jsonl file into (column names, rows as dicts), as the module docstring says.

    A row whose field count differs from the header's is an error listing the lines, unless `skip_malformed_rows`
    (then they are dropped and counted in a warning). `headerless_columns` names the columns of a file without a
    header row; it is used when the first row contains none of `expected_columns`. `quoting`: "auto", or "none"
    for a tsv written without quoting (GLUE's own files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist")
    kind = _file_format(path)
    text = _decode(path, path.read_bytes())
    control, replacement = count_characters(enumerate(io.StringIO(text, newline=""), start=1),
                                            json_escapes=kind in ("json", "jsonl"))
    for count, what in ((control, "control character"), (replacement, "replacement character")):
        if count.total:
            logger.warning("%s: %s; read as written, and the tokenizer deletes them", path, count.describe(what))
    if kind in ("json", "jsonl"):
        return _read_json(path, text)
    csv.field_size_limit(sys.maxsize)  # GLUE/long-document rows can exceed csv's 128 KiB default
    if kind == "tsv":
        records, lines, quoting_failure = _tsv_records(path, text, quoting)
    else:
        (records, lines), quoting_failure = _parse(path, text, ",", quoted=True), None
    blank = [line for record in records if record.blank for line in range(record.first, record.last + 1)]
    records = [record for record in records if not record.blank]
    if not records:
        raise ValueError(f"Data file {path} is empty")
    header = [cell.strip() for cell in records[0].fields]
    body = records[1:]
    if headerless_columns and not set(header) & (set(expected_columns) | {"label", "sentence"}) \
            and len(header) == len(headerless_columns):
        header, body = list(headerless_columns), records
    rows = [dict(zip(header, record.fields)) for record in body if len(record.fields) == len(header)]
    malformed = [record.first for record in body if len(record.fields) != len(header)]
    if malformed:
        shown = _shown(malformed)
        if not skip_malformed_rows:
            reading = f"; read as quoted fields (RFC 4180) it fails at {quoting_failure}" if quoting_failure else ""
            raise ValueError(f"{path}: {len(malformed)} malformed row(s) whose field count differs from the "
                             f"header's {len(header)}, at {shown}{reading}; fix the file or pass "
                             "--skip_malformed_rows to drop them")
        logger.warning("%s: skipped %d malformed rows (field count differs from the header's %d), at %s",
                       path, len(malformed), len(header), shown)
    if not rows:
        raise ValueError(f"Data file {path} has a header but no data rows")
    first_line = body[0].first if body else lines
    if len(rows) != lines - first_line + 1:
        spans = [f"{record.first}-{record.last}" for record in body if record.last > record.first]
        parts = [f"quoted line breaks in the rows on lines {_shown(spans).split(' ', 1)[1]}" if spans else "",
                 f"blank lines skipped: {_shown(blank)}" if blank else "",
                 f"malformed rows skipped: {shown}" if malformed else ""]
        logger.info("%s: %d rows on lines %d-%d (%s)", path, len(rows), first_line, lines,
                    "; ".join(part for part in parts if part))
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


__all__ = ["keep_first", "read_table"]
