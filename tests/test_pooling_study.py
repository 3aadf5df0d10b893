"""The pooling study end to end on tiny PoNet, BERT and GPT-2 backbones made here (offline), its resume, its
outputs (CSV, markdown table, PNG) and its errors."""

import csv
import json
import logging
import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerance import assert_close
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, GPT2TokenizerFast, PreTrainedTokenizerFast

from modeling_ponet import PoNetModel
from conftest import child_env
from ponet_training.engine.settings import describe_differences, run_settings, settings_differences
from ponet_training.script_loading import load_script
from ponet_training.tasks.pooling_study import report, runs, store
from ponet_training.tasks.pooling_study.data import load_sentiment_data
from ponet_training.tasks.pooling_study.settings import FIGURE_PNG, RESULTS_CSV, TABLE_MD
from ponet_training.data.wordpiece import config_for_tokenizer, train_wordpiece_tokenizer


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "finetune" / "run_pooling_study.py"
POSITIVE = ["great", "wonderful", "loved", "brilliant", "fun", "moving"]
NEGATIVE = ["terrible", "boring", "hated", "awful", "dull", "bad"]
OPENINGS = ["the movie was", "i think the plot felt", "honestly the actors were", "this film is", "the ending was"]


def review(rng: random.Random, positive: bool) -> str:
    words = POSITIVE if positive else NEGATIVE
    return f"{rng.choice(OPENINGS)} {rng.choice(words)} and {rng.choice(words)} ."


def reviews(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(review(rng, label == 1), label) for label in (rng.randint(0, 1) for _ in range(n))]


def write_csv(path: Path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def byte_level_bpe(texts) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    # Tiny models on shared CPU cores: extra intra-op threads only contend with each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Tiny sentiment data (train.csv, dev.tsv) and three tiny random backbones with their tokenizers, saved."""
    root = tmp_path_factory.mktemp("pooling_study")
    train, dev = reviews(48, seed=0), reviews(24, seed=1)
    write_csv(root / "train.csv", ["sentence", "label"], train)
    (root / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in dev))
    texts = [s for s, _ in train + dev] * 3
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64)

    wordpiece = train_wordpiece_tokenizer(texts, vocab_size=200, min_frequency=1)
    PoNetModel(config_for_tokenizer(wordpiece, **size)).save_pretrained(root / "tiny-ponet")
    wordpiece.save_pretrained(root / "tiny-ponet")
    BertModel(BertConfig(vocab_size=len(wordpiece), pad_token_id=wordpiece.pad_token_id, **size)).save_pretrained(
        root / "tiny-bert")
    wordpiece.save_pretrained(root / "tiny-bert")

    # GPT-2 as published: byte-level BPE, an EOS token and no pad token.
    gpt2_tokenizer = GPT2TokenizerFast(tokenizer_object=byte_level_bpe(texts), bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    assert gpt2_tokenizer.pad_token is None
    eos = gpt2_tokenizer.eos_token_id
    GPT2Model(GPT2Config(vocab_size=len(gpt2_tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                         bos_token_id=eos, eos_token_id=eos)).save_pretrained(root / "tiny-gpt2")
    gpt2_tokenizer.save_pretrained(root / "tiny-gpt2")
    return root


def load_cli():
    return load_script(SCRIPT)


def study_argv(env: Path, output_dir: Path, backbones=("tiny-ponet", "tiny-bert", "tiny-gpt2"),
               pooling=("last", "mean+max", "attention"), seeds=("1", "2"), extra=()):
    return [
        *(["--model_name_or_path", *[str(env / b) for b in backbones]] if backbones else []),
        "--pooling", *pooling,
        "--seeds", *seeds,
        "--train_file", str(env / "train.csv"),
        "--validation_file", str(env / "dev.tsv"),
        "--per_device_train_batch_size", "16",
        "--per_device_eval_batch_size", "32",
        "--num_train_epochs", "1",
        "--output_dir", str(output_dir),
        *extra,
    ]


def run_in_process(argv):
    return load_cli().main(argv)


def parse_markdown_table(text: str) -> tuple[list[str], dict]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[(cells[0], cells[1])] = dict(zip(header[2:], cells[2:]))
    return header[2:], table


def test_study_runs_end_to_end_on_tiny_ponet_bert_gpt2_and_resumes(env, tmp_path, caplog):
    output_dir = tmp_path / "study"
    result = subprocess.run([sys.executable, str(SCRIPT), *study_argv(env, output_dir)], capture_output=True,
                            text=True, env=child_env(OMP_NUM_THREADS="1"), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert "has no pad token: using its EOS token" in log  # GPT-2: pad = eos, said out loud
    assert "Trained 36 run(s), skipped 0" in log

    # The CSV: one row per backbone x regime x pooling x seed, with metrics in range.
    rows = store.read_results(output_dir / RESULTS_CSV)
    keys = {(Path(r["backbone"]).name, r["regime"], r["pooling"], r["seed"]) for r in rows}
    assert len(rows) == len(keys) == 3 * 2 * 3 * 2
    assert {k[0] for k in keys} == {"tiny-ponet", "tiny-bert", "tiny-gpt2"}
    assert {k[1] for k in keys} == {"frozen", "full"} and {k[2] for k in keys} == {"last", "mean+max", "attention"}
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1 and np.isfinite(row["eval_loss"])
        assert row["num_train_examples"] == 48 and row["num_eval_examples"] == 24 and row["train_steps"] == 3
        assert row["train_time_s"] > 0
    # The frozen regime trains only the head: far fewer parameters than full fine-tuning of the same backbone.
    trainable = {(Path(r["backbone"]).name, r["regime"], r["pooling"]): r["trainable_parameters"] for r in rows}
    for backbone in ("tiny-ponet", "tiny-bert", "tiny-gpt2"):
        assert trainable[(backbone, "frozen", "last")] == 2 * 32 + 2  # the linear classifier only
        assert trainable[(backbone, "frozen", "attention")] == 2 * 32 + 2 + 32 * 32 + 32 + 32
        assert trainable[(backbone, "full", "last")] > 10 * trainable[(backbone, "frozen", "attention")]

    # The markdown table: mean ± std (%) of each cell, recomputed here from the CSV; the best of each row in bold.
    poolings, table = parse_markdown_table((output_dir / TABLE_MD).read_text())
    assert poolings == ["last", "mean+max", "attention"]
    assert len(table) == 6
    for (backbone, regime), cells in table.items():
        means = {}
        for pooling in poolings:
            values = [100 * r["accuracy"] for r in rows
                      if (Path(r["backbone"]).name, r["regime"], r["pooling"]) == (backbone, regime, pooling)]
            assert len(values) == 2
            means[pooling] = statistics.fmean(values)
            shown_mean, shown_std = (float(v) for v in cells[pooling].strip("*").split(" ± "))
            # one decimal shown: equal up to rounding (the table and this test may round x.x5 differently)
            assert abs(shown_mean - means[pooling]) <= 0.05 + 1e-9
            assert abs(shown_std - statistics.stdev(values)) <= 0.05 + 1e-9
        shown = {p: f"{means[p]:.1f}" for p in poolings}
        best = max(shown.values(), key=float) if len(set(shown.values())) > 1 else None  # all tie: no bold
        assert {p for p in poolings if cells[p].startswith("**")} == {p for p in poolings if shown[p] == best}

    # The figure: a real PNG with content.
    from matplotlib import image

    picture = image.imread(output_dir / FIGURE_PNG)
    height, width = picture.shape[:2]
    assert height >= 250 and width >= 600
    pixels = picture[..., :3].reshape(-1, 3)
    assert (pixels.min(axis=1) < 0.9).mean() > 0.02  # not a blank white page
    assert len(np.unique(pixels.round(2), axis=0)) > 10  # bars in several colours, text, axes
    assert (output_dir / "all_results.json").is_file()

    # Running the same command again trains nothing: every run is already in the CSV.
    caplog.set_level(logging.INFO)
    again = run_in_process(study_argv(env, output_dir))
    assert (again.num_trained, again.num_skipped) == (0, 36)
    assert len(store.read_results(output_dir / RESULTS_CSV)) == 36
    assert "36 of the 36 runs of this sweep are already in" in caplog.text


def test_an_interrupted_sweep_resumes_without_redoing_finished_runs(env, tmp_path, monkeypatch):
    output_dir = tmp_path / "study"
    argv = study_argv(env, output_dir, backbones=("tiny-gpt2",), pooling=("cls", "weighted_mean"),
                      extra=("--regimes", "frozen"))
    calls = []
    original = runs.train_and_evaluate

    def interrupted_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. the job was killed
        calls.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, "train_and_evaluate", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(argv)
    first = store.read_results(output_dir / RESULTS_CSV)
    assert len(first) == 2

    monkeypatch.setattr(runs, "train_and_evaluate", original)
    resumed = run_in_process(argv)
    assert (resumed.num_trained, resumed.num_skipped) == (2, 2)
    rows = store.read_results(output_dir / RESULTS_CSV)
    assert len(rows) == 4 and rows[:2] == first  # finished runs kept as they were
    provenance = json.loads((output_dir / "provenance.json").read_text())  # what made each session's runs
    assert len(provenance["earlier"]) == 1 and provenance["git_commit"] == provenance["earlier"][0]["git_commit"]
    assert len({(r["pooling"], r["seed"]) for r in rows}) == 4

    # Extending the sweep (one more seed) runs only the new cells.
    extended = run_in_process(study_argv(env, output_dir, backbones=("tiny-gpt2",), pooling=("cls", "weighted_mean"),
                                         seeds=("1", "2", "3"), extra=("--regimes", "frozen")))
    assert (extended.num_trained, extended.num_skipped) == (2, 4)
    assert "1 / 3 seed" not in (output_dir / TABLE_MD).read_text()  # every cell has 3 seeds now
    assert "over 3 seed(s)" in (output_dir / TABLE_MD).read_text()

    # Resuming under other settings would mix incomparable runs: refused.
    with pytest.raises(ValueError, match="other settings.*learning_rate"):
        run_in_process(argv + ["--probe_learning_rate", "0.5"])


def test_the_study_records_the_run_fingerprint_but_its_axes_and_no_checkpoint_summary(env, tmp_path):
    # The generic checkpoint fingerprint (`run_settings(args)`) holds the study's axes: once recorded, extending the
    # sweep by a seed or a backbone was refused as "other settings". The record is that fingerprint minus the axes.
    args = load_cli().parse_args(study_argv(env, tmp_path / "s", extra=("--lr_scheduler_type", "constant")))
    fingerprint = run_settings(args)
    assert "seeds" in fingerprint
    settings = store.study_settings(args, num_processes=2, mixed_precision="bf16")
    assert not set(settings) & store.STUDY_AXES - {"mixed_precision", "backbones"}
    expected = {k: v for k, v in fingerprint.items() if k not in store.STUDY_AXES}
    assert {k: v for k, v in settings.items() if k in expected} == expected
    assert settings["lr_scheduler_type"] == "constant" and settings["train_file"] == str(env / "train.csv")
    assert (settings["total_train_batch_size"], settings["mixed_precision"]) == (32, "bf16")
    # A record made before the bookkeeping flags were left out (it holds --trust_remote_code) still matches.
    assert settings_differences({**settings, "trust_remote_code": False}, settings) == {}
    more_seeds = load_cli().parse_args(study_argv(env, tmp_path / "s", seeds=("1", "2", "3"),
                                                  extra=("--lr_scheduler_type", "constant")))
    assert settings_differences(settings, store.study_settings(more_seeds, 2, "bf16")) == {}
    other = load_cli().parse_args(study_argv(env, tmp_path / "s", extra=("--weight_decay", "0.5")))
    assert describe_differences(settings_differences(settings, store.study_settings(other, 2, "bf16"))) == (
        "--lr_scheduler_type 'constant' (now 'linear'), --weight_decay 0.01 (now 0.5)")


def test_a_backbone_with_a_tokenizer_config_but_no_vocabulary_has_no_tokenizer(env, tmp_path):
    # tokenizer_config.json alone loads as a tokenizer of special tokens only: every word would become [UNK].
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (folder / name).write_bytes((env / "tiny-bert" / name).read_bytes())
    with pytest.raises(ValueError, match=r"weights-only' has no tokenizer files \(none of tokenizer.json, vocab.txt"):
        run_in_process(study_argv(env, tmp_path / "s", backbones=(), extra=("--model_name_or_path", str(folder))))


def test_unknown_pooling_name_is_a_clear_error(env, tmp_path):
    with pytest.raises(ValueError, match=r"'avg'.*choose from"):
        load_cli().parse_args(study_argv(env, tmp_path / "out", pooling=("mean", "avg")))


def test_backbone_without_pad_or_eos_token_is_a_clear_error(env, tmp_path):
    folder = tmp_path / "no-pad"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=byte_level_bpe([s for s, _ in reviews(20, 0)]))
    assert tokenizer.pad_token is None and tokenizer.eos_token is None
    tokenizer.save_pretrained(folder)
    GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=4, n_positions=64,
                         bos_token_id=None, eos_token_id=None)).save_pretrained(folder)
    with pytest.raises(ValueError, match=r"no-pad.*has no pad token.*tokenizer.pad_token = tokenizer.eos_token"):
        run_in_process(study_argv(env, tmp_path / "out", backbones=(str(folder),)))


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("sentence,label\n", "no data rows"),
    ("sentence,label\n ,0\n,1\n", "no example with a non-empty text"),
])
def test_empty_dataset_is_a_clear_error(env, tmp_path, content, message):
    (tmp_path / "empty.csv").write_text(content)
    argv = study_argv(env, tmp_path / "out")
    argv[argv.index("--train_file") + 1] = str(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match=message):
        run_in_process(argv)


def test_missing_column_and_unseen_evaluation_labels_are_clear_errors(env, tmp_path):
    args = load_cli().parse_args(study_argv(env, tmp_path / "out", extra=("--label_column_name", "stars")))
    with pytest.raises(ValueError, match="no label column 'stars'"):
        load_sentiment_data(args)
    write_csv(tmp_path / "dev.csv", ["sentence", "label"], [("fine film", 0), ("odd film", 7)])
    args = load_cli().parse_args(study_argv(env, tmp_path / "out"))
    args.validation_file = str(tmp_path / "dev.csv")
    with pytest.raises(ValueError, match=r"evaluation data.*outside the training label set.*\['7'\]"):
        load_sentiment_data(args)


def test_string_labels_empty_texts_and_missing_dev_split(env, tmp_path, caplog):
    rows = [(text, "pos" if label else "neg") for text, label in reviews(40, 3)] + [("", "pos"), ("  ", "neg")]
    write_csv(tmp_path / "train.csv", ["text", "sentiment"], rows)
    args = load_cli().parse_args(study_argv(env, tmp_path / "out", extra=("--label_column_name", "sentiment",
                                                                          "--max_train_samples", "20")))
    args.train_file, args.validation_file = str(tmp_path / "train.csv"), None
    caplog.set_level(logging.INFO)
    data = load_sentiment_data(args)
    assert data.label_names == ["neg", "pos"]
    assert "Dropped 2 of 42 training examples with an empty text" in caplog.text
    assert "held out 10% of the training data (4 examples)" in caplog.text
    assert len(data.train) == 20 and len(data.eval) == 4
    originals = {text: label for text, label in rows}
    for split in (data.train, data.eval):
        for example in split:
            assert data.label_names[example["label"]] == originals[example["text"]]


def test_table_and_figure_from_synthetic_results(tmp_path):
    rows = []
    for backbone, offset in (("ponet", 0.0), ("gpt2", 0.1)):
        for pooling, base in (("mean", 0.8), ("max", 0.7), ("last", 0.6)):
            for seed, noise in ((1, -0.02), (2, 0.0), (3, 0.02)):
                rows.append(dict(backbone=backbone, regime="frozen", pooling=pooling, seed=seed,
                                 accuracy=base + offset * (pooling == "last") * 3 + noise))
    cells = report.summarize(rows)
    assert [(c.backbone, c.pooling, c.n) for c in cells][:3] == [("ponet", "mean", 3), ("ponet", "max", 3),
                                                                   ("ponet", "last", 3)]
    table = report.markdown_table(cells)
    _, parsed = parse_markdown_table(table)
    assert parsed[("ponet", "frozen")] == {"mean": "**80.0 ± 2.0**", "max": "70.0 ± 2.0", "last": "60.0 ± 2.0"}
    assert parsed[("gpt2", "frozen")]["last"] == "**90.0 ± 2.0**"
    path = report.plot_study(cells, tmp_path / "figure.png", baselines={"majority class": 0.5})
    assert path.stat().st_size > 5_000


def test_frozen_states_computed_once_give_the_result_of_recomputing_them(env, tmp_path):
    argv = study_argv(env, tmp_path / "cached", backbones=("tiny-bert",), pooling=("cls", "mean", "attention"),
                      seeds=("1",), extra=("--regimes", "frozen", "--num_train_epochs", "2"))
    cached = run_in_process(argv).rows
    recomputed = run_in_process([a if a != str(tmp_path / "cached") else str(tmp_path / "again") for a in argv]
                                + ["--recompute_frozen_states"]).rows
    assert [r["pooling"] for r in cached] == [r["pooling"] for r in recomputed]
    for a, b in zip(cached, recomputed):
        assert a["train_steps"] == b["train_steps"] == 6
        # states batched differently may take other GEMM kernels; their rounding reaches the losses through the
        # head's 6 training steps: the longest sum (intermediate_size 64) once per step (tests/tolerance.py)
        assert_close(a["eval_loss"], b["eval_loss"], reduction=64 * 6)
        assert_close(a["train_loss"], b["train_loss"], reduction=64 * 6)
        assert a["accuracy"] == b["accuracy"]


def test_the_frozen_backbone_runs_once_per_backbone_not_once_per_step(env, tmp_path, monkeypatch):
    calls = []
    original = runs.frozen_states

    def counted(accelerator, args, backbone):
        calls.append(backbone.states is None)
        return original(accelerator, args, backbone)

    monkeypatch.setattr(runs, "frozen_states", counted)
    run_in_process(study_argv(env, tmp_path / "s", backbones=("tiny-ponet",), pooling=("mean", "max"),
                              extra=("--regimes", "frozen")))
    assert calls == [True, False, False, False]  # computed by the first of 4 runs, reused by the others


def test_table_and_figure_exist_after_an_interrupted_sweep(env, tmp_path, monkeypatch):
    output_dir = tmp_path / "study"
    original = runs.train_and_evaluate
    calls = []

    def killed_in_the_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, "train_and_evaluate", killed_in_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(study_argv(env, output_dir, backbones=("tiny-bert",), pooling=("mean", "max"), seeds=("1",),
                                  extra=("--regimes", "frozen")))
    _, table = parse_markdown_table((output_dir / TABLE_MD).read_text())
    assert table[("tiny-bert", "frozen")]["mean"] != "–" and (output_dir / FIGURE_PNG).stat().st_size > 5_000


def test_config_only_folder_is_a_random_init_backbone_with_its_own_learning_rate(env, tmp_path):
    config_only = tmp_path / "bert-config"
    config_only.mkdir()
    (config_only / "config.json").write_text((env / "tiny-bert" / "config.json").read_text())
    output_dir = tmp_path / "study"
    argv = study_argv(env, output_dir, backbones=("tiny-bert",), pooling=("mean",), seeds=("1",),
                      extra=("--config_name", str(config_only), "--tokenizer_name", str(env / "tiny-bert"),
                             "--regimes", "full", "--backbone_learning_rate", "bert-config (random init)=3e-3",
                             "--full_num_train_epochs", "2"))
    rows = run_in_process(argv).rows
    by_backbone = {Path(r["backbone"].split(":", 1)[-1]).name: r for r in rows}
    assert by_backbone["bert-config"]["backbone"].startswith("random-init:")
    assert by_backbone["bert-config"]["learning_rate"] == 3e-3 and by_backbone["tiny-bert"]["learning_rate"] == 2e-5
    assert by_backbone["bert-config"]["train_steps"] == 6  # 2 epochs of 3 batches
    settings = json.loads((output_dir / "study_settings.json").read_text())
    assert settings["backbones"]["random-init:" + str(config_only)]["full_learning_rate"] == 3e-3
    assert settings["backbones"][str(env / "tiny-bert")]["full_learning_rate"] == 2e-5
    assert "bert-config (random init)" in (output_dir / TABLE_MD).read_text()

    # Another learning rate for a recorded backbone is another setting: refused, naming it.
    with pytest.raises(ValueError, match=r"full_learning_rate of random-init:.* 0.003 \(now 0.001\)"):
        run_in_process(argv[:-3] + ["bert-config (random init)=1e-3", "--full_num_train_epochs", "2"])
    # A config-only folder given as a pretrained backbone, or without a tokenizer: one clear error each.
    with pytest.raises(ValueError, match="without weights.*--config_name"):
        run_in_process(study_argv(env, tmp_path / "x", backbones=(), extra=("--model_name_or_path", str(config_only))))
    with pytest.raises(ValueError, match="no tokenizer files.*--tokenizer_name"):
        run_in_process(study_argv(env, tmp_path / "y", backbones=(), extra=("--config_name", str(config_only))))
    with pytest.raises(ValueError, match="names no backbone"):
        load_cli().parse_args(study_argv(env, tmp_path / "z", extra=("--backbone_learning_rate", "nope=1e-3")))


@pytest.mark.parametrize("flag", [["--adam_epsilon", "1e-6"], ["--adam_beta2", "0.98"], ["--lr_scheduler_type", "constant"],
                                  ["--max_length", "16"], ["--frozen_num_train_epochs", "2"], ["--seed", "7"]])
def test_resuming_under_any_other_result_changing_setting_is_refused(env, tmp_path, flag):
    argv = study_argv(env, tmp_path / "s", backbones=("tiny-bert",), pooling=("mean",), seeds=("1",),
                      extra=("--regimes", "frozen"))
    run_in_process(argv)
    name = flag[0].lstrip("-")
    with pytest.raises(ValueError, match=f"other settings.*{name}"):
        run_in_process(argv + flag)


def test_max_train_samples_keeps_the_first_rows(env, tmp_path):
    args = load_cli().parse_args(study_argv(env, tmp_path / "s", extra=("--max_train_samples", "5")))
    data = load_sentiment_data(args)
    first = [s for s, _ in reviews(48, seed=0)[:5]]
    assert data.train["text"] == first


def test_a_study_that_fails_leaves_no_folder_or_settings_behind(env, tmp_path):
    output_dir = tmp_path / "study"
    with pytest.raises(ValueError):
        run_in_process(study_argv(env, output_dir, backbones=("tiny-bert",), extra=("--text_column_name", "nope")))
    assert not output_dir.exists()
    with pytest.raises(Exception):  # the backbone fails to load, after the data was read
        run_in_process(study_argv(env, output_dir, backbones=("does-not-exist-here",)))
    assert not output_dir.exists()


def test_each_panel_covers_its_bars_error_bars_and_baselines():
    full = [report.Cell("b", "full", "mean", [0.97, 0.99]), report.Cell("b", "full", "max", [0.90, 0.96])]
    frozen = [report.Cell("b", "frozen", "mean", [0.55, 0.61])]
    for cells in (full, frozen):
        low, high = report.y_limits(cells, {"majority class": 0.5, "VADER": 0.64})
        assert high >= max(100 * (c.mean + c.std) for c in cells) and high >= 64
        assert low <= min(100 * (c.mean - c.std) for c in cells) and low <= 50
    assert report.y_limits(full)[0] > report.y_limits(frozen)[1] - 10  # each panel its own range


def test_table_bolds_nothing_when_all_poolings_tie_and_gives_baselines_in_its_metric():
    cells = [report.Cell("b", "frozen", p, [0.5, 0.5]) for p in ("mean", "max", "cls")]
    table = report.markdown_table(cells, "macro_f1", {"majority class": 0.333, "VADER": 0.612})
    assert "**" not in table.split("\n\n")[0]
    assert "baselines (dev macro-f1): majority class 33.3, VADER 61.2" in table


def test_a_pandas_tsv_with_tabs_and_line_breaks_and_1_or_1_0_labels_is_read_as_written(env, tmp_path):
    import pandas as pd

    rows = reviews(20, seed=5)
    texts = [f"{text}\tsecond half\nnext line" if i % 4 == 0 else text for i, (text, _) in enumerate(rows)]
    labels = [("1.0" if i % 2 else "1") if label else "0" for i, (_, label) in enumerate(rows)]
    pd.DataFrame({"label": labels, "sentence": texts}).to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    args = load_cli().parse_args(study_argv(env, tmp_path / "out"))
    args.train_file, args.validation_file = str(tmp_path / "train.tsv"), str(tmp_path / "train.tsv")
    data = load_sentiment_data(args)
    assert data.label_names == ["0", "1"]
    assert data.eval["text"] == texts and data.eval["label"] == [int(label != "0") for label in labels]
