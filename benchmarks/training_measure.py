"""What runs inside one measurement process of benchmarks/bench_training.py: the pretraining models, their synthetic
masked batches, and one timed optimizer step (forward, backward, AdamW) with its peak memory."""

import resource
import time
from contextlib import nullcontext

import psutil

from speed_measure import PRECISIONS, floor_mixer_class, make_input_ids, modernbert_config, timing_fields


TRAIN_MODELS = ("ponet", "ponet_dense", "ponet_compile", "floor", "bert", "modernbert")
TRAIN_PRECISIONS = ("fp32", "bf16_autocast")
TRAIN_LABELS = {
    "ponet": "PoNet (sparse)",
    "ponet_dense": "PoNet (dense head)",
    "ponet_compile": "PoNet (sparse, compiled)",
    "floor": "floor (sparse, no pooling)",
    "bert": "BERT (dense)",
    "modernbert": "ModernBERT (sparse)",
}
MASK_TOKEN_ID = 103  # bert-base-uncased's [MASK], as the synthetic inputs use its [CLS]=101 and [SEP]=102
MLM_PROBABILITY = 0.15


def build_pretraining_model(spec: dict):
    """The model with its pretraining heads, fp32 weights: PoNet MLM + SSO (sparse or dense MLM head), the floor
    (the same with the pooling removed, as in bench_speed), BERT MLM + NSP (`BertForPreTraining`, whose heads have
    no sparse option), ModernBERT MLM (`sparse_prediction=True`)."""
    name = spec["model"]
    size = dict(vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"], num_hidden_layers=spec["num_layers"],
                num_attention_heads=spec["num_heads"], intermediate_size=spec["intermediate_size"],
                max_position_embeddings=max(spec["length"], 512))
    if name.startswith("ponet") or name == "floor":
        from modeling_ponet import PoNetConfig, PoNetForPreTraining

        config = PoNetConfig(cls_token_id=101, sep_token_id=102, sparse_prediction=name != "ponet_dense", **size)
        model = PoNetForPreTraining(config)
        if name == "floor":
            floor_mixer = floor_mixer_class()
            for layer in model.ponet.encoder.layer:
                layer.attention.self = floor_mixer(layer.attention.self)
        if name == "ponet_compile":
            model.compile()
    elif name == "bert":
        from transformers import BertConfig, BertForPreTraining

        model = BertForPreTraining._from_config(BertConfig(**size), attn_implementation="sdpa")
    elif name == "modernbert":
        from transformers import ModernBertForMaskedLM

        model = ModernBertForMaskedLM._from_config(modernbert_config(spec, sparse_prediction=True),
                                                   attn_implementation="sdpa")
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(TRAIN_MODELS)}")
    return model.to(spec["device"])


def make_batch(spec: dict) -> dict:
    """bench_speed's input ids with 15% of the non-special tokens masked and labelled, and the sentence label the
    model's second objective takes (PoNet's SSO, BERT's NSP; ModernBERT has none)."""
    import torch

    ids = make_input_ids(spec)
    generator = torch.Generator().manual_seed(1)
    special = (ids == 101) | (ids == 102)
    masked = (torch.rand(ids.shape, generator=generator) < MLM_PROBABILITY).to(ids.device) & ~special
    batch = {"input_ids": ids.masked_fill(masked, MASK_TOKEN_ID), "labels": ids.masked_fill(~masked, -100)}
    rows = spec["batch_size"]
    if spec["model"] == "bert":
        batch["next_sentence_label"] = torch.arange(rows, device=ids.device) % 2
    elif spec["model"] != "modernbert":
        batch["sentence_structural_label"] = torch.arange(rows, device=ids.device) % 3
    return batch


def optimizer_step(model, batch: dict, optimizer, spec: dict):
    """A callable that runs one optimizer step (zero_grad, the forward with labels under the precision's autocast,
    backward, `optimizer.step()`; synchronized on CUDA) and returns its seconds."""
    import torch

    autocast_dtype = PRECISIONS[spec["precision"]][1]
    device_type = spec["device"].split(":")[0]

    def step() -> float:
        begin = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        context = torch.autocast(device_type, dtype=getattr(torch, autocast_dtype)) if autocast_dtype else nullcontext()
        with context:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        if device_type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - begin

    return step


def timed_steps(step, spec: dict) -> dict:
    """`step()` once untimed (AdamW allocates its state; a compiled model compiles), `spec["warmup"] - 1` more, then
    up to `spec["repeats"]` timed (fewer once they took `spec["measure_budget_s"]`): `timing_fields`."""
    first_call_s = step()
    for _ in range(max(0, spec["warmup"] - 1)):
        step()
    times = []
    while len(times) < spec["repeats"] and (not times or sum(times) < spec["measure_budget_s"]):
        times.append(step())
    return timing_fields(spec, times, first_call_s)


def measure_training(spec: dict) -> dict:
    """Time one optimizer step (zero_grad, forward under the precision's autocast, backward, AdamW step) and record
    the peak memory (CPU: the process's peak resident set minus its resident set after building the model; CUDA:
    `max_memory_allocated`). Returns a result dict (bench_speed's fields where they mean the same)."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = build_pretraining_model(spec).train()
    batch = make_batch(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # tiny steps: the model stays near its init
    memory_before = psutil.Process().memory_info().rss
    timing = timed_steps(optimizer_step(model, batch, optimizer, spec), spec)
    if spec["device"].startswith("cuda"):
        peak_total, memory_before = torch.cuda.max_memory_allocated(), 0
    else:
        peak_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {
        **timing,
        "labelled_tokens": int((batch["labels"] != -100).sum()),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "peak_memory_mb": max(0, peak_total - memory_before) / 2**20,
        "peak_process_memory_mb": peak_total / 2**20,
    }
