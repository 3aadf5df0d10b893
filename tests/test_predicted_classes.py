"""A classifier that predicts one class says so: `tasks.metrics.predicted_classes` and the fine-tuning scripts'
results and logs (the demo's PoNet once reported 0.504 dev accuracy, exactly the majority class, as a plain score)."""

import csv
import json
import logging

import numpy as np
import pytest

from conftest import common, finetune_script
from ponet_training.tasks.metrics import predicted_classes


def test_counts_every_class_and_names_the_only_one_predicted(caplog):
    with caplog.at_level(logging.WARNING):
        mixed = predicted_classes(np.array([0, 2, 2, 1, 2]), ["a", "b", "c", "d"], "validation")
    assert mixed == {"predicted_class_counts": {"a": 1, "b": 1, "c": 3, "d": 0}, "one_class": None}
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        single = predicted_classes([1] * 7, ["negative", "positive"], "validation")
    assert single == {"predicted_class_counts": {"negative": 0, "positive": 7}, "one_class": "positive"}
    assert "validation: the model predicts 'positive' for all 7 examples: a majority-class model" in caplog.text


def test_no_predictions_is_an_error():
    with pytest.raises(ValueError, match="zero examples"):
        predicted_classes([], ["a", "b"])


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("sentence", "label"), *rows])
    return str(path)


def test_a_fine_tuning_whose_model_predicts_one_class_says_so_in_its_results_and_log(checkpoint, tmp_path, caplog):
    # The dev sentences are all the same text, so any model gives them one class: the results must say so.
    train = write_csv(tmp_path / "train.csv", [(f"good movie {i}", i % 2) for i in range(32)])
    dev = write_csv(tmp_path / "dev.csv", [("the same sentence", i % 2) for i in range(10)])
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        results = finetune_script("run_glue").main(common(checkpoint, out, "--train_file", train, "--validation_file",
                                                          dev, "--max_train_steps", "2", "--no_predict"))
    saved = json.loads((out / "all_results.json").read_text())
    assert saved["eval_one_class"] == results["eval_one_class"] in ("0", "1")
    assert sum(saved["eval_predicted_class_counts"].values()) == 10
    assert saved["eval_predicted_class_counts"][saved["eval_one_class"]] == 10
    assert saved["eval_accuracy"] == 0.5
    assert "a majority-class model" in caplog.text


def test_classifier_pooling_flag_sets_the_ponet_head_and_is_refused_for_other_models(checkpoint, tmp_path):
    train = write_csv(tmp_path / "train.csv", [(f"good movie {i}", i % 2) for i in range(16)])
    out = tmp_path / "mean"
    finetune_script("run_glue").main(common(checkpoint, out, "--train_file", train, "--validation_file", train,
                                            "--max_train_steps", "1", "--no_predict", "--classifier_pooling", "mean"))
    assert json.loads((out / "config.json").read_text())["classifier_pooling"] == "mean"
    assert "| classifier_pooling | mean |" in (out / "README.md").read_text()
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64).save_pretrained(bert)
    with pytest.raises(ValueError, match="--classifier_pooling applies to PoNet models; .* is a bert model"):
        finetune_script("run_glue").main(["--config_name", str(bert), "--tokenizer_name", str(checkpoint),
                                          "--train_file", train, "--validation_file", train, "--output_dir",
                                          str(tmp_path / "b"), "--classifier_pooling", "mean", "--max_train_steps", "1"])
