#!/usr/bin/env python
"""Fine-tune PoNet on long-document classification (HND, IMDb, Yelp-5, arXiv-11 or local files) with Accelerate.

As published: inputs up to 4096 tokens (and beyond), the 512-row position table extended by tiling, sentence
level `segment_ids` (paragraph level for arXiv-11), gradient checkpointing. Reports accuracy, micro-F1 and
macro-F1 (plus the positive-class F1 for the binary HND and IMDb) on the dev and test sets.

    accelerate launch finetune/run_long_doc.py --dataset imdb --model_name_or_path chtan/ponet-base-uncased \
        --max_length 4096 --per_device_train_batch_size 4 --gradient_accumulation_steps 8 --output_dir out/imdb

    python finetune/run_long_doc.py --train_file train.jsonl --validation_file dev.jsonl --test_file test.jsonl \
        --text_column_name text --label_column_name label --model_name_or_path my-ponet --output_dir out/docs
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from ponet_training.engine import best_model, checkpoints, dataloaders, loop, optimization, run
from ponet_training.engine.run_folder import RunFolder
from ponet_training.tasks import finetuning, long_documents
from ponet_training.hub import model_cards, push
from ponet_training.data import tables
from ponet_training.tasks.metrics import classification_metrics, predicted_classes
from ponet_training.data.segments import SEGMENT_MODES, tokenize_with_segment_ids
from ponet_training.data.tokenizer_loading import check_token_ids


logger = logging.getLogger(__name__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", type=str, default=None,
                      help=f"A preset: {', '.join(long_documents.LONG_DOC_DATASETS)} (Hub data); or use the file flags.")
    data.add_argument("--dataset_name", type=str, default=None,
                      help="Override the preset's Hub dataset id (same columns).")
    data.add_argument("--dataset_config_name", type=str, default=None, help="Config of the Hub dataset.")
    data.add_argument("--train_file", type=str, default=None, help="Local jsonl/json/csv/tsv with text + label.")
    data.add_argument("--validation_file", type=str, default=None, help="Local dev file.")
    data.add_argument("--test_file", type=str, default=None, help="Local test file (labelled: metrics are reported).")
    # --text_column / --label_column: the flags' former names, still accepted.
    data.add_argument("--text_column_name", "--text_column", type=str, default="text",
                      help="Text column of the local files.")
    data.add_argument("--label_column_name", "--label_column", type=str, default="label",
                      help="Label column of the local files.")
    data.add_argument("--label_names", type=str, nargs="+", default=None,
                      help="Label names in id order (default: the preset's, or sorted from the training file).")
    data.add_argument("--skip_malformed_rows", action="store_true",
                      help="Drop csv/tsv rows whose field count differs from the header's (counted in a warning) "
                           "instead of stopping.")
    data.add_argument("--validation_split_percentage", type=int, default=10,
                      help="Percentage of train held out as dev (and test) when the dataset has none.")
    data.add_argument("--max_length", type=int, default=4096,
                      help="Maximum tokens per document (longer ones are truncated, logged); the position table "
                           "is extended by tiling when the checkpoint has fewer positions.")
    data.add_argument("--segment_level", type=str, default=None, choices=[*SEGMENT_MODES, "none"],
                      help="segment_ids per sentence or paragraph (default: the preset's, else sentence); "
                           "'none' lets PoNet derive segments from [CLS]/[SEP].")
    data.add_argument("--max_train_samples", type=int, default=None, help="Debug: keep the first N training documents.")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Debug: keep the first N dev/test documents.")
    finetuning.add_finetuning_args(parser)
    run.add_training_args(parser)
    parser.set_defaults(gradient_checkpointing=True, num_train_epochs=3, per_device_train_batch_size=4,
                        per_device_eval_batch_size=8, learning_rate=3e-5)
    # Added after set_defaults, with no default of its own: the help must not show the shared dest's "default: True".
    parser.add_argument("--no_gradient_checkpointing", dest="gradient_checkpointing", action="store_false",
                        default=argparse.SUPPRESS,
                        help="Disable gradient checkpointing (on by default for long inputs).")
    args = parser.parse_args(argv)
    run.check_training_args(args)
    args.preset = long_documents.get_long_doc_dataset(args.dataset) if args.dataset else None
    if args.preset is None and args.train_file is None:
        raise ValueError("Pass --dataset (one of: " + ", ".join(long_documents.LONG_DOC_DATASETS) + ") or --train_file")
    if args.segment_level is None:
        args.segment_level = args.preset.segment_level if args.preset else "sentence"
    run.check_sequence_length(args, "max_length")
    return args


def local_files(args) -> dict:
    """{split: path} of the local file flags (empty: the preset's Hub data)."""
    return {split: path for split, path in (("train", args.train_file), ("validation", args.validation_file),
                                            ("test", args.test_file)) if path}


def load_data(args):
    """(DatasetDict with train/validation[/test] of text, label, idx; label names)."""
    files = local_files(args)
    if files:
        names = args.label_names or (list(args.preset.label_names) if args.preset else None)
        splits, names = long_documents.load_local_long_docs(files, args.text_column_name, args.label_column_name, names,
                                                      clean_html=bool(args.preset and args.preset.clean_html),
                                                      skip_malformed_rows=args.skip_malformed_rows)
    else:
        preset = args.preset
        if args.dataset_name:
            preset = long_documents.LongDocDataset(**{**preset.__dict__, "hub_id": args.dataset_name,
                                         "hub_config": args.dataset_config_name})
        splits = long_documents.load_long_doc(preset, cache_dir=args.cache_dir, seed=args.seed,
                                 validation_fraction=args.validation_split_percentage / 100)
        names = list(preset.label_names)
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=args.validation_split_percentage / 100, seed=args.seed)
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        logger.warning("No dev set given: holding out %d training documents (seed %d)", len(splits["validation"]),
                       args.seed)
    return splits, names


def main(argv=None):
    args = parse_args(argv)
    with RunFolder.for_run(args) as folder:
        accelerator = run.start_run(args, folder)
        if args.push_to_hub and accelerator.is_main_process:  # a bad token fails now, not after training
            push.create_hub_repo(folder.path, args.hub_model_id, args.hub_token, private=args.hub_private_repo)

        with accelerator.main_process_first():
            raw, label_names = load_data(args)
        for split, limit in (("train", args.max_train_samples), ("validation", args.max_eval_samples),
                             ("test", args.max_eval_samples)):
            if split in raw:
                raw[split] = tables.keep_first(raw[split], limit, split)
        num_labels = len(label_names)
        eval_splits = [split for split in ("validation", "test") if split in raw]

        config, tokenizer, model = finetuning.load_model_and_tokenizer(args, num_labels, "single_label_classification",
                                                                       label_names=label_names)
        # The tiling happens before anything is prepared, so every process extends the same way.
        long_documents.extend_positions(model, args.max_length)
        tokenizer.model_max_length = max(tokenizer.model_max_length or 0, args.max_length)
        optimization.maybe_enable_gradient_checkpointing(model, args)
        is_ponet = getattr(model.config, "model_type", None) == "ponet"
        use_segments = args.segment_level != "none"
        if use_segments and not is_ponet:
            logger.warning("%s takes no segment_ids: ignoring --segment_level %s", model.config.model_type,
                           args.segment_level)
            use_segments = False

        def preprocess(examples):
            if use_segments:
                result = tokenize_with_segment_ids(tokenizer, examples["text"], mode=args.segment_level,
                                                   truncation=True, max_length=args.max_length)
            else:
                result = tokenizer(examples["text"], truncation=True, max_length=args.max_length)
            result["truncated"] = [len(ids) >= args.max_length for ids in result["input_ids"]]
            result["labels"] = examples["label"]
            return result

        with accelerator.main_process_first():
            processed = raw.map(preprocess, batched=True, remove_columns=raw["train"].column_names,
                                num_proc=args.preprocessing_num_workers, load_from_cache_file=not args.overwrite_cache,
                                desc="Tokenizing")
        for split in processed:
            check_token_ids(processed[split], model.config, split)
            truncated = int(np.sum(processed[split]["truncated"]))
            logger.info("%s: %d documents, %d reach --max_length %d (truncated)%s", split, len(processed[split]),
                        truncated, args.max_length, _segment_summary(processed[split]) if use_segments else "")
            processed[split] = processed[split].remove_columns(["truncated"])

        collator = long_documents.LongDocCollator(tokenizer,
                                                  pad_to_multiple_of=dataloaders.pad_to_multiple_of(accelerator))
        train_dataloader = dataloaders.build_train_dataloader(processed["train"], args.per_device_train_batch_size,
                                                              collator, seed=args.seed,
                                                              num_workers=args.dataloader_num_workers)
        eval_dataloaders = {split: dataloaders.build_eval_dataloader(processed[split], args.per_device_eval_batch_size,
                                                                     collator, args.dataloader_num_workers)
                            for split in eval_splits}
        optimizer = optimization.create_optimizer(model, args)
        model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
        eval_dataloaders = {split: accelerator.prepare(loader) for split, loader in eval_dataloaders.items()}
        optimization.resolve_train_steps(args, len(train_dataloader))
        lr_scheduler = accelerator.prepare(optimization.create_scheduler(optimizer, args, accelerator.num_processes))
        run.init_tracking(accelerator, args, f"long_doc_{args.dataset or 'local'}")

        predictions = {}

        def evaluate(eval_model=None, splits=("validation",)) -> dict:
            metrics = {}
            for split in splits:
                preds, refs = loop.predict(accelerator, eval_model or model, eval_dataloaders[split])
                predictions[split] = (preds, refs)
                prefix = "eval" if split == "validation" else split
                metrics.update({f"{prefix}_{k}": v
                                for k, v in classification_metrics(preds, refs, num_labels).items()})
            return metrics

        files = local_files(args)
        name = args.preset.pretty_name if args.preset and not files else (
            "local files (" + ", ".join(f"{split} {Path(path).name}" for split, path in files.items()) + ")")
        dev_metrics = ["eval_accuracy", "eval_micro_f1", "eval_macro_f1"] + (["eval_f1"] if num_labels == 2 else [])
        selection = finetuning.selection_metric(args.metric_for_best_model,
                                                args.preset.main_metric if args.preset else "accuracy", dev_metrics,
                                                name)
        tracker = best_model.BestModelTracker(folder, selection)
        writer = checkpoints.CheckpointWriter(folder, args.checkpointing_steps)
        progress = tracker.resume(accelerator, args, len(train_dataloader))
        total_batch = run.total_train_batch_size(args, accelerator.num_processes)
        logger.info("***** Long-document fine-tuning: %d documents, max_length %d, %d labels, %d updates, "
                    "total batch %d, %d processes, segments: %s *****", len(processed["train"]), args.max_length,
                    num_labels, args.max_train_steps, total_batch, accelerator.num_processes,
                    args.segment_level if use_segments else "derived from [CLS]/[SEP]")
        bar = loop.ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)

        # The loop: after every optimizer update the tracker evaluates when the update asks for it (every
        # --eval_steps, else each epoch's end; and at the end), keeps the best model, and has the writer checkpoint
        # (--checkpointing_steps).
        for update in loop.train(accelerator, args, model, train_dataloader, optimizer, lr_scheduler, progress, bar):
            tracker.after_update(accelerator, args, update, model, tokenizer, evaluate, progress, writer)
        train_runtime = bar.close()

        final_model = best_model.finalize_model(accelerator, model, tokenizer, tracker,
                                                load_model=finetuning.classifier_loader(args))
        final_metrics = evaluate(final_model, splits=eval_splits)
        logger.info("Final results: %s", final_metrics)
        predicted = {}  # a model that predicts one class says so, beside its accuracy
        for split in eval_splits:
            prefix = "eval" if split == "validation" else split
            predicted.update({f"{prefix}_{key}": value for key, value
                              in predicted_classes(predictions[split][0], label_names, split).items()})
        results = {
            **final_metrics,
            **predicted,
            "dataset": args.dataset or "local",
            "data": name,
            "data_files": {split: str(path) for split, path in files.items()} or None,
            "metric_for_best_model": tracker.metric,
            "best_step": tracker.best_step,
            "max_length": args.max_length,
            "max_position_embeddings": accelerator.unwrap_model(final_model).config.max_position_embeddings
            if hasattr(accelerator.unwrap_model(final_model).config, "max_position_embeddings") else None,
            "segment_level": args.segment_level if use_segments else "none",
            "gradient_checkpointing": args.gradient_checkpointing,
            "train_samples": len(processed["train"]),
            "train_runtime": train_runtime,
            "num_processes": accelerator.num_processes,
            "total_train_batch_size": total_batch,
            "mixed_precision": accelerator.mixed_precision,
            **folder.resume_record(),
        }
        if folder.path is None:
            return results
        if accelerator.is_main_process:
            for split, (preds, refs) in predictions.items():
                finetuning.write_predictions(folder.path / "predictions" / f"{split}.tsv", raw[split]["idx"],
                                             preds, label_names, references=refs)
            run.write_all_results(folder.path, results)
            dataset_id = (args.dataset_name or args.preset.hub_id) if args.preset and not files else None
            eval_results = []
            for split in eval_splits:
                prefix = "eval_" if split == "validation" else f"{split}_"
                eval_results += model_cards.eval_results_from_metrics(
                    final_metrics, prefix=prefix, task_type="text-classification",
                    dataset_type=dataset_id or "local", dataset_name=name, dataset_split=split)
            finetuning.write_finetuned_card(
                accelerator, args, folder.path, config, final_model,
                trained_on=f"{name} with documents of up to {args.max_length} tokens ({args.segment_level}-level "
                           "segments).",
                datasets=[dataset_id] if dataset_id else None,
                training_data=None if dataset_id else name,
                eval_results=eval_results,
                hyperparameters=finetuning.card_hyperparameters(args, accelerator, total_batch, tracker.metric,
                                                                segment_level=args.segment_level,
                                                                gradient_checkpointing=args.gradient_checkpointing),
            )
        run.finish_run(accelerator, args)
        if args.push_to_hub and accelerator.is_main_process:
            push.push_to_hub(folder.path, args.hub_model_id, args.hub_token, commit_message="End of training",
                             private=args.hub_private_repo or None)
    return results


def _segment_summary(dataset) -> str:
    """Mean segments per document (a paragraph mode on text without blank lines shows up as ~3)."""
    if len(dataset) == 0:
        return ""
    counts = [ids[-1] + 1 for ids in dataset["segment_ids"][:1000]]
    return f", {np.mean(counts):.1f} segments per document on average"


if __name__ == "__main__":
    main()
