"""Tables are read as their writers wrote them (RFC 4180 quoting in csv and tsv, GLUE's plain tsv kept as written),
every row of the file is accounted for by line, and labels are typed by one rule: integral values are classes,
whatever their spelling; regression only for non-integral values or when asked."""

import csv
import logging

import pandas as pd
import pytest

from ponet_training.data import labels, tables
from ponet_training.tasks.glue import data as glue_data, registry as glue_tasks


# Texts that a spreadsheet or a scraped corpus holds: every character RFC 4180 quoting exists for, and quotes that
# plain (GLUE-style) tsv files keep as text.
TRICKY_TEXTS = [
    "a tab\tinside",
    "two lines\nof text",
    "windows\r\nline end",
    'he said "hi" twice',
    '"Yes," she said.',
    '"quoted whole"',
    "commas, commas, commas",
    "  spaces around  ",
    "café — ünïcode ✓",
    "plain",
]


def frame():
    return pd.DataFrame({"sentence": TRICKY_TEXTS, "label": ["pos", "neg"] * (len(TRICKY_TEXTS) // 2)})


def as_rows(data: pd.DataFrame) -> list[dict]:
    return [{column: str(value) for column, value in row.items()} for row in data.to_dict("records")]


def read_logged(path, text: str, caplog) -> list[dict]:
    """The rows of `text` written to `path` and read back, the reader's log in `caplog`."""
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="ponet_training.data.tables"):
        return tables.read_table(path)[1]


def reference(path, sep) -> list[dict]:
    """pandas' own reader on the file, every value as the text it holds."""
    return as_rows(pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False))


@pytest.mark.parametrize("sep, suffix", [("\t", "tsv"), (",", "csv")])
def test_files_written_by_pandas_are_read_back_as_pandas_wrote_them(tmp_path, caplog, sep, suffix):
    path = tmp_path / f"train.{suffix}"
    frame().to_csv(path, sep=sep, index=False)
    with caplog.at_level(logging.INFO, logger="ponet_training.data.tables"):
        columns, rows = tables.read_table(path)
    assert columns == ["sentence", "label"]
    assert rows == as_rows(frame()) == reference(path, sep)
    # 10 rows on 13 lines: the two with a line break in a quoted field are named by their lines.
    assert "10 rows on lines 2-13" in caplog.text
    assert "quoted line breaks in the rows on lines 3-4, 5-6" in caplog.text


@pytest.mark.parametrize("delimiter, quoting", [
    ("\t", csv.QUOTE_MINIMAL), ("\t", csv.QUOTE_ALL), ("\t", csv.QUOTE_NONNUMERIC),
    (",", csv.QUOTE_MINIMAL), (",", csv.QUOTE_ALL), (",", csv.QUOTE_NONNUMERIC),
])
def test_files_written_by_the_csv_module_in_every_quoting_style_are_read_back(tmp_path, delimiter, quoting):
    path = tmp_path / ("train.tsv" if delimiter == "\t" else "train.csv")
    expected = as_rows(frame())
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, quoting=quoting)
        writer.writerow(["sentence", "label"])
        writer.writerows([row["sentence"], row["label"]] for row in expected)
    assert tables.read_table(path) == (["sentence", "label"], expected)


def test_the_csv_modules_excel_tab_dialect_is_read_back(tmp_path):
    path = tmp_path / "export.tsv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, dialect="excel-tab")
        writer.writerow(["sentence", "label"])
        writer.writerows([row["sentence"], row["label"]] for row in as_rows(frame()))
    assert tables.read_table(path)[1] == as_rows(frame())


def test_an_excel_style_csv_with_a_byte_order_mark_and_crlf_lines_is_read_back(tmp_path):
    """Excel's "CSV UTF-8" bytes (a BOM, CRLF line ends, RFC 4180 quoting), as pandas writes them for Excel; no
    spreadsheet program is installed here to write one itself."""
    path = tmp_path / "export.csv"
    frame().to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfsentence,label\r\n")
    assert tables.read_table(path) == (["sentence", "label"], as_rows(frame()))


def test_a_quoted_line_break_in_a_tsv_never_turns_a_fragment_into_a_class(tmp_path, caplog):
    """The label before the text, as many exports have it: read line by line, the second half of a review would be
    a row whose label is the word before the tab ("tab"), a class of its own."""
    path = tmp_path / "reviews.tsv"
    pd.DataFrame({"label": ["pos", "neg", "pos", "neg"],
                  "text": ["good film\nwith a\ttab inside", "bad", "great", "awful"]}).to_csv(path, sep="\t",
                                                                                            index=False)
    with caplog.at_level(logging.INFO):
        task = glue_data.local_task_from_file(path, text_column="text")
    assert task.label_names == ("neg", "pos")
    split = glue_data.load_local_split(task, path, labelled=True)
    assert split["text"][0] == "good film\nwith a\ttab inside" and len(split) == 4


def test_glue_style_plain_tsv_keeps_its_quotes_as_text(tmp_path, caplog):
    """GLUE's files are tab-separated without quoting: quotes that open a field are text (MNLI's speech, an
    unbalanced quote in CoLA); reading them as RFC 4180 would drop quotes or merge rows."""
    lines = ['sentence\tlabel', '"Yes," he said.\t1', '"quoted whole"\t0', 'an "inner" quote\t1',
             '"unbalanced start\t0', 'and end"\t1']
    rows = read_logged(tmp_path / "train.tsv", "\n".join(lines) + "\n", caplog)
    assert [row["sentence"] for row in rows] == [line.split("\t")[0] for line in lines[1:]]
    assert "plain tab-separated" in caplog.text


def test_enclosing_quotes_that_nothing_needed_are_kept_and_said(tmp_path, caplog):
    """Nothing in the file needs RFC 4180 quoting (no quoted tab, line break or doubled quote, no quoted header):
    the quotes around a whole field are the writer's text, kept, and the log names the line."""
    rows = read_logged(tmp_path / "train.tsv", 'sentence\tlabel\n"A title"\t1\nplain\t0\n', caplog)
    assert rows[0]["sentence"] == '"A title"'
    assert "line 2" in caplog.text and "quotes kept" in caplog.text


def test_the_original_glue_folder_is_read_without_quoting(tmp_path, caplog):
    """CoLA's header-less files: an opening quote on one line and a closing quote at the end of a later one would,
    read as RFC 4180, make one row of two. A --glue_dir file is GLUE's, written without quoting: two rows."""
    folder = tmp_path / "CoLA"
    folder.mkdir()
    (folder / "train.tsv").write_text('src\t1\t\t"Opening quote here.\nsrc\t0\t*\tand a closing one."\n'
                                      'src\t1\t\tA plain one.\n', encoding="utf-8")
    cola = glue_tasks.get_task("cola")
    files = glue_data.glue_dir_files(cola, folder)
    data = glue_data.load_glue(cola, data_files=files, glue_dir=folder)["train"]
    assert data["sentence"] == ['"Opening quote here.', 'and a closing one."', "A plain one."]
    assert data["label"] == [1, 0, 1]
    # The same bytes as a user's own file: read as quoted fields, and the merged lines are named.
    with caplog.at_level(logging.INFO, logger="ponet_training.data.tables"):
        own = glue_data.load_local_split(cola, folder / "train.tsv", labelled=True)
    assert len(own) == 2 and "quoted line breaks in the rows on lines 1-2" in caplog.text


@pytest.mark.parametrize("name, text, message", [
    # Read leniently, the rest of the file would be one field.
    ("train.csv", 'label,text\n1,fine\n0,"broken\n1,ok\n1,last\n', r", line 3: .*quote.*never closed"),
    # Read leniently, the quotes would silently disappear ("Hello world").
    ("train.csv", 'text,label\nfine,1\n"Hello" world,0\n', r", line 3: .*quoted field.*doubled"),
    # A tsv quoted as RFC 4180 (a doubled quote on line 2) with a broken quoted field on line 3.
    ("train.tsv", 'sentence\tlabel\n"say ""hi"""\t1\n"x"y\t0\n', r", line 3: .*quoted field.*doubled"),
    # Neither reading of a tsv holds together: both problems are named.
    ("train.tsv", 'sentence\tlabel\n"x"y\t1\nok\t1\textra\n', r": 1 malformed row.*line 3.*as quoted fields.*line 2"),
])
def test_quoting_errors_are_refused_naming_the_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=name.replace(".", r"\.") + message):
        tables.read_table(path)


def test_every_line_of_the_file_is_accounted_for(tmp_path, caplog):
    rows = read_logged(tmp_path / "train.csv", 'text,label\n"two\nlines",1\n\nthree,0\n ,\nfour,1\n', caplog)
    assert [row["text"] for row in rows] == ["two\nlines", "three", "four"]
    assert "3 rows on lines 2-7 (quoted line breaks in the rows on lines 2-3; blank lines skipped: lines 4, 6)" \
        in caplog.text


def test_control_characters_in_a_table_are_reported_by_line(tmp_path, caplog):
    rows = read_logged(tmp_path / "train.csv", "text,label\nfine,1\nbad\x00text,0\nform\x0cfeed,1\n", caplog)
    assert rows[1]["text"] == "bad\x00text"  # read as written: never deleted here
    assert "2 control characters" in caplog.text and "lines 3, 4" in caplog.text


# --------------------------------------------------------------------------------------------------------------
# The label rule
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    ["1", "1.0", " 1 ", "0", "0.0", "+1"],
    [1, 1.0, 0, 0.0],
    ["1", 0.0, " 0 ", "1e0"],
])
def test_integral_labels_are_classes_whatever_their_spelling(values, caplog):
    with caplog.at_level(logging.INFO, logger="ponet_training.data.labels"):
        typed = labels.type_labels(values, "train.csv")
    assert typed.names == ["0", "1"] and not typed.is_regression
    assert [labels.label_id(value, typed.names) for value in values] == [int(float(v)) for v in values]
    assert "train.csv: classification" in caplog.text and "integral" in caplog.text


def test_non_integral_labels_make_a_regression_and_the_log_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="ponet_training.data.labels"):
        typed = labels.type_labels(["0.5", "1", "4.25"], "train.csv")
    assert typed.is_regression and typed.names is None
    assert "train.csv: regression" in caplog.text and "'0.5' (row 0)" in caplog.text


def test_regression_is_asked_for_on_integral_scores_and_refused_on_names(caplog):
    with caplog.at_level(logging.INFO, logger="ponet_training.data.labels"):
        assert labels.type_labels(["1", "2", "5"], "train.csv", regression=True).is_regression
    assert "--do_regression" in caplog.text
    with pytest.raises(ValueError, match=r"train\.csv: row 1: 'pos' is not a number.*--do_regression"):
        labels.type_labels(["1", "pos"], "train.csv", regression=True)


def test_scores_mixed_with_names_are_refused_naming_the_rows():
    with pytest.raises(ValueError, match=r"train\.csv.*scores.*'0\.5' \(row 0\).*'n/a' \(row 2\)"):
        labels.type_labels(["0.5", "1.5", "n/a", "2"], "train.csv")


def test_classification_only_scripts_refuse_scores():
    with pytest.raises(ValueError, match=r"train\.jsonl.*'0\.5' \(row 1\).*classes"):
        labels.infer_label_names(["1", "0.5"], "train.jsonl")


def test_local_files_with_1_and_1_0_labels_are_a_binary_task(tmp_path, caplog):
    path = tmp_path / "train.csv"
    path.write_text("sentence,label\ngood,1\nfine,1.0\nbad,0\nawful, 0 \n", encoding="utf-8")
    with caplog.at_level(logging.INFO):
        task = glue_data.local_task_from_file(path)
    assert task.label_names == ("0", "1") and not task.is_regression
    split = glue_data.load_local_split(task, path, labelled=True)
    assert split["label"] == [1, 1, 0, 0]
    assert "classification" in caplog.text
    assert glue_data.local_task_from_file(path, regression=True).is_regression
