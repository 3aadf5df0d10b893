"""finetune/run_glue.py end to end on local files with a tiny PoNet (CPU, offline)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score

from conftest import child_env, common, finetune_script
from ponet_training.data import toy_pairs


ROOT = Path(__file__).resolve().parents[1]


run_glue = finetune_script("run_glue")
sweep_glue = finetune_script("sweep_glue")


def read_predictions(path, regression=False):
    rows = [line.split("\t") for line in Path(path).read_text().splitlines()[1:]]
    cast = float if regression else int
    return np.array([cast(float(r[1])) for r in rows]), np.array([cast(float(r[2])) for r in rows])


def test_tiny_ponet_learns_the_toy_pair_task_and_reports_mrpc_metrics(checkpoint, tmp_path):
    data = tmp_path / "toy"
    toy_pairs.write_toy_pair_task(data, n_train=640, n_dev=120, n_test=40, seed=0)
    out = tmp_path / "out"
    results = run_glue.main(common(checkpoint, out, "--task_name", "mrpc", "--glue_dir", str(data),
                                   "--learning_rate", "1e-3", "--per_device_train_batch_size", "16",
                                   "--num_train_epochs", "5", "--metric_for_best_model", "accuracy"))
    # Chance is 0.5 (balanced labels): the loop provably trains.
    assert results["eval_accuracy"] > 0.8
    saved = json.loads((out / "all_results.json").read_text())
    preds, refs = read_predictions(out / "predictions" / "validation.tsv")
    assert len(preds) == 120
    assert saved["eval_accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert saved["eval_f1"] == pytest.approx(f1_score(refs, preds))
    # The kept model is the best dev checkpoint, and it is what was saved.
    assert saved["best_step"] is not None
    assert (out / "model.safetensors").is_file() and not (out / "best_model").exists()
    submission = (out / "glue_submission" / "MRPC.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction" and len(submission) == 41
    assert {line.split("\t")[1] for line in submission[1:]} <= {"0", "1"}
    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == pytest.approx(saved["eval_accuracy"], abs=1e-4)  # the card rounds to 4 decimals
    assert "trust_remote_code=True" in card


def test_single_sentence_task_from_csv_with_label_names(checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    words = {"positive": ["great", "wonderful", "loved"], "negative": ["terrible", "boring", "hated"]}
    lines = ["sentence,label"]
    for i in range(64):
        name = "positive" if i % 2 else "negative"
        lines.append(f"the movie was {rng.choice(words[name])},{name}")
    (tmp_path / "train.csv").write_text("\n".join(lines))
    (tmp_path / "dev.csv").write_text("\n".join(lines[:33]))
    (tmp_path / "test.csv").write_text("index,sentence\n" + "\n".join(f"{i},the movie was great" for i in range(5)))
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, "--task_name", "sst2", "--train_file", str(tmp_path / "train.csv"),
                         "--validation_file", str(tmp_path / "dev.csv"), "--test_file", str(tmp_path / "test.csv"),
                         "--num_train_epochs", "1"))
    saved = json.loads((out / "all_results.json").read_text())
    preds, refs = read_predictions(out / "predictions" / "validation.tsv")
    assert saved["eval_accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert (out / "glue_submission" / "SST-2.tsv").read_text().splitlines()[0] == "index\tprediction"
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}


def test_stsb_regression_from_json_lines(checkpoint, tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"sentence1": "the dog sleeps all day", "sentence2": "a fox is quick" if i % 2 else "the dog sleeps",
             "label": float(rng.uniform(0, 5))} for i in range(40)]
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps({"idx": i, "sentence1": "a", "sentence2": "b"})
                                                   for i in range(3)))
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, "--task_name", "stsb", "--train_file", str(tmp_path / "train.jsonl"),
                         "--validation_file", str(tmp_path / "dev.jsonl"), "--test_file", str(tmp_path / "test.jsonl"),
                         "--num_train_epochs", "1", "--learning_rate", "1e-3"))
    saved = json.loads((out / "all_results.json").read_text())
    preds, refs = read_predictions(out / "predictions" / "validation.tsv", regression=True)
    # the same predictions, correlated by the run and by scipy (float64, another order of sums): a correlation lies
    # in [-1, 1], so this absolute bound is a relative one, ~80 float32 eps
    assert saved["eval_pearson"] == pytest.approx(pearsonr(preds, refs)[0], abs=1e-5)
    assert saved["eval_spearmanr"] == pytest.approx(spearmanr(preds, refs)[0], abs=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
    submission = (out / "glue_submission" / "STS-B.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction"
    for line in submission[1:]:
        value = line.split("\t")[1]
        assert 0.0 <= float(value) <= 5.0 and len(value.split(".")[1]) == 3


def test_mnli_reports_matched_and_mismatched_dev_sets_and_writes_three_submissions(checkpoint, tmp_path):
    labels = ["entailment", "neutral", "contradiction"]
    header = "index\tgenre\tsentence1\tsentence2\tgold_label\n"
    def write(name, n, labelled=True, offset=0):
        body = "".join(f"{i}\tfiction\tthe dog sleeps {i % 5}\tthe fox {labels[(i + offset) % 3]}\t"
                       f"{labels[(i + offset) % 3]}\n" for i in range(n))
        if not labelled:
            body = "".join(f"{i}\tthe dog sleeps\tthe fox runs\n" for i in range(n))
            (tmp_path / name).write_text("index\tsentence1\tsentence2\n" + body)
            return
        (tmp_path / name).write_text(header + body)
    write("train.tsv", 60)
    write("dev_matched.tsv", 21)
    write("dev_mismatched.tsv", 15, offset=1)
    write("test_matched.tsv", 4, labelled=False)
    write("test_mismatched.tsv", 5, labelled=False)
    write("diagnostic.tsv", 6, labelled=False)
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, "--task_name", "mnli", "--glue_dir", str(tmp_path),
                         "--ax_file", str(tmp_path / "diagnostic.tsv"), "--num_train_epochs", "1"))
    saved = json.loads((out / "all_results.json").read_text())
    for split, key in (("validation_matched", "eval_accuracy"), ("validation_mismatched", "eval_accuracy_mm")):
        preds, refs = read_predictions(out / "predictions" / f"{split}.tsv")
        assert saved[key] == pytest.approx(accuracy_score(refs, preds))
    assert len(read_predictions(out / "predictions" / "validation_mismatched.tsv")[0]) == 15
    assert set(saved["glue_scores"]) == {"mnli-m", "mnli-mm"}
    for name, count in (("MNLI-m.tsv", 4), ("MNLI-mm.tsv", 5), ("AX.tsv", 6)):
        lines = (out / "glue_submission" / name).read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) == count + 1
        assert {line.split("\t")[1] for line in lines[1:]} <= set(labels)


def test_any_sequence_classifier_works_not_only_ponet(tmp_path, tiny_tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    model_dir = tmp_path / "bert"
    config = BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=32, n_dev=16, n_test=4)
    # RTE reads sentence1/sentence2/label with entailment/not_entailment labels: write the toy pairs that way.
    rows = (tmp_path / "toy" / "train.tsv").read_text().splitlines()[1:]
    rte = "index\tsentence1\tsentence2\tlabel\n" + "".join(
        f"{i}\t{r.split(chr(9))[3]}\t{r.split(chr(9))[4]}\t{['not_entailment', 'entailment'][int(r[0])]}\n"
        for i, r in enumerate(rows))
    (tmp_path / "train.tsv").write_text(rte)
    results = run_glue.main(common(model_dir, tmp_path / "out", "--task_name", "rte", "--train_file",
                                   str(tmp_path / "train.tsv"), "--validation_file", str(tmp_path / "train.tsv"),
                                   "--num_train_epochs", "1"))
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "bert"


def test_resume_continues_from_a_saved_state(checkpoint, tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=64, n_dev=16, n_test=4)
    args = ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--max_train_steps", "12", "--checkpointing_steps", "6", "--metric_for_best_model", "none",
            "--learning_rate", "1e-3", "--no_predict"]
    run_glue.main(common(checkpoint, tmp_path / "full", *args))
    assert (tmp_path / "full" / "step_6").is_dir() and (tmp_path / "full" / "step_12").is_dir()
    # Resume a second run from the first run's step_6 state: it must end where the uninterrupted run ended.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "full" / "step_6", resumed / "step_6")
    run_glue.main(common(checkpoint, resumed, *args, "--resume_from_checkpoint", "latest"))
    full, again = load_file(tmp_path / "full" / "model.safetensors"), load_file(resumed / "model.safetensors")
    initial = load_file(checkpoint / "model.safetensors")
    key = "ponet.encoder.layer.0.attention.self.dense_q.weight"
    assert not torch.allclose(full[key], initial[key])  # it trained
    # The same computation, resumed on the same machine (same kernels, restored RNG and optimizer state): exact.
    for name in full:
        torch.testing.assert_close(again[name], full[name], rtol=0, atol=0, msg=name)


def test_cli_errors_are_clear(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="Unknown GLUE task 'squad'.*cola"):
        run_glue.main(["--task_name", "squad", "--model_name_or_path", str(checkpoint)])
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nhello\t1\n")
    with pytest.raises(ValueError, match="only applies to MNLI"):
        run_glue.main(["--task_name", "sst2", "--train_file", str(tmp_path / "train.tsv"),
                       "--validation_mismatched_file", str(tmp_path / "train.tsv"),
                       "--model_name_or_path", str(checkpoint)])
    with pytest.raises(ValueError, match="No dev set"):
        run_glue.main(["--task_name", "sst2", "--train_file", str(tmp_path / "train.tsv"),
                       "--model_name_or_path", str(checkpoint)])
    with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
        run_glue.main(["--task_name", "sst2", "--train_file", str(tmp_path / "train.tsv"), "--validation_file",
                       str(tmp_path / "train.tsv"), "--model_name_or_path", str(checkpoint), "--max_length", "256"])


def test_sweep_runs_the_grid_and_reports_the_best_config(checkpoint, tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=32, n_dev=16, n_test=4)
    summary = sweep_glue.main(["--tasks", "mrpc", "--model_name_or_path", str(checkpoint), "--output_dir",
                               str(tmp_path / "sweep"), "--batch_sizes", "8", "16", "--learning_rates", "1e-3",
                               "--num_train_epochs", "1", "--max_length", "32", "--in_process", "--",
                               "--glue_dir", str(tmp_path / "toy"), "--no_predict"])
    f1 = {bs: json.loads((tmp_path / "sweep" / "mrpc" / f"bs{bs}_lr0.001" / "all_results.json").read_text())["eval_f1"]
          for bs in (8, 16)}
    best_bs = max(f1, key=f1.get)
    assert summary["mrpc"]["config"][0] == best_bs
    assert summary["mrpc"]["best"] == pytest.approx(100 * f1[best_bs])
    report = (tmp_path / "sweep" / "sweep_results.md").read_text()
    assert "| MRPC | f1 |" in report and "GLUE average" in report


def test_two_process_cpu_run(checkpoint, tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=32, n_dev=10, n_test=6)
    out = tmp_path / "out"
    env = child_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")  # two processes share the cores
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(ROOT / "finetune" / "run_glue.py"),
               *common(checkpoint, out, "--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"),
                       "--per_device_train_batch_size", "4", "--num_train_epochs", "1")]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    saved = json.loads((out / "all_results.json").read_text())
    assert saved["num_processes"] == 2
    assert saved["total_train_batch_size"] == 8
    assert saved["max_train_steps"] == 4  # 32 examples / (4 per device x 2 processes)
    preds, refs = read_predictions(out / "predictions" / "validation.tsv")
    assert len(preds) == 10  # gathered from both processes without the padding duplicates
    assert saved["eval_accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert len((out / "glue_submission" / "MRPC.tsv").read_text().splitlines()) == 7
