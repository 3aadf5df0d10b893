"""Pieces of `pretrain/run_pretraining.py` (MLM + SSO) that are not the shared loop (`engine.loop`).

- `load_or_train_tokenizer(args, accelerator, corpus, folder)`: a pretrained tokenizer, or WordPiece trained on the
  corpus on the main process and shared with the others (a resumed run: the one in the checkpoint its folder resumes).
- `build_pretraining_model(args, tokenizer)`: continue a checkpoint, or a fresh PoNet matching the tokenizer; or
  a fresh model of another type on the same batches: masked LM only (`--model_type bert`: the equal-budget
  baseline) or causal LM (`--model_type gpt2`: a decoder backbone for the pooling study, same corpus and vocabulary).
- `objective(model)`: what each kind of model learns (PoNet: MLM + SSO; a masked LM: MLM only; a causal LM:
  next-token prediction); its batches come from `pretraining_collators.pretraining_collator`.
- `pretraining_loss(objective, sso_loss_weight)`: the training loss (and its parts) for `engine.loop.train`.
- `evaluate_pretraining(model, dataloader, accelerator)`: MLM (and, for PoNet, SSO) loss and accuracy, or the
  causal LM's next-token loss and accuracy; perplexity.
- `EvalHistory(folder, resumed_step)`: evaluations against steps and training wall-clock seconds, in the run folder's
  `eval_history.jsonl`, across resumes.
- `set_sparse_prediction(model, enabled)`: the MLM decoder at labelled tokens only, where the model supports it.
- `parameter_checksum(model)`: compare replicas across processes.
"""

import json
import logging
import math
import time
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list
from tokenizers import Tokenizer
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer,
                          BertTokenizerFast)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)

from ponet_training.tasks.pretraining_corpus import corpus_text_batches
from ponet_training.data.tokenizer_loading import load_tokenizer
from ponet_training.data.wordpiece import config_for_tokenizer, train_wordpiece_tokenizer


logger = logging.getLogger(__name__)


def load_or_train_tokenizer(args, accelerator, corpus, folder):
    """The tokenizer: from --tokenizer_name / --model_name_or_path, or trained on the corpus on the main
    process and broadcast to the others (so every rank has the very same vocabulary); a resumed run that trained one
    takes it from the checkpoint its run folder resumes."""
    if not args.train_tokenizer:
        tokenizer = load_tokenizer(args.tokenizer_name or args.model_name_or_path,
                                   trust_remote_code=args.trust_remote_code)
        if not tokenizer.is_fast:
            raise ValueError("Sentence-level segment ids need a fast tokenizer (offsets); this one is not")
        return tokenizer
    # A resumed run must keep the vocabulary it trained (WordPiece training is not reproducible bit for bit):
    # a checkpoint without its tokenizer is an error, never a reason to train a new one.
    checkpoint = folder.resume_checkpoint  # checked for its tokenizer (`RunFolder(resume_needs_tokenizer=True)`)
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


def is_ponet(model) -> bool:
    return getattr(model, "config", None) is not None and model.config.model_type == "ponet"


def objective(model) -> str:
    """"ponet" (MLM + SSO), "clm" (a causal LM such as GPT-2: next-token prediction) or "mlm" (masked LM only).
    Each objective's batches come from its collator (`pretraining_collators.pretraining_collator`)."""
    if is_ponet(model):
        return "ponet"
    return "clm" if model.config.model_type in CAUSAL_ONLY_TYPES else "mlm"


def pretraining_loss(objective: str, sso_loss_weight: float = 1.0):
    """The `loss_fn` of `engine.loop.train` for `objective`: PoNet trains on `mlm_loss + sso_loss_weight *
    sso_loss` (both logged); a masked or causal LM on its own loss (`mlm_loss` / `clm_loss`)."""

    def loss_fn(model, batch: dict) -> dict:
        outputs = model(**batch)
        if objective == "ponet":
            return {"loss": outputs.mlm_loss + sso_loss_weight * outputs.sso_loss, "mlm_loss": outputs.mlm_loss,
                    "sso_loss": outputs.sso_loss}
        return {"loss": outputs.loss, f"{objective}_loss": outputs.loss}

    return loss_fn


def resolve_model_type(args) -> str:
    """--model_type, else the model type of --config_name / --model_name_or_path, else "ponet"."""
    if getattr(args, "model_type", None):
        return args.model_type
    source = args.config_name or args.model_name_or_path
    if source:
        return AutoConfig.from_pretrained(source, trust_remote_code=args.trust_remote_code).model_type
    return "ponet"


# Causal LMs without a masked-LM head (gpt2, llama, ...): pretrained with next-token prediction.
CAUSAL_ONLY_TYPES = frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) - frozenset(MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def _size_flags(args) -> dict:
    return {name: getattr(args, name) for name in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                    "intermediate_size", "max_position_embeddings")
            if getattr(args, name) is not None}


def build_lm_model(args, tokenizer, model_type: str):
    """A fresh model of `model_type` from --config_name and the size flags, with the tokenizer's vocabulary and
    special ids, trained on the same batches as PoNet: a masked LM (e.g. bert: MLM only, the equal-budget
    baseline) or, for a type with no masked-LM head (e.g. gpt2), a causal LM."""
    causal = model_type in CAUSAL_ONLY_TYPES
    if not causal and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ValueError(f"--model_type {model_type} has neither a masked-LM nor a causal-LM head in transformers; "
                         f"use ponet, a masked LM (bert, roberta, ...) or a causal LM (gpt2, ...)")
    base = {}
    if args.config_name:
        base = AutoConfig.from_pretrained(args.config_name, trust_remote_code=args.trust_remote_code).to_dict()
        for key in ("vocab_size", "pad_token_id", "model_type", "architectures", "transformers_version", "auto_map"):
            base.pop(key, None)
    base.update(_size_flags(args))
    base.setdefault("max_position_embeddings", max(512, args.max_seq_length))
    if causal:
        # The tokenizer's [CLS]/[SEP] are the decoder's BOS/EOS; GPT-2 calls its FFN width n_inner.
        base.update(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
        if "intermediate_size" in base and model_type == "gpt2":
            base["n_inner"] = base.pop("intermediate_size")
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **base)
    if causal:
        logger.info(f"Training a new {model_type} causal LM from scratch (next-token prediction on the same "
                    f"examples in the same order, unmasked, without SSO labels and segment ids)")
        return AutoModelForCausalLM.from_config(config)
    logger.info(f"Training a new {model_type} MLM model from scratch (MLM only: its batches leave out the SSO "
                f"labels and segment ids)")
    return AutoModelForMaskedLM.from_config(config)


def build_pretraining_model(args, tokenizer):
    """Continue from --model_name_or_path, or a fresh PoNet from --config_name / size flags whose
    vocabulary and CLS/SEP/PAD ids match the tokenizer; a fresh MLM-only model for another model type."""
    model_type = resolve_model_type(args)
    if model_type != "ponet":
        if args.model_name_or_path:
            raise ValueError(f"--model_name_or_path continues a PoNet checkpoint; {args.model_name_or_path} is a "
                             f"{model_type} model. Non-PoNet models are trained from scratch (--model_type, --config_name)")
        return build_lm_model(args, tokenizer, model_type)
    if args.model_name_or_path:
        from ponet_training.tasks.finetuning import readable_weights

        with readable_weights(args.model_name_or_path):
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
    sizes = _size_flags(args)
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


def set_sparse_prediction(model, enabled: bool) -> bool:
    """Turn the MLM head's sparse prediction (`config.sparse_prediction`: the decoder runs at labelled tokens only)
    on or off where the model has it (PoNet, ModernBERT); returns whether it is on. transformers' BERT heads have
    no such option and stay dense."""
    if not hasattr(model.config, "sparse_prediction"):
        if enabled:
            logger.info(f"{model.config.model_type} has no sparse prediction: its MLM head runs at every token")
        return False
    model.config.sparse_prediction = enabled
    if hasattr(model, "sparse_prediction"):  # ModernBERT copies the config value when it is built
        model.sparse_prediction = enabled
    return enabled


@torch.no_grad()
def evaluate_pretraining(model, dataloader, accelerator) -> dict:
    """MLM loss / accuracy over masked tokens and SSO loss / accuracy over examples (PoNet), MLM only (a masked
    LM), or next-token loss / accuracy over real tokens (`clm_*`, a causal LM); and perplexity."""
    kind = objective(accelerator.unwrap_model(model))
    lm = "clm" if kind == "clm" else "mlm"
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # lm loss, correct, count, sso loss, correct
    sso_count = 0
    for batch in dataloader:
        inputs = dict(batch)
        labels = inputs.pop("labels")
        inputs.pop("sentence_structural_label", None)
        outputs = model(**inputs)
        logits = (outputs.prediction_logits if kind == "ponet" else outputs.logits).float()
        if kind == "clm":  # position i predicts token i + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        scored = labels != -100
        lm_loss = torch.nn.functional.cross_entropy(logits[scored], labels[scored], reduction="none")
        lm_correct = (logits[scored].argmax(-1) == labels[scored]).float()
        # Per-example sums, so that gather_for_metrics can drop the duplicates padding the last batch.
        rows = scored.nonzero()[:, 0]
        size = labels.shape[0]
        per_example = torch.zeros(size, 5, dtype=torch.float64, device=labels.device)
        per_example[:, 0].index_add_(0, rows, lm_loss.double())
        per_example[:, 1].index_add_(0, rows, lm_correct.double())
        per_example[:, 2] = scored.sum(1).double()
        if kind == "ponet":
            sso_logits = outputs.seq_relationship_logits.float()
            sso_labels = batch["sentence_structural_label"]
            per_example[:, 3] = torch.nn.functional.cross_entropy(sso_logits, sso_labels, reduction="none").double()
            per_example[:, 4] = (sso_logits.argmax(-1) == sso_labels).double()
        per_example = accelerator.gather_for_metrics(per_example)
        totals += per_example.sum(0)
        sso_count += per_example.shape[0]
    model.train()
    lm_loss = (totals[0] / totals[2].clamp(min=1)).item()
    metrics = {f"{lm}_loss": lm_loss, f"{lm}_accuracy": (totals[1] / totals[2].clamp(min=1)).item()}
    if kind == "ponet":
        metrics["sso_loss"] = (totals[3] / max(sso_count, 1)).item()
        metrics["sso_accuracy"] = (totals[4] / max(sso_count, 1)).item()
    metrics["loss"] = lm_loss + metrics.get("sso_loss", 0.0)
    metrics["perplexity"] = math.exp(min(lm_loss, 50.0))
    metrics["masked_tokens" if lm == "mlm" else "predicted_tokens"] = int(totals[2].item())
    metrics["examples"] = sso_count
    return metrics


EVAL_HISTORY_JSONL = "eval_history.jsonl"
TRAIN_CLOCK_JSON = "train_clock.json"


class EvalHistory:
    """Every evaluation of a pretraining run with its step and the training wall-clock seconds so far (evaluation
    time excluded), so that runs can be compared against steps and against time. Lines go to the run folder's
    `eval_history.jsonl` as they come (`write`: on the main process); a resumed run keeps the lines up to its
    checkpoint's step and continues the clock from the checkpoint's `train_clock.json`."""

    def __init__(self, folder, resumed_step: int = 0, write: bool = True):
        checkpoint = folder.resume_checkpoint
        self.path = folder.path / EVAL_HISTORY_JSONL if folder.path is not None and write else None
        self.offset = 0.0
        self.entries: list[dict] = []
        if checkpoint is not None and (Path(checkpoint) / TRAIN_CLOCK_JSON).is_file():
            self.offset = json.loads((Path(checkpoint) / TRAIN_CLOCK_JSON).read_text())["train_seconds"]
        if self.path is not None and self.path.is_file() and checkpoint is not None:
            lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            self.entries = [e for e in lines if e["step"] <= resumed_step]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(e) + "\n" for e in self.entries))
        self.started = time.perf_counter()
        self.eval_seconds = 0.0

    def train_seconds(self) -> float:
        """Seconds spent training so far (all sessions of a resumed run), evaluations excluded."""
        return self.offset + time.perf_counter() - self.started - self.eval_seconds

    def evaluate(self, model, dataloader, accelerator, step: int, **extra) -> dict:
        """Evaluate (`evaluate_pretraining`), record `{step, train_seconds, **metrics}` and return it."""
        train_seconds = self.train_seconds()
        started = time.perf_counter()
        metrics = evaluate_pretraining(model, dataloader, accelerator)
        self.eval_seconds += time.perf_counter() - started
        entry = {"step": step, **extra, "train_seconds": round(train_seconds, 3), **metrics}
        self.entries.append(entry)
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        return entry

    def checkpoint_files(self) -> dict:
        """The training clock as a checkpoint file ({name: content}), for a resumed run to continue from."""
        return {TRAIN_CLOCK_JSON: {"train_seconds": self.train_seconds()}}


def parameter_checksum(model) -> float:
    """A float64 sum of all parameters (weighted by position) to compare replicas across processes."""
    total = torch.zeros((), dtype=torch.float64)
    for index, param in enumerate(model.parameters()):
        total += (index + 1) * param.detach().double().sum().cpu()
    return total.item()


__all__ = ["EvalHistory", "build_pretraining_model", "evaluate_pretraining", "is_ponet", "load_or_train_tokenizer",
           "objective", "parameter_checksum", "pretraining_loss", "resolve_model_type", "set_sparse_prediction"]
