"""What a pretraining run learns: the model of each objective, and its loss.

- `build_pretraining_model(args, tokenizer)`: continue a checkpoint, or a fresh PoNet matching the tokenizer; or a
  fresh model of another type on the same batches: masked LM only (`--model_type bert`: the equal-budget baseline)
  or causal LM (`--model_type gpt2`: a decoder backbone for the pooling study, same corpus and vocabulary).
- `objective(model)`: what each kind of model learns (PoNet: MLM + SSO; a masked LM: MLM only; a causal LM:
  next-token prediction); its batches come from `collators.pretraining_collator`.
- `pretraining_loss(objective, sso_loss_weight)`: the training loss (and its parts) for `engine.loop.train`.
- `set_sparse_prediction(model, enabled)`: the MLM decoder at labelled tokens only, where the model supports it.
- `parameter_checksum(model)`: compare replicas across processes.
"""

import logging

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

import modeling_ponet  # noqa: F401  (registers PoNet with the Auto classes)

from ponet_training.data.wordpiece import config_for_tokenizer


logger = logging.getLogger(__name__)


def is_ponet(model) -> bool:
    return getattr(model, "config", None) is not None and model.config.model_type == "ponet"


def objective(model) -> str:
    """"ponet" (MLM + SSO), "clm" (a causal LM such as GPT-2: next-token prediction) or "mlm" (masked LM only).
    Each objective's batches come from its collator (`collators.pretraining_collator`)."""
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


def parameter_checksum(model) -> float:
    """A float64 sum of all parameters (weighted by position) to compare replicas across processes."""
    total = torch.zeros((), dtype=torch.float64)
    for index, param in enumerate(model.parameters()):
        total += (index + 1) * param.detach().double().sum().cpu()
    return total.item()


__all__ = ["CAUSAL_ONLY_TYPES", "build_pretraining_model", "is_ponet", "objective", "parameter_checksum",
           "pretraining_loss", "resolve_model_type", "set_sparse_prediction"]
