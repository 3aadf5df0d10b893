"""A real English corpus for pretraining, from a Debian package: the Python 3.11 documentation
(`python3.11-doc`: tutorial, HOWTOs, FAQs, language and library reference, What's New essays), written by
people over twenty years; PSF License 2 (code examples also 0BSD).

`python -m ponet_training.data.python_docs --output_dir data/pydoc` writes `train.jsonl` and `validation.jsonl`, one
document per line (`{"text": ..., "source": page#section}`), which `pretrain/run_pretraining.py` reads with
`--train_file data/pydoc/train.jsonl --validation_file data/pydoc/validation.jsonl`, and `corpus_info.json`
(origin, counts, what was left out).

- Where the HTML comes from: `--html_dir` (an unpacked `usr/share/doc/python3.11/html`), else the installed
  package (`apt-get install python3.11-doc`), else a `.deb` (`--deb`, the cache, or `apt-get download
  python3.11-doc` into the cache; the .deb is unpacked in Python, so no root and no dpkg are needed).
- What is kept: the prose paragraphs (`<p>`) of each page's main body; code blocks, tables of contents,
  navigation, and the `¶` header links are not text. A document is one section (a page's `<h1>` or `<h2>`
  part), so the "another document" of SSO is another topic.
- Left out, each counted in the log and in corpus_info.json: the index pages (no prose), the changelog (bug
  tracker one-liners), paragraphs shorter than 40 characters or less than 60% letters (signatures, version
  tags), repeats of an identical paragraph (boilerplate such as availability notes), and sections with
  less than 200 characters of prose.
- Validation: a fixed 5% of the sections, chosen by a hash of their name (not by position, so neighbouring
  sections of one page do not all fall on one side).
"""

import argparse
import hashlib
import html.parser
import io
import json
import logging
import os
import re
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from ponet_training.data.cache import cache_dir, filling, sha256_of


logger = logging.getLogger(__name__)

PACKAGE = "python3.11-doc"
HTML_IN_PACKAGE = "usr/share/doc/python3.11/html"
INSTALLED_HTML = Path("/") / HTML_IN_PACKAGE
LICENSE = "PSF-2.0 (Python documentation; code examples also 0BSD)"
# Pages without prose or with another kind of text, left out (and logged).
EXCLUDED_PAGES = re.compile(r"^(genindex.*|py-modindex|search|contents|whatsnew/changelog)\.html$")
MIN_PARAGRAPH_CHARS = 40
MIN_LETTER_SHARE = 0.6
MIN_DOCUMENT_CHARS = 200
VALIDATION_PERCENT = 5


# ----------------------------------------------------------------------------------------------------------
# Finding the HTML
# ----------------------------------------------------------------------------------------------------------


def _ar_members(path: Path):
    """(name, bytes) of each member of an `ar` archive (the .deb container)."""
    with open(path, "rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise ValueError(f"{path} is not a Debian package (no ar signature)")
        while header := handle.read(60):
            if len(header) < 60:
                raise ValueError(f"{path}: truncated ar header")
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode())
            yield name, handle.read(size)
            handle.read(size % 2)  # members are 2-byte aligned


def unpack_deb_html(deb: str | os.PathLike, target: Path) -> Path:
    """Extract the documentation's .html files from `deb` into `target` (plain files only, no links)."""
    deb = Path(deb)
    if not deb.is_file():
        raise FileNotFoundError(f"--deb: no such file: {deb}")
    data = next((blob for name, blob in _ar_members(deb) if name.startswith("data.tar")), None)
    if data is None:
        raise ValueError(f"{deb} has no data.tar member")
    prefix = f"./{HTML_IN_PACKAGE}/"
    with filling(target) as scratch, tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        pages = 0
        for member in archive:
            if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".html"):
                relative = member.name[len(prefix):]
                (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
                (scratch / relative).write_bytes(archive.extractfile(member).read())
                pages += 1
        if pages == 0:
            raise ValueError(f"{deb} holds no {prefix}*.html: is it {PACKAGE}?")
        (scratch / "SOURCE").write_text(f"{deb.name} sha256 {sha256_of(deb)}\n")
    return target


def _download_deb(folder: Path) -> Path:
    logger.info(f"Fetching {PACKAGE} into {folder} with apt-get download")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        scratch = Path(scratch)
        try:
            result = subprocess.run(["apt-get", "download", PACKAGE], cwd=scratch, capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError(f"No apt-get here: install {PACKAGE} or pass its .deb (--deb) or its html folder "
                               f"(--html_dir)") from None
        debs = sorted(scratch.glob(f"{PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            raise RuntimeError(f"`apt-get download {PACKAGE}` failed (exit {result.returncode}; run `apt-get "
                               f"update` first?):\n{result.stderr.strip()}")
        debs[0].replace(folder / debs[0].name)
    return folder / debs[0].name


def locate_html(html_dir: str | os.PathLike | None = None, deb: str | os.PathLike | None = None,
                download: bool = True) -> Path:
    """The folder of the documentation's HTML pages (see the module docstring for the search order)."""
    if html_dir is not None:
        if not (Path(html_dir) / "index.html").is_file():
            raise FileNotFoundError(f"--html_dir {html_dir} has no index.html: not the Python documentation")
        return Path(html_dir)
    if deb is not None:
        return unpack_deb_html(deb, cache_dir("corpus") / f"html-{sha256_of(deb)[:12]}")
    if (INSTALLED_HTML / "index.html").is_file():
        return INSTALLED_HTML
    folder = cache_dir("corpus")
    unpacked = sorted(folder.glob("html-*"))
    if unpacked:
        return unpacked[-1]
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        if not download:
            raise FileNotFoundError(f"No {PACKAGE} here: `apt-get download {PACKAGE}` into {folder}, or pass "
                                    f"--deb / --html_dir")
        debs = [_download_deb(folder)]
    return unpack_deb_html(debs[-1], folder / f"html-{sha256_of(debs[-1])[:12]}")


# ----------------------------------------------------------------------------------------------------------
# HTML -> sections of prose paragraphs
# ----------------------------------------------------------------------------------------------------------


class _ProseParser(html.parser.HTMLParser):
    """Collects (section title, [paragraph texts]) from the main body of one Sphinx page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, list[str]]] = []
        self._main_depth = 0  # >0 inside <div role="main">
        self._skip_depth = 0  # >0 inside <pre> or a header link
        self._heading: list[str] | None = None
        self._paragraph: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._main_depth:
            if tag == "div":
                self._main_depth += 1
            if tag == "pre" or (tag == "a" and "headerlink" in (attrs.get("class") or "")):
                self._skip_depth += 1
            elif tag in ("h1", "h2"):
                self._heading = []
            elif tag == "p" and self._paragraph is None:
                self._paragraph = []
        elif tag == "div" and attrs.get("role") == "main":
            self._main_depth = 1

    def handle_endtag(self, tag):
        if not self._main_depth:
            return
        if tag == "div":
            self._main_depth -= 1
        elif tag in ("pre", "a") and self._skip_depth:
            self._skip_depth -= 1
        elif tag in ("h1", "h2") and self._heading is not None:
            self.sections.append((" ".join("".join(self._heading).split()), []))
            self._heading = None
        elif tag == "p" and self._paragraph is not None:
            text = " ".join("".join(self._paragraph).split())
            if text:
                if not self.sections:
                    self.sections.append(("", []))
                self.sections[-1][1].append(text)
            self._paragraph = None

    def handle_data(self, data):
        if not self._main_depth or self._skip_depth:
            return
        if self._heading is not None:
            self._heading.append(data)
        if self._paragraph is not None:
            self._paragraph.append(data)


def _is_prose(paragraph: str) -> bool:
    letters = sum(c.isalpha() or c.isspace() for c in paragraph)
    return len(paragraph) >= MIN_PARAGRAPH_CHARS and letters >= MIN_LETTER_SHARE * len(paragraph)


def build_documents(html_root: str | os.PathLike) -> tuple[list[dict], dict]:
    """Documents `{"text", "source"}` (paragraphs joined by blank lines) and the counts of what was left out."""
    html_root = Path(html_root)
    pages = sorted(p for p in html_root.rglob("*.html"))
    if not pages:
        raise FileNotFoundError(f"{html_root} holds no .html page")
    counts = Counter()
    seen_paragraphs: set[str] = set()
    documents = []
    for page in pages:
        relative = page.relative_to(html_root).as_posix()
        if EXCLUDED_PAGES.match(relative):
            counts["pages_excluded"] += 1
            continue
        counts["pages_read"] += 1
        parser = _ProseParser()
        parser.feed(page.read_text(encoding="utf-8"))
        for title, paragraphs in parser.sections:
            kept = []
            for paragraph in paragraphs:
                if not _is_prose(paragraph):
                    counts["paragraphs_not_prose"] += 1
                elif paragraph in seen_paragraphs:
                    counts["paragraphs_repeated"] += 1
                else:
                    seen_paragraphs.add(paragraph)
                    kept.append(paragraph)
            text = "\n\n".join(kept)
            if len(text) < MIN_DOCUMENT_CHARS:
                counts["sections_too_short"] += 1
                continue
            documents.append({"text": text, "source": f"{relative}#{title}"})
    counts["paragraphs_kept"] = len(seen_paragraphs)
    logger.info(f"{counts['pages_read']} pages read ({counts['pages_excluded']} index/changelog pages left out); "
                f"paragraphs: {counts['paragraphs_kept']} kept, {counts['paragraphs_not_prose']} not prose, "
                f"{counts['paragraphs_repeated']} repeats; {counts['sections_too_short']} sections under "
                f"{MIN_DOCUMENT_CHARS} characters left out; {len(documents)} documents")
    return documents, dict(counts)


def is_validation(source: str, percent: int = VALIDATION_PERCENT) -> bool:
    return int(hashlib.sha256(source.encode()).hexdigest(), 16) % 100 < percent


def write_corpus(output_dir: str | os.PathLike, html_dir=None, deb=None, download: bool = True) -> dict:
    """Build the documents and write train.jsonl, validation.jsonl and corpus_info.json; return the info."""
    root = locate_html(html_dir, deb, download)
    documents, counts = build_documents(root)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "validation": []}
    for document in documents:
        splits["validation" if is_validation(document["source"]) else "train"].append(document)
    info = {"package": PACKAGE, "html": str(root), "license": LICENSE, "counts": counts}
    if (root / "SOURCE").is_file():
        info["deb"] = (root / "SOURCE").read_text().strip()
    for split, docs in splits.items():
        with open(output_dir / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for document in docs:
                handle.write(json.dumps(document, ensure_ascii=False) + "\n")
        info[split] = {"documents": len(docs), "characters": sum(len(d["text"]) for d in docs),
                       "words": sum(len(d["text"].split()) for d in docs)}
        logger.info(f"{split}: {len(docs)} documents, {info[split]['words']:,} words -> {output_dir}/{split}.jsonl")
    (output_dir / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="Where train.jsonl, validation.jsonl go.")
    parser.add_argument("--html_dir", default=None, help="An unpacked usr/share/doc/python3.11/html folder.")
    parser.add_argument("--deb", default=None, help=f"A {PACKAGE} .deb file.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    write_corpus(args.output_dir, args.html_dir, args.deb)


if __name__ == "__main__":
    main()
