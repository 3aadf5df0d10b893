"""The pretraining corpus from the Python documentation package: HTML -> prose documents -> jsonl files that
run_pretraining.py reads; the .deb is unpacked without dpkg."""

import argparse
import io
import json
import logging
import tarfile

import pytest

from ponet_training.data import python_docs


LONG = ("This paragraph is long enough to count as prose, and it says so in plain words, with a few more "
        "words at its end.")

PAGE = f"""<html><body><div class="sphinxsidebar"><p>{LONG} (sidebar)</p></div>
<div class="body" role="main"><section id="a">
<h1>Tutorial<a class="headerlink" href="#a">¶</a></h1>
<p>{LONG} One.</p>
<div class="highlight"><pre>&gt;&gt;&gt; print("code is not prose, even when it is long enough")</pre></div>
<p>{LONG} Two &amp; <code>three</code>.</p>
<p>short one.</p>
<section id="b"><h2>Second part<a class="headerlink" href="#b">¶</a></h2>
<p>{LONG} Four.</p><p>{LONG} One.</p><p>{LONG} Five.</p><p>{LONG} Six.</p>
<p>{'x = 1; ' * 10}</p>
</section><section id="c"><h2>Tiny</h2><p>{LONG} Seven.</p></section></section></div>
<div class="footer"><p>{LONG} (footer)</p></div></body></html>"""


@pytest.fixture
def html_dir(tmp_path):
    root = tmp_path / "html"
    (root / "tutorial").mkdir(parents=True)
    (root / "index.html").write_text("<html><div role='main'></div></html>")
    (root / "tutorial" / "intro.html").write_text(PAGE)
    (root / "genindex-A.html").write_text(PAGE)
    return root


def test_documents_are_the_prose_paragraphs_of_each_section(html_dir, caplog):
    with caplog.at_level(logging.INFO, logger="ponet_training.data.python_docs"):
        documents, counts = python_docs.build_documents(html_dir)
    assert [d["source"] for d in documents] == ["tutorial/intro.html#Tutorial", "tutorial/intro.html#Second part"]
    assert documents[0]["text"] == f"{LONG} One.\n\n{LONG} Two & three."
    assert documents[1]["text"] == "\n\n".join(f"{LONG} {n}." for n in ("Four", "Five", "Six"))
    assert (counts["pages_excluded"], counts["paragraphs_not_prose"], counts["paragraphs_repeated"],
            counts["sections_too_short"]) == (1, 2, 1, 1)
    assert "1 index/changelog pages left out" in caplog.text and "1 repeats" in caplog.text


def test_write_corpus_gives_files_run_pretraining_reads(html_dir, tmp_path):
    from ponet_training.tasks.pretraining.corpus import add_pretraining_data_args, load_pretraining_corpus

    out = tmp_path / "corpus"
    info = python_docs.write_corpus(out, html_dir=html_dir)
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    validation = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert len(train) + len(validation) == 2
    assert all(python_docs.is_validation(d["source"]) for d in validation)
    assert not any(python_docs.is_validation(d["source"]) for d in train)
    assert info["train"]["words"] == sum(len(d["text"].split()) for d in train)
    assert json.loads((out / "corpus_info.json").read_text())["license"].startswith("PSF-2.0")

    args = add_pretraining_data_args(argparse.ArgumentParser()).parse_args(
        ["--train_file", str(out / "train.jsonl"), "--validation_file", str(out / "train.jsonl")])
    args.seed, args.preprocessing_num_workers, args.overwrite_cache = 0, None, False
    loaded = load_pretraining_corpus(args)
    assert loaded["train"].column_names == ["text"] and loaded["train"]["text"] == [d["text"] for d in train]


def test_validation_share_is_about_five_percent_and_fixed():
    sources = [f"library/page{i}.html#Section {i}" for i in range(4000)]
    chosen = [s for s in sources if python_docs.is_validation(s)]
    assert 0.04 < len(chosen) / len(sources) < 0.06
    assert chosen == [s for s in sources if python_docs.is_validation(s)]


def _ar(members):
    blob = b"!<arch>\n"
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        blob += header + data + (b"\n" if len(data) % 2 else b"")
    return blob


def test_deb_is_unpacked_in_python_html_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("PONET_CACHE_DIR", str(tmp_path / "cache"))
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for name, text in (("index.html", "<html></html>"), ("tutorial/intro.html", PAGE), ("_static/x.js", "js")):
            payload = text.encode()
            info = tarfile.TarInfo(f"./{python_docs.HTML_IN_PACKAGE}/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo(f"./{python_docs.HTML_IN_PACKAGE}/_static/jquery.html")
        link.type, link.linkname = tarfile.SYMTYPE, "/usr/share/javascript/jquery.html"
        archive.addfile(link)
    deb = tmp_path / "python3.11-doc_1_all.deb"
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b"x"), ("data.tar.xz", data.getvalue())]))
    root = python_docs.locate_html(deb=deb)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")) == ["index.html", "tutorial/intro.html"]
    assert (root / "tutorial" / "intro.html").read_text() == PAGE
    assert len(python_docs.build_documents(root)[0]) == 2


def test_bad_sources_raise_clear_errors(tmp_path):
    not_deb = tmp_path / "x.deb"
    not_deb.write_bytes(b"hello")
    with pytest.raises(ValueError, match="is not a Debian package"):
        python_docs.unpack_deb_html(not_deb, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="has no index.html"):
        python_docs.locate_html(html_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        python_docs.unpack_deb_html(tmp_path / "missing.deb", tmp_path / "out")
