"""The embedded default pretraining corpus: prose from the docstrings of Python's standard library, available
offline everywhere (the demo and the tests pretrain on it).

- `STDLIB_MODULES`, `stdlib_documents(modules, min_paragraphs)`: one document per module.
- `stdlib_corpus(validation_every)`: a `DatasetDict` with `train` / `validation` splits, column `text`.
"""

import importlib
import inspect
import re
import warnings
from collections.abc import Sequence


# Pure-Python, side-effect-free modules present in every supported Python (3.10+); missing ones are skipped.
STDLIB_MODULES = tuple("""
abc argparse ast asyncio.events asyncio.streams asyncio.tasks base64 bdb bisect calendar cmd code codecs
collections concurrent.futures configparser contextlib copy csv dataclasses datetime decimal difflib dis
doctest email.message email.parser email.utils enum filecmp fileinput fnmatch fractions ftplib functools
getopt gettext glob graphlib gzip hashlib heapq hmac html.parser http.client http.cookies http.server
imaplib importlib.abc importlib.metadata inspect io ipaddress itertools json json.decoder json.encoder
keyword linecache locale logging logging.handlers lzma mailbox mimetypes multiprocessing.managers
multiprocessing.pool netrc numbers operator optparse os pathlib pdb pickle pickletools pkgutil platform
plistlib poplib pprint profile pstats queue quopri random re reprlib sched secrets selectors shelve shlex
shutil smtplib socket socketserver sqlite3 statistics string struct subprocess symtable tabnanny tarfile
tempfile textwrap threading timeit tokenize trace traceback tracemalloc types typing unittest.case
unittest.mock urllib.parse urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree
xml.sax.handler xmlrpc.client zipfile zoneinfo
""".split())

_RST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")
_WHITESPACE = re.compile(r"\s+")


def _prose_paragraph(paragraph: str) -> str | None:
    """One docstring paragraph as a single line of prose, or None for code, doctests, tables and lists."""
    lines = paragraph.splitlines()
    if not lines or lines[0][:1].isspace():  # indented: a literal block
        return None
    if any(line.lstrip().startswith((">>>", "...", "$ ", "|", "+-", "==")) for line in lines):
        return None
    text = " ".join(line.strip() for line in lines)
    text = _RST_ROLE.sub(r"\1", text)
    text = _RST_LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    text = _WHITESPACE.sub(" ", text).strip()
    letters = sum(c.isalpha() for c in text)
    if len(text) < 20 or letters < 0.6 * len(text) or not text.endswith((".", "!", "?")):
        return None
    return text


def _docstring_paragraphs(obj) -> list[str]:
    doc = inspect.getdoc(obj)
    if not doc:
        return []
    return [p for p in (_prose_paragraph(raw) for raw in re.split(r"\n\s*\n", doc)) if p]


def stdlib_documents(modules: Sequence[str] = STDLIB_MODULES, min_paragraphs: int = 2) -> list[str]:
    """Documents built offline from the docstrings of Python's standard library, one per module: the
    module docstring, then its functions', then its classes' (with their methods'), as prose paragraphs
    separated by blank lines (doctests and code blocks dropped). Deterministic for a given Python."""
    documents = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation warnings of some modules on import
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            functions, classes = [], []
            for attr, obj in sorted(vars(module).items()):
                if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                    continue
                if inspect.isclass(obj):
                    classes += _docstring_paragraphs(obj)
                    for method_name, method in sorted(vars(obj).items()):
                        if not method_name.startswith("_") and (inspect.isfunction(method)
                                                                or inspect.ismethoddescriptor(method)):
                            classes += _docstring_paragraphs(method)
                elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
                    functions += _docstring_paragraphs(obj)
            paragraphs = _docstring_paragraphs(module) + functions + classes
            if len(paragraphs) >= min_paragraphs:
                documents.append("\n\n".join(paragraphs))
    return documents


def stdlib_corpus(validation_every: int = 10):
    """The embedded default corpus as a `DatasetDict` with `train` and `validation` splits (every
    `validation_every`-th document goes to validation), column `text`."""
    from datasets import Dataset, DatasetDict

    documents = stdlib_documents()
    train = [doc for i, doc in enumerate(documents) if i % validation_every != validation_every - 1]
    validation = [doc for i, doc in enumerate(documents) if i % validation_every == validation_every - 1]
    return DatasetDict(train=Dataset.from_dict({"text": train}), validation=Dataset.from_dict({"text": validation}))


__all__ = ["STDLIB_MODULES", "stdlib_corpus", "stdlib_documents"]
