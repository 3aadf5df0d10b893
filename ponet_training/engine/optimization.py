"""The optimiser, the learning-rate schedule and one update, as the `run_*_no_trainer.py` examples build them.

- `optimizer_grouped_parameters(model, weight_decay)`, `create_optimizer(model, args)`: AdamW without weight
  decay on biases and LayerNorm weights.
- `resolve_train_steps(args, batches_per_epoch)`: `--max_train_steps` / `--num_train_epochs` from the prepared
  loader; call it after `accelerator.prepare`.
- `create_scheduler(optimizer, args, num_processes)`: the schedule, built after `resolve_train_steps` (hence
  after `prepare`, which can change the number of batches per process).
- `maybe_enable_gradient_checkpointing(model, args)`, `optimization_step(...)`: backward, clipping, step.
"""

import argparse
import math

import torch
from transformers import get_scheduler


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


def maybe_enable_gradient_checkpointing(model, args: argparse.Namespace) -> None:
    """Turn on gradient checkpointing when `--gradient_checkpointing` is set (error if the model cannot)."""
    if not getattr(args, "gradient_checkpointing", False):
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"`--gradient_checkpointing`: {type(model).__name__} does not support it")
    model.gradient_checkpointing_enable()


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
    "create_optimizer",
    "create_scheduler",
    "maybe_enable_gradient_checkpointing",
    "optimization_step",
    "optimizer_grouped_parameters",
    "resolve_train_steps",
]
