"""Launch mistakes, refused when the accelerator is built (before the run folder is touched), each in one line with
the fix (the rules: docs/output_folders.md, "Launch mistakes").

`check_launch(accelerator, environ, launcher_argv)` raises a RuntimeError when

1. the launcher started N processes (torchrun's `WORLD_SIZE`, or MPI's size variables) but Accelerate runs this
   one on its own: `accelerate launch --multi_gpu` on a machine without GPUs and without `ACCELERATE_USE_CPU=1`,
   or an FSDP config with `use_cpu: true`. Each copy would train alone and write into the same folder;
2. the accelerate config asks for FSDP (`ACCELERATE_USE_FSDP`) but Accelerate runs something else: with
   `ACCELERATE_USE_CPU=1` it runs plain DDP (it shards with FSDP only on GPUs), and the run would be recorded as what
   it was not asked to be;
3. the process was started by `accelerate launch` asked for N > 1 processes (`--num_processes`, or its config file)
   and Accelerate runs fewer: `accelerate launch --cpu --num_processes 2` starts one process (its CPU launcher runs
   several only through MPI, with `--mpirun_hostfile`).

`launcher_command()` reads the parent process's command line (Linux `/proc`; None elsewhere).

`check_fsdp_model(accelerator, model)`: under FSDP2, refuse (before `accelerator.prepare`) a model whose output layer's
bias is tied to a parameter outside that layer (the masked-LM heads of PoNet and BERT): Accelerate puts the output
layer in an FSDP group of its own, and torch refuses a parameter shared by two groups at the first forward pass.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import torch


# Variables in which launchers give the number of processes: torchrun (accelerate launch --multi_gpu), MPI flavours.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
CPU_PROCESSES = "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes {n} ..."


def _distributed_type(accelerator) -> str:
    kind = accelerator.distributed_type
    return str(getattr(kind, "value", kind))


def _has_gpu() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def launched_processes(environ) -> tuple[str, int] | None:
    """(variable, N) of the first launcher variable saying N > 1 processes, or None."""
    for name in WORLD_SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return name, int(value)
    return None


def launcher_command() -> list[str] | None:
    """The command line of the process that started this one, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def _accelerate_launch_args(argv: list[str]) -> list[str] | None:
    """The arguments after `accelerate launch` (or `python -m accelerate.commands.launch`), or None when `argv` is
    another program."""
    for i, part in enumerate(argv):
        name = os.path.basename(part)
        if name == "accelerate-launch" or part == "accelerate.commands.launch":
            return argv[i + 1:]
        if (name == "accelerate" or part == "accelerate.commands.accelerate_cli") and argv[i + 1:i + 2] == ["launch"]:
            return argv[i + 2:]
    return None


def requested_by_accelerate_launch(argv: list[str] | None) -> tuple[int, str] | None:
    """(processes, where it was asked) when `argv` is an `accelerate launch` asked for more than one process."""
    args = _accelerate_launch_args(argv or [])
    if args is None:
        return None
    from accelerate.commands.launch import launch_command_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse would print its usage
            parsed = launch_command_parser().parse_args(args)
    except (SystemExit, Exception):  # a command line we cannot read is no evidence of a mistake
        return None
    if parsed.num_processes is not None:
        number, where = parsed.num_processes, f"--num_processes {parsed.num_processes}"
    else:  # accelerate reads its default config file unless --cpu is given
        from accelerate.commands.config import default_config_file
        from accelerate.commands.config.config_args import load_config_from_file

        config = parsed.config_file or (default_config_file if os.path.isfile(default_config_file)
                                        and not parsed.cpu else None)
        if config is None:
            return None
        try:
            number = load_config_from_file(config).num_processes
        except Exception:
            return None
        where = f"num_processes: {number} in {config}"
    return (number, where) if isinstance(number, int) and number > 1 else None


def check_launch(accelerator, environ=None, launcher_argv: list[str] | None | bool = True,
                 has_gpu: bool | None = None) -> None:
    """Raise one RuntimeError for a launch that does not run as it was asked (see the module docstring).
    `environ` defaults to `os.environ`, `launcher_argv` (True) to `launcher_command()`, `has_gpu` to what torch
    finds."""
    environ = os.environ if environ is None else environ
    gpu = _has_gpu() if has_gpu is None else has_gpu
    seen, kind = accelerator.num_processes, _distributed_type(accelerator)
    fsdp = environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    launched = launched_processes(environ)
    if launched is not None and seen < launched[1]:
        name, n = launched
        if fsdp and not gpu:
            raise RuntimeError(
                f"The launcher started {n} processes ({name}={n}) for FSDP, but FSDP needs GPUs (Accelerate shards "
                "with FSDP only on GPUs) and this machine has none: each process would train alone. On CPU, run DDP "
                f"without the FSDP config: {CPU_PROCESSES.format(n=n)} (the CPU counterpart of "
                "pretrain/configs/ddp_8gpu_bf16.yaml)")
        fix = (f"this machine has no GPU: for {n} CPU processes run {CPU_PROCESSES.format(n=n)}" if not gpu
               else "check that every process sees its GPU (CUDA_VISIBLE_DEVICES) and the accelerate config")
        raise RuntimeError(f"The launcher started {n} processes ({name}={n}), but Accelerate runs this one on its own "
                           f"({kind}): each would train alone and write into the same folder. Fix: {fix}")
    if fsdp and kind != "FSDP":
        raise RuntimeError(
            f"The accelerate config asks for FSDP, but Accelerate runs {kind} (it shards with FSDP only on GPUs): the "
            "run would not be what was asked. "
            + ("On CPU, drop the FSDP config" + (f" and run {CPU_PROCESSES.format(n=seen)}" if seen > 1 else "")
               if not gpu else "On GPUs, leave ACCELERATE_USE_CPU unset"))
    if launched is None:
        requested = requested_by_accelerate_launch(launcher_command() if launcher_argv is True else launcher_argv)
        if requested is not None and seen < requested[0]:
            n, where = requested
            raise RuntimeError(
                f"`accelerate launch` was asked for {n} processes ({where}), but it started "
                f"{'one' if seen == 1 else seen}: its --cpu launcher "
                f"runs several only through MPI (--mpirun_hostfile). For {n} CPU processes run "
                f"{CPU_PROCESSES.format(n=n)}")


def check_fsdp_model(accelerator, model) -> None:
    """Raise one RuntimeError when FSDP2 cannot shard `model` with this Accelerate and torch (module docstring)."""
    if _distributed_type(accelerator) != "FSDP" or not getattr(accelerator, "is_fsdp2", False):
        return
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    bias = getattr(output, "bias", None)
    if bias is None:
        return
    names = [name for name, p in model.named_parameters(remove_duplicate=False) if p is bias]
    output_names = {f"{name}.bias" for name, module in model.named_modules() if module is output}
    outside = [name for name in names if name not in output_names]
    if outside:
        import accelerate

        raise RuntimeError(
            f"FSDP2 cannot shard {type(model).__name__} with Accelerate {accelerate.__version__} and torch "
            f"{torch.__version__.split('+')[0]}: the output layer's bias is tied to {outside[0]}, Accelerate puts the "
            "output layer in an FSDP group of its own, and torch refuses a parameter shared by two groups ('is "
            "shared with a parameter already managed by another FSDP group'). Pretrain with DDP "
            "(pretrain/configs/ddp_8gpu_bf16.yaml) or DeepSpeed ZeRO-2 (pretrain/configs/deepspeed_zero2_bf16.yaml)")


__all__ = ["check_fsdp_model", "check_launch", "launched_processes", "launcher_command",
           "requested_by_accelerate_launch"]
