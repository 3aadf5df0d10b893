"""SIGTERM and SIGINT end a run cleanly: the ranks agree to stop at the next step boundary, save a complete checkpoint
the way a scheduled one is saved, log one line saying where it is and how to resume, and exit with status 75 (the
rules: docs/output_folders.md, "Preemption"). `--resume_from_checkpoint latest` then ends with the uninterrupted
run's weights, bit for bit.

The signal is sent by a hook that lives here, not in the library (as the kill tests of test_run_directories.py): the
script runs under SIGNALLER, which sends the signal after a chosen optimizer update or while a chosen checkpoint is
being written, to its own process or to its parent (the `accelerate launch` process, which forwards it to every
rank), then waits until the signal has arrived, so that the step the run stops at is known and no sleep stands in
for synchronisation.
"""

import json
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PRETRAIN_SCRIPT, child_env, common, results_of
from ponet_training.data import toy_pairs
from ponet_training.engine import preemption


ROOT = Path(__file__).resolve().parents[1]

# SIGNAL_AT "update:K": after the K-th optimizer update; "save:K": after the model weights of the K-th checkpoint
# save are written. SIGNAL_RANK: the rank that sends it; SIGNAL_TARGET "self" or "parent"; SIGNAL_NAME the signal.
SIGNALLER = textwrap.dedent("""
    import os, runpy, signal, sys, time
    import accelerate.checkpointing as accelerate_checkpointing
    from ponet_training.engine import checkpoints, loop, preemption

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a foreground process, wherever pytest runs
    when, nth = os.environ["SIGNAL_AT"].split(":")
    nth = int(nth)
    rank = int(os.environ.get("RANK", "0"))
    counts = {"update": 0, "save": 0}

    def send():
        if rank != int(os.environ.get("SIGNAL_RANK", "0")):
            return
        target = os.getppid() if os.environ.get("SIGNAL_TARGET") == "parent" else os.getpid()
        os.kill(target, getattr(signal, os.environ["SIGNAL_NAME"]))
        deadline = time.monotonic() + 300
        while preemption.received() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the signal's arrival, not a guess at how long it takes

    update, save_checkpoint = loop.ProgressBar.update, checkpoints.save_checkpoint
    write_file = accelerate_checkpointing.save

    def counting_update(self, *args, **kwargs):
        update(self, *args, **kwargs)
        counts["update"] += 1
        if when == "update" and counts["update"] == nth:
            send()

    def counting_save_checkpoint(*args, **kwargs):
        counts["save"] += 1
        return save_checkpoint(*args, **kwargs)

    def signalling_write(obj, path, *args, **kwargs):
        write_file(obj, path, *args, **kwargs)
        if when == "save" and counts["save"] == nth and os.path.basename(str(path)).startswith("model"):
            send()

    loop.ProgressBar.update = counting_update
    checkpoints.save_checkpoint = counting_save_checkpoint
    accelerate_checkpointing.save = signalling_write
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
""")

TINY_PRETRAINING = ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4",
                    "--intermediate_size", "64", "--max_seq_length", "48", "--per_device_eval_batch_size", "16",
                    "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--num_warmup_steps", "2",
                    "--max_train_steps", "7", "--max_train_samples", "40", "--max_eval_samples", "8",
                    "--checkpointing_steps", "2", "--eval_steps", "3"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_processes() -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port())]


# torchrun forwards a signal it receives to the ranks and gives them TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (30 by
# default) before it kills them: generous here, where two busy cores may be shared with other work.
TWO_PROCESS_ENV = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "300"}


def run(script, args, launcher=None, env=None, signal_at=None, timeout=600) -> subprocess.CompletedProcess:
    """`script` with `args` in a child process, under SIGNALLER when `signal_at` ({SIGNAL_AT: ..., ...}) is given."""
    command = [*(launcher or [sys.executable])]
    if signal_at:
        if launcher:  # accelerate launch runs a module-less script: SIGNALLER goes in a file
            hook = Path(args[args.index("--output_dir") + 1]).parent / "signaller.py"
            hook.write_text(SIGNALLER)
            command += [str(hook), str(script)]
        else:
            command += ["-c", SIGNALLER, str(script)]
    else:
        command += [str(script)]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, cwd=ROOT,
                          env=child_env(**(env or {}), **(signal_at or {})), timeout=timeout)


def assert_same_weights(expected_file, actual_file):
    """Exact: a resumed run repeats the uninterrupted run's computation on the same machine."""
    expected, actual = load_file(expected_file), load_file(actual_file)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def assert_preempted(result, out: Path, step: int, signal_name: str):
    """The one log line, the complete checkpoint it names, nothing saved past it."""
    log = result.stdout + result.stderr
    line = (f"Stopped by {signal_name} at step {step} of 7: the run is saved in {out / f'step_{step}'}; run the same "
            "command with --resume_from_checkpoint latest to finish it (exit status 75)")
    assert log.count(line) == 1, log[-4000:]
    assert (out / f"step_{step}" / "checkpoint_complete.json").is_file()
    marker = json.loads((out / f"step_{step}" / "checkpoint_complete.json").read_text())
    assert marker["progress"]["completed_steps"] == step
    assert not list(out.glob("*.tmp")) and not (out / "model.safetensors").exists()
    assert not (out / "all_results.json").exists()
    assert max(int(p.name.split("_")[1]) for p in out.glob("step_*")) == step


@pytest.fixture(scope="module")
def pretraining_data(pretraining_args):
    """pretraining_args (conftest) without its run length and cadence: those of TINY_PRETRAINING."""
    keep = []
    args = [str(a) for a in pretraining_args]
    for flag in ("--train_file", "--validation_file", "--tokenizer_name"):
        keep += [flag, args[args.index(flag) + 1]]
    return keep + TINY_PRETRAINING


@pytest.fixture(scope="module")
def uninterrupted(pretraining_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    result = run(PRETRAIN_SCRIPT, [*pretraining_data, "--output_dir", out])
    assert result.returncode == 0, result.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------------------------------------------
# One process
# ---------------------------------------------------------------------------------------------------------------


def test_sigterm_mid_epoch_saves_the_step_exits_75_and_latest_finishes_bit_identical(pretraining_data, uninterrupted,
                                                                                       tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_data, "--output_dir", out]
    result = run(PRETRAIN_SCRIPT, args, signal_at={"SIGNAL_AT": "update:3", "SIGNAL_NAME": "SIGTERM"})
    assert result.returncode == preemption.PREEMPTED_EXIT_STATUS == 75, result.stderr[-3000:]
    assert_preempted(result, out, 3, "SIGTERM")  # step 3 is no --checkpointing_steps 2 step: saved for the stop
    resumed = run(PRETRAIN_SCRIPT, args + ["--resume_from_checkpoint", "latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from checkpoint: " + str(out / "step_3") in resumed.stdout + resumed.stderr
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")
    expected, actual = results_of(uninterrupted), results_of(out)
    assert actual["eval_history"] == [{**entry, "train_seconds": actual_entry["train_seconds"]}
                                      for entry, actual_entry in zip(expected["eval_history"],
                                                                     actual["eval_history"])]
    assert actual["resumed_at_step"] == 3


def test_sigint_during_a_save_finishes_that_checkpoint_and_stops_there(pretraining_data, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_data, "--output_dir", out]
    # The second save is step_4's: the signal arrives after its weights are written; the save completes, and the run
    # stops at that boundary with that checkpoint (not a second one of the same step).
    result = run(PRETRAIN_SCRIPT, args, signal_at={"SIGNAL_AT": "save:2", "SIGNAL_NAME": "SIGINT"})
    assert result.returncode == 75, result.stderr[-3000:]
    assert_preempted(result, out, 4, "SIGINT")
    assert (result.stdout + result.stderr).count(f"Saved checkpoint {out / 'step_4'}") == 1
    resumed = run(PRETRAIN_SCRIPT, args + ["--resume_from_checkpoint", "latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")


def test_a_stopped_fine_tuning_run_keeps_its_best_model_record_and_resumes_to_the_same_model(checkpoint, tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=48, n_dev=16, n_test=4, seed=1)
    args = ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--max_train_steps", "6", "--eval_steps", "1", "--learning_rate", "5e-2",
            "--metric_for_best_model", "accuracy", "--no_predict"]
    script = ROOT / "finetune" / "run_glue.py"
    full = run(script, common(checkpoint, tmp_path / "full", *args))
    assert full.returncode == 0, full.stderr[-3000:]
    out = tmp_path / "stopped"
    stopped = run(script, common(checkpoint, out, *args), signal_at={"SIGNAL_AT": "update:4", "SIGNAL_NAME": "SIGTERM"})
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert "Stopped by SIGTERM at step 4 of 6: the run is saved in " + str(out / "step_4") in stopped.stderr
    assert (out / "step_4" / "best_model_state.json").is_file()
    resumed = run(script, common(checkpoint, out, *args, "--resume_from_checkpoint", "latest"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results_of(out)["best_step"] == results_of(tmp_path / "full")["best_step"]
    assert_same_weights(tmp_path / "full" / "model.safetensors", out / "model.safetensors")


def test_the_pooling_study_stops_its_run_in_progress_and_continues_when_run_again(checkpoint, tmp_path, monkeypatch,
                                                                                 caplog):
    from ponet_training.engine import loop
    from ponet_training.script_loading import load_script
    from ponet_training.tasks.pooling_study import store

    study = load_script(ROOT / "finetune" / "run_pooling_study.py")
    rows = ["sentence,label"] + [f"{'good fine' if i % 2 else 'bad poor'} words {i},{i % 2}" for i in range(48)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:17]) + "\n")
    out = tmp_path / "study"
    argv = ["--model_name_or_path", str(checkpoint), "--pooling", "mean", "cls", "--seeds", "1", "--regimes", "full",
            "--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "dev.csv"),
            "--per_device_train_batch_size", "8", "--num_train_epochs", "1", "--max_length", "32",
            "--output_dir", str(out)]
    updates, update = [0], loop.ProgressBar.update

    def signal_in_the_second_run(self, *args, **kwargs):  # 6 updates a run: the 9th is the second run's 3rd
        update(self, *args, **kwargs)
        updates[0] += 1
        if updates[0] == 9:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(loop.ProgressBar, "update", signal_in_the_second_run)
    with pytest.raises(SystemExit) as stopped:
        study.main(argv)
    assert stopped.value.code == 75
    assert ("Stopped by SIGTERM at step 3 of 6: nothing was saved (this run keeps no checkpoints: the same command "
            "runs it again)") in caplog.text
    assert len(store.read_results(out / store.RESULTS_CSV)) == 1  # the finished run is kept
    monkeypatch.setattr(loop.ProgressBar, "update", update)
    resumed = study.main(argv)
    assert (resumed.num_trained, resumed.num_skipped) == (1, 1)


@pytest.fixture
def python_sigint():
    """SIGINT as Python sets it up in a foreground process (a shell's background job starts with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_second_signal_stops_at_once_and_the_handlers_are_put_back(python_sigint):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with preemption.stop_signals():
        assert preemption.received() is None
        signal.raise_signal(signal.SIGINT)
        assert preemption.received() == "SIGINT"
        # the first signal put the earlier handlers back: a second Ctrl-C interrupts as usual
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert preemption.received() is None


def test_a_signal_the_process_ignores_stays_ignored(python_sigint):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # `script.py &` from a shell script: SIGINT ignored
    with preemption.stop_signals():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # SIGTERM is still watched
        signal.raise_signal(signal.SIGINT)
        assert preemption.received() is None
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


# ---------------------------------------------------------------------------------------------------------------
# Two processes
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted_two_processes(pretraining_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted_ddp") / "out"
    result = run(PRETRAIN_SCRIPT, [*pretraining_data, "--output_dir", out], launcher=two_processes(),
                 env=TWO_PROCESS_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert results_of(out)["num_processes"] == 2
    return out


def test_sigterm_to_the_launcher_stops_both_ranks_at_one_step_and_resumes_exactly(pretraining_data,
                                                                                  uninterrupted_two_processes,
                                                                                  tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_data, "--output_dir", out]
    # rank 0 sends SIGTERM to `accelerate launch` after update 3; torchrun forwards it to both ranks
    result = run(PRETRAIN_SCRIPT, args, launcher=two_processes(), env=TWO_PROCESS_ENV,
                 signal_at={"SIGNAL_AT": "update:3", "SIGNAL_NAME": "SIGTERM", "SIGNAL_TARGET": "parent"})
    assert result.returncode != 0
    assert_preempted(result, out, 3, "SIGTERM")
    assert (out / "step_3" / "random_states_0.pkl").is_file() and (out / "step_3" / "random_states_1.pkl").is_file()
    resumed = run(PRETRAIN_SCRIPT, args + ["--resume_from_checkpoint", "latest"], launcher=two_processes(),
                  env=TWO_PROCESS_ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results_of(out)["num_processes"] == 2
    assert_same_weights(uninterrupted_two_processes / "model.safetensors", out / "model.safetensors")


def test_a_signal_to_one_rank_during_a_save_stops_every_rank_at_that_checkpoint(pretraining_data,
                                                                               uninterrupted_two_processes, tmp_path):
    out = tmp_path / "out"
    args = [*pretraining_data, "--output_dir", out]
    # Only rank 1 is signalled (while step_4 is being written): the ranks agree at the next boundary.
    result = run(PRETRAIN_SCRIPT, args, launcher=two_processes(), env=TWO_PROCESS_ENV,
                 signal_at={"SIGNAL_AT": "save:2", "SIGNAL_NAME": "SIGTERM", "SIGNAL_RANK": "1"})
    assert result.returncode != 0
    # torchrun's report: the first rank to exit stopped with 75 (torchrun then ends the other, which had stopped too)
    assert "exitcode  : 75" in result.stderr, result.stderr[-3000:]
    assert_preempted(result, out, 4, "SIGTERM")
    resumed = run(PRETRAIN_SCRIPT, args + ["--resume_from_checkpoint", "latest"], launcher=two_processes(),
                  env=TWO_PROCESS_ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(uninterrupted_two_processes / "model.safetensors", out / "model.safetensors")
