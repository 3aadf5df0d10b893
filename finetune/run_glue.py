#!/usr/bin/env python
"""Fine-tune PoNet (or any `AutoModelForSequenceClassification` model) on a GLUE task or any local
sequence-classification files with Accelerate.

Reads like transformers' `run_glue_no_trainer.py`. The data is the Hub GLUE dataset (`nyu-mll/glue`) or local
csv / tsv (the original GLUE files too) / json files; the task's official metrics are computed offline; the
checkpoint with the best dev score is kept; test predictions are written as GLUE benchmark submission files.
Without --task_name, local files with any columns are read (--text_column_name, --text_pair_column_name,
--label_column_name): the label set comes from the training file (integral labels are classes; non-integral ones,
or --do_regression, make a regression), the metrics fit it (accuracy + F1, accuracy + macro-F1, or Pearson +
Spearman), and test predictions go to predictions/test.tsv.

    python finetune/run_glue.py --model_name_or_path chtan/ponet-base-uncased --task_name mrpc \
        --per_device_train_batch_size 32 --learning_rate 5e-5 --output_dir out/mrpc

    python finetune/run_glue.py --model_name_or_path chtan/ponet-base-uncased --train_file train.csv \
        --validation_file dev.csv --text_column_name tweet --label_column_name sentiment --output_dir out/tweets

    accelerate launch --multi_gpu --num_processes 4 finetune/run_glue.py --task_name mnli ...
"""

import argparse
import logging
from pathlib import Path

import numpy as np
from transformers import DataCollatorWithPadding, default_data_collator

from ponet_training.engine import best_model, checkpoints, dataloaders, loop, optimization, run
from ponet_training.engine.run_folder import RunFolder
from ponet_training.tasks import finetuning
from ponet_training.tasks.glue import data as glue_data, submission as glue_submission
from ponet_training.hub import model_cards, push
from ponet_training.data import tables
from ponet_training.tasks.metrics import compute_glue_metrics, predicted_classes
from ponet_training.data.tokenizer_loading import check_token_ids
from ponet_training.data.truncation import tokenize_truncated
from ponet_training.tasks.glue.registry import (AX_TASK, GLUE_HUB_ID, GLUE_TASKS, PAPER_MAX_LENGTH, PAPER_NUM_EPOCHS,
                                                get_task, glue_score_entries, split_suffix)


logger = logging.getLogger(__name__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--task_name", type=str, default=None,
                      help=f"A GLUE task: {', '.join(GLUE_TASKS)}; leave out for any local classification files.")
    data.add_argument("--text_column_name", type=str, default=None,
                      help="Without --task_name: the text column (default: sentence1+sentence2, sentence or text).")
    data.add_argument("--text_pair_column_name", type=str, default=None,
                      help="Without --task_name: the second text of a pair.")
    data.add_argument("--label_column_name", type=str, default="label", help="Without --task_name: the label column.")
    data.add_argument("--do_regression", action="store_true",
                      help="Without --task_name: regress on the labels even when they are all integral (by default "
                           "integral labels are classes, non-integral ones scores).")
    data.add_argument("--skip_malformed_rows", action="store_true",
                      help="Drop csv/tsv rows whose field count differs from the header's (counted in a warning) "
                           "instead of stopping.")
    data.add_argument("--dataset_name", type=str, default=GLUE_HUB_ID,
                      help="Hub dataset with one config per GLUE task (used when no local files are given).")
    data.add_argument("--dataset_config_name", type=str, default=None,
                      help="Config of --dataset_name (default: the task name).")
    data.add_argument("--glue_dir", type=str, default=None,
                      help="A folder of the original GLUE distribution for the task (e.g. glue_data/MRPC): "
                           "train.tsv, dev.tsv (MNLI: dev_matched/dev_mismatched.tsv), test*.tsv.")
    data.add_argument("--train_file", type=str, default=None, help="Local csv/tsv/json training file.")
    data.add_argument("--validation_file", type=str, default=None,
                      help="Local dev file (MNLI: the matched dev set).")
    data.add_argument("--validation_mismatched_file", type=str, default=None, help="MNLI's mismatched dev set.")
    data.add_argument("--test_file", type=str, default=None,
                      help="Local test file, predicted into a GLUE submission file (MNLI: matched).")
    data.add_argument("--test_mismatched_file", type=str, default=None, help="MNLI's mismatched test set.")
    data.add_argument("--ax_file", type=str, default=None,
                      help="MNLI only: the diagnostic set (glue_data/diagnostic/diagnostic.tsv) to predict into AX.tsv.")
    data.add_argument("--max_length", type=int, default=PAPER_MAX_LENGTH,
                      help="Maximum tokens per example after tokenization; longer pairs are truncated (logged).")
    data.add_argument("--max_train_samples", type=int, default=None, help="Debug: keep the first N training examples.")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Debug: keep the first N dev examples.")
    data.add_argument("--no_predict", action="store_true", help="Do not write test-set submission files.")
    finetuning.add_finetuning_args(parser)
    run.add_training_args(parser)
    parser.set_defaults(num_train_epochs=PAPER_NUM_EPOCHS, per_device_train_batch_size=32,
                        per_device_eval_batch_size=64)
    args = parser.parse_args(argv)
    run.check_training_args(args)
    if args.task_name is not None:
        args.task = get_task(args.task_name)
        named = [flag for flag in ("text_column_name", "text_pair_column_name", "do_regression") if getattr(args, flag)]
        if named or args.label_column_name != "label":
            raise ValueError(f"--{(named or ['label_column_name'])[0]} is for local files without --task_name; "
                             f"{args.task.pretty_name} has its own columns")
    elif args.train_file is None or args.glue_dir:
        raise ValueError("Pass --task_name (a GLUE task), or --train_file and --validation_file (any local "
                         "classification data; --glue_dir needs --task_name)")
    else:
        args.task = glue_data.local_task_from_file(args.train_file, args.text_column_name, args.text_pair_column_name,
                                                   args.label_column_name, args.skip_malformed_rows,
                                                   regression=args.do_regression)
    run.check_sequence_length(args, "max_length")
    return args


def data_files(args) -> dict | None:
    """{split: local path} from --glue_dir and the file flags (flags win), or None for the Hub dataset."""
    task = args.task
    matched = "validation_matched" if task.name == "mnli" else "validation"
    test = "test_matched" if task.name == "mnli" else "test"
    if task.name != "mnli":
        for flag in ("validation_mismatched_file", "test_mismatched_file", "ax_file"):
            if getattr(args, flag):
                raise ValueError(f"`--{flag}` only applies to MNLI, not {task.pretty_name}")
    files = glue_data.glue_dir_files(task, args.glue_dir) if args.glue_dir else {}
    flags = {"train": args.train_file, matched: args.validation_file, test: args.test_file,
             "validation_mismatched": args.validation_mismatched_file, "test_mismatched": args.test_mismatched_file}
    files.update({split: path for split, path in flags.items() if path})
    if not files:
        return None
    if "train" not in files:
        raise ValueError("Local data needs a training file: pass `--train_file` (or `--glue_dir` with train.tsv)")
    return files


def describe_data(args, task, files: dict | None) -> dict:
    """What the run trained on, for its card and `all_results.json`, naming the real data: the Hub dataset, the
    original GLUE distribution (`--glue_dir`), or local files (by path; with `--task_name` they are read with that
    task's columns and labels, but they are not GLUE's data, so no record calls them GLUE)."""
    if files is None:
        source = f"{args.dataset_name}" + (f" ({args.dataset_config_name or task.name})" if task.is_glue else "")
        return {"data": source, "data_files": None, "is_glue_data": task.is_glue, "datasets": [args.dataset_name],
                "trained_on": f"GLUE {task.pretty_name}." if task.is_glue else f"{source}."}
    named = {split: str(path) for split, path in files.items()}
    if args.glue_dir and task.is_glue and not any(
            getattr(args, flag) for flag in ("train_file", "validation_file", "test_file")):
        return {"data": f"the original GLUE {task.pretty_name} files in {args.glue_dir}", "data_files": named,
                "is_glue_data": True, "datasets": None,
                "trained_on": f"GLUE {task.pretty_name} (the original distribution's files)."}
    shown = ", ".join(f"{split} {Path(path).name}" for split, path in named.items())
    read_as = f", read with GLUE {task.pretty_name}'s columns and labels" if task.is_glue else ""
    return {"data": f"local files ({shown}){read_as}", "data_files": named, "is_glue_data": False, "datasets": None,
            "trained_on": f"local files ({shown}){read_as}."}


def main(argv=None):
    args = parse_args(argv)
    task = args.task
    with RunFolder.for_run(args) as folder:
        accelerator = run.start_run(args, folder)
        if args.push_to_hub and accelerator.is_main_process:  # a bad token fails now, not after training
            push.create_hub_repo(folder.path, args.hub_model_id, args.hub_token, private=args.hub_private_repo)

        # Data: local files or the Hub dataset, with the task's columns and validated labels.
        files = data_files(args)
        data = describe_data(args, task, files)
        if task.label_typing:  # decided in parse_args, before the log was set up
            logger.info(task.label_typing)
        with accelerator.main_process_first():
            raw = glue_data.load_glue(task, dataset_name=args.dataset_name,
                                      dataset_config_name=args.dataset_config_name, data_files=files,
                                      cache_dir=args.cache_dir, skip_malformed_rows=args.skip_malformed_rows,
                                      glue_dir=args.glue_dir)
            if task.name == "mnli" and not args.no_predict and (args.ax_file or files is None):
                try:
                    raw["ax"] = glue_data.load_ax(args.dataset_name, args.ax_file, cache_dir=args.cache_dir)
                except Exception as err:  # the diagnostic set is optional: say why it is missing
                    if args.ax_file:
                        raise
                    logger.warning("No AX diagnostic predictions: could not load %s/ax (%s)", args.dataset_name, err)
        for split, limit in (("train", args.max_train_samples),
                             *((s, args.max_eval_samples) for s in task.eval_splits)):
            if split in raw:
                raw[split] = tables.keep_first(raw[split], limit, split)
        if "train" not in raw:
            raise ValueError(f"No training split for {task.pretty_name}")
        eval_splits = [split for split in task.eval_splits if split in raw]
        if not eval_splits:
            raise ValueError(f"No dev set for {task.pretty_name}: pass `--validation_file` (best-checkpoint "
                             "selection and the reported metrics need one)")
        test_splits = [] if args.no_predict else [split for split in (*task.test_splits, "ax") if split in raw]

        # Model and tokenizer.
        config, tokenizer, model = finetuning.load_model_and_tokenizer(
            args, task.num_labels, "regression" if task.is_regression else "single_label_classification",
            finetuning_task=task.name if task.is_glue else None,
            label_names=None if task.is_regression else list(task.label_names))
        check_special_ids(model.config, tokenizer)
        max_positions = getattr(model.config, "max_position_embeddings", None)
        if max_positions is not None and args.max_length > max_positions:
            raise ValueError(f"`--max_length` {args.max_length} exceeds the model's {max_positions} positions "
                             "(use finetune/run_long_doc.py for longer inputs)")
        optimization.maybe_enable_gradient_checkpointing(model, args)
        to_model_ids = None if task.is_regression else finetuning.label_permutation(model.config,
                                                                                     list(task.label_names))

        padding = "max_length" if args.pad_to_max_length else False

        def preprocess(examples):
            texts = [examples[column] for column in task.text_columns]
            # Texts are cut before tokenizing, so long pairs cost memory linear in their length (same result).
            result, result["truncated"] = tokenize_truncated(tokenizer, texts[0], texts[1] if len(texts) > 1 else None,
                                                             args.max_length, padding=padding)
            labels = examples["label"]
            result["labels"] = [to_model_ids.get(label, label) for label in labels] if to_model_ids else labels
            return result

        with accelerator.main_process_first():
            processed = raw.map(preprocess, batched=True, remove_columns=raw["train"].column_names,
                                num_proc=args.preprocessing_num_workers, load_from_cache_file=not args.overwrite_cache,
                                desc="Tokenizing")
        for split in processed:
            check_token_ids(processed[split], model.config, split)
            truncated = int(np.sum(processed[split]["truncated"]))
            if truncated:
                logger.warning("%s: %d of %d examples are longer than --max_length %d and were truncated",
                               split, truncated, len(processed[split]), args.max_length)
            processed[split] = processed[split].remove_columns(["truncated"])
        for split in test_splits:
            processed[split] = processed[split].remove_columns(["labels"])

        if args.pad_to_max_length:
            collator = default_data_collator
        else:
            collator = DataCollatorWithPadding(tokenizer,
                                               pad_to_multiple_of=dataloaders.pad_to_multiple_of(accelerator))
        train_dataloader = dataloaders.build_train_dataloader(processed["train"], args.per_device_train_batch_size,
                                                              collator, seed=args.seed,
                                                              num_workers=args.dataloader_num_workers)
        eval_dataloaders = {split: dataloaders.build_eval_dataloader(processed[split], args.per_device_eval_batch_size,
                                                                     collator, args.dataloader_num_workers)
                            for split in eval_splits + test_splits}

        optimizer = optimization.create_optimizer(model, args)
        model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
        eval_dataloaders = {split: accelerator.prepare(loader) for split, loader in eval_dataloaders.items()}
        optimization.resolve_train_steps(args, len(train_dataloader))
        lr_scheduler = accelerator.prepare(optimization.create_scheduler(optimizer, args, accelerator.num_processes))
        run.init_tracking(accelerator, args, f"glue_{task.name}")

        dev_predictions = {}  # split -> (predictions, references) of the latest evaluation

        def evaluate(eval_model=None) -> dict:
            metrics = {}
            for split in eval_splits:
                preds, refs = loop.predict(accelerator, eval_model or model, eval_dataloaders[split],
                                           task.is_regression)
                preds = to_task_ids(preds)
                refs = to_task_ids(refs)
                dev_predictions[split] = (preds, refs)
                suffix = split_suffix(split)
                metrics.update({f"eval_{key}{suffix}": value
                                for key, value in compute_glue_metrics(task, preds, refs).items()})
            return metrics

        def to_task_ids(values):
            if to_model_ids is None or values is None:
                return values
            inverse = {model_id: task_id for task_id, model_id in to_model_ids.items()}
            return np.asarray([inverse[int(v)] for v in values])

        dev_metrics = [f"eval_{m}{suffix}" for m in (*task.metrics, "combined_score")
                       for suffix in {split_suffix(s) for s in task.eval_splits}]
        selection = finetuning.selection_metric(args.metric_for_best_model, task.main_metric, dev_metrics,
                                                task.pretty_name)
        tracker = best_model.BestModelTracker(folder, selection)
        writer = checkpoints.CheckpointWriter(folder, args.checkpointing_steps)
        progress = tracker.resume(accelerator, args, len(train_dataloader))
        total_batch = run.total_train_batch_size(args, accelerator.num_processes)
        logger.info("***** Fine-tuning on %s *****", data["data"])
        logger.info("  Examples = %d, epochs = %d, total batch size = %d, updates = %d, processes = %d",
                    len(processed["train"]), args.num_train_epochs, total_batch, args.max_train_steps,
                    accelerator.num_processes)
        bar = loop.ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)

        # The loop: after every optimizer update the tracker evaluates when the update asks for it (every
        # --eval_steps, else each epoch's end; and at the end), keeps the best model, and has the writer checkpoint
        # (--checkpointing_steps).
        for update in loop.train(accelerator, args, model, train_dataloader, optimizer, lr_scheduler, progress, bar):
            tracker.after_update(accelerator, args, update, model, tokenizer, evaluate, progress, writer)
        train_runtime = bar.close()

        final_model = best_model.finalize_model(accelerator, model, tokenizer, tracker,
                                                load_model=finetuning.classifier_loader(args))
        eval_metrics = evaluate(final_model)
        predicted = {}  # a model that predicts one class says so, beside its accuracy
        for split, (preds, _) in ({} if task.is_regression else dev_predictions).items():
            predicted.update({f"eval_{key}{split_suffix(split)}": value for key, value
                              in predicted_classes(preds, list(task.label_names), split).items()})

        results = {
            **eval_metrics,
            **predicted,
            "task_name": task.name,
            "data": data["data"],
            "data_files": data["data_files"],
            "metric_for_best_model": tracker.metric,
            "best_step": tracker.best_step,
            "train_samples": len(processed["train"]),
            "train_runtime": train_runtime,
            "num_processes": accelerator.num_processes,
            "total_train_batch_size": total_batch,
            "learning_rate": args.learning_rate,
            "max_train_steps": args.max_train_steps,
            "num_train_epochs": args.num_train_epochs,
            "mixed_precision": accelerator.mixed_precision,
            **folder.resume_record(),
        }
        if data["is_glue_data"]:
            results["glue_scores"] = glue_score_entries(task, eval_metrics)
        logger.info("Final dev results: %s", {k: v for k, v in eval_metrics.items()})
        if folder.path is None:
            return results

        label_names = None if task.is_regression else list(task.label_names)
        for split in test_splits:
            predictions, _ = loop.predict(accelerator, final_model, eval_dataloaders[split], task.is_regression)
            if accelerator.is_main_process and not task.is_glue:
                path = finetuning.write_predictions(folder.path / "predictions" / f"{split}.tsv", raw[split]["idx"],
                                                    to_task_ids(predictions), label_names)
                results.setdefault("prediction_files", []).append(str(path.relative_to(folder.path)))
            elif accelerator.is_main_process:
                split_task, split_name = (AX_TASK, "test") if split == "ax" else (task, split)
                path = glue_submission.write_submission(folder.path / "glue_submission", split_task, split_name,
                                                        raw[split]["idx"], to_task_ids(predictions))
                logger.info("Wrote %s (%d predictions)", path, len(predictions))
                results.setdefault("submission_files", []).append(str(path.relative_to(folder.path)))

        if accelerator.is_main_process:
            for split, (preds, refs) in dev_predictions.items():
                finetuning.write_predictions(folder.path / "predictions" / f"{split}.tsv", raw[split]["idx"],
                                             preds, label_names, references=refs)
            run.write_all_results(folder.path, results)
            if data["is_glue_data"]:
                eval_results = finetuning.glue_eval_results(task, eval_metrics,
                                                            args.dataset_name if files is None else "local")
            else:  # named by the dev file: the model index must not call local files GLUE
                eval_results = model_cards.eval_results_from_metrics(
                    eval_metrics, task_type="text-classification", dataset_type="local",
                    dataset_name=Path(files["validation_matched" if task.name == "mnli" else "validation"]).name,
                    prefix="eval_")
            finetuning.write_finetuned_card(
                accelerator, args, folder.path, config, final_model, trained_on=data["trained_on"],
                datasets=data["datasets"], training_data=None if files is None else data["data"],
                eval_results=eval_results,
                hyperparameters=finetuning.card_hyperparameters(args, accelerator, total_batch, tracker.metric,
                                                                task_name=task.name),
            )
        run.finish_run(accelerator, args)
        if args.push_to_hub and accelerator.is_main_process:
            push.push_to_hub(folder.path, args.hub_model_id, args.hub_token, commit_message="End of training",
                             private=args.hub_private_repo or None)
    return results


def check_special_ids(config, tokenizer):
    """PoNet finds segments through the CLS/SEP ids of its config: they must be the tokenizer's."""
    if getattr(config, "model_type", None) != "ponet":
        return
    for name in ("cls_token_id", "sep_token_id"):
        if getattr(config, name) != getattr(tokenizer, name):
            raise ValueError(f"The model's {name} ({getattr(config, name)}) differs from the tokenizer's "
                             f"({getattr(tokenizer, name)}): PoNet would derive wrong segments. Use the tokenizer "
                             "the model was pretrained with (or build the config with config_for_tokenizer)")


if __name__ == "__main__":
    main()
