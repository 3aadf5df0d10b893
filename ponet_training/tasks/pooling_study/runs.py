"""One run of the pooling study: a `PooledSequenceClassifier` on a backbone, trained and evaluated.

- `Backbone`, `load_backbone(accelerator, args, name, data)`: tokenizer, weights (pretrained, or random from a
  config: `RANDOM_INIT_PREFIX`) and tokenized data, loaded once per backbone and shared by its runs.
- `frozen_states(accelerator, args, backbone)`: the frozen backbone's token states of every example, computed once
  per backbone and reused by all its frozen runs (a frozen backbone in eval mode gives the same states whatever
  the seed, the pooling or the epoch).
- `evaluate_classifier(accelerator, model, dataloader, num_labels)`: accuracy, F1, macro-F1 and loss.
- `train_and_evaluate(accelerator, args, backbone, spec, data)`: one run (frozen or full regime), one CSV row.

Training and prediction are the library's classifier loops (`loop.train_epoch`, `loop.predict_logits`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import torch

from ponet_training.engine import dataloaders, loop, optimization
from ponet_training.data.tokenizer_loading import TOKENIZER_FILES, has_tokenizer_files, load_tokenizer
from ponet_training.engine.checkpoints import TrainingProgress
from ponet_training.tasks.metrics import classification_metrics
from ponet_training.models.pooled_classifier import PooledSequenceClassifier, ensure_pad_token
from ponet_training.tasks.pooling_study.data import SentimentData, tokenize_for_backbone
from ponet_training.tasks.pooling_study.settings import RANDOM_INIT_PREFIX, RunSpec, display_name


logger = logging.getLogger(__name__)


@dataclass
class Backbone:
    """What every run of one backbone shares: its name, tokenizer, config, loaded weights and tokenized data."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    train_dataset: object
    eval_dataset: object
    states: tuple | None = None  # (train, eval) token states of the frozen backbone, filled by `frozen_states`


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def _local_folder_lacks(path: str, suffixes: tuple[str, ...]) -> bool:
    """True for a local folder with no file whose name ends in one of `suffixes` (a Hub id: False)."""
    return os.path.isdir(path) and not any(name.endswith(suffixes) for name in os.listdir(path))


def load_backbone(accelerator, args, name: str, data: SentimentData) -> Backbone:
    """Tokenizer (with a pad token: decoders get EOS, logged), config and weights of one backbone, and its data.

    `random-init:<config>` builds the model from the config with random weights (seeded by --seed, so every run
    of the backbone starts from the same weights), tokenized with --tokenizer_name or the config folder's own
    tokenizer. A pretrained folder without tokenizer files uses --tokenizer_name; without it, a clear error.
    """
    import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)
    from transformers import AutoConfig, AutoModel

    common = dict(cache_dir=args.cache_dir, trust_remote_code=args.trust_remote_code)
    random_init = name.startswith(RANDOM_INIT_PREFIX)
    source = name[len(RANDOM_INIT_PREFIX):] if random_init else name
    if not random_init and _local_folder_lacks(source, WEIGHT_SUFFIXES):
        raise ValueError(f"Backbone {source!r} is a folder without weights; to train it from random weights, pass "
                         f"it as --config_name {source} (with --tokenizer_name when it holds no tokenizer)")
    tokenizer_source = source
    if os.path.isdir(source) and not has_tokenizer_files(source):
        if not args.tokenizer_name:
            raise ValueError(f"Backbone {source!r} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}): "
                             "pass --tokenizer_name (e.g. the tokenizer the model was or will be trained with)")
        tokenizer_source = args.tokenizer_name
    elif random_init and args.tokenizer_name:
        tokenizer_source = args.tokenizer_name
    config = AutoConfig.from_pretrained(source, **common)
    tokenizer = load_tokenizer(tokenizer_source, **common)
    try:
        ensure_pad_token(tokenizer, config, use_eos_as_pad=True)
    except ValueError as err:
        raise ValueError(f"Backbone {name!r}: {err}") from None
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise ValueError(f"Backbone {name!r}: the tokenizer {tokenizer_source!r} has {len(tokenizer)} tokens but the "
                         f"model's vocabulary only {vocab_size}; pass a matching --tokenizer_name or config")
    if random_init:
        torch.manual_seed(args.seed)
        model = AutoModel.from_config(config, trust_remote_code=args.trust_remote_code)
        logger.info("Backbone %s: random weights from the config %s, tokenizer %s", name, source, tokenizer_source)
    else:
        model = AutoModel.from_pretrained(source, config=config, **common)
    train_dataset, eval_dataset = tokenize_for_backbone(accelerator, args, tokenizer, data, name)
    return Backbone(name=name, tokenizer=tokenizer, model=model, train_dataset=train_dataset, eval_dataset=eval_dataset)


def frozen_states(accelerator, args, backbone: Backbone) -> tuple[list, list]:
    """The frozen backbone's outputs for every training and evaluation example, computed once (eval mode, no
    gradients) and kept on the CPU without padding: per example `last_hidden_state` `[length, hidden]`,
    `pooler_output` `[hidden]` (when the backbone has a pooler), `attention_mask` and `labels`."""
    from transformers import DataCollatorWithPadding

    if backbone.states is not None:
        return backbone.states
    model = backbone.model.to(accelerator.device).eval()
    collator = DataCollatorWithPadding(backbone.tokenizer)
    splits = []
    started = time.perf_counter()
    for dataset in (backbone.train_dataset, backbone.eval_dataset):
        examples = []
        loader = dataloaders.build_eval_dataloader(dataset, args.per_device_eval_batch_size, collate_fn=collator)
        with torch.no_grad():
            for batch in loader:
                labels = batch.pop("labels")
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                outputs = model(**batch, return_dict=True)
                pooler = getattr(outputs, "pooler_output", None)
                for i, length in enumerate(batch["attention_mask"].sum(-1).tolist()):
                    example = {"last_hidden_state": outputs.last_hidden_state[i, :length].float().cpu().clone(),
                               "attention_mask": batch["attention_mask"][i, :length].cpu(), "labels": labels[i]}
                    if pooler is not None:
                        example["pooler_output"] = pooler[i].float().cpu().clone()
                    examples.append(example)
        splits.append(examples)
    backbone.model.to("cpu")
    logger.info("%s: token states of the frozen backbone computed once for %d + %d examples (%.1f s)", backbone.name,
                len(splits[0]), len(splits[1]), time.perf_counter() - started)
    backbone.states = tuple(splits)
    return backbone.states


def collate_states(examples: list[dict]) -> dict:
    """Pad cached token states (zeros, masked out) to the longest example of the batch."""
    length = max(e["last_hidden_state"].shape[0] for e in examples)
    hidden = torch.zeros(len(examples), length, examples[0]["last_hidden_state"].shape[1])
    mask = torch.zeros(len(examples), length, dtype=torch.long)
    for i, e in enumerate(examples):
        hidden[i, :e["last_hidden_state"].shape[0]] = e["last_hidden_state"]
        mask[i, :e["attention_mask"].shape[0]] = e["attention_mask"]
    batch = {"last_hidden_state": hidden, "attention_mask": mask,
             "labels": torch.stack([torch.as_tensor(e["labels"]) for e in examples])}
    if "pooler_output" in examples[0]:
        batch["pooler_output"] = torch.stack([e["pooler_output"] for e in examples])
    return batch


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

    frozen = spec.regime == "frozen"
    cached = frozen and not args.recompute_frozen_states
    if cached:
        train_states, eval_states = frozen_states(accelerator, args, backbone)
    set_seed(spec.seed)
    run_args = copy.copy(args)
    run_args.learning_rate = args.backbone_settings[spec.backbone][f"{spec.regime}_learning_rate"]
    run_args.num_train_epochs = args.backbone_settings[spec.backbone][f"{spec.regime}_num_train_epochs"]
    model = PooledSequenceClassifier(
        copy.deepcopy(backbone.model), spec.pooling, num_labels=data.num_labels,
        problem_type="single_label_classification", freeze_backbone=frozen, cls_from_pooler=not args.no_cls_pooler,
        id2label=dict(enumerate(data.label_names)),
    )
    if not frozen:
        optimization.maybe_enable_gradient_checkpointing(model.backbone, run_args)
    collator = collate_states if cached else DataCollatorWithPadding(
        backbone.tokenizer, pad_to_multiple_of=dataloaders.pad_to_multiple_of(accelerator))
    train_data, eval_data = (train_states, eval_states) if cached else (backbone.train_dataset, backbone.eval_dataset)
    train_dataloader = dataloaders.build_train_dataloader(train_data, args.per_device_train_batch_size,
                                                          collate_fn=collator, seed=spec.seed,
                                                          num_workers=args.dataloader_num_workers)
    eval_dataloader = dataloaders.build_eval_dataloader(eval_data, args.per_device_eval_batch_size,
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
    progress = TrainingProgress()
    losses = [update.loss for update in loop.train(accelerator, run_args, model, train_dataloader, optimizer,
                                                   lr_scheduler, progress, bar, log_prefix=f"{run_name}/")
              if update.loss is not None]  # not the epochs'-end records
    train_time = bar.close()
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


__all__ = ["Backbone", "collate_states", "evaluate_classifier", "frozen_states", "load_backbone", "train_and_evaluate"]
