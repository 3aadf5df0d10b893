"""Shared pieces of the Accelerate training loops (`pretrain/run_pretraining.py`, `finetune/run_*.py`).

The scripts read like transformers' `run_*_no_trainer.py` examples; what they would otherwise copy from
one another lives here, as plain functions:

- `add_training_args(parser)`: the community's optimisation / loop / output / Hub flags.
- `setup_logging(accelerator)`, `build_accelerator(args)`, `init_tracking(accelerator, args, project_name)`.
- `build_train_dataloader(...)` / `build_eval_dataloader(...)`: DataLoaders whose order depends only on
  (seed, epoch) and that never draw from the global RNG, so that a resumed run sees exactly the batches
  (and dropout masks) an uninterrupted one would.
- `optimizer_grouped_parameters`, `create_optimizer`, `create_scheduler`, `create_optimizer_and_scheduler`,
  `resolve_train_steps`.
- `TrainingProgress`, `resume_state`, `epoch_dataloader`, `maybe_save_checkpoint`, `save_checkpoint`:
  `step_N` / `epoch_N` folders written with `accelerator.save_state`, and an exact resume.
- `ProgressBar` (tqdm with loss and tokens/s on the main process), `write_all_results`.

A typical loop::

    progress = resume_state(accelerator, args, batches_per_epoch=len(train_dataloader))
    bar = ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)
    for epoch in range(progress.epoch, args.num_train_epochs):
        model.train()
        for batch in epoch_dataloader(accelerator, train_dataloader, epoch, progress.skip_batches(epoch)):
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step(); lr_scheduler.step(); optimizer.zero_grad()
            progress.advance(accelerator.sync_gradients)
            if accelerator.sync_gradients:
                bar.update(loss=loss.item(), tokens=int(batch["attention_mask"].sum()))
                maybe_save_checkpoint(accelerator, args, progress)
                if progress.completed_steps >= args.max_train_steps:
                    break
        if progress.completed_steps >= args.max_train_steps:
            break
        progress.end_epoch()
        maybe_save_checkpoint(accelerator, args, progress, end_of_epoch=True)

Evaluate before saving a checkpoint at the same step (or use `build_eval_dataloader`, which never
touches the global RNG) so that the saved RNG state is the one the next update starts from.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import SchedulerType, get_scheduler


logger = logging.getLogger(__name__)

PROGRESS_FILE = "training_progress.json"
_CHECKPOINT_RE = re.compile(r"^(step|epoch)_(\d+)$")


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
    `--dataloader_num_workers`, `--preprocessing_num_workers`, `--overwrite_cache`, `--trust_remote_code`.
    Hub: `--push_to_hub`, `--hub_model_id`, `--hub_token`, `--hub_private_repo`.

    Mixed precision is not a flag: it comes from the accelerate config (`accelerate launch
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
    group.add_argument("--output_dir", type=str, default=None, help="Where to store the final model.")
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


def setup_logging(accelerator) -> None:
    """Log INFO on the local main process only; keep datasets/transformers quiet on the other processes."""
    import datasets
    import transformers

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
    """An `Accelerator` with gradient accumulation, the project dir (`--output_dir`) and, with
    `--with_tracking`, the trackers of `--report_to`. Mixed precision / FSDP / DeepSpeed come from the
    accelerate config or `accelerate launch` flags. Extra keyword arguments go to `Accelerator`."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if args.with_tracking:
        kwargs.setdefault("log_with", args.report_to)
    if args.output_dir is not None:
        kwargs.setdefault("project_config", ProjectConfiguration(project_dir=args.output_dir,
                                                                 logging_dir=os.path.join(args.output_dir, "runs")))
    return Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, **kwargs)


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
    accelerator.init_trackers(project_name, config)


# ----------------------------------------------------------------------------------------------------------
# Data loading with a resumable order
# ----------------------------------------------------------------------------------------------------------


class EpochShuffleSampler(Sampler):
    """Random permutation of `range(num_samples)` that depends only on `seed + epoch`.

    Unlike `RandomSampler` with a stateful generator, the order of epoch `e` can be recomputed after a
    restart, which is what makes `--resume_from_checkpoint` exact. Accelerate shards its batches across
    processes as usual; call `set_epoch` (or `epoch_dataloader`) before each epoch.
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def build_train_dataloader(dataset, batch_size: int, collate_fn=None, seed: int = 42, shuffle: bool = True,
                           num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A training DataLoader whose batches depend only on (seed, epoch): see `EpochShuffleSampler`.

    The loader gets its own `torch.Generator`, so creating an iterator never draws from the global RNG
    (that stream drives dropout, and a resumed run must see the same one). An `IterableDataset`
    (streaming) is passed through unshuffled here: shuffle it with `dataset.shuffle(seed, buffer_size)`,
    whose order follows `set_epoch`.
    """
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn, num_workers=num_workers,
                          drop_last=drop_last, generator=generator)
    sampler = EpochShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, drop_last=drop_last, generator=generator)


def build_eval_dataloader(dataset, batch_size: int, collate_fn=None, num_workers: int = 0) -> DataLoader:
    """An unshuffled evaluation DataLoader with its own generator: evaluating mid-run never changes the
    global RNG stream, so runs with and without an interruption stay identical."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(0))


def _epoch_aware_parts(dataloader):
    """Every sampler / dataset / collator reachable from a (possibly accelerate-wrapped) DataLoader."""
    seen, stack, found = set(), [dataloader], []
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        for name in ("base_dataloader", "batch_sampler", "sampler", "dataset", "collate_fn"):
            child = getattr(obj, name, None)
            if child is not None and not isinstance(child, (int, str, bool)):
                stack.append(child)
    return found[1:]


def epoch_dataloader(accelerator, dataloader, epoch: int, skip_batches: int = 0):
    """Set `epoch` on the loader and on everything in it that shuffles or masks per epoch (samplers,
    streaming datasets, collators with `set_epoch`), then return the iterable for this epoch, without its
    first `skip_batches` batches (resuming mid-epoch; uses `accelerator.skip_first_batches`)."""
    if hasattr(dataloader, "set_epoch"):
        dataloader.set_epoch(epoch)
    for part in _epoch_aware_parts(dataloader):
        set_epoch = getattr(part, "set_epoch", None)
        if callable(set_epoch) and not isinstance(part, DataLoader):
            set_epoch(epoch)
    if skip_batches > 0:
        return accelerator.skip_first_batches(dataloader, skip_batches)
    return dataloader


# ----------------------------------------------------------------------------------------------------------
# Optimiser and schedule
# ----------------------------------------------------------------------------------------------------------


def optimizer_grouped_parameters(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW parameter groups: weight decay on weight matrices/embeddings, none on biases and
    normalisation weights (BERT's recipe). Frozen parameters are left out."""
    no_decay_ids = set()
    for module in model.modules():
        is_norm = isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or name.endswith(".bias") or is_norm:
                no_decay_ids.add(id(param))
    decay, no_decay, seen = [], [], set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))  # tied weights appear once
        (no_decay if id(param) in no_decay_ids else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def create_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW over `optimizer_grouped_parameters(model, args.weight_decay)` with the `--adam_*` flags."""
    return torch.optim.AdamW(
        optimizer_grouped_parameters(model, args.weight_decay),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


def resolve_train_steps(args: argparse.Namespace, batches_per_epoch: int | None) -> int | None:
    """Fill in `args.max_train_steps` / `args.num_train_epochs` from the (prepared, per-process) number of
    batches per epoch, as the examples do; returns the number of optimizer updates per epoch.

    `batches_per_epoch=None` (a streaming dataset) needs `--max_train_steps`, which alone sets the length
    of the run: the stream is read again from the start (a new "epoch", reshuffled) as often as needed.
    """
    if batches_per_epoch is None:
        if args.max_train_steps is None:
            raise ValueError("A streaming (iterable) dataset has no length: pass `--max_train_steps`")
        args.num_train_epochs = args.max_train_steps  # an upper bound: every pass gives at least one update
        return None
    if batches_per_epoch == 0:
        raise ValueError("The training dataloader is empty: no batch to train on")
    updates_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * updates_per_epoch
    else:
        args.num_train_epochs = math.ceil(args.max_train_steps / updates_per_epoch)
    return updates_per_epoch


def create_scheduler(optimizer, args: argparse.Namespace, num_processes: int = 1):
    """The `--lr_scheduler_type` schedule with `--num_warmup_steps` warm-up over `args.max_train_steps`.

    The prepared scheduler (`accelerator.prepare`) steps once per process at every update, hence the
    `num_processes` factor, as in the examples.
    """
    if args.max_train_steps is None:
        raise ValueError("Call `resolve_train_steps` before `create_scheduler`: max_train_steps is unknown")
    return get_scheduler(
        name=args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps * num_processes,
        num_training_steps=args.max_train_steps * num_processes,
    )


def create_optimizer_and_scheduler(model: torch.nn.Module, args: argparse.Namespace, num_processes: int = 1):
    """`(create_optimizer(model, args), create_scheduler(optimizer, args, num_processes))`."""
    optimizer = create_optimizer(model, args)
    return optimizer, create_scheduler(optimizer, args, num_processes)


def maybe_enable_gradient_checkpointing(model, args: argparse.Namespace) -> None:
    """Turn on gradient checkpointing when `--gradient_checkpointing` is set (error if the model cannot)."""
    if not getattr(args, "gradient_checkpointing", False):
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"`--gradient_checkpointing`: {type(model).__name__} does not support it")
    model.gradient_checkpointing_enable()


# ----------------------------------------------------------------------------------------------------------
# Checkpoints and exact resume
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingProgress:
    """Where the loop stands: `epoch` being run, `batches_in_epoch` already consumed in it, and the
    number of optimizer updates done. Saved next to every checkpoint so that a resume continues exactly."""

    epoch: int = 0
    batches_in_epoch: int = 0
    completed_steps: int = 0

    def advance(self, sync_gradients: bool) -> None:
        """Count one batch (call after each batch; `sync_gradients` is True when it ended an update)."""
        self.batches_in_epoch += 1
        if sync_gradients:
            self.completed_steps += 1

    def end_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch += 1
        self.batches_in_epoch = 0

    def skip_batches(self, epoch: int) -> int:
        """Batches to skip at the start of `epoch` (non-zero only for the epoch a resume lands in)."""
        return self.batches_in_epoch if epoch == self.epoch else 0


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `step_N` / `epoch_N` folders of `output_dir`, oldest first (by the progress they record)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        if path.is_dir() and _CHECKPOINT_RE.match(path.name):
            progress = _read_progress(path)
            key = (progress.completed_steps, progress.epoch) if progress else (-1, path.stat().st_mtime)
            found.append((key, path))
    return [path for _, path in sorted(found)]


def _read_progress(path: Path) -> TrainingProgress | None:
    file = Path(path) / PROGRESS_FILE
    if not file.is_file():
        return None
    return TrainingProgress(**json.loads(file.read_text()))


def save_checkpoint(accelerator, output_dir: str | os.PathLike, name: str, progress: TrainingProgress) -> Path:
    """`accelerator.save_state` (model, optimizer, scheduler, scaler, RNG states) into `output_dir/name`,
    plus the loop position in `training_progress.json`."""
    path = Path(output_dir) / name
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / PROGRESS_FILE).write_text(json.dumps(dataclasses.asdict(progress), indent=2))
    accelerator.wait_for_everyone()
    logger.info(f"Saved checkpoint {path} ({progress})")
    return path


def maybe_save_checkpoint(accelerator, args: argparse.Namespace, progress: TrainingProgress,
                          end_of_epoch: bool = False) -> Path | None:
    """Save a checkpoint when `--checkpointing_steps` asks for one.

    Call after every update (`step_{completed_steps}` when it is a multiple of N) and, with
    `end_of_epoch=True`, after `progress.end_epoch()` (`epoch_{finished epoch}` for "epoch").
    """
    every = getattr(args, "checkpointing_steps", None)
    if every is None or args.output_dir is None:
        return None
    if end_of_epoch and every == "epoch":
        return save_checkpoint(accelerator, args.output_dir, f"epoch_{progress.epoch - 1}", progress)
    if not end_of_epoch and isinstance(every, int) and progress.completed_steps % every == 0:
        return save_checkpoint(accelerator, args.output_dir, f"step_{progress.completed_steps}", progress)
    return None


def resolve_checkpoint(args: argparse.Namespace) -> Path | None:
    """The folder `--resume_from_checkpoint` names (a path, or "latest": the newest `step_N`/`epoch_N` in
    `--output_dir`); None when not resuming. Raises FileNotFoundError when there is nothing to resume."""
    target = getattr(args, "resume_from_checkpoint", None)
    if not target:
        return None
    if target == "latest":
        if args.output_dir is None:
            raise ValueError("`--resume_from_checkpoint latest` needs `--output_dir` to look in")
        checkpoints = list_checkpoints(args.output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"`--resume_from_checkpoint latest`: no step_N/epoch_N folder in {args.output_dir}")
        return checkpoints[-1]
    path = Path(target)
    if not path.is_dir():
        raise FileNotFoundError(f"`--resume_from_checkpoint`: no checkpoint folder at {path}")
    return path


def resume_state(accelerator, args: argparse.Namespace, batches_per_epoch: int | None = None) -> TrainingProgress:
    """Load `--resume_from_checkpoint` (see `resolve_checkpoint`) with `accelerator.load_state` and return
    where the loop continues; a fresh `TrainingProgress` when not resuming.

    Call after `accelerator.prepare` (and after registering anything with `register_for_checkpointing`).
    Checkpoints without `training_progress.json` (e.g. from transformers' examples) are located from
    their `step_N` / `epoch_N` name, which needs `batches_per_epoch` (per process, prepared loader).
    """
    path = resolve_checkpoint(args)
    if path is None:
        return TrainingProgress()
    accelerator.print(f"Resumed from checkpoint: {path}")
    accelerator.load_state(str(path))
    progress = _read_progress(path)
    if progress is not None:
        return progress
    match = _CHECKPOINT_RE.match(path.name)
    if match is None or batches_per_epoch is None:
        raise ValueError(f"Cannot tell where {path} stopped: it has no {PROGRESS_FILE} and is not named "
                         "step_N/epoch_N (or the dataset has no length)")
    kind, number = match.group(1), int(match.group(2))
    updates_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    if kind == "epoch":
        return TrainingProgress(epoch=number + 1, batches_in_epoch=0, completed_steps=(number + 1) * updates_per_epoch)
    epoch, updates_in_epoch = divmod(number, updates_per_epoch)
    return TrainingProgress(epoch=epoch, batches_in_epoch=updates_in_epoch * args.gradient_accumulation_steps,
                            completed_steps=number)


# ----------------------------------------------------------------------------------------------------------
# Progress bar and results
# ----------------------------------------------------------------------------------------------------------


class ProgressBar:
    """tqdm over optimizer updates on the local main process, showing the loss and tokens/s.

    `tokens` passed to `update` are this process's real (non-padding) tokens of the update; the rate
    shown multiplies them by the number of processes (all processes see same-sized batches).
    """

    def __init__(self, accelerator, total: int, initial: int = 0, desc: str = "train"):
        self.accelerator = accelerator
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                        disable=not accelerator.is_local_main_process)
        self.start = time.perf_counter()
        self.tokens = 0

    def add_tokens(self, tokens: int) -> None:
        """Count tokens of a batch that did not end an update (gradient accumulation)."""
        self.tokens += tokens

    def update(self, loss: float | None = None, tokens: int = 0, **extra) -> None:
        """Advance one update and refresh the postfix (loss, tok/s, any extra figures)."""
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        postfix = {}
        if loss is not None:
            postfix["loss"] = f"{loss:.4f}"
        postfix["tok/s"] = f"{self.tokens * self.accelerator.num_processes / elapsed:,.0f}"
        postfix.update(extra)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def tokens_per_second(self) -> float:
        """Average tokens/s (all processes) since the bar was created."""
        return self.tokens * self.accelerator.num_processes / max(time.perf_counter() - self.start, 1e-9)

    def close(self) -> None:
        self.bar.close()


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


# ----------------------------------------------------------------------------------------------------------
# The opening of a run and one optimisation step (every script does these the same way)
# ----------------------------------------------------------------------------------------------------------


def start_run(args: argparse.Namespace, **accelerator_kwargs):
    """Build the accelerator, set up logging and the seed, create `--output_dir`, and with `--push_to_hub`
    create the Hub repository now, so that a bad token fails before any training. Returns the accelerator."""
    from accelerate.utils import set_seed

    accelerator = build_accelerator(args, **accelerator_kwargs)
    setup_logging(accelerator)
    logger.info(accelerator.state)
    set_seed(args.seed)
    if accelerator.is_main_process and args.output_dir is not None:
        os.makedirs(args.output_dir, exist_ok=True)
        if getattr(args, "push_to_hub", False):
            from .hub import create_hub_repo

            create_hub_repo(args.output_dir, args.hub_model_id, args.hub_token, private=args.hub_private_repo)
    accelerator.wait_for_everyone()
    return accelerator


def optimization_step(accelerator, model, loss, optimizer, lr_scheduler, max_grad_norm: float | None) -> None:
    """Backward, then (on the batch that ends an update) gradient clipping; the optimizer and schedule step
    and the gradients are cleared. Call inside `with accelerator.accumulate(model):`, which turns the
    steps of non-final accumulation batches into no-ops."""
    accelerator.backward(loss)
    if accelerator.sync_gradients and max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    lr_scheduler.step()
    optimizer.zero_grad()


__all__ = [
    "add_training_args",
    "check_training_args",
    "setup_logging",
    "build_accelerator",
    "init_tracking",
    "EpochShuffleSampler",
    "build_train_dataloader",
    "build_eval_dataloader",
    "epoch_dataloader",
    "optimizer_grouped_parameters",
    "create_optimizer",
    "create_scheduler",
    "create_optimizer_and_scheduler",
    "resolve_train_steps",
    "maybe_enable_gradient_checkpointing",
    "TrainingProgress",
    "list_checkpoints",
    "save_checkpoint",
    "maybe_save_checkpoint",
    "resolve_checkpoint",
    "resume_state",
    "ProgressBar",
    "write_all_results",
    "start_run",
    "optimization_step",
]
