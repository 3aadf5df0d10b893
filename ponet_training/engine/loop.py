"""The one training loop and the one predict loop, shared by `pretrain/run_pretraining.py`,
`finetune/run_glue.py`, `finetune/run_long_doc.py` and the pooling study.

- `train(...)`: the updates of a whole run (every epoch from the resumed one on, up to `--max_train_steps`),
  each an `Update` that says when to evaluate and save: the script's visible loop does both
  (`best_model.BestModelTracker.after_update`). The loss is the task's (`loss_fn`; default: the model's `.loss`).
  A SIGTERM / SIGINT makes it yield a `stop` update at the next step boundary (`preemption.py`).
- `train_epoch(...)`: the updates of one epoch (gradient accumulation, clipping, progress bar, loss logging),
  yielding an `Update` after each optimizer update and at the epoch's end.
- `evaluation_due(...)`: when to evaluate, for every script.
- `log_metrics(accelerator, args, metrics)`: an evaluation's figures to the log and the trackers.
- `predict_logits(...)` / `predict(...)`: logits, or predicted ids / scores, with the references, gathered
  from all processes in dataset order.
- `ProgressBar`: tqdm over optimizer updates with the loss and tokens/s.

The scripts' visible loop over these pieces: `main` of `pretrain/run_pretraining.py` and `finetune/run_glue.py`
(and run_long_doc.py), "the loop".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ponet_training.engine import preemption
from ponet_training.engine.dataloaders import epoch_dataloader
from ponet_training.engine.optimization import optimization_step


logger = logging.getLogger(__name__)


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

    def close(self) -> float:
        """Close the bar; returns the seconds since it was created (the training run time)."""
        self.bar.close()
        return time.perf_counter() - self.start



class Update(NamedTuple):
    """What `train_epoch` reports after an optimizer update, and once more at the epoch's end.

    `evaluate`: time to evaluate (`evaluation_due`). `checkpoint`: time to call
    `checkpoints.CheckpointWriter.maybe_save(..., end_of_epoch)`. `stop`: the signal that stops the run here (every
    process agreed): save a checkpoint now and stop (`preemption.stop_run`).
    """

    step: int
    loss: float | None
    evaluate: bool
    checkpoint: bool
    end_of_epoch: bool = False
    epoch: int = 0
    stop: str | None = None


def evaluation_due(args, step: int, end_of_epoch: bool, end_of_run: bool, last_evaluated: int | None) -> bool:
    """When every script evaluates: every `--eval_steps` updates, or (no `--eval_steps`) at each epoch's end; and
    always at the end of the run; never twice at one step."""
    if step == last_evaluated:
        return False
    if end_of_run:
        return True
    if args.eval_steps:
        return not end_of_epoch and step % args.eval_steps == 0
    return end_of_epoch


def model_loss(model, batch: dict) -> dict:
    """The default `loss_fn`: the model's own `.loss` (the batch carries the labels)."""
    return {"loss": model(**batch).loss}


def train(accelerator, args, model, dataloader, optimizer, lr_scheduler, progress, bar: ProgressBar | None = None,
          log_prefix: str = "", loss_fn=model_loss) -> Iterator[Update]:
    """`train_epoch` over the epochs left (from `progress.epoch`, the resumed one), until `args.num_train_epochs`
    or `args.max_train_steps`; each `Update` carries its epoch.

    After each update has been handled (evaluated, checkpointed) every process checks whether one of them received
    SIGTERM / SIGINT (`preemption.stop_agreed`); if so, and steps are left, it yields one more update with `stop`
    set, which the caller saves as a checkpoint before stopping the run (`BestModelTracker.after_update`). A caller
    that saves nothing gets `preemption.Preempted` from the next step."""
    preemption.watch()
    for epoch in range(progress.epoch, args.num_train_epochs):
        for update in train_epoch(accelerator, args, model, dataloader, optimizer, lr_scheduler, progress, epoch,
                                  bar, log_prefix, loss_fn):
            yield update._replace(epoch=epoch)
            stop = progress.completed_steps < args.max_train_steps and preemption.stop_agreed(accelerator)
            if stop:
                yield Update(progress.completed_steps, None, evaluate=False, checkpoint=True, epoch=progress.epoch,
                             stop=stop)
                preemption.stop_run(accelerator, stop, progress.completed_steps, args.max_train_steps,
                                    unsaved="this run keeps no checkpoints: the same command runs it again")
        if progress.completed_steps >= args.max_train_steps:
            break
    preemption.finish()


def train_epoch(accelerator, args, model, dataloader, optimizer, lr_scheduler, progress, epoch: int,
                bar: ProgressBar | None = None, log_prefix: str = "", loss_fn=model_loss) -> Iterator[Update]:
    """Train one epoch (the batches `progress` has not consumed yet), yielding an `Update` after each optimizer update
    and a last one (`loss=None`) when the epoch or the run (`args.max_train_steps`) ends. The model is back in
    train mode whenever the loop resumes, so the caller may evaluate between updates. `loss_fn(model, batch)`
    returns a dict of scalar tensors: `loss` (what is optimized) and any parts to log (default: `model(**batch).loss`).
    At the epoch's end `progress` moves to the next epoch, unless the run is finished.

    With `--with_tracking`, the mean of each loss since the last log (`train_loss`, `train_<part>`) and the learning
    rate go to the trackers every `--logging_steps` updates and at the run's end (keys prefixed with `log_prefix`).
    """
    evaluated_at = None
    finished = progress.completed_steps >= args.max_train_steps
    # Loss sums stay on the device (one sync per update, not per batch): this update's, and since the last log.
    update_sums = logged_sums = None
    update_batches = logged_batches = 0
    model.train()
    for batch in [] if finished else epoch_dataloader(accelerator, dataloader, epoch, progress.skip_batches(epoch)):
        with accelerator.accumulate(model):
            losses = loss_fn(model, batch)
            optimization_step(accelerator, model, losses["loss"], optimizer, lr_scheduler, args.max_grad_norm)
        progress.advance(accelerator.sync_gradients)
        sums = torch.stack([value.detach().float() for value in losses.values()])
        update_sums = sums if update_sums is None else update_sums + sums
        update_batches += 1
        tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
        if not accelerator.sync_gradients:
            if bar is not None:
                bar.add_tokens(tokens)
            continue
        update_loss = update_sums[0].item() / update_batches
        logged_sums = update_sums if logged_sums is None else logged_sums + update_sums
        logged_batches += update_batches
        update_sums, update_batches = None, 0
        if bar is not None:
            bar.update(loss=update_loss, tokens=tokens)
        step = progress.completed_steps
        if args.with_tracking and (step % args.logging_steps == 0 or step == args.max_train_steps):
            means = (logged_sums / logged_batches).tolist()
            logged = {f"{log_prefix}train_{name}": mean for name, mean in zip(losses, means)}
            logged[f"{log_prefix}learning_rate"] = lr_scheduler.get_last_lr()[0]
            accelerator.log(logged, step=step)
            logged_sums, logged_batches = None, 0
        finished = step >= args.max_train_steps
        evaluate = evaluation_due(args, step, end_of_epoch=False, end_of_run=finished, last_evaluated=evaluated_at)
        evaluated_at = step if evaluate else evaluated_at
        yield Update(step, update_loss, evaluate=evaluate, checkpoint=True)
        model.train()
        if finished:
            break
    if not finished:
        progress.end_epoch()
    # The epoch's end: an `epoch_N` checkpoint unless the run is over.
    step = progress.completed_steps
    yield Update(step, None, evaluate=evaluation_due(args, step, end_of_epoch=True, end_of_run=finished,
                                                     last_evaluated=evaluated_at),
                 checkpoint=not finished, end_of_epoch=True)
    model.train()


def log_metrics(accelerator, args, metrics: dict, step: int) -> None:
    """An evaluation's figures: to the log, and to the trackers with `--with_tracking`."""
    logger.info("step %d: %s", step, {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    if args.with_tracking:
        accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)


@torch.no_grad()
def predict_logits(accelerator, model, dataloader) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run `model` over `dataloader` and return (logits as float32, the batches' `labels` or None), gathered from
    all processes in dataset order (duplicates of the last uneven batch dropped), on the CPU."""
    model.eval()
    logits_all, labels_all = [], []
    for batch in dataloader:
        labels = batch.pop("labels", None)
        with accelerator.autocast():
            logits = model(**batch).logits.float()
        if labels is None:
            logits_all.append(accelerator.gather_for_metrics(logits).cpu())
        else:
            logits, labels = accelerator.gather_for_metrics((logits, labels))
            logits_all.append(logits.cpu())
            labels_all.append(labels.cpu())
    return torch.cat(logits_all), (torch.cat(labels_all) if labels_all else None)


def predict(accelerator, model, dataloader, is_regression: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """`predict_logits` as (predictions, references): argmax ids, or float scores for regression (one output);
    references are None when the batches carry no `labels`."""
    logits, labels = predict_logits(accelerator, model, dataloader)
    if is_regression:
        return logits.squeeze(-1).numpy(), (None if labels is None else labels.float().numpy())
    return logits.argmax(dim=-1).numpy(), (None if labels is None else labels.numpy())


__all__ = ["ProgressBar", "Update", "evaluation_due", "log_metrics", "model_loss", "predict", "predict_logits",
           "train", "train_epoch"]
