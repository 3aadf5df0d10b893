"""GLUE task definitions, local data loading, metrics and submission files (no training)."""

import csv
import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from ponet_training.tasks import metrics
from ponet_training.tasks.glue import data as glue_data, submission as glue_submission, registry as glue_tasks
from ponet_training.data import toy_pairs
from ponet_training.tasks.metrics import classification_metrics


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_task_error_lists_the_nine_tasks():
    with pytest.raises(ValueError) as err:
        glue_tasks.get_task("squad")
    for name in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"):
        assert name in str(err.value)


def test_task_names_accept_benchmark_spellings():
    assert glue_tasks.get_task("SST-2").name == "sst2"
    assert glue_tasks.get_task("STS-B").name == "stsb"
    assert glue_tasks.get_task("MNLI").eval_splits == ("validation_matched", "validation_mismatched")


def test_original_mrpc_tsv_layout_is_read_with_quotes_untouched(tmp_path):
    path = write(tmp_path / "train.tsv",
                 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
                 '1\t1\t2\tHe said "yes.\tShe said "no".\n'
                 '0\t3\t4\tA cat.\tA dog.\n')
    data = glue_data.load_local_split(glue_tasks.get_task("mrpc"), path, labelled=True)
    assert data["sentence1"] == ['He said "yes.', "A cat."]
    assert data["sentence2"] == ['She said "no".', "A dog."]
    assert data["label"] == [1, 0]


def test_headerless_cola_train_file_is_recognised(tmp_path):
    path = write(tmp_path / "train.tsv", "gj04\t1\t\tOur friends won't buy this.\ngj04\t0\t*\tThey drank the pub.\n")
    data = glue_data.load_local_split(glue_tasks.get_task("cola"), path, labelled=True)
    assert data["sentence"] == ["Our friends won't buy this.", "They drank the pub."]
    assert data["label"] == [1, 0]


def test_mnli_string_labels_and_original_column_names(tmp_path):
    path = write(tmp_path / "dev_matched.tsv",
                 "index\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
                 "7\tfiction\tA man sleeps.\tA person rests.\tentailment\tentailment\n"
                 "8\tfiction\tA man sleeps.\tA man runs.\tcontradiction\tcontradiction\n"
                 "9\tfiction\tA man sleeps.\tHe is tired.\tneutral\tneutral\n")
    data = glue_data.load_local_split(glue_tasks.get_task("mnli"), path, labelled=True)
    assert data["premise"][0] == "A man sleeps."
    assert data["hypothesis"][1] == "A man runs."
    assert data["label"] == [0, 2, 1]
    assert data["idx"] == [7, 8, 9]


def test_json_lines_and_csv_are_read(tmp_path):
    rows = [{"sentence1": "a b", "sentence2": "c", "label": 3.5}, {"sentence1": "d", "sentence2": "e f", "label": 0}]
    jsonl = write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows))
    assert glue_data.load_local_split(glue_tasks.get_task("stsb"), jsonl, labelled=True)["label"] == [3.5, 0.0]
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label"])
        writer.writerow(["good, really", "positive"])
        writer.writerow(["bad", "0"])
    data = glue_data.load_local_split(glue_tasks.get_task("sst2"), tmp_path / "train.csv", labelled=True)
    assert data["sentence"] == ["good, really", "bad"] and data["label"] == [1, 0]


def test_missing_columns_error_names_them(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence1\tlabel\nhello\t1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['sentence2'\]"):
        glue_data.load_local_split(glue_tasks.get_task("rte"), path, labelled=True)


def test_missing_label_column_is_an_error_for_train_but_not_for_test(tmp_path):
    path = write(tmp_path / "test.tsv", "index\tsentence\n0\thello\n1\tworld\n")
    with pytest.raises(ValueError, match="label"):
        glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=True)
    test = glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=False)
    assert test["label"] == [-1, -1] and test["idx"] == [0, 1]


@pytest.mark.parametrize(
    "task, header, row, bad",
    [
        ("sst2", "sentence\tlabel", "fine\t2", "2"),
        ("mnli", "premise\thypothesis\tlabel", "a\tb\tmaybe", "maybe"),
        ("stsb", "sentence1\tsentence2\tlabel", "a\tb\t7.5", "7.5"),
        ("rte", "sentence1\tsentence2\tlabel", "a\tb\t", "''"),
    ],
)
def test_labels_outside_the_label_set_are_rejected(tmp_path, task, header, row, bad):
    path = write(tmp_path / "dev.tsv", f"{header}\n{row}\n")
    with pytest.raises(ValueError, match="outside the") as err:
        glue_data.load_local_split(glue_tasks.get_task(task), path, labelled=True)
    assert bad in str(err.value) and "row 0" in str(err.value)


def test_empty_files_give_a_clear_error(tmp_path):
    for name in ("train.tsv", "train.jsonl", "train.csv"):
        path = write(tmp_path / name, "")
        with pytest.raises(ValueError, match="is empty"):
            glue_data.load_local_split(glue_tasks.get_task("sst2"), path, labelled=True)
    header_only = write(tmp_path / "h.tsv", "sentence\tlabel\n")
    with pytest.raises(ValueError, match="no data rows"):
        glue_data.load_local_split(glue_tasks.get_task("sst2"), header_only, labelled=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        glue_data.load_local_split(glue_tasks.get_task("sst2"), tmp_path / "nope.tsv", labelled=True)


def test_glue_metrics_equal_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    assert metrics.compute_glue_metrics("cola", preds, labels) == {
        "matthews_correlation": pytest.approx(matthews_corrcoef(labels, preds))}
    mrpc = metrics.compute_glue_metrics("mrpc", preds, labels)
    assert mrpc["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert mrpc["f1"] == pytest.approx(f1_score(labels, preds))
    assert mrpc["combined_score"] == pytest.approx((mrpc["accuracy"] + mrpc["f1"]) / 2)
    scores, targets = rng.uniform(0, 5, 40), rng.uniform(0, 5, 40)
    stsb = metrics.compute_glue_metrics("stsb", scores, targets)
    assert stsb["pearson"] == pytest.approx(pearsonr(scores, targets)[0])
    assert stsb["spearmanr"] == pytest.approx(spearmanr(scores, targets)[0])
    three = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
    assert metrics.compute_glue_metrics("mnli", *three)["accuracy"] == pytest.approx(accuracy_score(three[1], three[0]))


def test_long_document_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    refs, preds = rng.integers(0, 5, 60), rng.integers(0, 5, 60)
    result = classification_metrics(preds, refs, num_labels=5)
    assert result["micro_f1"] == pytest.approx(f1_score(refs, preds, average="micro"))
    assert result["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    assert "f1" not in result
    binary = classification_metrics(preds % 2, refs % 2, num_labels=2)
    assert binary["f1"] == pytest.approx(f1_score(refs % 2, preds % 2))


@pytest.mark.parametrize(
    "task, split, name, prediction, expected",
    [
        ("cola", "test", "CoLA.tsv", 1, "1"),
        ("sst2", "test", "SST-2.tsv", 0, "0"),
        ("mrpc", "test", "MRPC.tsv", 1, "1"),
        ("qqp", "test", "QQP.tsv", 1, "1"),
        ("stsb", "test", "STS-B.tsv", 5.7, "5.000"),
        ("mnli", "test_matched", "MNLI-m.tsv", 1, "neutral"),
        ("mnli", "test_mismatched", "MNLI-mm.tsv", 2, "contradiction"),
        ("qnli", "test", "QNLI.tsv", 1, "not_entailment"),
        ("rte", "test", "RTE.tsv", 0, "entailment"),
        ("wnli", "test", "WNLI.tsv", 1, "1"),
    ],
)
def test_submission_files_have_benchmark_names_headers_and_labels(tmp_path, task, split, name, prediction, expected):
    path = glue_submission.write_submission(tmp_path, glue_tasks.get_task(task), split, [1, 0], [prediction, prediction])
    assert path.name == name
    lines = path.read_text().splitlines()
    assert lines == ["index\tprediction", f"0\t{expected}", f"1\t{expected}"]


def test_ax_submission_uses_mnli_label_names(tmp_path):
    path = glue_submission.write_submission(tmp_path, glue_tasks.AX_TASK, "test", [0, 1, 2], [0, 1, 2])
    assert path.name == "AX.tsv"
    assert path.read_text().splitlines()[1:] == ["0\tentailment", "1\tneutral", "2\tcontradiction"]


def test_glue_average_counts_mnli_twice_and_reproduces_the_published_figure():
    assert glue_tasks.glue_average(glue_tasks.PUBLISHED_PONET_BASE_GLUE) == pytest.approx(76.80, abs=0.01)
    partial = dict(glue_tasks.PUBLISHED_PONET_BASE_GLUE)
    del partial["rte"]
    assert glue_tasks.glue_average(partial) is None


def test_toy_pair_task_is_balanced_and_written_in_mrpc_layout(tmp_path):
    paths = toy_pairs.write_toy_pair_task(tmp_path, n_train=40, n_dev=10, n_test=10, seed=3)
    assert paths["train"].read_text().splitlines()[0] == "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    assert paths["test"].read_text().splitlines()[0].startswith("index\t")
    data = glue_data.load_glue(glue_tasks.get_task("mrpc"), data_files=glue_data.glue_dir_files(glue_tasks.get_task("mrpc"), tmp_path))
    assert sorted(data) == ["test", "train", "validation"]
    assert sum(data["train"]["label"]) == 20
    positive = {"great", "wonderful", "good", "lovely", "fun", "nice"}
    for sentence2, label in zip(data["train"]["sentence2"], data["train"]["label"]):
        assert label == int(any(word.strip(".") in positive for word in sentence2.split()))
