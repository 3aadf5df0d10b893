"""A results folder says what made it: the command, the commit (and whether the checkout differed from it), the
CPU and its vector/matrix flags, the threads and the library versions (`ponet_training.provenance`)."""

import importlib.metadata
import json
import shlex
import subprocess

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
