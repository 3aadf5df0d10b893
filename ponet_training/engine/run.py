"""The opening and closing of every training script: flags, logging, the `Accelerator`, trackers, results.

The scripts read like transformers' `run_*_no_trainer.py` examples; what they would otherwise copy from one
another lives here, as plain functions:

- `add_training_args(parser)`, `check_training_args(args)`, `checkpointing_steps_type`: the community's
  optimisation / loop / output / Hub flags; `check_sequence_length(args, flag)`: the shortest sequence a run takes.
- `start_run(args, folder)`: the accelerator (`build_accelerator`, with `--mixed_precision`), logging
  (`setup_logging`, which also quiets datasets' and transformers' bars), the seed, and the claim of the run's
  `RunFolder` (`run_folder.py`).
- `total_train_batch_size(args, num_processes)`: examples per optimizer update.
- `init_tracking(accelerator, args, project_name)`: the experiment trackers of `--report_to`.
- `write_all_results(output_dir, results)`: `all_results.json`.
- `finish_run(accelerator, args)`: end the trackers and wait for every process (the `with RunFolder` block of the
  script releases the folder; the Hub upload is `hub.push`, called by the scripts).

The rest of a loop: `dataloaders.py` (resumable batch order), `optimization.py` (optimizer, schedule, one update),
`checkpoints.py` (save / resume), `best_model.py` (the best and the final model), `loop.py` (the train and
predict loops, progress bar).
"""

import argparse
import json
import logging
import os
import re
from pathlib import Path

from transformers import SchedulerType

from ponet_training.engine.launch import check_launch
from ponet_training.engine.settings import plain


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
    `--resume_from_checkpoint`, `--resume_with_changed_data`, `--eval_steps`, `--logging_steps`, `--with_tracking`,
    `--report_to`, `--dataloader_num_workers`, `--preprocessing_num_workers`, `--overwrite_cache`,
    `--trust_remote_code`, `--overwrite_output_dir`, `--mixed_precision`.
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
    group.add_argument("--resume_with_changed_data", action="store_true",
                       help="Resume a checkpoint even though an input file differs from the one it was trained on "
                            "(refused without this flag; the log and all_results.json then name the files).")
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
    if args.resume_with_changed_data and not args.resume_from_checkpoint:
        raise ValueError("`--resume_with_changed_data` only changes a resume: pass it with --resume_from_checkpoint")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError("`--overwrite_output_dir` deletes the checkpoints that `--resume_from_checkpoint` would "
                         "continue from: pass one of them")


# Below this, a sequence has no room for PoNet's [CLS]/[SEP] and a sentence or two: a flag set this short is a typo.
MIN_SEQUENCE_LENGTH = 8


def check_sequence_length(args: argparse.Namespace, flag: str) -> None:
    """Raise one clear error when `--{flag}` (`max_length`, `max_seq_length`) is shorter than `MIN_SEQUENCE_LENGTH`."""
    if getattr(args, flag) < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"`--{flag}` must be at least {MIN_SEQUENCE_LENGTH}, got {getattr(args, flag)}")


def total_train_batch_size(args: argparse.Namespace, num_processes: int) -> int:
    """Examples per optimizer update: the per-device batch on every process, times the accumulated batches."""
    return args.per_device_train_batch_size * num_processes * args.gradient_accumulation_steps


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
    from the accelerate config or `accelerate launch` flags. Extra keyword arguments go to `Accelerator`. A launch
    that does not run as asked (`launch.check_launch`) and fp16 on CPU (it would run in float32) are refused."""
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
    check_launch(accelerator)
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
    accelerator.init_trackers(project_name, config)


def write_all_results(output_dir: str | os.PathLike, results: dict) -> Path:
    """Write `results` to `output_dir/all_results.json` (call on the main process). Tensors and numpy
    scalars become plain numbers (`settings.plain`)."""
    path = Path(output_dir) / "all_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(results), indent=2, sort_keys=True))
    return path


def start_run(args: argparse.Namespace, folder, **accelerator_kwargs):
    """Build the accelerator, set up logging and the seed, then claim the run's `folder` (`RunFolder.claim`: the lock,
    `--overwrite_output_dir`, the checkpoint to resume). Returns the accelerator. The folder was checked when it was
    made, so a folder that cannot take the run fails before anything is built."""
    from accelerate.utils import set_seed

    accelerator = build_accelerator(args, **accelerator_kwargs)
    setup_logging(accelerator)
    logger.info(accelerator.state)
    logger.info("Mixed precision: %s", accelerator.mixed_precision)
    set_seed(args.seed)
    folder.claim(accelerator)
    return accelerator


def finish_run(accelerator, args: argparse.Namespace) -> None:
    """End the trackers and wait for every process."""
    if args.with_tracking:
        accelerator.end_training()
    accelerator.wait_for_everyone()


__all__ = [
    "add_training_args",
    "build_accelerator",
    "check_training_args",
    "check_sequence_length",
    "checkpointing_steps_type",
    "finish_run",
    "init_tracking",
    "setup_logging",
    "start_run",
    "total_train_batch_size",
    "write_all_results",
]
