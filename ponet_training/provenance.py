"""What made a result: the command, the code, the machine and the libraries, written beside the result.

A figure is only worth what a reader can tell about where it came from (which commit, which CPU, how many
threads), so every script that writes a results folder calls, once it knows the folder:

    write_provenance(folder)                       # folder/provenance.json, from sys.argv
    write_provenance(folder, argv=["benchmarks/bench_speed.py", "--device", "cpu"])

- `provenance(argv=None, **extra)`: the record as a dict: `command` (the command line, shell-quoted, with the
  `accelerate launch` or `torchrun` that started several processes in front of the script), `git_commit`
  and `git_dirty` (tracked files changed since that commit; None outside a git checkout), `cpu` (model name and its
  AVX2 / AVX-512 / AMX flags), `gpu` (CUDA device names, when there are any), `threads` (torch's intra-op threads,
  `os.cpu_count()` and `OMP_NUM_THREADS`), `versions` (python, torch, transformers, accelerate, datasets), `date`
  (UTC), and `extra` (what the caller adds).
- `write_provenance(folder, argv=None, keep_earlier=False, **extra)`: that record as `folder/provenance.json`;
  returns its path. `keep_earlier`: a folder that runs add to (the pooling study run again) keeps the records of the
  earlier sessions under `earlier`, oldest first.

A leaf: it imports nothing of the project, so benchmarks, experiments and the training library can all use it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path


PROVENANCE_FILE = "provenance.json"
# The checkout this module lives in: its commit is the code that ran.
REPO = Path(__file__).resolve().parents[1]
# CPU flags that decide which kernels torch runs (bf16 / int8 GEMMs), hence how fast a figure is.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = ("torch", "transformers", "accelerate", "datasets")


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, whether tracked files differ from it) of the checkout that holds this code; (None, None) outside
    a git checkout (an installed package)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), None if status is None else bool(status.strip())


def cpu_facts() -> dict:
    """The CPU's model name and which of `CPU_FLAGS` it has (from /proc/cpuinfo on Linux; the platform's
    processor name elsewhere, with no flags)."""
    name, flags = platform.processor() or None, set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name in (None, "", platform.machine()):
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model_name": name, "machine": platform.machine(), "logical_cores": os.cpu_count(),
            "flags": [flag for flag in CPU_FLAGS if flag in flags]}


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _threads_and_gpus() -> tuple[dict, list[str]]:
    threads = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count()}
    gpus = []
    torch = sys.modules.get("torch")  # only when the caller runs torch: never imported here for the record's sake
    if torch is not None:
        threads["torch_intra_op"] = torch.get_num_threads()
        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return threads, gpus


def _launch_prefix() -> list[str]:
    """What stands before the script in a command that starts this run again. Several processes were started by
    torch elastic (`WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `TORCHELASTIC_RUN_ID` in each one's environment), through
    `accelerate launch` when it left its `ACCELERATE_DYNAMO_BACKEND` there, else through `torchrun`; one process is
    `python`. Accelerate's CPU and precision variables, which change what runs, are kept."""
    env = os.environ
    use_cpu = [f"ACCELERATE_USE_CPU={env['ACCELERATE_USE_CPU']}"] if env.get("ACCELERATE_USE_CPU") else []
    precision = env.get("ACCELERATE_MIXED_PRECISION", "no")
    processes, local = int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", "1")))
    if processes == 1 or "TORCHELASTIC_RUN_ID" not in env:
        return use_cpu + ([f"ACCELERATE_MIXED_PRECISION={precision}"] if precision != "no" else []) + ["python"]
    machines = processes // local
    if "ACCELERATE_DYNAMO_BACKEND" not in env:
        return use_cpu + ["torchrun", "--nnodes", str(machines), "--nproc_per_node", str(local)]
    return (use_cpu + ["accelerate", "launch", "--multi_gpu", "--num_processes", str(processes)]
            + (["--num_machines", str(machines)] if machines > 1 else [])
            + (["--mixed_precision", precision] if precision != "no" else []))


def provenance(argv: list[str] | None = None, **extra) -> dict:
    """The record of what is running now (see the module docstring); `argv` defaults to `sys.argv`."""
    argv = list(sys.argv if argv is None else argv)
    commit, dirty = git_state()
    threads, gpus = _threads_and_gpus()
    return {
        "command": shlex.join([*_launch_prefix(), *map(str, argv)]),
        "git_commit": commit,
        "git_dirty": dirty,
        "cpu": cpu_facts(),
        "gpu": gpus,
        "threads": threads,
        "versions": _versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": extra,
    }


def write_provenance(folder: str | os.PathLike, argv: list[str] | None = None, keep_earlier: bool = False,
                     **extra) -> Path:
    """Write `provenance(argv, **extra)` to `folder/provenance.json` (the folder is made if missing); with
    `keep_earlier`, the records already there go under `earlier`."""
    path = Path(folder) / PROVENANCE_FILE
    record = provenance(argv, **extra)
    if keep_earlier and path.is_file():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = None
        if isinstance(previous, dict):
            record["earlier"] = previous.pop("earlier", []) + [previous]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


__all__ = ["PROVENANCE_FILE", "cpu_facts", "git_state", "provenance", "write_provenance"]
