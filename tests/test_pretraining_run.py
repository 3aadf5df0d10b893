"""pretrain/run_pretraining.py end to end: a tiny run, exact resume, 2-process DDP, the embedded demo corpus."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tolerance import float_tolerance
from safetensors.torch import load_file

from conftest import PRETRAIN_SCRIPT, TINY, child_env, results_of, run_script
from ponet_training.script_loading import load_script


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = PRETRAIN_SCRIPT


def test_tiny_run_lowers_mlm_loss_and_saves_a_reloadable_hub_ready_folder(corpus, tmp_path):
    train, valid = corpus
    out = tmp_path / "out"
    run_script(["--train_file", train, "--validation_file", valid, *TINY, "--per_device_train_batch_size", "8",
                "--learning_rate", "3e-3", "--num_warmup_steps", "2", "--max_train_steps", "30", "--eval_steps", "3",
                "--output_dir", out, "--with_tracking", "--report_to", "tensorboard"])
    results = results_of(out)
    history = results["eval_history"]
    assert [h["step"] for h in history] == list(range(3, 31, 3))
    assert history[-1]["mlm_loss"] < history[0]["mlm_loss"] - 0.5
    for key in ("eval_mlm_loss", "eval_mlm_accuracy", "eval_sso_loss", "eval_sso_accuracy", "eval_perplexity"):
        assert key in results
    assert results["train_steps"] == 30 and results["num_processes"] == 1
    # exp of the same loss, here in float32 and in the run in float64 (math.exp): relative, ~80 float32 eps
    assert results["eval_perplexity"] == pytest.approx(torch.tensor(results["eval_mlm_loss"]).exp().item(), rel=1e-5)
    assert list((out / "runs").rglob("events.out.tfevents*")), "no tensorboard events"

    card = (out / "README.md").read_text()
    assert "MLM accuracy" in card and "SSO accuracy" in card and "30 optimizer steps" in card
    assert f"{results['eval_sso_accuracy']:.4f}".rstrip("0") in card

    from transformers import AutoModelForPreTraining, AutoTokenizer

    import modeling_ponet  # noqa: F401

    tokenizer = AutoTokenizer.from_pretrained(out)
    model, info = AutoModelForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(model).__name__ == "PoNetForPreTraining"
    assert model.config.cls_token_id == tokenizer.cls_token_id and model.config.vocab_size == len(tokenizer)
    inputs = tokenizer("The river water flows.", "The garden soil grows.", return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).seq_relationship_logits[0].tolist()

    # A fresh interpreter that never imports modeling_ponet loads the same model through the remote code.
    probe = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForPreTraining, AutoTokenizer\n"
        f"path = {str(out)!r}\n"
        "tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        "model = AutoModelForPreTraining.from_pretrained(path, trust_remote_code=True).eval()\n"
        "assert 'modeling_ponet' not in sys.modules\n"
        "inputs = tok('The river water flows.', 'The garden soil grows.', return_tensors='pt')\n"
        "with torch.no_grad(): logits = model(**inputs).seq_relationship_logits[0].tolist()\n"
        "print(json.dumps({'module': type(model).__module__, 'logits': logits}))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    probe_result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                                  cwd=tmp_path, timeout=120)
    assert probe_result.returncode == 0, probe_result.stderr[-3000:]
    remote = json.loads(probe_result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules")
    # another process may sum in another order: float noise of the longest sums (tests/tolerance.py)
    rtol, atol = float_tolerance(torch.tensor(expected), reduction=model.config.intermediate_size)
    assert remote["logits"] == pytest.approx(expected, rel=rtol, abs=atol)


def test_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path):
    train, valid = corpus
    # 40 documents give ~60 examples: 8 batches of 8 per epoch, 4 updates of 2 batches. Stopping at
    # update 3 resumes mid-epoch; 8 updates cross an epoch boundary after the resume.
    common = ["--train_file", train, "--validation_file", valid, *TINY, "--per_device_train_batch_size", "8",
              "--gradient_accumulation_steps", "2", "--learning_rate", "3e-3", "--num_warmup_steps", "2",
              "--max_train_steps", "8", "--max_train_samples", "60", "--max_eval_samples", "16"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    run_script(common + ["--output_dir", full, "--checkpointing_steps", "3"])
    progress = json.loads((full / "step_3" / "training_progress.json").read_text())
    assert progress == {"epoch": 0, "batches_in_epoch": 6, "completed_steps": 3}
    assert (full / "step_6").is_dir()
    run_script(common + ["--output_dir", resumed, "--resume_from_checkpoint", full / "step_3"])

    expected, actual = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == actual.keys()
    start = load_file(full / "step_3" / "model.safetensors")
    assert any((start[k] - expected[k]).abs().max() > 1e-4 for k in start)  # training went on after step 3
    # The same computation, resumed on the same machine (same kernels, restored RNG and optimizer state): exact.
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert results_of(resumed)["eval_mlm_loss"] == results_of(full)["eval_mlm_loss"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_run_keeps_replicas_identical_and_checkpoints(corpus, tmp_path):
    train, valid = corpus
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port())]
    run_script(["--train_file", train, "--validation_file", valid, *TINY, "--per_device_train_batch_size", "4",
                "--max_train_steps", "4", "--checkpointing_steps", "2", "--output_dir", out],
               launcher=launcher, env_extra={"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"})
    results = results_of(out)
    assert results["num_processes"] == 2
    assert "MULTI_CPU" in results["distributed_type"]
    checksums = results["rank_parameter_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    checkpoint = out / "step_2"
    assert (checkpoint / "model.safetensors").is_file()
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert results["total_train_batch_size"] == 8


def test_the_demo_is_an_explicit_preset_whose_settings_flags_still_override():
    module = load_script(SCRIPT)
    demo = module.parse_args(["--preset", "demo"])
    assert demo.embedded_corpus and demo.train_tokenizer
    assert (demo.hidden_size, demo.max_seq_length) == (module.DEMO_DEFAULTS["hidden_size"],
                                                       module.DEMO_DEFAULTS["max_seq_length"])
    assert (demo.learning_rate, demo.sso_loss_weight, demo.output_dir) == (2e-3, 8.0, "ponet-tiny-stdlib")
    assert demo.preset_settings["learning_rate"] == 2e-3 and demo.preset_settings["train_tokenizer"] is True
    overridden = module.parse_args(["--preset", "demo", "--max_train_steps", "7", "--learning_rate", "2e-3"])
    assert overridden.max_train_steps == 7
    assert "max_train_steps" not in overridden.preset_settings and "learning_rate" not in overridden.preset_settings
    real = module.parse_args(["--train_file", "x.txt", "--tokenizer_name", "bert-base-uncased"])
    assert not real.embedded_corpus and real.hidden_size is None and real.max_seq_length == 512
    assert (real.learning_rate, real.sso_loss_weight, real.preset_settings) == (1e-4, 1.0, {})


def test_no_data_flags_and_no_preset_is_an_error_not_a_hidden_demo():
    module = load_script(SCRIPT)
    with pytest.raises(ValueError, match="No corpus: pass --train_file .* or --preset demo"):
        module.parse_args([])
    with pytest.raises(ValueError, match="No corpus"):
        module.parse_args(["--train_tokenizer", "--hidden_size", "32"])


def test_bad_flag_combinations_get_one_clear_error():
    module = load_script(SCRIPT)
    with pytest.raises(ValueError, match="No tokenizer"):
        module.parse_args(["--train_file", "x.txt"])
    with pytest.raises(ValueError, match="either --tokenizer_name or --train_tokenizer"):
        module.parse_args(["--train_file", "x.txt", "--tokenizer_name", "t", "--train_tokenizer"])
    with pytest.raises(ValueError, match="cannot be combined"):
        module.parse_args(["--train_file", "x.txt", "--model_name_or_path", "m", "--config_name", "c"])


def test_missing_train_file_fails_before_training(tmp_path):
    env = child_env()
    result = subprocess.run([sys.executable, str(SCRIPT), "--train_file", str(tmp_path / "absent.txt"), *TINY,
                             "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode != 0
    assert "no such file" in result.stderr and "absent.txt" in result.stderr


def test_embedded_corpus_run_trains_its_own_tokenizer_offline(tmp_path):
    out = tmp_path / "demo"
    result = run_script(["--preset", "demo", "--hidden_size", "32", "--intermediate_size", "64", "--vocab_size", "800",
                         "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--max_train_steps", "3",
                         "--eval_steps", "0", "--max_eval_samples", "32", "--output_dir", out])
    assert "Preset demo on the embedded standard-library docstrings: " in result.stderr
    assert "--learning_rate 0.002" in result.stderr and "--sso_loss_weight 8.0" in result.stderr
    assert "--hidden_size" not in result.stderr.split("Preset demo")[1].splitlines()[0]  # given on the command line
    results = results_of(out)
    assert results["embedded_corpus"] is True and results["train_steps"] == 3 and results["preset"] == "demo"
    assert 0 < results["eval_examples"] <= 32
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert len(vocab) == 800 and "[MASK]" in vocab
    assert "docstrings" in (out / "README.md").read_text()


def test_the_same_pretraining_command_twice_gives_the_same_tokenizer_file_and_weights(tmp_path):
    # Two processes, every seed fixed: the trained vocabulary (ids included) and so every weight are the same.
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        run_script(["--preset", "demo", "--hidden_size", "32", "--intermediate_size", "64", "--max_seq_length", "32",
                    "--per_device_train_batch_size", "8", "--max_train_steps", "4", "--eval_steps", "0",
                    "--max_eval_samples", "16", "--output_dir", out])
    first, second = ((out / "tokenizer.json").read_bytes() for out in runs)
    assert first == second
    weights = [load_file(out / "model.safetensors") for out in runs]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_streaming_a_dataset_folder_runs_for_max_train_steps(corpus, tmp_path):
    train, _ = corpus
    folder = tmp_path / "stream"
    folder.mkdir()
    # The `text` builder reads one document per line; 40 documents hold about one update of 8 examples
    # per pass, so 12 updates take several passes over the stream.
    documents = train.read_text().strip().split("\n\n")
    (folder / "train.txt").write_text("\n".join(documents) + "\n")
    out = tmp_path / "out"
    run_script(["--dataset_name", folder, "--streaming", "--max_eval_documents", "5", *TINY,
                "--per_device_train_batch_size", "8", "--max_train_samples", "24", "--max_train_steps", "12",
                "--checkpointing_steps", "6", "--output_dir", out])
    results = results_of(out)
    assert results["train_steps"] == 12 and results["train_epochs_started"] >= 4
    assert 0 < results["eval_examples"]
    assert json.loads((out / "step_6" / "training_progress.json").read_text())["completed_steps"] == 6
