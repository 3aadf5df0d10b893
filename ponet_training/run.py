"""The opening and closing of every training script: flags, logging, the `Accelerator`, trackers, results.

The scripts read like transformers' `run_*_no_trainer.py` examples; what they would otherwise copy from one
another lives here, as plain functions:

- `add_training_args(parser)`, `check_training_args(args)`, `checkpointing_steps_type`: the community's
  optimisation / loop / output / Hub flags.
- `check_output_dir(args)`, `prepare_output_dir(accelerator, args)`, `release_output_dir`, `releases_output_dir`:
  the run-directory rule of every script (docs/output_folders.md): a non-empty `--output_dir` is refused unless
  `--overwrite_output_dir` (which deletes only what earlier runs of these scripts wrote, listed in the folder's
  manifest, and never an input) or `--resume_from_checkpoint`; a run owns its folder through a lock while it runs;
  a run that fails early leaves no folder behind.
- `start_run(args)`: the output-dir rule, the accelerator (`build_accelerator`, with `--mixed_precision`), logging
  (`setup_logging`, which also quiets datasets' and transformers' bars), the seed and, with `--push_to_hub`, the Hub
  repository.
- `init_tracking(accelerator, args, project_name)`: the experiment trackers of `--report_to`.
- `write_all_results(output_dir, results)`: `all_results.json`.
- `finish_run(accelerator, args)`: end the trackers and, with `--push_to_hub`, upload the output folder.

The rest of a loop: `dataloaders.py` (resumable batch order), `optimization.py` (optimizer, schedule, one update),
`checkpoints.py` (save / resume / best model), `loop.py` (the classifier train and predict loops, progress bar).
"""

import argparse
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch
from transformers import SchedulerType


logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Arguments, logging, accelerator
# ----------------------------------------------------------------------------------------------------------


def checkpointing_steps_type(value: str):
    """argparse type for `--checkpointing_steps`: a positive integer (every N updates) or "epoch"."""
    if value is None or value == "epoch":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"`--checkpointing_steps` must be a positive integer or 'epoch', got {value!r}")


def add_training_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags every script shares, with the names of transformers' `run_*_no_trainer.py` examples.

    Optimisation: `--per_device_train_batch_size`, `--per_device_eval_batch_size`, `--learning_rate`,
    `--weight_decay`, `--adam_beta1/2`, `--adam_epsilon`, `--num_train_epochs`, `--max_train_steps`,
    `--gradient_accumulation_steps`, `--lr_scheduler_type`, `--num_warmup_steps`, `--max_grad_norm`,
    `--gradient_checkpointing`. Loop and output: `--output_dir`, `--seed`, `--checkpointing_steps`,
    `--resume_from_checkpoint`, `--eval_steps`, `--logging_steps`, `--with_tracking`, `--report_to`,
    `--dataloader_num_workers`, `--preprocessing_num_workers`, `--overwrite_cache`, `--trust_remote_code`,
    `--overwrite_output_dir`, `--mixed_precision`.
    Hub: `--push_to_hub`, `--hub_model_id`, `--hub_token`, `--hub_private_repo`.

    `--mixed_precision` goes to the `Accelerator`; without it the accelerate config decides (`accelerate launch
    --mixed_precision bf16` or `accelerate config`), as in the examples. Scripts change defaults with
    `parser.set_defaults(learning_rate=..., ...)` after calling this.
    """
    group = parser.add_argument_group("training")
    group.add_argument("--per_device_train_batch_size", type=int, default=8,
                       help="Batch size (per device) for training.")
    group.add_argument("--per_device_eval_batch_size", type=int, default=8,
                       help="Batch size (per device) for evaluation.")
    group.add_argument("--learning_rate", type=float, default=5e-5,
                       help="Peak learning rate (after warm-up).")
    group.add_argument("--weight_decay", type=float, default=0.0,
                       help="AdamW weight decay (never applied to biases and LayerNorm weights).")
    group.add_argument("--adam_beta1", type=float, default=0.9)
    group.add_argument("--adam_beta2", type=float, default=0.999)
    group.add_argument("--adam_epsilon", type=float, default=1e-8)
    group.add_argument("--num_train_epochs", type=int, default=3, help="Number of training epochs.")
    group.add_argument("--max_train_steps", type=int, default=None,
                       help="Total number of optimizer updates; overrides --num_train_epochs when set.")
    group.add_argument("--gradient_accumulation_steps", type=int, default=1,
                       help="Batches to accumulate before each optimizer update.")
    group.add_argument("--lr_scheduler_type", type=SchedulerType, default="linear",
                       choices=["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                                "constant_with_warmup"],
                       help="Learning-rate schedule after warm-up.")
    group.add_argument("--num_warmup_steps", type=int, default=0, help="Warm-up updates of the schedule.")
    group.add_argument("--max_grad_norm", type=float, default=1.0,
                       help="Gradient clipping norm (0 disables clipping).")
    group.add_argument("--gradient_checkpointing", action="store_true",
                       help="Recompute activations in the backward pass to save memory.")
    group.add_argument("--output_dir", type=str, default=None,
                       help="Where to store the final model; refused when not empty, unless --overwrite_output_dir "
                            "or --resume_from_checkpoint.")
    group.add_argument("--overwrite_output_dir", action="store_true",
                       help="Delete everything in a non-empty --output_dir before the run.")
    group.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"],
                       help="Mixed precision of the Accelerator (default: the accelerate config's, else no).")
    group.add_argument("--seed", type=int, default=42, help="Seed for reproducible training.")
    group.add_argument("--checkpointing_steps", type=checkpointing_steps_type, default=None,
                       help="Save the training state every N updates (an integer) or at every epoch end ('epoch').")
    group.add_argument("--resume_from_checkpoint", type=str, default=None,
                       help="A `step_N`/`epoch_N` folder to continue from, or 'latest' for the newest one in "
                            "--output_dir.")
    group.add_argument("--eval_steps", type=int, default=None,
                       help="Evaluate every N updates (default or 0: at the end of every epoch).")
    group.add_argument("--logging_steps", type=int, default=10,
                       help="Log the training loss to the trackers every N updates.")
    group.add_argument("--with_tracking", action="store_true",
                       help="Log metrics to the experiment trackers named by --report_to.")
    group.add_argument("--report_to", type=str, default="all",
                       help='Trackers: "tensorboard", "wandb", "comet_ml", "clearml", "all".')
    group.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")
    group.add_argument("--preprocessing_num_workers", type=int, default=None,
                       help="Processes for the datasets `map` preprocessing.")
    group.add_argument("--overwrite_cache", action="store_true",
                       help="Recompute the preprocessed datasets instead of reusing the cache.")
    group.add_argument("--trust_remote_code", action="store_true",
                       help="Allow models/datasets defined by code on the Hub (run only code you trust).")
    hub = parser.add_argument_group("hub")
    hub.add_argument("--push_to_hub", action="store_true", help="Upload the final model to the Hub.")
    hub.add_argument("--hub_model_id", type=str, default=None,
                     help="Repository to push to (default: the --output_dir folder name).")
    hub.add_argument("--hub_token", type=str, default=None, help="Token for the Hub (default: the cached login).")
    hub.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository as private.")
    return parser


def check_training_args(args: argparse.Namespace) -> None:
    """Raise one clear error for inconsistent training flags (call right after `parse_args`)."""
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be at least 1, got {getattr(args, name)}")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"`--max_train_steps` must be at least 1, got {args.max_train_steps}")
    if args.num_train_epochs < 1:
        raise ValueError(f"`--num_train_epochs` must be at least 1, got {args.num_train_epochs}")
    if args.num_warmup_steps < 0:
        raise ValueError(f"`--num_warmup_steps` must be >= 0, got {args.num_warmup_steps}")
    if args.eval_steps is not None and args.eval_steps < 0:
        raise ValueError(f"`--eval_steps` must be >= 0, got {args.eval_steps}")
    if args.push_to_hub and args.output_dir is None:
        raise ValueError("`--push_to_hub` needs an `--output_dir` to save the model in first")
    if args.checkpointing_steps is not None and args.output_dir is None:
        raise ValueError("`--checkpointing_steps` needs an `--output_dir` to save the checkpoints in")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError("`--overwrite_output_dir` deletes the checkpoints that `--resume_from_checkpoint` would "
                         "continue from: pass one of them")
    from .checkpoints import run_settings

    args.run_settings = run_settings(args)  # taken now, before scripts add derived values to `args`


# Our bookkeeping inside `--output_dir`: the lock of the run that owns the folder, and the list of the entries runs
# of these scripts wrote there (the only ones `--overwrite_output_dir` may delete).
LOCK_FILE = ".ponet_run.lock"
MANIFEST_FILE = ".ponet_outputs.json"
_BOOKKEEPING = (LOCK_FILE, MANIFEST_FILE)
# Flags that name where a run writes, not what it reads.
_NOT_INPUTS = ("output_dir", "resume_from_checkpoint", "logging_dir", "hub_token")

# Output folders this process owns: resolved path -> (open lock file, entries that were there before the run).
_claims: dict[Path, tuple] = {}


def _entries(path: Path) -> list[str]:
    """The names in `path`, without our bookkeeping files."""
    return sorted(item.name for item in path.iterdir() if item.name not in _BOOKKEEPING) if path.is_dir() else []


def check_output_dir(args: argparse.Namespace, resuming: bool | None = None) -> None:
    """Raise one clear error when `--output_dir` cannot take this run: a file, or a non-empty folder without
    `--overwrite_output_dir` or a resume (`resuming`, default: `--resume_from_checkpoint` was given). Every process
    calls it before the main one claims the folder (`prepare_output_dir`)."""
    if args.output_dir is None:
        return
    path = Path(args.output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`--output_dir` {path} is a file, not a folder: pass a folder path")
    if resuming is None:
        resuming = bool(getattr(args, "resume_from_checkpoint", None))
    if path.is_dir() and not (resuming or getattr(args, "overwrite_output_dir", False)):
        entries = _entries(path)
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise ValueError(f"`--output_dir` {path} is not empty ({shown}): pass --overwrite_output_dir to replace "
                             "what an earlier run wrote there, --resume_from_checkpoint latest to continue the run "
                             "saved there, or another --output_dir")


def input_paths(args: argparse.Namespace) -> dict[str, Path]:
    """{flag: resolved path} of every flag whose value is an existing file or folder the run reads (data files,
    the model, the tokenizer, ...)."""
    found = {}
    for key, value in vars(args).items():
        if key in _NOT_INPUTS or not isinstance(value, str) or not value or not os.path.exists(value):
            continue
        found[key] = Path(value).resolve()
    return found


def written_entries(output_dir: str | os.PathLike) -> set[str]:
    """The entries of `output_dir` that runs of these scripts wrote (read from its manifest; empty without one)."""
    file = Path(output_dir) / MANIFEST_FILE
    try:
        return set(json.loads(file.read_text())["written"]) if file.is_file() else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_manifest(output_dir: Path, names: set[str]) -> None:
    present = {name for name in names if (output_dir / name).exists() or (output_dir / name).is_symlink()}
    partial = output_dir / (MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps({"written": sorted(present)}, indent=2))
    os.replace(partial, output_dir / MANIFEST_FILE)


def record_outputs(output_dir: str | os.PathLike | None) -> None:
    """Add what this run has written to `output_dir` so far to its manifest (main process; a no-op for a folder this
    process does not own). Called after every checkpoint and at the end of the run."""
    if output_dir is None:
        return
    path = Path(output_dir).resolve()
    if path not in _claims or not path.is_dir():
        return
    before = _claims[path][1]
    _write_manifest(path, written_entries(path) | (set(_entries(path)) - before))


def _lock_holder(handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        return "another run"
    return f"another run (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')})"


def _claim(path: Path) -> None:
    """Take the lock of `path` (made if missing) for this process, or raise naming the run that holds it.

    `fcntl.flock` on `path/.ponet_run.lock`: the OS drops the lock when its process dies, so the lock of a killed run
    (even `kill -9`) is free for the next one; what that run wrote, recorded in its lock file, goes to the
    manifest."""
    import fcntl
    import socket
    import time

    path = path.resolve()
    if path in _claims:  # an earlier run in this very process (a script's `main` called twice)
        return
    path.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(handle)
            handle.close()
            raise RuntimeError(f"`--output_dir` {path} is in use by {holder}: wait for it to finish or pass "
                               "another --output_dir") from None
        # The file may have been unlinked by its releasing owner between our open and our lock: lock it anew.
        if os.path.exists(path / LOCK_FILE) and os.path.samestat(os.fstat(handle.fileno()), os.stat(path / LOCK_FILE)):
            break
        handle.close()
    handle.seek(0)
    stale = handle.read()
    if stale:  # a run that died holding the folder: the entries it wrote are ours to clear
        try:
            before = set(json.loads(stale).get("entries_before", []))
            _write_manifest(path, written_entries(path) | (set(_entries(path)) - before))
            logger.warning("%s was left by a run that was killed (%s); taking it over", path / LOCK_FILE, stale.strip())
        except ValueError:
            pass
    before = set(_entries(path)) - written_entries(path)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S"), "entries_before": sorted(before)}))
    handle.flush()
    _claims[path] = (handle, before)


def release_output_dir(output_dir: str | os.PathLike | None, failed: bool = False) -> None:
    """Record what the run wrote (`record_outputs`), drop the lock and its file; after a failure, remove the folder
    when the run left nothing in it (so that a run that fails early leaves no folder behind)."""
    if output_dir is None or Path(output_dir).resolve() not in _claims:
        return
    path = Path(output_dir).resolve()
    record_outputs(path)
    handle, before = _claims.pop(path)
    (path / LOCK_FILE).unlink(missing_ok=True)
    handle.close()
    if failed and not _entries(path):
        (path / MANIFEST_FILE).unlink(missing_ok=True)
        discard_if_empty(path)


def releases_output_dir(main):
    """Decorator for a script's `main`: whatever way it ends (an exception too), the `--output_dir` it claimed is
    released (`release_output_dir`). A killed process releases the lock through the OS."""
    import functools

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        claimed = set(_claims)
        try:
            result = main(*args, **kwargs)
        except BaseException:
            for path in set(_claims) - claimed:
                release_output_dir(path, failed=True)
            raise
        for path in set(_claims) - claimed:
            release_output_dir(path)
        return result

    return wrapper


def _clearable(path: Path, args: argparse.Namespace) -> list[str]:
    """What `--overwrite_output_dir` deletes in `path`: the entries earlier runs of these scripts wrote (its manifest).
    Raises when one of them is an input of this run, or when `path` holds entries no run of ours wrote and that this
    run does not read (they are never deleted)."""
    entries = set(_entries(path))
    ours = sorted(entries & written_entries(path))
    inputs = input_paths(args)
    for flag, source in inputs.items():
        for name in ours:
            target = (path / name).resolve()
            if source == target or target in source.parents or source in target.parents:
                raise ValueError(f"`--{flag}` {source} is read by this run, but --overwrite_output_dir would delete "
                                 f"{path / name} (an earlier run's output): pass another --output_dir")
    foreign = [name for name in sorted(entries - set(ours))
               if not any((path / name).resolve() in (source, *source.parents) for source in inputs.values())]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"`--output_dir` {path} holds {shown}, which no run of these scripts wrote: "
                         "--overwrite_output_dir deletes only an earlier run's outputs. Move them away or pass "
                         "another --output_dir")
    return ours


def prepare_output_dir(accelerator, args: argparse.Namespace) -> None:
    """Claim `--output_dir` for this run on the main process (a lock: a second run into the same folder is refused
    while this one runs) and, with `--overwrite_output_dir`, delete what earlier runs of these scripts wrote there
    (logged; inputs of this run and files no run of ours wrote are never deleted, see `_clearable`). Every process
    raises the main process's error."""
    error = None
    if accelerator.is_main_process and args.output_dir is not None:
        try:
            path = Path(args.output_dir)
            _claim(path)
            if getattr(args, "overwrite_output_dir", False):
                names = _clearable(path, args)
                for name in names:
                    item = path / name
                    if item.is_dir() and not item.is_symlink():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                _write_manifest(path, set())
                if names:
                    logger.warning("--overwrite_output_dir: deleted %d entries an earlier run wrote in %s (%s)",
                                   len(names), path, ", ".join(names[:8]) + (", ..." if len(names) > 8 else ""))
        except (OSError, RuntimeError, ValueError) as err:
            error = err
    if accelerator.num_processes > 1:  # every process stops with the main one's error, none waits forever
        from accelerate.utils import broadcast_object_list

        message = [None if error is None else f"{type(error).__name__}: {error}"]
        broadcast_object_list(message)
        if message[0] is not None and error is None:
            raise RuntimeError(f"The main process could not take --output_dir: {message[0]}")
    if error is not None:
        if args.output_dir is not None and Path(args.output_dir).resolve() in _claims:
            release_output_dir(args.output_dir, failed=True)
        raise error
    accelerator.wait_for_everyone()


def discard_if_empty(output_dir: str | os.PathLike | None) -> None:
    """Remove `output_dir` when it exists and holds nothing (for a script that made it and then failed)."""
    if output_dir is not None and Path(output_dir).is_dir() and not any(Path(output_dir).iterdir()):
        Path(output_dir).rmdir()


class _StripAnsi(logging.Filter):
    """Drop terminal colour codes (transformers' load report colours its text when stdout is a terminal, even if
    the log goes to a file)."""

    _codes = re.compile(r"\x1b\[[0-9;]*m")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b[" in message:
            record.msg, record.args = self._codes.sub("", message), None
        return True


def setup_logging(accelerator) -> None:
    """Log INFO on the local main process only; keep datasets/transformers quiet on the other processes.

    Library progress bars (datasets' map/filter bars, transformers' weight-loading bar) are off everywhere: the
    scripts' own bars (training progress) are the ones a user reads."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    for handler in transformers.utils.logging.get_logger().handlers + logging.getLogger().handlers:
        if not any(isinstance(f, _StripAnsi) for f in handler.filters):
            handler.addFilter(_StripAnsi())

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        level=logging.INFO,
    )
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        transformers.utils.logging.set_verbosity_warning()
    else:
        logging.getLogger().setLevel(logging.ERROR)
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()


def build_accelerator(args: argparse.Namespace, **kwargs):
    """An `Accelerator` with gradient accumulation, `--mixed_precision`, the project dir (`--output_dir`) and, with
    `--with_tracking`, the trackers of `--report_to`. FSDP / DeepSpeed (and mixed precision without the flag) come
    from the accelerate config or `accelerate launch` flags. Extra keyword arguments go to `Accelerator`. fp16 on CPU
    is refused (it would run in float32)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if getattr(args, "mixed_precision", None):
        kwargs.setdefault("mixed_precision", args.mixed_precision)
    if args.with_tracking:
        kwargs.setdefault("log_with", args.report_to)
    if args.output_dir is not None:
        kwargs.setdefault("project_config", ProjectConfiguration(project_dir=args.output_dir,
                                                                 logging_dir=os.path.join(args.output_dir, "runs")))
    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, **kwargs)
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # Accelerate enables no CPU autocast for fp16: the run would be float32 and recorded as fp16.
        raise ValueError("Mixed precision fp16 (from --mixed_precision or the accelerate config) does not run on CPU: "
                         "Accelerate would train in float32. Use --mixed_precision bf16 (CPU autocast) or no")
    return accelerator


def init_tracking(accelerator, args: argparse.Namespace, project_name: str) -> None:
    """Start the trackers (when `--with_tracking`) with the run's flags as the experiment config."""
    if not args.with_tracking:
        return
    config = {}
    for key, value in vars(args).items():
        if hasattr(value, "value"):  # enums such as SchedulerType
            value = value.value
        if value is None or isinstance(value, (int, float, str, bool)):
            config[key] = value if value is not None else "None"
        else:
            config[key] = str(value)
    config.pop("hub_token", None)  # never log secrets
    config.pop("run_settings", None)  # the flags themselves are there
    accelerator.init_trackers(project_name, config)


def write_all_results(output_dir: str | os.PathLike, results: dict) -> Path:
    """Write `results` to `output_dir/all_results.json` (call on the main process). Tensors and numpy
    scalars become plain numbers."""

    def plain(value):
        if isinstance(value, torch.Tensor):
            return value.item() if value.numel() == 1 else value.tolist()
        if hasattr(value, "item") and callable(value.item):
            return value.item()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    path = Path(output_dir) / "all_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(results), indent=2, sort_keys=True))
    return path


def start_run(args: argparse.Namespace, **accelerator_kwargs):
    """Check `--output_dir` (`check_output_dir`), build the accelerator, set up logging and the seed, clear
    `--output_dir` with `--overwrite_output_dir`, and with `--push_to_hub` create the Hub repository now, so that a
    bad token fails before any training. Returns the accelerator."""
    from accelerate.utils import set_seed

    check_output_dir(args)
    accelerator = build_accelerator(args, **accelerator_kwargs)
    setup_logging(accelerator)
    logger.info(accelerator.state)
    logger.info("Mixed precision: %s", accelerator.mixed_precision)
    set_seed(args.seed)
    prepare_output_dir(accelerator, args)
    if accelerator.is_main_process and args.output_dir is not None:
        if getattr(args, "push_to_hub", False):
            from .hub import create_hub_repo

            create_hub_repo(args.output_dir, args.hub_model_id, args.hub_token, private=args.hub_private_repo)
    accelerator.wait_for_everyone()
    return accelerator


def finish_run(accelerator, args: argparse.Namespace, commit_message: str = "End of training") -> None:
    """End the trackers, wait for every process, release `--output_dir` and, with `--push_to_hub`, upload it (main
    process)."""
    if args.with_tracking:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        release_output_dir(args.output_dir)
    if getattr(args, "push_to_hub", False) and accelerator.is_main_process:
        from .hub import push_to_hub

        push_to_hub(args.output_dir, args.hub_model_id, args.hub_token, commit_message=commit_message,
                    private=args.hub_private_repo or None)


__all__ = [
    "add_training_args",
    "build_accelerator",
    "check_output_dir",
    "check_training_args",
    "checkpointing_steps_type",
    "discard_if_empty",
    "finish_run",
    "init_tracking",
    "input_paths",
    "prepare_output_dir",
    "record_outputs",
    "release_output_dir",
    "releases_output_dir",
    "setup_logging",
    "start_run",
    "write_all_results",
    "written_entries",
]
