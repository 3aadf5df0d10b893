"""One run of the pooling study: a `PooledSequenceClassifier` on a backbone, trained and evaluated.

- `Backbone`, `load_backbone(accelerator, args, name, data)`: tokenizer, weights and tokenized data, loaded once
  per backbone and shared by its runs.
- `evaluate_classifier(accelerator, model, dataloader, num_labels)`: accuracy, F1, macro-F1 and loss.
- `train_and_evaluate(accelerator, args, backbone, spec, data)`: one run (frozen or full regime), one CSV row.

Training and prediction are the library's classifier loops (`loop.train_epoch`, `loop.predict_logits`).
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import torch

from .. import dataloaders, loop, optimization
from ..checkpoints import TrainingProgress
from ..metrics import classification_metrics
from ..pooled_classifier import PooledSequenceClassifier, ensure_pad_token
from .data import SentimentData, tokenize_for_backbone
from .settings import RunSpec, display_name


@dataclass
class Backbone:
    """What every run of one backbone shares: its name, tokenizer, config, loaded weights and tokenized data."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    train_dataset: object
    eval_dataset: object


def load_backbone(accelerator, args, name: str, data: SentimentData) -> Backbone:
    """Tokenizer (with a pad token: decoders get EOS, logged), config and weights of one backbone, and its data."""
    import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    common = dict(cache_dir=args.cache_dir, trust_remote_code=args.trust_remote_code)
    config = AutoConfig.from_pretrained(name, **common)
    tokenizer = AutoTokenizer.from_pretrained(name, **common)
    try:
        ensure_pad_token(tokenizer, config, use_eos_as_pad=True)
    except ValueError as err:
        raise ValueError(f"Backbone {name!r}: {err}") from None
    model = AutoModel.from_pretrained(name, config=config, **common)
    train_dataset, eval_dataset = tokenize_for_backbone(accelerator, args, tokenizer, data, name)
    return Backbone(name=name, tokenizer=tokenizer, model=model, train_dataset=train_dataset, eval_dataset=eval_dataset)


def evaluate_classifier(accelerator, model, dataloader, num_labels: int) -> dict[str, float]:
    """Accuracy, F1 (binary for two classes, else macro), macro-F1 and loss on `dataloader`, gathered over processes."""
    logits, labels = loop.predict_logits(accelerator, model, dataloader)
    scores = classification_metrics(logits.argmax(-1).numpy(), labels.numpy(), num_labels=num_labels)
    return {
        "accuracy": scores["accuracy"],
        "f1": scores.get("f1", scores["macro_f1"]),
        "macro_f1": scores["macro_f1"],
        "eval_loss": float(torch.nn.functional.cross_entropy(logits, labels)),
    }


def train_and_evaluate(accelerator, args, backbone: Backbone, spec: RunSpec, data: SentimentData) -> dict:
    """Train one pooled classifier (frozen or full regime) and evaluate it on the evaluation split; one CSV row."""
    from accelerate.utils import set_seed
    from transformers import DataCollatorWithPadding

    set_seed(spec.seed)
    run_args = copy.copy(args)
    frozen = spec.regime == "frozen"
    run_args.learning_rate = args.probe_learning_rate if frozen else args.learning_rate
    model = PooledSequenceClassifier(
        copy.deepcopy(backbone.model), spec.pooling, num_labels=data.num_labels,
        problem_type="single_label_classification", freeze_backbone=frozen, cls_from_pooler=not args.no_cls_pooler,
        id2label=dict(enumerate(data.label_names)),
    )
    if not frozen:
        optimization.maybe_enable_gradient_checkpointing(model.backbone, run_args)
    pad_multiple = 8 if accelerator.mixed_precision in ("fp16", "bf16") else None
    collator = DataCollatorWithPadding(backbone.tokenizer, pad_to_multiple_of=pad_multiple)
    train_dataloader = dataloaders.build_train_dataloader(backbone.train_dataset, args.per_device_train_batch_size,
                                                          collate_fn=collator, seed=spec.seed,
                                                          num_workers=args.dataloader_num_workers)
    eval_dataloader = dataloaders.build_eval_dataloader(backbone.eval_dataset, args.per_device_eval_batch_size,
                                                        collate_fn=collator, num_workers=args.dataloader_num_workers)
    optimizer = optimization.create_optimizer(model, run_args)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader)
    optimization.resolve_train_steps(run_args, len(train_dataloader))
    if run_args.num_warmup_steps == 0 and args.warmup_ratio > 0:
        run_args.num_warmup_steps = math.ceil(args.warmup_ratio * run_args.max_train_steps)
    lr_scheduler = accelerator.prepare(optimization.create_scheduler(optimizer, run_args, accelerator.num_processes))

    # A run is short and resumes as a whole (the record skips finished runs): no evaluation or checkpoint mid-run.
    run_args.eval_steps = run_args.checkpointing_steps = None
    run_name = f"{display_name(spec.backbone)}/{spec.regime}/{spec.pooling}/seed{spec.seed}"
    bar = loop.ProgressBar(accelerator, run_args.max_train_steps, desc=f"{spec.regime} {spec.pooling} s{spec.seed}")
    progress, losses, start = TrainingProgress(), [], time.perf_counter()
    for epoch in range(run_args.num_train_epochs):
        for update in loop.train_epoch(accelerator, run_args, model, train_dataloader, optimizer, lr_scheduler,
                                       progress, epoch, bar, log_prefix=f"{run_name}/"):
            if update.loss is not None:  # not the epoch's-end record
                losses.append(update.loss)
        if progress.completed_steps >= run_args.max_train_steps:
            break
    bar.close()
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate_classifier(accelerator, model, eval_dataloader, data.num_labels)
    eval_time = time.perf_counter() - start
    if args.with_tracking:
        accelerator.log({f"{run_name}/{k}": v for k, v in scores.items()}, step=progress.completed_steps)
    trainable = accelerator.unwrap_model(model).num_trainable_parameters()

    # Drop the accelerator's references to this run's model and optimizer (and collect them) before the next run.
    del model, optimizer, lr_scheduler, train_dataloader, eval_dataloader
    accelerator.free_memory()

    majority = Counter(data.eval["label"]).most_common(1)[0][1] / len(data.eval)
    return {
        "backbone": spec.backbone, "regime": spec.regime, "pooling": spec.pooling, "seed": spec.seed,
        **scores,
        "train_loss": sum(losses) / max(len(losses), 1),
        "majority_baseline": majority,
        "num_train_examples": len(data.train),
        "num_eval_examples": len(data.eval),
        "train_steps": progress.completed_steps,
        "learning_rate": run_args.learning_rate,
        "trainable_parameters": trainable,
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = ["Backbone", "evaluate_classifier", "load_backbone", "train_and_evaluate"]
