"""What every training script does around its loop (the `--mixed_precision` flag among it):
no empty tokenizer, honest model cards, quiet logs, a recorded precision."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel

from ponet_training.engine import run
from ponet_training.data import toy_pairs
from conftest import TINY, child_env
from conftest import PRETRAIN_SCRIPT, finetune_script, run_script
from ponet_training.script_loading import load_script

run_glue = finetune_script("run_glue")


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_bert(tmp_path_factory):
    """A tiny BERT folder (encoder weights only, as a pretrained checkpoint) with a tokenizer."""
    from conftest import TOY_CORPUS
    from ponet_training.data.wordpiece import train_wordpiece_tokenizer

    path = tmp_path_factory.mktemp("models") / "my-tiny-bert"
    tokenizer = train_wordpiece_tokenizer(TOY_CORPUS * 4 + [toy_pairs.toy_vocabulary_text()] * 4, vocab_size=300,
                                          min_frequency=1)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_glue_run(local_bert, tmp_path_factory):
    """run_glue.py on the local BERT in a subprocess, with --mixed_precision bf16 on the CPU."""
    tmp = tmp_path_factory.mktemp("bert_glue")
    toy_pairs.write_toy_pair_task(tmp / "toy", n_train=32, n_dev=16, n_test=4)
    out = tmp / "out"
    env = child_env()
    result = subprocess.run([sys.executable, str(ROOT / "finetune" / "run_glue.py"), "--model_name_or_path",
                             str(local_bert), "--task_name", "mrpc", "--glue_dir", str(tmp / "toy"), "--max_length",
                             "32", "--per_device_train_batch_size", "8", "--max_train_steps", "3", "--no_predict",
                             "--mixed_precision", "bf16", "--output_dir", str(out)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_a_config_only_folder_without_tokenizer_files_is_one_clear_error(checkpoint, tmp_path):
    from transformers import AutoConfig

    import modeling_ponet  # noqa: F401

    config_only = tmp_path / "config-only"
    AutoConfig.from_pretrained(checkpoint).save_pretrained(config_only)
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=16, n_dev=8, n_test=2)
    args = ["--config_name", str(config_only), "--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"),
            "--max_length", "32", "--max_train_steps", "1"]
    with pytest.raises(ValueError, match=r"config-only has no tokenizer files \(none of tokenizer.json, vocab.txt.*"
                                         r"pass --tokenizer_name"):
        run_glue.main(args)
    # With --tokenizer_name it trains from scratch.
    results = run_glue.main(args + ["--tokenizer_name", str(checkpoint), "--no_predict"])
    assert results["max_train_steps"] == 1


def test_the_demo_takes_a_tokenizer_name_without_complaining_about_train_tokenizer(tmp_path):
    script = load_script(PRETRAIN_SCRIPT)
    args = script.parse_args(["--preset", "demo", "--tokenizer_name", "bert-base-uncased"])
    assert args.embedded_corpus and not args.train_tokenizer and args.tokenizer_name == "bert-base-uncased"
    assert script.parse_args(["--preset", "demo"]).train_tokenizer  # the plain demo trains its own
    with pytest.raises(ValueError, match="either --tokenizer_name or --train_tokenizer"):
        script.parse_args(["--preset", "demo", "--tokenizer_name", "bert-base-uncased", "--train_tokenizer"])


def test_the_card_names_the_local_base_model_and_describes_the_architecture_trained(bert_glue_run):
    out, _ = bert_glue_run
    card = (out / "README.md").read_text()
    assert "**Fine-tuned from:** my-tiny-bert (a local folder)" in card
    assert "trained from scratch" not in card
    assert "replaces BERT's self-attention with pooling" not in card  # PoNet's text, not for a BERT
    assert "transformers' `bert`" in card


def test_logs_carry_the_training_bar_but_no_library_bars(bert_glue_run):
    _, result = bert_glue_run
    log = result.stdout + result.stderr
    assert "train: 100%" in log  # our progress bar stays
    for noise in ("Tokenizing:", "Map:", "Filter:", "Flattening", "Loading weights", "\x1b["):
        assert noise not in log, noise
    assert "LOAD REPORT" in log  # the report itself (a new classifier head) is still there


def test_the_load_report_has_no_colour_codes_when_stdout_is_a_terminal(local_bert, monkeypatch):
    import io

    from accelerate import Accelerator
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as transformers_logging

    run.setup_logging(Accelerator(cpu=True))
    handler = transformers_logging.get_logger().handlers[0]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        BertForSequenceClassification.from_pretrained(local_bert)
    finally:
        handler.setStream(previous)
    assert "LOAD REPORT" in stream.getvalue() and "\x1b[" not in stream.getvalue()


def test_mixed_precision_is_a_flag_logged_and_recorded(bert_glue_run, corpus, tmp_path):
    out, result = bert_glue_run
    assert json.loads((out / "all_results.json").read_text())["mixed_precision"] == "bf16"
    assert "Mixed precision: bf16" in result.stderr
    train, valid = corpus
    pretrained = tmp_path / "pretrained"
    run_script(["--train_file", train, "--validation_file", valid, *TINY, "--per_device_train_batch_size", "8",
                "--max_train_steps", "2", "--max_eval_samples", "8", "--mixed_precision", "bf16",
                "--output_dir", pretrained])
    assert json.loads((pretrained / "all_results.json").read_text())["mixed_precision"] == "bf16"
