#!/usr/bin/env python
"""Train and test a Long Range Arena classifier (PoNet, softmax attention or FNet in one encoder shell) with
Accelerate.

Reads like transformers' `run_glue_no_trainer.py`. The data: ListOps and Pathfinder generated here (or the LRA
release's files), CIFAR-10 grey and IMDb bytes from the Hub, the release's AAN pairs, and the Fashion-MNIST stand-in
offline (`ponet_training.data.lra`). The defaults are the PoNet paper's settings of the task (docs/lra.md): the model
(2 layers, width 64, pre-LayerNorm), AdamW at 1e-4 with warm-up and linear decay, the batch size and steps; a
shorter `--max_train_steps` keeps the warm-up's share of the run. The best dev checkpoint is scored on test.

    python finetune/run_lra.py --task listops --mixer ponet --output_dir out/lra/listops-ponet
    python finetune/run_lra.py --task pathfinder --mixer fnet --generated_size 20000 --max_train_steps 2000 \
        --output_dir out/lra/pathfinder-fnet
    accelerate launch --multi_gpu --num_processes 4 --mixed_precision bf16 finetune/run_lra.py --task text ...
"""

import argparse
import logging
import time

import numpy as np

from ponet_training.data.lra import TASKS, load_lra_dataset
from ponet_training.engine import best_model, checkpoints, dataloaders, loop, optimization, run
from ponet_training.engine.run_folder import RunFolder
from ponet_training.hub import push
from ponet_training.models.lra import LRA_MIXERS, LRA_POOLING, LRAForSequenceClassification
from ponet_training.provenance import write_provenance
from ponet_training.tasks.lra import settings as lra_settings
from ponet_training.tasks.lra.batches import PaddedBatches
from ponet_training.tasks.metrics import predicted_classes


logger = logging.getLogger(__name__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    task = parser.add_argument_group("task and model")
    task.add_argument("--task", type=str, required=True, choices=sorted(TASKS), help="The LRA task.")
    task.add_argument("--mixer", type=str, default="ponet", choices=LRA_MIXERS,
                      help="The token mixer of the encoder shell.")
    task.add_argument("--segment_size", type=int, default=None,
                      help="PoNet's fixed segment block (default: the published one of the task).")
    task.add_argument("--softmax_implementation", type=str, default="sdpa", choices=("sdpa", "eager"),
                      help="The softmax mixer's kernel (the same numbers).")
    task.add_argument("--attention_probs_dropout_prob", type=float, default=None,
                      help="The softmax mixer's attention dropout (default: the published 0.1). On CPU, PyTorch's "
                           "fused attention kernel has no dropout: with it, sdpa falls back to the unfused kernel.")
    task.add_argument("--classifier_pooling", type=str, default="mean_with_padding", choices=LRA_POOLING,
                      help="The head's mean: over every position as published, or over the real tokens.")
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", type=str, default=None,
                      help="The task's files (the LRA release or ours); default: generated into the cache "
                           "(ListOps, Pathfinder), the Hub (Image, Text), Debian's Fashion-MNIST (the stand-in).")
    data.add_argument("--data_seed", type=int, default=0,
                      help="The seed of generated data (ListOps, Pathfinder) or of the dev hold-out (Image).")
    data.add_argument("--generated_size", type=int, default=None,
                      help="Generated data: ListOps train rows or Pathfinder images in all (default: published).")
    data.add_argument("--max_train_samples", type=int, default=None, help="Keep the first N training examples.")
    data.add_argument("--max_eval_samples", type=int, default=None,
                      help="Keep the first N dev and N test examples (recorded as eval_samples / test_samples).")
    data.add_argument("--published_pixel_ids", action="store_true",
                      help="Image / Pathfinder pixels as the published code read them (black = padding 0).")
    data.add_argument("--no_test", action="store_true", help="Do not score the test set.")
    run.add_training_args(parser)
    args, _ = parser.parse_known_args(argv)
    published = lra_settings.settings_for(args.task) if args.task in TASKS else None
    if published is not None:  # the task's published settings are the defaults; flags given still win
        parser.set_defaults(per_device_train_batch_size=published.batch_size,
                            per_device_eval_batch_size=published.batch_size, max_train_steps=published.max_train_steps,
                            num_warmup_steps=None, eval_steps=published.eval_steps,
                            learning_rate=lra_settings.LEARNING_RATE, adam_epsilon=lra_settings.ADAM_EPSILON,
                            weight_decay=0.0, max_grad_norm=0.0)
    args = parser.parse_args(argv)
    if args.num_warmup_steps is None:
        args.num_warmup_steps = lra_settings.scaled_warmup(published, args.max_train_steps)
    run.check_training_args(args)
    if args.attention_probs_dropout_prob is not None and not 0.0 <= args.attention_probs_dropout_prob < 1.0:
        raise ValueError(f"`--attention_probs_dropout_prob` must be in [0, 1), got {args.attention_probs_dropout_prob}")
    for flag in ("segment_size", "generated_size", "max_train_samples", "max_eval_samples"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"`--{flag}` must be at least 1, got {getattr(args, flag)}")
    return args


def accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    return float((predictions == references).mean())


def prefix(split: str) -> str:
    """The results' name of a split, as in the other scripts: `eval_` for the dev set, `test_`."""
    return "eval" if split == "validation" else split


def main(argv=None):
    args = parse_args(argv)
    task, published = TASKS[args.task], lra_settings.settings_for(args.task)
    with RunFolder.for_run(args) as folder:
        accelerator = run.start_run(args, folder)
        if folder.path is not None and accelerator.is_main_process:
            handler = logging.FileHandler(folder.path / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(name)s - %(message)s"))
            logging.getLogger().addHandler(handler)
        if args.push_to_hub and accelerator.is_main_process:  # a bad token fails now, not after training
            push.create_hub_repo(folder.path, args.hub_model_id, args.hub_token, private=args.hub_private_repo)

        # Data: generated or read once (the main process fills the cache first).
        with accelerator.main_process_first():
            raw = load_lra_dataset(args.task, data_dir=args.data_dir, seed=args.data_seed,
                                   max_train_samples=args.max_train_samples,
                                   published_pixel_ids=args.published_pixel_ids, generated_size=args.generated_size)
        description = raw["train"].info.description
        logger.info("%s: %s; %s", task.name, task.description, description)
        splits = ["validation"] + ([] if args.no_test else ["test"])
        for split in splits:
            if args.max_eval_samples is not None and len(raw[split]) > args.max_eval_samples:
                logger.warning("--max_eval_samples: %s keeps its first %d of %d examples", split,
                               args.max_eval_samples, len(raw[split]))
                raw[split] = raw[split].select(range(args.max_eval_samples))
        collator = PaddedBatches(published.padded_length, task.columns)
        train_dataloader = dataloaders.build_train_dataloader(raw["train"], args.per_device_train_batch_size,
                                                              collator, seed=args.seed,
                                                              num_workers=args.dataloader_num_workers)
        eval_dataloaders = {split: dataloaders.build_eval_dataloader(raw[split], args.per_device_eval_batch_size,
                                                                     collator, args.dataloader_num_workers)
                            for split in splits}

        # Model: the paper's LRA model for the task, with the chosen mixer.
        overrides = {"softmax_implementation": args.softmax_implementation,
                     "classifier_pooling": args.classifier_pooling}
        for name in ("segment_size", "attention_probs_dropout_prob"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        model = lra_settings.build_lra_model(args.task, args.mixer, **overrides)
        config = model.config
        optimization.maybe_enable_gradient_checkpointing(model, args)
        num_parameters = sum(p.numel() for p in model.parameters())
        logger.info("LRA %s classifier with %s parameters: %s", args.mixer, f"{num_parameters:,}", model.config)

        optimizer = optimization.create_optimizer(model, args)
        model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
        eval_dataloaders = {name: accelerator.prepare(loader) for name, loader in eval_dataloaders.items()}
        optimization.resolve_train_steps(args, len(train_dataloader))
        lr_scheduler = accelerator.prepare(optimization.create_scheduler(optimizer, args, accelerator.num_processes))
        run.init_tracking(accelerator, args, f"lra_{args.task}_{args.mixer}")

        evaluation_seconds = 0.0

        final_predictions = {}  # split -> predictions of the latest evaluation

        def evaluate(eval_model=None, split="validation") -> dict:
            nonlocal evaluation_seconds
            started = time.perf_counter()
            predictions, references = loop.predict(accelerator, eval_model or model, eval_dataloaders[split])
            evaluation_seconds += time.perf_counter() - started
            final_predictions[split] = predictions
            return {f"{prefix(split)}_accuracy": accuracy(predictions, references)}

        tracker = best_model.BestModelTracker(folder, "eval_accuracy")
        writer = checkpoints.CheckpointWriter(folder, args.checkpointing_steps)
        progress = tracker.resume(accelerator, args, len(train_dataloader))
        resumed_at = progress.completed_steps
        total_batch = run.total_train_batch_size(args, accelerator.num_processes)
        logger.info("***** LRA %s with %s *****", task.name, args.mixer)
        logger.info("  Examples = %d, total batch size = %d, updates = %d (warm-up %d), processes = %d, "
                    "mixed precision = %s", len(raw["train"]), total_batch, args.max_train_steps,
                    args.num_warmup_steps, accelerator.num_processes, accelerator.mixed_precision)
        bar = loop.ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)

        # The loop: after every optimizer update the tracker evaluates when the update asks for it (every
        # --eval_steps, and at the end), keeps the best dev model, and has the writer checkpoint.
        for update in loop.train(accelerator, args, model, train_dataloader, optimizer, lr_scheduler, progress, bar):
            tracker.after_update(accelerator, args, update, model, None, evaluate, progress, writer)
        train_runtime = bar.close()
        # Steps per second count the updates only: the dev evaluations during the run are timed apart.
        training_seconds, evaluation_seconds_in_training = train_runtime - evaluation_seconds, evaluation_seconds

        final_model = best_model.finalize_model(accelerator, model, None, tracker,
                                                load_model=LRAForSequenceClassification.from_pretrained)
        scores = {}
        predicted = {}
        for split in splits:  # every dev and test example; a model that predicts one class says so
            scores.update(evaluate(final_model, split))
            predicted.update({f"{prefix(split)}_{key}": value for key, value
                              in predicted_classes(final_predictions[split], task.label_names, split).items()})
        majority = int(np.bincount(np.asarray(raw["train"]["label"])).argmax())
        steps_run = progress.completed_steps - resumed_at
        results = {
            **scores,
            **predicted,
            "task": task.name,
            "task_description": task.description,
            "data_source": task.source,
            "data": description,
            "stands_in_for": task.stands_in_for,
            "mixer": args.mixer,
            "best_step": tracker.best_step,
            "best_eval_accuracy_during_training": tracker.best_value,
            "majority_class": task.label_names[majority],
            **{f"{prefix(split)}_majority_class_accuracy":
               accuracy(np.full(len(raw[split]), majority), np.asarray(raw[split]["label"])) for split in splits},
            **{f"{prefix(split)}_samples": len(raw[split]) for split in splits},
            "train_samples": len(raw["train"]),
            "train_steps": progress.completed_steps,
            "train_runtime": train_runtime,
            "evaluation_seconds_in_training": evaluation_seconds_in_training,
            "train_steps_per_second": steps_run / training_seconds if steps_run else None,
            "total_train_batch_size": total_batch,
            "padded_length": published.padded_length,
            "segment_size": config.segment_size if args.mixer == "ponet" else None,
            "attention_probs_dropout_prob": config.attention_probs_dropout_prob if args.mixer == "softmax" else None,
            "learning_rate": args.learning_rate,
            "max_train_steps": args.max_train_steps,
            "num_warmup_steps": args.num_warmup_steps,
            "published_max_train_steps": published.max_train_steps,
            "num_parameters": num_parameters,
            "num_processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "seed": args.seed,
            "data_seed": args.data_seed,
            **folder.resume_record(),
        }
        logger.info("Final scores: %s", scores)
        if folder.path is not None and accelerator.is_main_process:
            run.write_all_results(folder.path, results)
            write_provenance(folder.path)
        run.finish_run(accelerator, args)
        if args.push_to_hub and accelerator.is_main_process:
            push.push_to_hub(folder.path, args.hub_model_id, args.hub_token,
                             commit_message=f"LRA {task.name}, {args.mixer}", private=args.hub_private_repo or None)
    return results


if __name__ == "__main__":
    main()
