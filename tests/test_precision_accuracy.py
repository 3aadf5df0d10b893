"""experiments/precision_accuracy.py end to end at tiny size (16 training sentences, a PoNet pretrained for 2 steps):
the real data and the real MiniLM, both encoders fine-tuned in fp32 and bf16 autocast by the project's scripts,
each evaluated in every precision, written to JSON and markdown. No accuracy is asserted (a tiny run learns
nothing); what is asserted is the bookkeeping: the precisions are the ones asked for, the fp32 evaluation agrees
with run_glue.py's own dev accuracy, and the training sample holds both classes."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_env

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "precision_accuracy.py"
PRECISIONS = ["fp32", "bf16_autocast", "bf16_weights", "int8"]
DEV_ROWS = 24


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision_accuracy")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--output_dir", str(out), "--max_train_samples", "16",
         "--max_eval_samples", str(DEV_ROWS), "--max_length", "16", "--batch_size", "8", "--ponet_pretrain_steps", "2",
         "--ponet_num_train_epochs", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=900, env=child_env(),
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return out, json.loads((out / "precision_accuracy.json").read_text())


def test_every_encoder_is_fine_tuned_in_fp32_and_bf16_and_evaluated_in_every_precision(tiny_run):
    _, report = tiny_run
    assert [(row["encoder"], row["training"]) for row in report["rows"]] == [
        ("minilm", "fp32"), ("minilm", "bf16_autocast"), ("ponet", "fp32"), ("ponet", "bf16_autocast"),
    ]
    for row in report["rows"]:
        assert row["dev_rows"] == DEV_ROWS
        assert list(row["precisions"]) == PRECISIONS
        assert row["precisions"]["fp32"]["changed"] == 0
        for result in row["precisions"].values():
            assert 0 <= result["accuracy"] <= 100 and 0 <= result["changed"] <= DEV_ROWS
    assert len(report["gaps"]) == 2 * 4  # three inference precisions + bf16 training, per encoder
    assert not [line for line in report["gaps"] if "within" in line]  # measurements, no verdict against a bound


def test_fp32_evaluation_agrees_with_run_glue_on_the_same_dev_rows(tiny_run):
    out, report = tiny_run
    for row in report["rows"]:
        if row["training"] == "fp32":
            run_glue = json.loads((out / "runs" / f"{row['encoder']}_fp32" / "all_results.json").read_text())
            assert row["precisions"]["fp32"]["accuracy"] == pytest.approx(100 * run_glue["eval_accuracy"])


def test_the_training_sample_holds_both_classes_and_the_markdown_every_run(tiny_run):
    out, report = tiny_run
    with open(out / "runs" / "train.csv", newline="") as handle:
        labels = [row["label"] for row in csv.DictReader(handle)]
    assert len(labels) == 16 and set(labels) == {"0", "1"}  # the vader files are ordered by class
    table = (out / "precision_accuracy.md").read_text()
    assert table.count("| all-MiniLM-L6-v2") == 2 and table.count("| PoNet tiny") == 2
    assert all(gap in table for gap in report["gaps"])
    assert "experiments/precision_accuracy.py" in json.loads((out / "provenance.json").read_text())["command"]
