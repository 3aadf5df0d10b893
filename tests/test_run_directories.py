"""Run directories, checkpoints and resume, shared by every training script.

The kill tests run a script in a subprocess that SIGKILLs itself at a chosen point of a save (the hooks live in the
test, not in the library), then resume with `--resume_from_checkpoint latest` and compare the final weights with
an uninterrupted run's.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ponet_training.engine import checkpoints
from ponet_training.engine.run_folder import RunFolder
from ponet_training.data import toy_pairs
from conftest import PRETRAIN, PRETRAIN_SCRIPT, TINY, child_env, common, finetune_script, run_pretraining


run_glue = finetune_script("run_glue")
ROOT = Path(__file__).resolve().parents[1]

# Runs a script and SIGKILLs it at KILL_POINT of its KILL_AT_SAVE-th checkpoint save (1-based): "model" after the
# model weights are written, "optimizer" after the optimizer state, "publish" when everything is written but the
# folder is not yet renamed into place; "promotion" after the first file of best_model/ moved into --output_dir.
KILLER = textwrap.dedent("""
    import os, runpy, signal, sys
    import accelerate.checkpointing as accelerate_checkpointing
    from ponet_training.engine import checkpoints

    point, nth = os.environ["KILL_POINT"], int(os.environ.get("KILL_AT_SAVE", "0"))
    saves = [0]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    save_checkpoint, write_file, publish, replace = (checkpoints.save_checkpoint, accelerate_checkpointing.save,
                                                     checkpoints.publish_folder, os.replace)

    def counting_save_checkpoint(*args, **kwargs):
        saves[0] += 1
        return save_checkpoint(*args, **kwargs)

    def killing_write(obj, path, *args, **kwargs):
        write_file(obj, path, *args, **kwargs)
        if saves[0] == nth and os.path.basename(str(path)).startswith(point):
            die()

    def killing_publish(staging, final):
        if point == "publish" and saves[0] == nth:
            die()
        publish(staging, final)

    def killing_replace(source, target):
        replace(source, target)
        if point == "promotion" and os.path.basename(os.path.dirname(str(source))) == "best_model":
            die()

    checkpoints.save_checkpoint = counting_save_checkpoint
    accelerate_checkpointing.save = killing_write
    checkpoints.publish_folder = killing_publish
    checkpoints.os.replace = killing_replace
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
""")


def run_killed(script, args, point, nth=0):
    env = child_env(KILL_POINT=point, KILL_AT_SAVE=str(nth))
    result = subprocess.run([sys.executable, "-c", KILLER, str(script), *map(str, args)], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == -9, f"not killed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    return result


def assert_same_weights(expected_file, actual_file):
    """Exact: a resumed run repeats the uninterrupted run's computation on the same machine (same kernels, restored
    RNG and optimizer state), so every weight is the same float."""
    expected, actual = load_file(expected_file), load_file(actual_file)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------------------------------------------------------
# The output-directory rule
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def toy_glue(tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=32, n_dev=16, n_test=4)
    return ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--no_predict"]


def test_a_non_empty_output_dir_is_refused_unless_overwritten_or_resumed(checkpoint, toy_glue, tmp_path):
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, *toy_glue, "--max_train_steps", "2", "--checkpointing_steps", "2"))
    (out / "all_results.json").write_text("{}")
    with pytest.raises(ValueError, match=r"out is not empty \(README.md, all_results.json, .*--overwrite_output_dir"):
        run_glue.main(common(checkpoint, out, *toy_glue, "--max_train_steps", "2"))
    assert (out / "all_results.json").read_text() == "{}"  # untouched
    # --overwrite_output_dir clears the earlier run's outputs: its checkpoint cannot be resumed by mistake afterwards.
    run_glue.main(common(checkpoint, out, *toy_glue, "--max_train_steps", "2", "--overwrite_output_dir"))
    assert not (out / "step_2").exists()
    assert json.loads((out / "all_results.json").read_text())["max_train_steps"] == 2


def test_every_script_applies_the_output_dir_rule(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old_model.bin").write_text("x")
    long_doc = ROOT / "finetune" / "run_long_doc.py"
    pooling = ROOT / "finetune" / "run_pooling_study.py"
    (tmp_path / "train.jsonl").write_text('{"text": "a b", "label": 0}\n')
    for script, args in ((PRETRAIN_SCRIPT, ["--train_file", tmp_path / "train.jsonl", "--train_tokenizer"]),
                         (long_doc, ["--train_file", tmp_path / "train.jsonl", "--model_name_or_path", "none"]),
                         (pooling, ["--train_file", tmp_path / "train.jsonl"])):
        result = subprocess.run([sys.executable, str(script), *map(str, args), "--output_dir", str(out)],
                                capture_output=True, text=True, cwd=ROOT, timeout=300,
                                env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)))
        assert result.returncode != 0
        assert "is not empty (old_model.bin)" in result.stderr, (script, result.stderr[-2000:])


def test_output_dir_that_is_a_file_and_checkpointing_without_output_dir_are_clear_errors(checkpoint, toy_glue,
                                                                                            tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run_glue.main(common(checkpoint, tmp_path / "file", *toy_glue))
    with pytest.raises(ValueError, match="`--checkpointing_steps` needs an `--output_dir`"):
        run_glue.main(["--model_name_or_path", str(checkpoint), *toy_glue, "--checkpointing_steps", "2"])
    with pytest.raises(ValueError, match="pass one of them"):
        run_glue.main(common(checkpoint, tmp_path / "o", *toy_glue, "--overwrite_output_dir",
                             "--resume_from_checkpoint", "latest"))


def test_a_run_that_fails_leaves_no_empty_output_folder(checkpoint, tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nhello\t1\n")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="No dev set"):
        run_glue.main(common(checkpoint, out, "--task_name", "sst2", "--train_file", str(tmp_path / "train.tsv")))
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# `latest` and incomplete checkpoints
# ---------------------------------------------------------------------------------------------------------------


class FakeAccelerator:
    """What save_checkpoint needs of an Accelerator, writing files that look like accelerate's."""

    is_main_process = True
    num_processes = 1

    def save_state(self, path):
        os.makedirs(path, exist_ok=True)
        for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
            Path(path, name).write_text("x")

    def wait_for_everyone(self):
        pass


def run_folder(output_dir, resume_from="latest", learning_rate=1e-3):
    """The `RunFolder` of a run with these flags."""
    args = argparse.Namespace(output_dir=str(output_dir), resume_from_checkpoint=resume_from,
                              learning_rate=learning_rate)
    return RunFolder.for_run(args)


def save(folder, step):
    """The run's checkpoint writer (saving at every update) after update `step`."""
    return checkpoints.CheckpointWriter(folder, every=1).maybe_save(FakeAccelerator(),
                                                                    checkpoints.TrainingProgress(0, step, step))


def test_latest_takes_only_complete_checkpoints_of_this_run_and_logs_the_rest(tmp_path, caplog):
    out = tmp_path / "out"
    ours = run_folder(out)
    for step in (2, 4):
        save(ours, step)
    # A folder torn while being rewritten in place (the old layout): a stale progress file, no marker.
    torn = out / "step_6"
    torn.mkdir()
    (torn / "training_progress.json").write_text(json.dumps({"epoch": 0, "batches_in_epoch": 6, "completed_steps": 6}))
    # A save interrupted before its rename, and a complete checkpoint of a run with another learning rate.
    (out / "step_8.tmp").mkdir()
    save(run_folder(out, learning_rate=5e-2), 10)
    with caplog.at_level(logging.WARNING, logger="ponet_training.engine.checkpoints"):
        assert ours.resume_checkpoint == out / "step_4"
    log = caplog.text
    assert "step_8.tmp" in log and "interrupted" in log
    assert "step_6: it has no checkpoint_complete.json" in log
    assert "step_10: it belongs to a run with other settings: --learning_rate 0.05 (now 0.001)" in log


def test_a_checkpoint_missing_files_is_one_clear_error(tmp_path):
    out = tmp_path / "out"
    path = save(run_folder(out), 2)
    (path / "optimizer.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"step_2 cannot be resumed: it lacks optimizer.bin"):
        run_folder(out, str(path)).resume_checkpoint
    # Only the interrupted save of the first checkpoint: `latest` says there is nothing complete.
    os.rename(path, out / "step_2.tmp")
    with pytest.raises(FileNotFoundError, match="no complete step_N/epoch_N checkpoint of this run"):
        run_folder(out, "latest").resume_checkpoint
    # A foreign checkpoint (no marker) is checked for what load_state reads.
    foreign = tmp_path / "foreign" / "step_3"
    foreign.mkdir(parents=True)
    (foreign / "model.safetensors").write_text("x")
    with pytest.raises(FileNotFoundError, match="lacks optimizer.bin, random_states_0.pkl"):
        run_folder(out, str(foreign)).resume_checkpoint


@pytest.fixture(scope="module")
def uninterrupted_pretraining(pretraining_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    result = run_pretraining([*pretraining_args, "--output_dir", out])
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("point", ["model", "optimizer", "publish"])
def test_kill_during_a_save_then_latest_resumes_to_the_uninterrupted_weights(point, pretraining_args,
                                                                             uninterrupted_pretraining, tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_args, "--output_dir", out]
    run_killed(PRETRAIN_SCRIPT, args, point, nth=2)  # killed while saving step_4
    assert (out / "step_2").is_dir() and not (out / "step_4").exists()
    result = run_pretraining(args + ["--resume_from_checkpoint", "latest"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from checkpoint: " + str(out / "step_2") in result.stdout + result.stderr
    assert_same_weights(uninterrupted_pretraining / "model.safetensors", out / "model.safetensors")


def test_a_checkpoint_without_its_tokenizer_is_an_error_not_a_new_vocabulary(corpus, tmp_path):
    train, valid = corpus
    out = tmp_path / "out"
    first = run_pretraining(["--train_file", train, "--validation_file", valid, *TINY, *PRETRAIN, "--output_dir", out,
                             "--max_train_steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    marker = json.loads((out / "step_2" / "checkpoint_complete.json").read_text())
    assert "tokenizer.json" in marker["files"]
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (out / "step_2" / name).unlink(missing_ok=True)
    result = run_pretraining(["--train_file", train, "--validation_file", valid, *TINY, *PRETRAIN, "--output_dir", out,
                              "--max_train_steps", "2", "--resume_from_checkpoint", "latest"])
    assert result.returncode != 0
    assert "step_2: files are missing (tokenizer" in result.stderr
    result = run_pretraining(["--train_file", train, "--validation_file", valid, *TINY, *PRETRAIN, "--output_dir", out,
                              "--max_train_steps", "2", "--resume_from_checkpoint", out / "step_2"])
    assert result.returncode != 0 and "step_2 cannot be resumed: it lacks tokenizer.json" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Best-model promotion
# ---------------------------------------------------------------------------------------------------------------


def test_a_kill_inside_the_best_model_promotion_resumes_to_the_best_model(checkpoint, tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=48, n_dev=16, n_test=4, seed=1)
    args = ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--max_train_steps", "6", "--eval_steps", "1", "--checkpointing_steps", "3", "--learning_rate", "5e-2",
            "--metric_for_best_model", "accuracy", "--no_predict"]
    full = run_glue.main(common(checkpoint, tmp_path / "full", *args))
    assert full["best_step"] < 6, "the test needs a best model other than the last one"
    out = tmp_path / "killed"
    run_killed(ROOT / "finetune" / "run_glue.py", common(checkpoint, out, *args), "promotion")
    assert (out / "best_model").is_dir() and not (out / "all_results.json").exists()
    resumed = run_glue.main(common(checkpoint, out, *args, "--resume_from_checkpoint", "latest"))
    assert resumed["best_step"] == full["best_step"]
    assert not (out / "best_model").exists()
    assert_same_weights(tmp_path / "full" / "model.safetensors", out / "model.safetensors")
