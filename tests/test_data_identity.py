"""Checkpoints record the identity of the data (the size and an xxh3-128 hash of every byte of each input file, taken
once per run on the main process), and a resume on other data is refused naming the file, unless
`--resume_with_changed_data`, which the log and all_results.json then report (the rules: docs/output_folders.md,
"The data must be the checkpoint's")."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from conftest import PRETRAIN_SCRIPT, common, finetune_script, results_of, run_pretraining
from ponet_training.engine.settings import data_differences, data_identity, file_identity


run_glue = finetune_script("run_glue")


# ---------------------------------------------------------------------------------------------------------------
# The identity
# ---------------------------------------------------------------------------------------------------------------


def test_the_identity_follows_the_bytes_not_the_file_times(tmp_path):
    file = tmp_path / "train.csv"
    file.write_text("sentence,label\ngood,1\nbad,0\n")
    before = file_identity(file)
    os.utime(file, (1, 1))  # a copy without its times, a `touch`
    assert before["size"] == len("sentence,label\ngood,1\nbad,0\n")
    assert file_identity(file) == before
    file.write_text("sentence,label\ngood,0\nbad,0\n")  # one label edited: the same size
    edited = file_identity(file)
    assert edited["size"] == before["size"] and edited["xxh3_128"] != before["xxh3_128"]
    changes = data_differences({"train_file": {"path": str(file), **before}},
                               {"train_file": {"path": str(file), **edited}})
    assert changes == [f"--train_file {file} has other contents of the same size (xxh3_128 {edited['xxh3_128']}, "
                       f"the checkpoint's {before['xxh3_128']})"]
    file.write_text("sentence,label\ngood,1\nbad,0\nnew,1\n")  # a row appended
    assert data_differences({"train_file": {"path": str(file), **before}},
                            data_identity({"train_file": file})) == [
        f"--train_file {file} has {before['size'] + 6} bytes, the checkpoint's had {before['size']}"]


def test_a_folder_is_identified_by_its_files_without_hidden_ones_or_the_runs_own_folder(tmp_path):
    data = tmp_path / "glue"
    data.mkdir()
    (data / "train.tsv").write_text("a\t1\n")
    (data / "dev.tsv").write_text("b\t0\n")
    (data / ".git").mkdir()
    (data / ".git" / "index").write_text("x")
    out = data / "out"
    out.mkdir()
    (out / "step_2").mkdir()
    (out / "step_2" / "model.safetensors").write_text("weights")
    identity = data_identity({"glue_dir": data, "cache_dir": tmp_path}, skip=out)
    assert list(identity) == ["glue_dir"]  # --cache_dir says where things are kept, not what the run reads
    assert sorted(identity["glue_dir"]["files"]) == ["dev.tsv", "train.tsv"]
    (data / "train.tsv").write_text("a\t0\n")
    (data / "test.tsv").write_text("c\n")
    assert data_differences(identity, data_identity({"glue_dir": data}, skip=out)) == [
        f"--glue_dir: {data / 'test.tsv'} is new (2 bytes)",
        f"--glue_dir: {data / 'train.tsv'} has other contents of the same size (xxh3_128 "
        f"{file_identity(data / 'train.tsv')['xxh3_128']}, the checkpoint's "
        f"{identity['glue_dir']['files']['train.tsv']['xxh3_128']})"]


def test_a_folder_of_many_files_is_identified_by_their_names_and_sizes(tmp_path, monkeypatch):
    from ponet_training.engine import settings

    monkeypatch.setattr(settings, "MAX_FILES_BY_CONTENT", 3)  # the LRA release's Pathfinder holds 10^5 images
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        (images / f"{i}.png").write_bytes(bytes([i]) * 10)
    identity = data_identity({"data_dir": images})
    assert identity["data_dir"]["file_count"] == 5 and identity["data_dir"]["size"] == 50
    assert "files" not in identity["data_dir"]  # no list of every file in every checkpoint
    (images / "0.png").write_bytes(b"\1" * 10)  # the same name and size: not seen at this scale (documented)
    assert data_differences(identity, data_identity({"data_dir": images})) == []
    (images / "5.png").write_bytes(b"\0")
    assert data_differences(identity, data_identity({"data_dir": images})) == [
        f"--data_dir {images}: its files differ in names or sizes (6 files of 51 bytes, the checkpoint's 5 of 50)"]


# ---------------------------------------------------------------------------------------------------------------
# A resume on other data
# ---------------------------------------------------------------------------------------------------------------


def write_csv(path: Path, labels) -> Path:
    rows = ["sentence,label"] + [f"{'good fine' if i % 2 else 'bad poor'} words {i},{label}"
                                 for i, label in enumerate(labels)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def local_task(tmp_path):
    labels = ["positive" if i % 2 else "negative" for i in range(32)]
    train = write_csv(tmp_path / "train.csv", labels)
    dev = write_csv(tmp_path / "dev.csv", labels[:16])
    return train, ["--train_file", str(train), "--validation_file", str(dev), "--per_device_train_batch_size", "8",
                   "--no_predict", "--checkpointing_steps", "2"]


def test_a_resume_after_a_label_was_edited_is_refused_naming_the_file(checkpoint, local_task, tmp_path):
    train, args = local_task
    out = tmp_path / "out"
    first = run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "2"))
    marker = json.loads((out / "step_2" / "checkpoint_complete.json").read_text())
    assert marker["data"]["train_file"] == {"path": str(train), **file_identity(train)}
    assert first["input_files"]["train_file"] == marker["data"]["train_file"]
    assert first["resumed_with_changed_data"] is None
    # one label edited in place ("negative" -> "positive" would change the size: swap two rows' labels instead)
    lines = train.read_text().splitlines()
    lines[1], lines[2] = lines[1].replace("negative", "positive"), lines[2].replace("positive", "negative")
    train.write_text("\n".join(lines) + "\n")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError) as error:
        run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "4", "--resume_from_checkpoint", "latest"))
    message = str(error.value)
    assert message.startswith(f"Checkpoint {out / 'step_2'} was made with other data: --train_file {train} has "
                              "other contents of the same size")
    assert "pass --resume_with_changed_data to continue on these files" in message
    assert sorted(p.name for p in out.iterdir()) == before  # the refused resume wrote nothing


def test_resume_with_changed_data_continues_and_says_so_in_the_log_and_the_results(checkpoint, local_task, tmp_path,
                                                                                  caplog):
    train, args = local_task
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "2"))
    train.write_text(train.read_text() + "good fine words 99,positive\n")
    results = run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "4", "--resume_from_checkpoint",
                                   "latest", "--resume_with_changed_data"))
    change = f"--train_file {train} has {train.stat().st_size} bytes, the checkpoint's had "
    assert results["resumed_with_changed_data"] and results["resumed_with_changed_data"][0].startswith(change)
    assert results_of(out)["resumed_with_changed_data"] == results["resumed_with_changed_data"]
    assert f"--resume_with_changed_data: resuming {out / 'step_2'} on data that differ from the checkpoint's: " \
           f"{change}" in caplog.text
    # the checkpoints written after the resume record the data they were trained on from then on
    assert json.loads((out / "step_4" / "checkpoint_complete.json").read_text())["data"]["train_file"]["size"] == \
        train.stat().st_size


def test_the_same_bytes_with_new_file_times_resume_without_a_flag(checkpoint, local_task, tmp_path):
    train, args = local_task
    out = tmp_path / "out"
    run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "2"))
    train.write_text(train.read_text())  # rewritten: new mtime, same bytes
    results = run_glue.main(common(checkpoint, out, *args, "--max_train_steps", "4", "--resume_from_checkpoint",
                                   "latest"))
    assert results["resumed_at_step"] == 2 and results["resumed_with_changed_data"] is None


def test_the_flag_without_a_resume_is_refused(checkpoint, local_task, tmp_path):
    _, args = local_task
    with pytest.raises(ValueError, match="`--resume_with_changed_data` only changes a resume"):
        run_glue.main(common(checkpoint, tmp_path / "out", *args, "--resume_with_changed_data"))


def test_pretraining_resumed_on_an_appended_corpus_is_refused_on_every_process(pretraining_args, tmp_path):
    args = [str(a) for a in pretraining_args]
    corpus = tmp_path / "train.txt"
    corpus.write_text(Path(args[args.index("--train_file") + 1]).read_text())
    args[args.index("--train_file") + 1] = str(corpus)
    out = tmp_path / "out"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                str(port)]
    env = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    first = run_pretraining([*args, "--output_dir", out, "--max_train_steps", "2"], launcher=launcher, env_extra=env)
    assert first.returncode == 0, first.stderr[-3000:]
    with corpus.open("a") as handle:
        handle.write("\nThe river water flows to the sea. The sea is wide.\n")
    resumed = run_pretraining([*args, "--output_dir", out, "--max_train_steps", "4", "--resume_from_checkpoint",
                               "latest"], launcher=launcher, env_extra=env)
    assert resumed.returncode != 0
    assert f"ValueError: Checkpoint {out / 'step_2'} was made with other data: --train_file {corpus} has " \
           in resumed.stderr, resumed.stderr[-3000:]
    assert "RuntimeError: The main process refused the data: ValueError: Checkpoint" in resumed.stderr
    assert not (out / "step_4").exists()
