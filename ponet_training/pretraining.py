"""Pieces of `pretrain/run_pretraining.py` (MLM + SSO) that are not its loop.

- `load_or_train_tokenizer(args, accelerator, corpus)`: a pretrained tokenizer, or WordPiece trained on the corpus
  on the main process and shared with the others.
- `build_pretraining_model(args, tokenizer)`: continue a checkpoint, or a fresh PoNet matching the tokenizer.
- `evaluate_pretraining(model, dataloader, accelerator)`: MLM / SSO loss and accuracy, perplexity.
- `parameter_checksum(model)`: compare replicas across processes.
"""

import logging
import math
import time

import torch
from accelerate.utils import broadcast_object_list
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForPreTraining, AutoTokenizer, BertTokenizerFast

import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)

from .checkpoints import resolve_checkpoint
from .pretraining_data import corpus_text_batches
from .tokenizer_loading import load_tokenizer
from .wordpiece import config_for_tokenizer, train_wordpiece_tokenizer


logger = logging.getLogger(__name__)


def load_or_train_tokenizer(args, accelerator, corpus):
    """The tokenizer: from --tokenizer_name / --model_name_or_path, or trained on the corpus on the main
    process and broadcast to the others (so every rank has the very same vocabulary)."""
    if not args.train_tokenizer:
        tokenizer = load_tokenizer(args.tokenizer_name or args.model_name_or_path,
                                   trust_remote_code=args.trust_remote_code)
        if not tokenizer.is_fast:
            raise ValueError("Sentence-level segment ids need a fast tokenizer (offsets); this one is not")
        return tokenizer
    # A resumed run must keep the vocabulary it trained (WordPiece training is not reproducible bit for bit):
    # a checkpoint without its tokenizer is an error, never a reason to train a new one.
    checkpoint = resolve_checkpoint(args, require_tokenizer=True)
    if checkpoint is not None:
        logger.info(f"Using the tokenizer trained by the interrupted run, saved in {checkpoint}")
        return AutoTokenizer.from_pretrained(checkpoint)
    payload = [None]
    if accelerator.is_main_process:
        limit = args.tokenizer_train_documents or (100_000 if args.streaming else None)
        started = time.perf_counter()
        tokenizer = train_wordpiece_tokenizer(corpus_text_batches(corpus["train"], max_documents=limit),
                                              vocab_size=args.vocab_size)
        logger.info(f"Trained a WordPiece tokenizer of {len(tokenizer)} tokens in {time.perf_counter() - started:.1f}s")
        payload = [tokenizer.backend_tokenizer.to_str()]
    broadcast_object_list(payload)
    # Every rank (the main one too) rebuilds it from the same JSON, so the datasets cache keys agree.
    return BertTokenizerFast(tokenizer_object=Tokenizer.from_str(payload[0]), do_lower_case=True, unk_token="[UNK]",
                             sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


def build_pretraining_model(args, tokenizer):
    """Continue from --model_name_or_path, or a fresh PoNet from --config_name / size flags whose
    vocabulary and CLS/SEP/PAD ids match the tokenizer."""
    if args.model_name_or_path:
        model = AutoModelForPreTraining.from_pretrained(args.model_name_or_path,
                                                        trust_remote_code=args.trust_remote_code)
        if len(tokenizer) > model.config.vocab_size:
            logger.info(f"Resizing the embeddings from {model.config.vocab_size} to {len(tokenizer)} tokens")
            model.resize_token_embeddings(len(tokenizer))
        if args.max_seq_length > model.config.max_position_embeddings:
            logger.info(f"Extending the position table from {model.config.max_position_embeddings} to "
                        f"{args.max_seq_length} rows (tiling the learned rows)")
            model.resize_position_embeddings(args.max_seq_length)
        return model
    sizes = {name: getattr(args, name) for name in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                     "intermediate_size", "max_position_embeddings")
             if getattr(args, name) is not None}
    if args.config_name:
        base = AutoConfig.from_pretrained(args.config_name, trust_remote_code=args.trust_remote_code).to_dict()
        for key in ("vocab_size", "pad_token_id", "cls_token_id", "sep_token_id", "model_type", "architectures",
                    "transformers_version", "auto_map"):
            base.pop(key, None)
        base.update(sizes)
        sizes = base
    sizes.setdefault("max_position_embeddings", max(512, args.max_seq_length))
    if sizes["max_position_embeddings"] < args.max_seq_length:
        raise ValueError(f"--max_position_embeddings ({sizes['max_position_embeddings']}) is shorter than "
                         f"--max_seq_length ({args.max_seq_length})")
    config = config_for_tokenizer(tokenizer, **sizes)
    logger.info("Training a new PoNet from scratch")
    return AutoModelForPreTraining.from_config(config)


@torch.no_grad()
def evaluate_pretraining(model, dataloader, accelerator) -> dict:
    """MLM loss / accuracy over masked tokens, SSO loss / accuracy over examples, and perplexity."""
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # mlm loss, correct, count, sso loss, correct
    sso_count = 0
    for batch in dataloader:
        outputs = model(**{k: v for k, v in batch.items() if k not in ("labels", "sentence_structural_label")})
        logits = outputs.prediction_logits.float()
        labels = batch["labels"]
        scored = labels != -100
        mlm_loss = torch.nn.functional.cross_entropy(logits[scored], labels[scored], reduction="none")
        mlm_correct = (logits[scored].argmax(-1) == labels[scored]).float()
        # Per-example sums, so that gather_for_metrics can drop the duplicates padding the last batch.
        rows = scored.nonzero()[:, 0]
        size = labels.shape[0]
        per_example = torch.zeros(size, 5, dtype=torch.float64, device=labels.device)
        per_example[:, 0].index_add_(0, rows, mlm_loss.double())
        per_example[:, 1].index_add_(0, rows, mlm_correct.double())
        per_example[:, 2] = scored.sum(1).double()
        sso_logits = outputs.seq_relationship_logits.float()
        sso_labels = batch["sentence_structural_label"]
        per_example[:, 3] = torch.nn.functional.cross_entropy(sso_logits, sso_labels, reduction="none").double()
        per_example[:, 4] = (sso_logits.argmax(-1) == sso_labels).double()
        per_example = accelerator.gather_for_metrics(per_example)
        totals += per_example.sum(0)
        sso_count += per_example.shape[0]
    model.train()
    mlm_loss = (totals[0] / totals[2].clamp(min=1)).item()
    sso_loss = (totals[3] / max(sso_count, 1)).item()
    return {
        "mlm_loss": mlm_loss,
        "mlm_accuracy": (totals[1] / totals[2].clamp(min=1)).item(),
        "sso_loss": sso_loss,
        "sso_accuracy": (totals[4] / max(sso_count, 1)).item(),
        "loss": mlm_loss + sso_loss,
        "perplexity": math.exp(min(mlm_loss, 50.0)),
        "masked_tokens": int(totals[2].item()),
        "examples": sso_count,
    }


def parameter_checksum(model) -> float:
    """A float64 sum of all parameters (weighted by position) to compare replicas across processes."""
    total = torch.zeros((), dtype=torch.float64)
    for index, param in enumerate(model.parameters()):
        total += (index + 1) * param.detach().double().sum().cpu()
    return total.item()


__all__ = ["build_pretraining_model", "evaluate_pretraining", "load_or_train_tokenizer", "parameter_checksum"]
