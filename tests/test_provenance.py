"""A results folder says what made it: the command, the commit (and whether the checkout differed from it), the
CPU and its vector/matrix flags, the threads and the library versions (`ponet_training.provenance`)."""

import importlib.metadata
import json
import shlex
import subprocess
from pathlib import Path

import torch

from ponet_training import provenance


def test_the_record_names_the_command_the_libraries_and_the_threads(tmp_path):
    path = provenance.write_provenance(tmp_path / "new" / "folder", argv=["bench.py", "--out", "a b"], note="x")
    record = json.loads(path.read_text())
    assert path.name == "provenance.json"
    assert shlex.split(record["command"]) == ["python", "bench.py", "--out", "a b"]
    assert record["versions"]["torch"] == importlib.metadata.version("torch")
    assert record["versions"]["transformers"] == importlib.metadata.version("transformers")
    assert record["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert record["extra"] == {"note": "x"}
    assert record["date"].endswith("+00:00")


LAUNCHER_VARIABLES = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND",
                      "ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_CPU")


def _launched(monkeypatch, **variables):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return shlex.split(provenance.provenance(argv=["run.py", "--x", "1"])["command"])


def test_the_command_names_the_launcher_that_started_several_processes(monkeypatch):
    # What `accelerate launch` and `torchrun` leave in each process's environment (torch elastic's variables).
    elastic = {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "none"}
    assert _launched(monkeypatch, **elastic, ACCELERATE_DYNAMO_BACKEND="NO", ACCELERATE_MIXED_PRECISION="bf16",
                     ACCELERATE_USE_CPU="1") == [
        "ACCELERATE_USE_CPU=1", "accelerate", "launch", "--multi_gpu", "--num_processes", "4", "--num_machines", "2",
        "--mixed_precision", "bf16", "run.py", "--x", "1"]
    assert _launched(monkeypatch, **elastic) == ["torchrun", "--nnodes", "2", "--nproc_per_node", "2", "run.py",
                                                 "--x", "1"]
    # One process: the plain command is the same run (an accelerate precision setting is kept in front of it).
    assert _launched(monkeypatch) == ["python", "run.py", "--x", "1"]
    assert _launched(monkeypatch, ACCELERATE_MIXED_PRECISION="bf16") == [
        "ACCELERATE_MIXED_PRECISION=bf16", "python", "run.py", "--x", "1"]


def test_a_folder_that_runs_add_to_keeps_the_earlier_records(tmp_path):
    provenance.write_provenance(tmp_path, argv=["study.py", "--seeds", "1"])
    provenance.write_provenance(tmp_path, argv=["study.py", "--seeds", "2"], keep_earlier=True)
    record = json.loads(provenance.write_provenance(tmp_path, argv=["study.py", "--seeds", "3"],
                                                    keep_earlier=True).read_text())
    assert record["command"].endswith("--seeds 3")
    assert [r["command"].split()[-1] for r in record["earlier"]] == ["1", "2"]
    assert "earlier" not in record["earlier"][1]
    # Without keep_earlier, a folder's record is the one run that wrote it.
    assert "earlier" not in json.loads(provenance.write_provenance(tmp_path, argv=["x.py"]).read_text())


def test_the_cpu_flags_are_those_the_kernel_reports():
    facts = provenance.cpu_facts()
    flags = set()
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    assert facts["flags"] == [flag for flag in provenance.CPU_FLAGS if flag in flags]
    assert facts["model_name"]


def test_the_commit_and_the_dirty_flag_follow_the_checkout(tmp_path, monkeypatch):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    assert provenance.git_state() == (git("rev-parse", "HEAD").strip(), False)
    (tmp_path / "untracked.txt").write_text("results do not make the code dirty")
    assert provenance.git_state()[1] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert provenance.git_state()[1] is True
    monkeypatch.setattr(provenance, "REPO", tmp_path / "not_a_checkout")
    assert provenance.git_state() == (None, None)


def test_every_results_folder_says_what_made_it():
    root = Path(__file__).resolve().parents[1] / "results"
    folders = [folder for folder in [root, *root.rglob("*")] if folder.is_dir()
               and any(item.is_file() and item.name != provenance.PROVENANCE_FILE for item in folder.iterdir())]
    assert len(folders) > 10
    missing = [str(folder.relative_to(root)) for folder in folders if not (folder / provenance.PROVENANCE_FILE).is_file()]
    assert not missing, f"results folders without {provenance.PROVENANCE_FILE}: {missing}"
    for folder in folders:
        record = json.loads((folder / provenance.PROVENANCE_FILE).read_text())
        assert record["command"] and "versions" in record and "cpu" in record, folder
        # A record written after the fact says so, and claims no commit it cannot know.
        assert record.get("reconstructed") is True or record["git_commit"], folder
        if record.get("reconstructed"):
            assert record["git_commit"] is None and record["reconstructed_from"] and record["recorded_in_commit"]
