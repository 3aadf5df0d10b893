"""The real-data path end to end at tiny size: the human-rated movie sentences prepared from the vaderSentiment
sdist, one pooling-study run on the real MiniLM with the majority and VADER baselines, one run_glue fine-tuning
on the prepared files, and the equal-budget PoNet vs BERT script (pretraining, fine-tuning, table, curves)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ponet_training.data import minilm, vader


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A fresh cache holding only the sdist (the preparation runs from it), and the real MiniLM's folder."""
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "PONET_CACHE_DIR": str(cache), "VADER_SDIST": str(vader.locate_sdist()),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return env, cache, minilm.minilm_path()


def _run(command, env, cwd):
    result = subprocess.run([sys.executable, *command], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_vader_movies_study_run_prepares_the_data_and_reports_both_baselines(real, tmp_path):
    env, cache, minilm_dir = real
    output_dir = tmp_path / "study"
    _run([str(REPO / "finetune" / "run_pooling_study.py"), "--dataset_name", "vader_movies",
          "--model_name_or_path", str(minilm_dir), "--pooling", "mean", "--regimes", "frozen", "--seeds", "1",
          "--max_train_samples", "64", "--max_eval_samples", "64", "--max_length", "32",
          "--num_train_epochs", "1", "--output_dir", str(output_dir)], env, tmp_path)

    # Prepared from the sdist into the (fresh) cache: fixed splits with binary labels.
    folder = next(cache.glob("vader/prepared-*-movies")) / "movies"
    train, dev = _rows(folder / "train.csv"), _rows(folder / "dev.csv")
    assert {r["label"] for r in train} == {"0", "1"} and all(abs(float(r["rating"])) >= 0.5 for r in train)

    # The baselines, recomputed naively on the rows the study used (the first 64 of each split).
    labels = [int(r["label"]) for r in dev[:64]]
    majority = Counter(int(r["label"]) for r in train[:64]).most_common(1)[0][0]
    analyzer = vader.load_vader_analyzer(vader.locate_sdist())
    calls = []
    for row in dev[:64]:
        compound = analyzer.polarity_scores(row["sentence"])["compound"]
        calls.append(majority if compound == 0 else int(compound > 0))
    expected = {"majority class": sum(y == majority for y in labels) / 64,
                "VADER": sum(c == y for c, y in zip(calls, labels)) / 64}
    table = (output_dir / "pooling_study.md").read_text()
    for name, value in expected.items():
        assert f"{name} {100 * value:.1f}" in table
    assert "all-MiniLM-L6-v2" in table and (output_dir / "pooling_study.png").is_file()
    (row,) = _rows(output_dir / "pooling_study.csv")
    assert row["num_train_examples"] == "64" and row["num_eval_examples"] == "64"


def test_run_glue_fine_tunes_on_the_prepared_movie_sentences(real, tmp_path):
    env, cache, minilm_dir = real
    folder = vader.prepared_domain("movies", sdist=env["VADER_SDIST"])
    _run([str(REPO / "finetune" / "run_glue.py"), "--model_name_or_path", str(minilm_dir),  # as demo.sh runs it
          "--train_file", str(folder / "train.csv"), "--validation_file", str(folder / "dev.csv"),
          "--max_train_samples", "32", "--max_eval_samples", "48", "--max_length", "32", "--num_train_epochs", "1",
          "--no_predict", "--output_dir", str(tmp_path / "ft")], env, tmp_path)
    results = json.loads((tmp_path / "ft" / "all_results.json").read_text())
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    # The record names the movie sentences' files; nothing calls them GLUE SST-2.
    assert results["data_files"]["train"] == str(folder / "train.csv") and "glue_scores" not in results
    assert "SST-2" not in (tmp_path / "ft" / "README.md").read_text()


def test_equal_budget_script_end_to_end_at_tiny_size(real, tmp_path):
    env, cache, _ = real
    # A tiny real-text corpus: documents of ten human-written movie sentences each.
    sentences = [r["sentence"] for r in _rows(vader.prepared_domain("movies", sdist=env["VADER_SDIST"]) / "train.csv")]
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for name, part in (("train.jsonl", sentences[:300]), ("validation.jsonl", sentences[300:400])):
        documents = [" ".join(part[i:i + 10]) for i in range(0, len(part), 10)]
        (corpus_dir / name).write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    output_dir = tmp_path / "eb"
    command = [str(REPO / "experiments" / "equal_budget.py"), "--output_dir", str(output_dir),
               "--corpus_dir", str(corpus_dir), "--hidden_size", "32", "--num_hidden_layers", "1",
               "--num_attention_heads", "2", "--intermediate_size", "64", "--max_seq_length", "32",
               "--per_device_train_batch_size", "4", "--max_train_steps", "4", "--eval_steps", "2",
               "--checkpointing_steps", "2", "--num_warmup_steps", "1", "--max_eval_samples", "8",
               "--finetune_max_train_samples", "16", "--finetune_max_eval_samples", "16", "--finetune_epochs", "1"]
    # One model at a time (e.g. one per core): no table until PoNet and BERT have both finished.
    result = _run(command + ["--model_types", "ponet"], env, tmp_path)
    assert "No table yet" in result.stderr and not (output_dir / "equal_budget.md").exists()
    _run(command, env, tmp_path)  # BERT now; PoNet's finished stages are skipped

    results = json.loads((output_dir / "all_results.json").read_text())
    ponet, bert = results["models"]["ponet"], results["models"]["bert"]
    assert ponet["steps"] == bert["steps"] == 4
    assert ponet["sso_accuracy"] is not None and bert["sso_accuracy"] is None  # BERT: MLM only
    assert abs(ponet["parameters"] - bert["parameters"]) < 0.05 * bert["parameters"]  # same size
    assert results["ponet_over_bert"]["dev_accuracy"] == pytest.approx(ponet["dev_accuracy"] / bert["dev_accuracy"])
    for model_type in ("ponet", "bert"):
        history = results["histories"][model_type]
        assert [e["step"] for e in history] == [2, 4]
        assert 0 < history[0]["train_seconds"] < history[1]["train_seconds"]
        config = json.loads((output_dir / f"{model_type}-pretrain" / "config.json").read_text())
        assert config["model_type"] == model_type and config["vocab_size"] == 30522  # the bert-base-uncased vocabulary
    table = (output_dir / "equal_budget.md").read_text()
    assert "| PoNet / BERT |" in table and "95.7%" in table
    assert (output_dir / "equal_budget.png").stat().st_size > 5_000

    # An interrupted pretraining resumes from its latest checkpoint and ends where the uninterrupted run did.
    folder = output_dir / "bert-pretrain"
    finished = json.loads((folder / "all_results.json").read_text())
    for path in (folder / "all_results.json", output_dir / "all_results.json"):
        path.unlink()
    shutil.rmtree(folder / "step_4")
    result = _run(command, env, tmp_path)
    assert "Resumed from checkpoint" in result.stdout + result.stderr
    resumed = json.loads((folder / "all_results.json").read_text())
    assert resumed["eval_mlm_loss"] == pytest.approx(finished["eval_mlm_loss"], rel=1e-6)
    assert [e["step"] for e in resumed["eval_history"]] == [2, 4]

    # A causal LM of the same size on the same text joins the table as a row of its own.
    _run(command + ["--model_types", "gpt2"], env, tmp_path)
    results = json.loads((output_dir / "all_results.json").read_text())
    gpt2 = results["models"]["gpt2"]
    assert gpt2["mlm_accuracy"] is None and 0.0 <= gpt2["next_token_accuracy"] <= 1.0 and gpt2["steps"] == 4
    assert results["ponet_over_bert"]["dev_accuracy"] == pytest.approx(ponet["dev_accuracy"] / bert["dev_accuracy"])
    assert "| gpt2 |" in (output_dir / "equal_budget.md").read_text()
    assert json.loads((output_dir / "gpt2-pretrain" / "config.json").read_text())["model_type"] == "gpt2"
