"""Every script's input files go through one reader: each error names the file (and the row or line), labels are
validated, malformed rows are refused unless the user opts in, and GLUE test indices must be numbers."""

import json
import logging
import math

import pytest

from ponet_training.tasks import long_documents
from ponet_training.tasks.glue import data as glue_data, registry as glue_tasks
from ponet_training.data import labels, tables
from ponet_training.tasks.pretraining.corpus import load_pretraining_corpus
from conftest import pretraining_data_args as corpus_args


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("name", ["train.csv", "train.tsv", "train.jsonl"])
def test_non_utf8_table_error_names_the_file_and_the_line(tmp_path, name):
    rows = {"train.csv": "text,label\nfine,1\ncaf\xe9,0\n", "train.tsv": "text\tlabel\nfine\t1\ncaf\xe9\t0\n",
            "train.jsonl": '{"text": "fine", "label": 1}\n{"text": "caf\xe9", "label": 0}\n'}[name]
    path = write(tmp_path / name, rows, encoding="latin-1")
    line = 2 if name.endswith("jsonl") else 3
    with pytest.raises(ValueError, match=rf"{name}.*not UTF-8.*line {line}\b"):
        tables.read_table(path)


def test_non_utf8_and_empty_pretraining_corpora_are_one_clear_error_each(tmp_path):
    latin = write(tmp_path / "latin.txt", "First document here.\nSecond one, caf\xe9.\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.txt.*not UTF-8.*line 2"):
        load_pretraining_corpus(corpus_args("--train_file", latin))
    for name, content, message in (
            ("empty.txt", "", "is empty"), ("empty.jsonl", "\n", "is empty"),
            ("bad.jsonl", '{"text": "One. Two."}\n{"text": oops}\n', "line 2"),
            ("single.txt", "Only one document. It has two sentences.\n", "1 document.*--validation_file")):
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}.*{message}"):
            load_pretraining_corpus(corpus_args("--train_file", write(tmp_path / name, content)))


def test_header_only_and_empty_tables_are_clear_errors(tmp_path):
    for name, text in (("h.csv", "text,label\n"), ("h.tsv", "text\tlabel\n"), ("e.jsonl", "\n\n"), ("e.json", "[]")):
        path = write(tmp_path / name, text)
        with pytest.raises(ValueError, match=rf"{name}.*(no data rows|is empty)"):
            tables.read_table(path)


def test_malformed_tsv_rows_are_refused_with_their_line_numbers(tmp_path, caplog):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nok\t1\nbroken\t1\textra\nfine\t0\nshort\n")
    with pytest.raises(ValueError, match=r"train\.tsv: 2 malformed row.*lines 3, 5.*skip_malformed_rows"):
        glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=True)
    with caplog.at_level(logging.WARNING):
        data = glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=True, skip_malformed_rows=True)
    assert data["sentence"] == ["ok", "fine"]
    assert "skipped 2 malformed rows" in caplog.text and "train.tsv" in caplog.text


def test_non_numeric_test_index_is_refused(tmp_path):
    path = write(tmp_path / "test.tsv", "index\tsentence\n0\tgood\nx7\tbad\n")
    with pytest.raises(ValueError, match=r"test\.tsv.*row 1.*'x7'.*not a number"):
        glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=False)


@pytest.mark.parametrize("missing", ["", None, float("nan"), "nan", "None"])
def test_missing_labels_are_rejected_with_file_and_row(missing):
    values = ["pos", "neg", missing, "pos"]
    with pytest.raises(ValueError, match=r"train\.jsonl.*row 2.*missing label"):
        labels.infer_label_names(values, source="train.jsonl")
    with pytest.raises(ValueError, match="missing label"):
        labels.label_id(missing, ["neg", "pos"])


def test_long_doc_rejects_an_empty_label_instead_of_making_it_a_class(tmp_path):
    rows = [{"text": "A fox is quick.", "label": label} for label in ("0", "1", "", "1")]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=r"train\.jsonl.*row 2.*missing label"):
        long_documents.load_local_long_docs({"train": train})
    nan_rows = [{"text": "A fox is quick.", "label": label} for label in (0, 1, math.nan)]
    train_nan = write(tmp_path / "nan.json", json.dumps(nan_rows))
    with pytest.raises(ValueError, match=r"nan\.json.*row 2.*missing label"):
        long_documents.load_local_long_docs({"train": train_nan})


def test_nul_bytes_and_other_control_characters_in_a_corpus_are_refused_by_file_line_and_count(tmp_path):
    """The tokenizer deletes them and glues the words on either side; a 64 KiB block of NULs is a damaged file."""
    text = ("Apples grow on trees. They are sweet.\nApple\x00banana is one word to the tokenizer.\n"
            "Tabs\tand CRLF line ends are text.\r\n" + "\x00" * 65536 + "\nA form\x0cfeed from a PDF.\n")
    corpus = write(tmp_path / "corpus.txt", text)
    with pytest.raises(ValueError, match=r"corpus\.txt: 65538 control characters \(NUL x65537, U\+000C x1\) at lines "
                                         r"2, 4, 5;.*--allow_control_characters"):
        load_pretraining_corpus(corpus_args("--train_file", corpus, "--validation_file", corpus))


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.json"])
def test_control_characters_written_as_json_escapes_are_refused_too(tmp_path, name):
    documents = [{"text": "A clean document. It has two sentences."}, {"text": "Damaged\u0000text. Here\u001b[0m."}]
    content = ("".join(json.dumps(d) + "\n" for d in documents) if name.endswith("jsonl")
               else json.dumps(documents, indent=1))
    assert "\\u0000" in content and "\x00" not in content
    corpus = write(tmp_path / name, content)
    line = 2 if name.endswith("jsonl") else 6
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}: 2 control characters \(.*NUL x1.*U\+001B x1"
                                         rf"\) at line {line};"):
        load_pretraining_corpus(corpus_args("--train_file", corpus, "--validation_file", corpus))


def test_allowed_control_characters_are_counted_in_the_log_and_kept(tmp_path, caplog):
    corpus = write(tmp_path / "corpus.txt", "First doc. Two sentences.\nSecond\x00doc. Also two.\nBad \ufffd byte. "
                                            "Two.\n")
    with caplog.at_level(logging.WARNING, logger="ponet_training.data.text_files"):
        documents = load_pretraining_corpus(corpus_args("--train_file", corpus, "--validation_file", corpus,
                                                        "--allow_control_characters"))
    assert "Second\x00doc. Also two.\n" in documents["validation"]["text"]  # never deleted before the tokenizer
    assert "corpus.txt: 1 control character (NUL x1) at line 2, kept (--allow_control_characters)" in caplog.text
    assert "corpus.txt: 1 replacement character (U+FFFD x1) at line 3" in caplog.text


def test_a_replacement_character_alone_is_reported_not_refused(tmp_path, caplog):
    corpus = write(tmp_path / "corpus.txt", "Caf\ufffd au lait. Two sentences.\nAnother doc. Two sentences.\n")
    with caplog.at_level(logging.WARNING, logger="ponet_training.data.text_files"):
        load_pretraining_corpus(corpus_args("--train_file", corpus, "--validation_file", corpus))
    assert "corpus.txt: 1 replacement character (U+FFFD x1) at line 1" in caplog.text
