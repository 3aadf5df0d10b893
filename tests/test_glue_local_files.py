"""finetune/run_glue.py as a general sequence-classification script on local files (any columns, the data's own
label set, regression for non-integral labels or when asked), --max_*_samples keeping the first rows, and sweep_glue's
guard rails."""

import csv
import json
import logging

import pytest
from sklearn.metrics import accuracy_score, f1_score

from ponet_training.data import tables
from conftest import common, finetune_script

run_glue, sweep_glue = finetune_script("run_glue"), finetune_script("sweep_glue")


WORDS = {"neg": "terrible boring bad", "neu": "the movie was a movie", "pos": "great wonderful good"}


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def front_matter(readme):
    import yaml

    return yaml.safe_load(readme.read_text().split("---\n")[1])


def test_local_files_read_as_a_glue_task_are_recorded_as_those_files_not_as_glue(checkpoint, tmp_path):
    """Movie sentences fine-tuned with `--task_name sst2` are not GLUE SST-2: the card and all_results.json name the
    files, carry no GLUE scores and no GLUE model-index entry; a run on the GLUE distribution's folder is GLUE."""
    rows = [(f"{WORDS[label]} {i}", {"neg": 0, "pos": 1}[label]) for i in range(24) for label in ("neg", "pos")]
    train = write_csv(tmp_path / "movies_train.csv", ["sentence", "label"], rows)
    dev = write_csv(tmp_path / "movies_dev.csv", ["sentence", "label"], rows[:10])
    out = tmp_path / "out"
    results = run_glue.main(common(checkpoint, out, "--task_name", "sst2", "--train_file", str(train),
                                   "--validation_file", str(dev), "--max_train_steps", "2", "--no_predict"))
    saved = json.loads((out / "all_results.json").read_text())
    assert saved["data_files"] == {"train": str(train), "validation": str(dev)} == results["data_files"]
    assert "movies_train.csv" in saved["data"] and "glue_scores" not in saved
    card = (out / "README.md").read_text()
    metadata = front_matter(out / "README.md")
    assert "fine-tuned on GLUE SST-2" not in card and "movies_train.csv" in card
    assert "datasets" not in metadata
    names = {result["dataset"]["name"] for entry in metadata["model-index"] for result in entry["results"]}
    assert names == {"movies_dev.csv"}


def test_text_label_csv_trains_binary_with_accuracy_and_f1(checkpoint, tmp_path):
    rows = [(f"{WORDS[label]} {i}", label) for i in range(24) for label in ("neg", "pos")]
    train = write_csv(tmp_path / "train.csv", ["text", "label"], rows)
    dev = write_csv(tmp_path / "dev.csv", ["text", "label"], rows[:10])
    test = write_csv(tmp_path / "test.csv", ["text", "label"], rows[:6])
    out = tmp_path / "out"
    results = run_glue.main(common(checkpoint, out, "--train_file", str(train), "--validation_file", str(dev),
                                   "--test_file", str(test), "--num_train_epochs", "1"))
    assert {"eval_accuracy", "eval_f1"} <= set(results) and "eval_macro_f1" not in results
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    assert not (out / "glue_submission").exists()
    lines = (out / "predictions" / "test.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 7
    assert {line.split("\t")[1] for line in lines[1:]} <= {"neg", "pos"}
    refs = [int(line.split("\t")[2]) for line in (out / "predictions" / "validation.tsv").read_text().splitlines()[1:]]
    preds = [int(line.split("\t")[1]) for line in (out / "predictions" / "validation.tsv").read_text().splitlines()[1:]]
    assert results["eval_accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert results["eval_f1"] == pytest.approx(f1_score(refs, preds))


def test_three_class_pair_file_with_own_columns_gets_macro_f1(checkpoint, tmp_path):
    rows = [(f"{WORDS[label]} {i}", "a movie", label) for i in range(12) for label in ("pos", "neu", "neg")]
    train = write_csv(tmp_path / "train.csv", ["review", "topic", "stance"], rows)
    results = run_glue.main(common(checkpoint, tmp_path / "out", "--train_file", str(train), "--validation_file",
                                   str(train), "--text_column_name", "review", "--text_pair_column_name", "topic",
                                   "--label_column_name", "stance", "--num_train_epochs", "1"))
    assert {"eval_accuracy", "eval_macro_f1"} <= set(results) and "eval_f1" not in results
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}


def test_float_labels_train_a_regressor_with_correlations(checkpoint, tmp_path):
    rows = [(f"{WORDS[name]} {i}", score) for i in range(12) for name, score in (("neg", "0.5"), ("pos", "4.25"))]
    train = write_csv(tmp_path / "train.csv", ["sentence", "label"], rows)
    results = run_glue.main(common(checkpoint, tmp_path / "out", "--train_file", str(train), "--validation_file",
                                   str(train), "--num_train_epochs", "1"))
    assert {"eval_pearson", "eval_spearmanr"} <= set(results)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1


def test_local_files_errors_name_the_file(checkpoint, tmp_path):
    train = write_csv(tmp_path / "train.csv", ["body", "label"], [("good", "pos"), ("bad", "neg")])
    with pytest.raises(ValueError, match=r"train\.csv.*text column.*\['body', 'label'\].*--text_column_name"):
        run_glue.main(common(checkpoint, tmp_path / "o1", "--train_file", str(train), "--validation_file", str(train)))
    dev = write_csv(tmp_path / "dev.csv", ["body", "label"], [("good", "pos"), ("meh", "neutral")])
    with pytest.raises(ValueError, match=r"dev\.csv.*row 1.*neutral"):
        run_glue.main(common(checkpoint, tmp_path / "o2", "--train_file", str(train), "--validation_file", str(dev),
                             "--text_column_name", "body"))


def test_max_samples_keep_the_first_rows():
    from datasets import Dataset

    data = Dataset.from_dict({"x": list(range(10))})
    assert tables.keep_first(data, 4, "training")["x"] == [0, 1, 2, 3]
    assert tables.keep_first(data, None, "training") is data
    assert tables.keep_first(data, 50, "training") is data


def test_sweep_refuses_pass_through_flags_that_override_the_grid(tmp_path):
    for flag in (["--learning_rate", "5e-2"], ["--learning_rate=5e-2"], ["--learning_r", "5e-2"],
                 ["--per_device_train_batch_size", "4"], ["--seed", "1"]):
        with pytest.raises(ValueError, match=f"{flag[0].split('=')[0]}.*grid"):
            sweep_glue.parse_args(["--tasks", "mrpc", "--output_dir", str(tmp_path), "--learning_rates", "1e-3",
                                   "--", *flag])
    args = sweep_glue.parse_args(["--tasks", "mrpc", "--output_dir", str(tmp_path), "--", "--weight_decay", "0.1"])
    assert args.extra == ["--weight_decay", "0.1"]


def test_sweep_records_its_settings_and_refuses_to_mix_runs(tmp_path):
    def settings_of(*argv):
        return sweep_glue.record_settings(sweep_glue.parse_args(["--tasks", "mrpc", "--output_dir", str(tmp_path),
                                                                 *argv]))

    settings_of("--", "--weight_decay", "0.1")
    settings = json.loads((tmp_path / "sweep_settings.json").read_text())
    assert settings["extra"] == ["--weight_decay", "0.1"] and settings["max_length"] == 128
    # The settings that change a result, as the checkpoint fingerprint has them, but the grid and how runs start.
    assert set(settings) == {"model_name_or_path", "num_train_epochs", "max_length", "seed", "glue_root",
                             "num_processes", "launcher", "extra"}
    settings_of("--learning_rates", "1e-3", "--", "--weight_decay", "0.1")  # another grid over the same settings
    with pytest.raises(ValueError, match="extra"):
        settings_of("--", "--weight_decay", "0.0")
    with pytest.raises(ValueError, match="num_train_epochs"):
        settings_of("--num_train_epochs", "2", "--", "--weight_decay", "0.1")
    settings_of("--tasks", "rte", "--in_process", "--", "--weight_decay", "0.1")  # more tasks, run another way


def test_a_pandas_tsv_with_tabs_line_breaks_and_1_or_1_0_labels_trains_a_binary_classifier(checkpoint, tmp_path,
                                                                                           caplog):
    """What a spreadsheet round trip gives: texts with tabs and line breaks (quoted), labels written 1 and 1.0."""
    import pandas as pd

    texts = [f"{WORDS[label]}\t{i}\nsecond line" if i % 3 == 0 else f"{WORDS[label]} {i}"
             for i in range(12) for label in ("neg", "pos")]
    labels = [("1" if i % 2 else "1.0") if label == "pos" else "0" for i in range(12) for label in ("neg", "pos")]
    train = tmp_path / "train.tsv"
    pd.DataFrame({"label": labels, "sentence": texts}).to_csv(train, sep="\t", index=False)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        results = run_glue.main(common(checkpoint, out, "--train_file", str(train), "--validation_file", str(train),
                                       "--num_train_epochs", "1", "--no_predict"))
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"
    assert config["id2label"] == {"0": "0", "1": "1"} and {"eval_accuracy", "eval_f1"} <= set(results)
    assert "classification with 2 classes ['0', '1']: the values are all integral numbers" in caplog.text
    references = [line.split("\t")[2] for line in
                  (out / "predictions" / "validation.tsv").read_text().splitlines()[1:]]
    assert references == ["1" if label != "0" else "0" for label in labels]  # every row, none split in two


def test_do_regression_regresses_on_integral_labels_and_is_refused_with_a_glue_task(checkpoint, tmp_path):
    train = write_csv(tmp_path / "train.csv", ["sentence", "label"], [("good", 5), ("fine", 3), ("bad", 1)])
    args = run_glue.parse_args(common(checkpoint, tmp_path / "out", "--train_file", str(train), "--validation_file",
                                      str(train), "--do_regression"))
    assert args.task.is_regression and "--do_regression" in args.task.label_typing
    assert not run_glue.parse_args(common(checkpoint, tmp_path / "out", "--train_file", str(train),
                                          "--validation_file", str(train))).task.is_regression
    with pytest.raises(ValueError, match="--do_regression is for local files without --task_name"):
        run_glue.parse_args(common(checkpoint, tmp_path / "out", "--task_name", "stsb", "--do_regression"))
