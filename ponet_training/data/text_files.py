"""The text rule of every input file: UTF-8, and no control characters the tokenizer would delete unseen.

BERT's text normaliser (the `tokenizers` BertNormalizer behind our WordPiece tokenizers and BERT's own) deletes every
control character but tab, line feed and carriage return, and the replacement character U+FFFD, gluing the words on
either side together ("apple\\x00banana" becomes the one word "applebanana"). So they are counted here, by file and
line, before any tokenizer sees them:

- Refused (unless the user allows them): NUL and the other C0 controls but \\t \\n \\r, DEL, and the C1 controls
  U+0080-U+009F (Unicode category Cc), raw or written as JSON escapes (`\\u0000`). A NUL is what a binary or
  crash-damaged file holds (a block of NULs where a write was lost); the others are terminal codes, form feeds of
  extracted PDFs, stray bytes of another encoding read as Latin-1.
- Reported (a warning, the text kept): U+FFFD, the trace of an earlier lossy decode; common in web corpora.

- `check_text_file(path, file_format, allow_control_characters)`: a corpus file (.txt, .json, .jsonl) is UTF-8, holds
  some text (with "jsonl", one JSON object per non-blank line) and follows the rule above; one error names the file,
  the lines and the counts. Reads line by line, in constant memory.
- `CharacterCount`, `count_characters(lines)`: the counting, shared with the table reader (which reports).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


logger = logging.getLogger(__name__)

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same characters as JSON escapes: a backslash that is not itself escaped, then u0000-u001f (but \t \n \r),
# u007f or u0080-u009f.
_CONTROL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u(00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF]|[89][0-9a-fA-F]))")
_REPLACEMENT = re.compile("\ufffd")
_REPLACEMENT_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u[fF]{3}[dD]")
_SHOWN_LINES = 10


def _character_name(code: int) -> str:
    return "NUL" if code == 0 else f"U+{code:04X}"


@dataclass
class CharacterCount:
    """How many characters of one class a file holds: per character, and the first lines that hold them."""

    characters: Counter = field(default_factory=Counter)
    lines: list[int] = field(default_factory=list)
    more_lines: bool = False

    def add(self, line: int, codes: Iterable[int]) -> None:
        before = sum(self.characters.values())
        self.characters.update(codes)
        if sum(self.characters.values()) > before:
            if len(self.lines) < _SHOWN_LINES:
                self.lines.append(line)
            else:
                self.more_lines = True

    @property
    def total(self) -> int:
        return sum(self.characters.values())

    def describe(self, what: str) -> str:
        """e.g. "65538 control characters (NUL x65537, U+000C x1) at lines 2, 4" for `what` "control character"."""
        kinds = ", ".join(f"{_character_name(code)} x{count}" for code, count in self.characters.most_common(5))
        kinds += ", ..." if len(self.characters) > 5 else ""
        where = ", ".join(map(str, self.lines)) + (" ..." if self.more_lines else "")
        plural = "s" if self.total != 1 else ""
        return f"{self.total} {what}{plural} ({kinds}) at line{'s' if len(self.lines) > 1 else ''} {where}"


def count_characters(lines: Iterable[tuple[int, str]], json_escapes: bool = False
                     ) -> tuple[CharacterCount, CharacterCount]:
    """(control characters, replacement characters) in numbered lines of text; with `json_escapes`, their JSON
    escapes count too (a JSON string holds `\\u0000` as six characters)."""
    control, replacement = CharacterCount(), CharacterCount()
    for number, line in lines:
        if _CONTROL.search(line):
            control.add(number, map(ord, _CONTROL.findall(line)))
        if "\ufffd" in line:
            replacement.add(number, map(ord, _REPLACEMENT.findall(line)))
        if json_escapes and "\\u" in line:
            control.add(number, (int(code, 16) for code in _CONTROL_ESCAPE.findall(line)))
            replacement.add(number, (0xFFFD for _ in _REPLACEMENT_ESCAPE.findall(line)))
    return control, replacement


def _lines(path: Path):
    """(line number, text) of a UTF-8 file, line by line; a ValueError names the line of the first bad byte."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at line {number}, column "
                                 f"{err.start + 1}); re-encode the file as UTF-8") from None


def check_text_file(path: str | os.PathLike, file_format: str = "text",
                    allow_control_characters: bool = False) -> None:
    """A corpus file ("text", "json" or "jsonl") must be UTF-8, hold some text, hold one JSON object per non-blank
    line ("jsonl"), and hold no control characters unless `allow_control_characters` (then they are logged); one
    ValueError names the file, the lines and the counts. U+FFFD is logged, never refused."""
    path = Path(path)
    has_text = False

    def checked_lines():
        nonlocal has_text
        for number, line in _lines(path):
            if not line.strip():
                continue
            has_text = True
            if file_format == "jsonl":
                try:
                    record = json.loads(line, strict=False)  # raw control characters are counted below
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{path}, line {number}: a JSON lines record must be an object")
            yield number, line

    control, replacement = count_characters(checked_lines(), json_escapes=file_format in ("json", "jsonl"))
    if not has_text:
        raise ValueError(f"Data file {path} is empty")
    if control.total and not allow_control_characters:
        raise ValueError(f"{path}: {control.describe('control character')}; the tokenizer would delete them and "
                         "glue the words on either side together (a run of NULs is what a damaged file holds). "
                         "Remove them, or pass --allow_control_characters to keep them as they are")
    if control.total:
        logger.warning("%s: %s, kept (--allow_control_characters); the tokenizer deletes them", path,
                       control.describe("control character"))
    if replacement.total:
        logger.warning("%s: %s, the mark of an earlier lossy decode; kept, and the tokenizer deletes them", path,
                       replacement.describe("replacement character"))


__all__ = ["CharacterCount", "check_text_file", "count_characters"]
