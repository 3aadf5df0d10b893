"""Launch mistakes are refused at start, before anything is written, with the fix in the message: a launcher that
started N processes Accelerate sees as one (`accelerate launch --multi_gpu` on a machine without GPUs and without
ACCELERATE_USE_CPU=1; an FSDP config with `use_cpu: true`), `accelerate launch --cpu --num_processes 2` (which
starts one process), and an FSDP config that Accelerate runs as plain DDP on CPU. The rules: docs/output_folders.md,
"Launch mistakes"."""

import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from conftest import PRETRAIN_SCRIPT, child_env
from ponet_training.engine import launch


ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = ROOT / "pretrain" / "configs" / "fsdp_8gpu_bf16.yaml"
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the mistakes are those of a machine without GPUs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_pretraining(launcher_flags, out: Path, env=None) -> subprocess.CompletedProcess:
    """`accelerate launch <launcher_flags> pretrain/run_pretraining.py` of a tiny run into `out` (the refusals come
    before any data is read, so the data flags only need to parse)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher_flags, "--main_process_port",
               str(free_port()), str(PRETRAIN_SCRIPT), "--preset", "demo", "--max_train_steps", "2",
               "--output_dir", str(out)]
    base = child_env(OMP_NUM_THREADS="1")
    base.pop("ACCELERATE_USE_CPU", None)
    base.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, env=base, cwd=ROOT, timeout=600)


def cpu_fsdp_config(tmp_path, **changes) -> Path:
    """The shipped FSDP config made for 2 processes on this machine (`changes` on top)."""
    config = yaml.safe_load(FSDP_CONFIG.read_text())
    config.update(num_processes=2, mixed_precision="no", **changes)
    path = tmp_path / "fsdp_cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------------------------------------------------------
# The rule, on its inputs (the environment, the launcher's command line, what Accelerate sees)
# ---------------------------------------------------------------------------------------------------------------


def seen(num_processes=1, distributed_type="NO", device="cpu"):
    return SimpleNamespace(num_processes=num_processes, distributed_type=distributed_type,
                           device=torch.device(device))


def test_an_environment_of_two_processes_that_accelerate_sees_as_one_is_named_with_the_fix():
    with pytest.raises(RuntimeError) as error:
        launch.check_launch(seen(), {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, launcher_argv=None, has_gpu=False)
    message = str(error.value)
    assert "\n" not in message
    assert "started 2 processes (WORLD_SIZE=2), but Accelerate runs this one on its own" in message
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2" in message


def test_an_fsdp_launch_on_a_machine_without_gpus_names_the_cpu_alternative():
    environ = {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "ACCELERATE_USE_FSDP": "true"}
    with pytest.raises(RuntimeError, match=r"for FSDP, but FSDP needs GPUs.* pretrain/configs/ddp_8gpu_bf16.yaml"):
        launch.check_launch(seen(), environ, launcher_argv=None, has_gpu=False)
    # with ACCELERATE_USE_CPU=1 Accelerate runs the processes as plain DDP and drops FSDP: also refused
    with pytest.raises(RuntimeError, match=r"asks for FSDP, but Accelerate runs MULTI_CPU"):
        launch.check_launch(seen(2, "MULTI_CPU"), {**environ, "ACCELERATE_USE_CPU": "1"}, launcher_argv=None,
                            has_gpu=False)


def test_accelerate_launch_cpu_with_several_processes_is_named_from_the_launchers_command_line():
    argv = ["/usr/bin/python", "/usr/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "train.py", "--x"]
    with pytest.raises(RuntimeError, match=r"`accelerate launch` was asked for 2 processes .* started one"):
        launch.check_launch(seen(), {"ACCELERATE_USE_CPU": "True"}, launcher_argv=argv)
    module_form = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes=3", "train.py"]
    with pytest.raises(RuntimeError, match="asked for 3 processes"):
        launch.check_launch(seen(), {}, launcher_argv=module_form)


def test_launches_that_run_as_asked_pass():
    launch.check_launch(seen(), {}, launcher_argv=None)  # python script.py
    launch.check_launch(seen(), {}, launcher_argv=["/bin/bash", "run.sh"])
    launch.check_launch(seen(), {}, launcher_argv=["accelerate", "launch", "--num_processes", "1", "t.py"])
    launch.check_launch(seen(2, "MULTI_CPU"), {"WORLD_SIZE": "2", "ACCELERATE_USE_CPU": "1"}, launcher_argv=None)
    launch.check_launch(seen(8, "FSDP", "cuda"), {"WORLD_SIZE": "8", "ACCELERATE_USE_FSDP": "true"},
                        launcher_argv=None)


# ---------------------------------------------------------------------------------------------------------------
# The real launches
# ---------------------------------------------------------------------------------------------------------------


@NO_GPU
def test_multi_gpu_launch_on_a_cpu_machine_without_accelerate_use_cpu_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    result = launch_pretraining(["--multi_gpu", "--num_processes", "2", "--mixed_precision", "no"], out)
    assert result.returncode != 0
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2" in result.stderr, \
        result.stderr[-3000:]
    assert "in use by another run" not in result.stderr  # the two copies never got as far as the folder
    assert not out.exists()


@NO_GPU
@pytest.mark.parametrize("use_cpu_env", [False, True])
def test_the_fsdp_config_on_a_cpu_machine_is_refused_in_one_line(tmp_path, use_cpu_env):
    out = tmp_path / "out"
    config = cpu_fsdp_config(tmp_path, use_cpu=True)
    result = launch_pretraining(["--config_file", str(config)], out,
                                env={"ACCELERATE_USE_CPU": "1"} if use_cpu_env else None)
    assert result.returncode != 0
    assert "RuntimeError: " in result.stderr and "FSDP" in result.stderr, result.stderr[-3000:]
    assert "meta" not in result.stderr.split("RuntimeError: ", 1)[1].splitlines()[0]
    assert not out.exists()


def test_accelerate_launch_cpu_num_processes_2_is_refused_instead_of_running_one_process(tmp_path):
    out = tmp_path / "out"
    result = launch_pretraining(["--cpu", "--num_processes", "2", "--mixed_precision", "no", "--num_machines", "1",
                                 "--dynamo_backend", "no"], out)
    assert result.returncode != 0
    assert "asked for 2 processes" in result.stderr, result.stderr[-3000:]
    assert "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2" in result.stderr
    assert not out.exists()
