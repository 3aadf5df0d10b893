#!/usr/bin/env python
"""Pretrain PoNet with masked language modelling + the sentence structural objective (SSO), with Accelerate.

Reads like transformers' `run_mlm_no_trainer.py`; the pieces are `ponet_training.tasks.pretraining` (`corpus`,
`sso_examples`, `collators`: the data; `vocabulary`, `objectives`, `evaluation`), the output folder one
`engine.run_folder.RunFolder`, and the loop the one every script runs (`engine.loop`, `engine.best_model`,
`engine.checkpoints`). Runs on one CPU, one GPU,
or many GPUs / nodes (`accelerate launch --config_file pretrain/configs/...`), resumes exactly from
`--checkpointing_steps` folders, and writes a `save_pretrained` folder with a model card and `all_results.json`.

`--preset demo` pretrains a tiny PoNet on the docstrings of Python's standard library, with its own WordPiece
tokenizer, offline, in a few minutes on a laptop CPU (the log lists what the preset set):

    python pretrain/run_pretraining.py --preset demo

The equal-budget baseline: a BERT of the same size trained with MLM only on the very same batches and schedule
(`--model_type bert`, or a BERT `--config_name`); see experiments/equal_budget.py. `--model_type gpt2` trains a
causal LM on the same examples in the same order, unmasked (a decoder backbone for the pooling study).

A real run (bert-base-uncased vocabulary, base size, local text files):

    accelerate launch --config_file pretrain/configs/ddp_8gpu_bf16.yaml pretrain/run_pretraining.py \
        --train_file corpus.txt --tokenizer_name bert-base-uncased --max_seq_length 512 \
        --per_device_train_batch_size 48 --learning_rate 1e-4 --num_warmup_steps 5000 \
        --max_train_steps 140000 --checkpointing_steps 5000 --output_dir ponet-base
"""

import argparse
import json
import logging
import os
import time

import torch
from accelerate.utils import DistributedType

from ponet_training.data.tokenizer_loading import check_token_ids
from ponet_training.engine import best_model, loop
from ponet_training.engine.checkpoints import CheckpointWriter
from ponet_training.engine.dataloaders import build_eval_dataloader, build_train_dataloader, pad_to_multiple_of
from ponet_training.engine.launch import check_fsdp_model
from ponet_training.engine.optimization import (
    create_optimizer,
    create_scheduler,
    maybe_enable_gradient_checkpointing,
    resolve_train_steps,
)
from ponet_training.engine.run import (add_training_args, check_sequence_length, check_training_args, finish_run,
                                       init_tracking, start_run, total_train_batch_size, write_all_results)
from ponet_training.engine.run_folder import RunFolder
from ponet_training.hub import push
from ponet_training.hub.model_cards import base_model_reference, eval_results_from_metrics, write_model_card
from ponet_training.tasks.pretraining.collators import pretraining_collator
from ponet_training.tasks.pretraining.corpus import add_pretraining_data_args, has_data_args, load_pretraining_corpus
from ponet_training.tasks.pretraining.evaluation import EvalHistory
from ponet_training.tasks.pretraining.objectives import (build_pretraining_model, objective, parameter_checksum,
                                                    pretraining_loss, set_sparse_prediction)
from ponet_training.tasks.pretraining.sso_examples import build_sso_dataset
from ponet_training.tasks.pretraining.vocabulary import load_or_train_tokenizer


logger = logging.getLogger(__name__)

# `--preset demo`: a tiny PoNet sized to finish in a few minutes on 2 CPU cores, on the embedded standard-library
# docstrings unless a data flag names a corpus. Any flag given on the command line still wins; it trains its own
# tokenizer unless --tokenizer_name or --model_name_or_path names one. The log names what the preset set.
DEMO_DEFAULTS = dict(
    # 8000 WordPiece tokens: with 1000, the movie-review words of the demo's fine-tuning fall apart into pieces and
    # the tiny model fine-tunes to about 0.70; with 8000, to 0.73-0.76 (docs/getting_started.md)
    vocab_size=8000,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_seq_length=64,
    dupe_factor=2,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    learning_rate=2e-3,
    weight_decay=0.01,
    num_warmup_steps=100,
    max_train_steps=2000,
    eval_steps=500,
    # A tiny model trained for minutes learns MLM first and leaves SSO at chance for hundreds of steps;
    # weighting SSO up lets the demo show both objectives learning (the published weight is 1).
    sso_loss_weight=8.0,
    output_dir="ponet-tiny-stdlib",
)
PRESETS = {"demo": DEMO_DEFAULTS}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Pretrain PoNet with MLM + SSO (Accelerate).")
    model = parser.add_argument_group("model and tokenizer")
    model.add_argument("--model_name_or_path", type=str, default=None,
                       help="Continue pretraining from this checkpoint (e.g. chtan/ponet-base-uncased).")
    model.add_argument("--config_name", type=str, default=None,
                       help="A config (Hub id or folder) to start from scratch with; size flags override it. A "
                            "non-PoNet config (e.g. BERT's) trains that model with MLM only.")
    model.add_argument("--model_type", type=str, default=None,
                       help="From scratch: 'ponet' (MLM + SSO, the default), another masked-LM type such as "
                            "'bert' (MLM only, on the same batches: the equal-budget baseline), or a causal LM such "
                            "as 'gpt2' (next-token prediction on the same text).")
    model.add_argument("--tokenizer_name", type=str, default=None,
                       help="Tokenizer (Hub id or folder), e.g. bert-base-uncased.")
    model.add_argument("--train_tokenizer", action="store_true",
                       help="Train a WordPiece tokenizer on the training corpus.")
    model.add_argument("--vocab_size", type=int, default=30522, help="Vocabulary size for --train_tokenizer.")
    model.add_argument("--tokenizer_train_documents", type=int, default=None,
                       help="Train the tokenizer on at most this many documents (default: all; a streamed "
                            "corpus uses 100000).")
    model.add_argument("--hidden_size", type=int, default=None, help="From scratch: width (default 768).")
    model.add_argument("--num_hidden_layers", type=int, default=None, help="From scratch: layers (default 12).")
    model.add_argument("--num_attention_heads", type=int, default=None, help="From scratch: heads (default 12).")
    model.add_argument("--intermediate_size", type=int, default=None,
                       help="From scratch: feed-forward width (default 3072).")
    model.add_argument("--max_position_embeddings", type=int, default=None,
                       help="From scratch: position table size (default max(512, --max_seq_length)).")
    model.add_argument("--sso_loss_weight", type=float, default=1.0,
                       help="Train on mlm_loss + w * sso_loss (1.0 = the published objective).")
    model.add_argument("--no_sparse_prediction", dest="sparse_prediction", action="store_false",
                       help="Run the MLM decoder at every token. By default it runs only at the masked tokens "
                            "(`config.sparse_prediction`: the same loss and gradients, faster, less memory) where "
                            "the model has the option (PoNet, ModernBERT; BERT's head is always dense).")
    model.add_argument("--torch_compile", action="store_true",
                       help="Compile the model with torch.compile (`model.compile()`: names and checkpoints "
                            "unchanged). See docs/training_throughput.md for when it pays.")
    add_pretraining_data_args(parser)
    add_training_args(parser)
    # The published recipe (the PoNet paper, arXiv:2110.02442): AdamW, lr 1e-4, linear warm-up and decay.
    parser.set_defaults(learning_rate=1e-4, weight_decay=0.01, num_warmup_steps=0, per_device_train_batch_size=32,
                        per_device_eval_batch_size=32)
    parser.add_argument("--preset", type=str, default=None, choices=sorted(PRESETS),
                        help="Defaults for a purpose; flags given still win. 'demo': a tiny PoNet (width 64, 2 layers, "
                             "64 tokens, 2000 steps, lr 2e-3, SSO weight 8) with its own 8000-token WordPiece "
                             "vocabulary, in ./ponet-tiny-stdlib; without data flags, on the embedded corpus.")
    args = parser.parse_args(argv)
    args.preset_settings = {}  # what the preset changed, for the log
    if args.preset is not None:
        plain = args
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
        if not (args.tokenizer_name or args.model_name_or_path):
            args.train_tokenizer = True
        args.preset_settings = {key: getattr(args, key) for key in [*PRESETS[args.preset], "train_tokenizer"]
                                if getattr(args, key) != getattr(plain, key)}
    args.embedded_corpus = not has_data_args(args)
    if args.embedded_corpus and args.preset is None:
        raise ValueError("No corpus: pass --train_file (and --validation_file) or --dataset_name, or --preset demo "
                         "(a tiny PoNet on the embedded Python standard-library docstrings)")
    check_training_args(args)
    check_sequence_length(args, "max_seq_length")
    if args.model_name_or_path and (args.config_name or args.train_tokenizer):
        raise ValueError("--model_name_or_path continues a checkpoint: it cannot be combined with --config_name "
                         "or --train_tokenizer")
    if args.tokenizer_name and args.train_tokenizer:
        raise ValueError("Pass either --tokenizer_name or --train_tokenizer, not both")
    if not (args.tokenizer_name or args.train_tokenizer or args.model_name_or_path):
        raise ValueError("No tokenizer: pass --tokenizer_name (e.g. bert-base-uncased), --train_tokenizer "
                         "--vocab_size N, or --model_name_or_path")
    return args


def main(argv=None):
    args = parse_args(argv)
    # A resumed run keeps the vocabulary it trained: its checkpoint must hold the tokenizer.
    with RunFolder.for_run(args, resume_needs_tokenizer=args.train_tokenizer) as folder:
        accelerator = start_run(args, folder)
        if args.push_to_hub and accelerator.is_main_process:  # a bad token fails now, not after training
            push.create_hub_repo(folder.path, args.hub_model_id, args.hub_token, private=args.hub_private_repo)
        started = time.perf_counter()
        if args.preset:
            corpus_note = " on the embedded standard-library docstrings" if args.embedded_corpus else ""
            logger.info(f"Preset {args.preset}{corpus_note}: "
                        + ", ".join(f"--{key} {value}" for key, value in args.preset_settings.items()))

        # Corpus, tokenizer, SSO examples (the main process fills the datasets cache first).
        with accelerator.main_process_first():
            corpus = load_pretraining_corpus(args)
        tokenizer = load_or_train_tokenizer(args, accelerator, corpus, folder)
        with accelerator.main_process_first():
            train_dataset = build_sso_dataset(corpus["train"], tokenizer, args, split="train",
                                              dupe_factor=args.dupe_factor)
            eval_dataset = build_sso_dataset(corpus["validation"], tokenizer, args, split="validation", seed_offset=1)
        if args.streaming:
            train_dataset = train_dataset.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer_size)
        if args.max_train_samples is not None:
            train_dataset = (train_dataset.take(args.max_train_samples) if args.streaming
                             else train_dataset.select(range(min(args.max_train_samples, len(train_dataset)))))
        if args.max_eval_samples is not None:
            eval_dataset = (eval_dataset.take(args.max_eval_samples) if args.streaming
                            else eval_dataset.select(range(min(args.max_eval_samples, len(eval_dataset)))))
        if not args.streaming:
            logger.info(f"{len(train_dataset)} training and {len(eval_dataset)} validation SSO examples")

        model = build_pretraining_model(args, tokenizer)
        check_fsdp_model(accelerator, model)
        maybe_enable_gradient_checkpointing(model, args)
        if not args.streaming:
            for split, dataset in (("train", train_dataset), ("validation", eval_dataset)):
                check_token_ids(dataset, model.config, split)
        sparse_prediction = set_sparse_prediction(model, args.sparse_prediction)
        if args.torch_compile:
            model.compile()
        kind = objective(model)  # ponet (MLM + SSO), mlm or clm
        data_name, _, data_files = describe_corpus(args)
        n_params = sum(p.numel() for p in model.parameters())
        logger.info(f"{model.config.model_type} with {n_params:,} parameters")

        # Every objective gets the same examples in the same order; its collator builds what it is fed.
        pad_multiple = pad_to_multiple_of(accelerator)
        train_collator = pretraining_collator(kind, tokenizer, args, seed=args.seed, pad_to_multiple_of=pad_multiple)
        # Evaluation masks are fixed (same seed and epoch every time), so evaluations are comparable.
        eval_collator = pretraining_collator(kind, tokenizer, args, seed=args.seed + 1,
                                             pad_to_multiple_of=pad_multiple)
        train_dataloader = build_train_dataloader(train_dataset, args.per_device_train_batch_size, train_collator,
                                                  seed=args.seed, num_workers=args.dataloader_num_workers)
        eval_dataloader = build_eval_dataloader(eval_dataset, args.per_device_eval_batch_size, eval_collator,
                                                num_workers=args.dataloader_num_workers)

        optimizer = create_optimizer(model, args)
        model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
            model, optimizer, train_dataloader, eval_dataloader)
        batches_per_epoch = None if args.streaming else len(train_dataloader)
        resolve_train_steps(args, batches_per_epoch)
        lr_scheduler = accelerator.prepare(create_scheduler(optimizer, args, accelerator.num_processes))
        init_tracking(accelerator, args, "ponet_pretraining")

        total_batch_size = total_train_batch_size(args, accelerator.num_processes)
        logger.info("***** Running pretraining *****")
        logger.info(f"  Processes = {accelerator.num_processes} ({accelerator.distributed_type}), "
                    f"mixed precision = {accelerator.mixed_precision}")
        logger.info(f"  Total batch size (parallel, distributed & accumulation) = {total_batch_size}")
        logger.info(f"  Total optimization steps = {args.max_train_steps}")

        # Pretraining selects no checkpoint by a dev metric: the last model is the final one.
        tracker = best_model.BestModelTracker(folder, metric=None)
        progress = tracker.resume(accelerator, args, batches_per_epoch)
        evals = EvalHistory(folder, progress.completed_steps, write=accelerator.is_main_process)
        # Every checkpoint holds the tokenizer (a resumed run must use the same vocabulary) and the training clock.
        writer = CheckpointWriter(folder, args.checkpointing_steps, tokenizer=tokenizer,
                                  extra_files=evals.checkpoint_files)
        bar = loop.ProgressBar(accelerator, args.max_train_steps, initial=progress.completed_steps)

        def evaluate() -> dict:  # recorded in eval_history.jsonl; logged with the fine-tuning scripts' `eval_` names
            entry = evals.evaluate(model, eval_dataloader, accelerator, progress.completed_steps)
            return {f"eval_{key}": value for key, value in entry.items() if key not in ("step", "train_seconds")}

        # The loop: after every optimizer update the tracker evaluates when the update asks for it (every
        # --eval_steps, else each epoch's end; and at the end), and the writer checkpoints (--checkpointing_steps).
        for update in loop.train(accelerator, args, model, train_dataloader, optimizer, lr_scheduler, progress, bar,
                                 loss_fn=pretraining_loss(kind, args.sso_loss_weight)):
            tracker.after_update(accelerator, args, update, model, tokenizer, evaluate, progress, writer)
        bar.close()
        history = evals.entries
        eval_metrics = history[-1]  # the loop always evaluates the final model
        model_type = accelerator.unwrap_model(model).config.model_type

        # Replicas must agree (DDP keeps them in sync); sharded setups (FSDP, DeepSpeed) hold different shards.
        checksums = None
        if accelerator.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            local = torch.tensor([parameter_checksum(model)], dtype=torch.float64, device=accelerator.device)
            checksums = accelerator.gather(local).cpu().tolist()
        results = {
            **{f"eval_{k}": v for k, v in eval_metrics.items() if k not in ("step", "epoch", "train_seconds")},
            "model_type": model_type,
            "train_seconds": evals.train_seconds(),
            "train_steps": progress.completed_steps,
            **folder.resume_record(),
            "train_epochs_started": progress.epoch + 1,
            "total_train_batch_size": total_batch_size,
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "mixed_precision": accelerator.mixed_precision,
            "train_tokens_per_second": bar.tokens_per_second(),
            "train_runtime_seconds": time.perf_counter() - started,
            "num_parameters": n_params,
            "sparse_prediction": sparse_prediction,
            "torch_compile": args.torch_compile,
            "embedded_corpus": args.embedded_corpus,
            "data": data_name,
            "data_files": data_files,
            "preset": args.preset,
            "rank_parameter_checksums": checksums,
            "eval_history": history,
        }
        best_model.finalize_model(accelerator, model, tokenizer, tracker,
                                  load_model=type(accelerator.unwrap_model(model)).from_pretrained)
        if folder.path is not None and accelerator.is_main_process:
            write_all_results(folder.path, results)
            write_card(args, folder.path, accelerator.unwrap_model(model).config, eval_metrics,
                       progress.completed_steps, total_batch_size)
        accelerator.print(json.dumps({k: v for k, v in results.items() if k != "eval_history"}, indent=2))
        finish_run(accelerator, args)
        if args.push_to_hub and accelerator.is_main_process:
            push.push_to_hub(folder.path, args.hub_model_id, args.hub_token, private=args.hub_private_repo or None,
                             commit_message=f"PoNet pretraining: {progress.completed_steps} steps")
    return results


def describe_corpus(args) -> tuple[str, list[str] | None, dict | None]:
    """(what the run trained on, in words; its Hub dataset ids; {split: path} of local files) for the card and
    `all_results.json`."""
    if args.embedded_corpus:
        return "Python standard-library docstrings (embedded demo corpus)", None, None
    if args.dataset_name:
        return (args.dataset_name + (f" ({args.dataset_config_name})" if args.dataset_config_name else ""),
                [args.dataset_name], None)
    files = {split: path for split, path in (("train", args.train_file), ("validation", args.validation_file))
             if path}
    return "local files (" + ", ".join(os.path.basename(p) for p in files.values()) + ")", None, files


def write_card(args, output_dir, config, eval_metrics, steps, total_batch_size):
    """The model card: data, steps, hyper-parameters and the final evaluation (ponet_training.hub.model_cards)."""
    data_name, datasets, _ = describe_corpus(args)
    base_model, base_model_name = base_model_reference(args.model_name_or_path)
    metrics = {k: eval_metrics[k] for k in ("mlm_accuracy", "mlm_loss", "clm_accuracy", "clm_loss", "sso_accuracy",
                                            "sso_loss", "perplexity")
               if k in eval_metrics}
    hyperparameters = {
        "max_train_steps": steps,
        "learning_rate": args.learning_rate,
        "total_train_batch_size": total_batch_size,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
        "num_warmup_steps": args.num_warmup_steps,
        "weight_decay": args.weight_decay,
        "max_seq_length": args.max_seq_length,
        "mlm_probability": args.mlm_probability,
        "whole_word_masking": args.whole_word_masking,
        "sso_loss_weight": args.sso_loss_weight,
        "dupe_factor": args.dupe_factor,
        "seed": args.seed,
    }
    write_model_card(
        output_dir, "pretrained",
        hub_model_id=args.hub_model_id,
        base_model=base_model,
        base_model_name=base_model_name,
        datasets=datasets,
        training_data=f"{data_name}; {steps} optimizer steps of {total_batch_size} sequences of up to "
                      f"{args.max_seq_length} tokens",
        eval_results=eval_results_from_metrics(metrics,
                                               task_type="text-generation" if "clm_loss" in metrics else "fill-mask",
                                               dataset_type=args.dataset_name or "text",
                                               dataset_name=data_name, dataset_split="validation"),
        hyperparameters=hyperparameters,
        config=config,
    )


if __name__ == "__main__":
    main()
