"""Every save failure is one line naming the path being written and the cause (with the free space when the cause is
space), for checkpoints, `best_model/`, the final model and the sentence-transformers export; the failure handler
cannot fail; nothing left behind looks complete (the rules: docs/output_folders.md, "Save failures").

Two ways of filling the disk: a real small file system (a tmpfs, mounted where this process may mount one: root on
Linux), and a fault injected into the writers (safetensors, the tokenizer, the manifest), which runs everywhere.
"""

import errno
import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from safetensors import SafetensorError

from conftest import child_env, common, finetune_script
from ponet_training.data import toy_pairs
from ponet_training.engine import checkpoints, run_folder
from ponet_training.engine.saving import SaveError


ROOT = Path(__file__).resolve().parents[1]
run_glue = finetune_script("run_glue")
FULL = "No space left on device"


@pytest.fixture
def toy_glue(tmp_path):
    toy_pairs.write_toy_pair_task(tmp_path / "toy", n_train=48, n_dev=16, n_test=4, seed=1)
    return ["--task_name", "mrpc", "--glue_dir", str(tmp_path / "toy"), "--per_device_train_batch_size", "8",
            "--no_predict", "--max_train_steps", "4", "--checkpointing_steps", "2", "--eval_steps", "1",
            "--learning_rate", "5e-2", "--metric_for_best_model", "accuracy"]


def assert_one_line(error: BaseException):
    """One exception with a one-line message: no chained tracebacks behind it."""
    assert "\n" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def assert_nothing_looks_complete_but_is_not(out: Path):
    """No staging folder or partial file is left; every checkpoint with a marker holds the files it lists;
    best_model/, when there, holds its record; the lock is gone."""
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial", ".old"))], sorted(out.rglob("*"))
    for marker in out.glob("*/checkpoint_complete.json"):
        assert all((marker.parent / name).is_file() for name in json.loads(marker.read_text())["files"])
    if (out / "best_model").exists():
        assert (out / "best_model" / "best_model_state.json").is_file()
        assert (out / "best_model" / "config.json").is_file()
    assert not (out / run_folder.LOCK_FILE).exists()


# ---------------------------------------------------------------------------------------------------------------
# A real full disk
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run_size(checkpoint, tmp_path_factory):
    """The bytes a complete run of `toy_glue`'s flags writes (measured on the normal disk)."""
    folder = tmp_path_factory.mktemp("measure")
    toy_pairs.write_toy_pair_task(folder / "toy", n_train=48, n_dev=16, n_test=4, seed=1)
    args = ["--task_name", "mrpc", "--glue_dir", str(folder / "toy"), "--per_device_train_batch_size", "8",
            "--no_predict", "--max_train_steps", "4", "--checkpointing_steps", "2", "--eval_steps", "1",
            "--learning_rate", "5e-2", "--metric_for_best_model", "accuracy"]
    run_glue.main(common(checkpoint, folder / "out", *args))
    return sum(f.stat().st_size for f in (folder / "out").rglob("*") if f.is_file()), args


@pytest.fixture
def small_disk(tmp_path):
    """A function mounting a tmpfs of a given size at a new folder (skips the test where mounting is not allowed)."""
    mounted = []

    def mount(size_bytes: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes // 1024}k", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the injected faults below cover this")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.parametrize("share", [0.15, 0.45, 0.65])  # the disk fills in a checkpoint, best_model/, a later save
def test_a_run_on_a_disk_too_small_fails_in_one_line_and_leaves_nothing_that_looks_complete(checkpoint, full_run_size,
                                                                                           small_disk, tmp_path,
                                                                                           share):
    size, args = full_run_size
    disk = small_disk(int(size * share))
    out = disk / "out"
    shutil.copytree(Path(args[args.index("--glue_dir") + 1]), tmp_path / "toy")
    args = [a if a != args[args.index("--glue_dir") + 1] else str(tmp_path / "toy") for a in args]
    result = subprocess.run([sys.executable, str(ROOT / "finetune" / "run_glue.py"), *common(checkpoint, out, *args)],
                            capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600)
    assert result.returncode == 1
    assert result.stderr.count("Traceback") == 1, result.stderr[-5000:]
    last = [line for line in result.stderr.splitlines() if line.startswith("ponet_training.engine.saving.SaveError")]
    assert len(last) == 1, result.stderr[-5000:]
    last = last[0]
    assert f" failed while writing {out}/" in last or f" failed while writing into {out}/" in last, last
    assert " free of " in last, last
    # the cause is the OS's, or (torch's zip writer drops the OS error) the writer's own words for a short write
    assert f": {FULL} (" in last or "unexpected pos" in last, last
    assert_nothing_looks_complete_but_is_not(out)


# ---------------------------------------------------------------------------------------------------------------
# Faults injected into the writers
# ---------------------------------------------------------------------------------------------------------------


def failing_safetensors(monkeypatch, fail_on: int = 1):
    """safetensors' `save_file`, as accelerate and transformers call it, writing part of a file and then failing as a
    full disk makes it fail, on its `fail_on`-th call."""
    import accelerate.utils.other as accelerate_other
    import transformers.modeling_utils as modeling_utils

    calls = [0]

    def save_file(tensors, filename, *args, **kwargs):
        calls[0] += 1
        if calls[0] == fail_on:
            Path(filename).write_bytes(b"\0" * 100)
            raise SafetensorError(f"Error while serializing: I/O error: {FULL} (os error 28)")
        return real(tensors, filename, *args, **kwargs)

    real = accelerate_other.safe_save_file
    monkeypatch.setattr(accelerate_other, "safe_save_file", save_file)
    monkeypatch.setattr(modeling_utils, "safe_save_file", save_file)
    return calls


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_leaves_no_staging_folder(checkpoint, toy_glue, tmp_path,
                                                                                      monkeypatch):
    failing_safetensors(monkeypatch, fail_on=1)  # the first weights written are step_2's (no best model saves)
    out = tmp_path / "out"
    args = [a for a in toy_glue]
    args[args.index("--metric_for_best_model") + 1] = "none"
    with pytest.raises(SaveError) as error:
        run_glue.main(common(checkpoint, out, *args))
    assert str(error.value).startswith(f"Saving checkpoint step_2 to {out / 'step_2'} failed while writing "
                                       f"{out / 'step_2.tmp' / 'model.safetensors'}: {FULL} (")
    assert "free of" in str(error.value) and "--resume_from_checkpoint latest" in str(error.value)
    assert error.value.errno == errno.ENOSPC
    assert_one_line(error.value)
    assert_nothing_looks_complete_but_is_not(out)


def test_the_failure_handler_cannot_fail_when_the_manifest_cannot_be_written_either(checkpoint, toy_glue, tmp_path,
                                                                                   monkeypatch, caplog):
    failing_safetensors(monkeypatch, fail_on=1)
    real = run_folder._write_manifest

    def full_manifest(path, names):
        (Path(path) / (run_folder.MANIFEST_FILE + ".partial")).write_text("")
        real_error = OSError(errno.ENOSPC, FULL, str(Path(path) / (run_folder.MANIFEST_FILE + ".partial")))
        raise real_error

    out = tmp_path / "out"
    monkeypatch.setattr(run_folder, "_write_manifest", full_manifest)
    args = [a for a in toy_glue]
    args[args.index("--metric_for_best_model") + 1] = "none"
    with pytest.raises(SaveError) as error:
        run_glue.main(common(checkpoint, out, *args))
    assert str(error.value).startswith("Saving checkpoint step_2")  # the first failure, not the handler's
    assert_one_line(error.value)
    assert f"Saving the list of the run's outputs to {out.resolve() / run_folder.MANIFEST_FILE} failed" in caplog.text
    monkeypatch.setattr(run_folder, "_write_manifest", real)
    (out / (run_folder.MANIFEST_FILE + ".partial")).unlink(missing_ok=True)  # what the fake left: not the handler's
    assert_nothing_looks_complete_but_is_not(out)


def test_a_best_model_that_cannot_be_written_leaves_the_previous_best_model_with_its_record(checkpoint, toy_glue,
                                                                                           tmp_path, monkeypatch):
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from ponet_training.engine import best_model

    calls = [0]
    real = PreTrainedTokenizerBase.save_pretrained

    def second_save_fails(self, save_directory, *args, **kwargs):  # run_glue saves the tokenizer with each best model
        calls[0] += 1
        if calls[0] == 2:
            Path(save_directory, "tokenizer_config.json").write_text("")  # what a write cut short leaves
            raise OSError(errno.ENOSPC, FULL)
        return real(self, save_directory, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", second_save_fails)
    monkeypatch.setattr(best_model, "is_better", lambda *args: True)  # every evaluation makes a new best model
    out = tmp_path / "out"
    with pytest.raises(SaveError) as error:
        run_glue.main(common(checkpoint, out, *toy_glue))
    message = str(error.value)
    assert message.startswith(f"Saving the model to {out / 'best_model'} failed while writing "
                              f"{out / 'best_model.tmp' / 'tokenizer_config.json'}: {FULL} (")
    assert f"{out / 'best_model'} still holds the previous best model, with its record" in message
    assert_one_line(error.value)
    record = json.loads((out / "best_model" / "best_model_state.json").read_text())
    assert record["best_step"] == 1  # the first best model, whole, with its own record
    assert_nothing_looks_complete_but_is_not(out)


def test_a_final_model_that_cannot_be_written_leaves_no_model_files_in_the_run_folder(checkpoint, toy_glue, tmp_path,
                                                                                      monkeypatch):
    out = tmp_path / "out"
    args = [a for a in toy_glue]
    args[args.index("--metric_for_best_model") + 1] = "none"
    failing_safetensors(monkeypatch, fail_on=3)  # step_2, step_4, then the final model
    with pytest.raises(SaveError) as error:
        run_glue.main(common(checkpoint, out, *args))
    assert str(error.value).startswith(f"Saving the model to {out} failed while writing "
                                       f"{out / 'saving.tmp' / 'model.safetensors'}: {FULL} (")
    assert_one_line(error.value)
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    assert (out / "step_4" / "checkpoint_complete.json").is_file()
    assert_nothing_looks_complete_but_is_not(out)


def test_an_export_that_cannot_be_written_is_one_line_and_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    from ponet_training.sentence_transformers import export_sentence_transformer

    failing_safetensors(monkeypatch, fail_on=1)
    out = tmp_path / "export"
    with pytest.raises(SaveError) as error:
        export_sentence_transformer(str(checkpoint), str(out), pooling="mean")
    assert str(error.value).startswith(f"Saving the sentence-transformers export to {out} failed while writing "
                                       f"{out / 'saving.tmp' / 'model.safetensors'}: {FULL} (")
    assert_one_line(error.value)
    assert not out.exists()  # a failed export that wrote nothing leaves no folder


def test_a_process_listing_a_staging_folder_that_another_process_moves_away_does_not_fail(tmp_path, monkeypatch):
    # With several processes, a non-main process enters the block while the main one renames the staging folder of
    # the step before into place: listing it then fails half way (FileNotFoundError), and that process used to die
    # before it could tell the others, which then waited for it in vain.
    from ponet_training.engine.saving import saving

    staging = tmp_path / "step_2.tmp"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"x")

    def vanishing(self, pattern):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(staging))

    monkeypatch.setattr(Path, "rglob", vanishing)
    with saving("checkpoint step_2", tmp_path / "step_2", staging):
        pass


def test_a_write_error_that_is_no_disk_failure_is_raised_as_it_is(tmp_path):
    from ponet_training.engine.saving import saving

    staging = tmp_path / "x.tmp"
    with pytest.raises(KeyError):
        with saving("a test", tmp_path / "x", staging):
            staging.mkdir()
            raise KeyError("a bug, not a full disk")
    assert not staging.exists()


# ---------------------------------------------------------------------------------------------------------------
# Two processes: one fails, both stop
# ---------------------------------------------------------------------------------------------------------------

# Rank 1 fails writing its random states into the first checkpoint, as on a full disk.
RANK_1_DISK_FULL = textwrap.dedent("""
    import errno, os, runpy, sys
    import torch
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if os.environ.get("RANK") == "1" and str(f).endswith("random_states_1.pkl"):
            open(f, "wb").close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    torch.save = save
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
""")


def test_a_save_failing_on_one_process_stops_every_process_in_one_line_each(checkpoint, toy_glue, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = tmp_path / "rank_1_disk_full.py"
    hook.write_text(RANK_1_DISK_FULL)
    out = tmp_path / "out"
    args = [a for a in toy_glue]
    args[args.index("--metric_for_best_model") + 1] = "none"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(port), str(hook), str(ROOT / "finetune" / "run_glue.py"), *common(checkpoint, out, *args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env=child_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert (f"SaveError: Saving checkpoint step_2 to {out / 'step_2'} failed while writing "
            f"{out / 'step_2.tmp' / 'random_states_1.pkl'}: {FULL} (") in result.stderr, result.stderr[-5000:]
    assert f"SaveError: Saving checkpoint step_2 to {out / 'step_2'} failed on process 1 (its error says why)" \
           in result.stderr
    assert_nothing_looks_complete_but_is_not(out)
    assert not checkpoints.list_checkpoints(out)
