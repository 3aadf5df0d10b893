"""What runs inside one measurement process of benchmarks/bench_lra.py: the LRA Text model of each mixer (and
PoNet's floor), its synthetic batch, and one timed training step with its peak memory."""

import resource

import psutil

from speed_measure import floor_mixer_class
from training_measure import optimizer_step, timed_steps


LRA_MODELS = ("ponet", "floor", "softmax", "fnet")
LRA_LABELS = {
    "ponet": "PoNet",
    "floor": "floor (PoNet, no pooling)",
    "softmax": "Transformer (softmax)",
    "fnet": "FNet",
}
# The weights stay float32, as in mixed-precision training (speed_measure.PRECISIONS: the autocast dtype of each).
LRA_PRECISIONS = ("fp32", "bf16_autocast", "fp16_autocast")
BYTE_IDS = (1, 257)  # LRA Text's ids: UTF-8 bytes + 1 (0 is padding)


def build_lra_text_model(spec: dict):
    """`ponet_training`'s LRA Text classifier (the published setting: 2 pre-LN layers, hidden 64, 2 heads,
    feed-forward 128, PoNet's 2-token segment blocks) with the mixer of `spec["model"]`, its position table at least
    `spec["length"]` rows. `floor` is PoNet's shell with the pooling removed: each layer's mixer sums its five
    projections (one Linear), and the mixer's output Linear, the norms, the feed-forward and the head stay."""
    from ponet_training.tasks.lra.settings import PUBLISHED, build_lra_model

    name = spec["model"]
    if name not in LRA_MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(LRA_MODELS)}")
    rows = max(spec["length"], PUBLISHED["text"].padded_length)
    model = build_lra_model("text", "ponet" if name == "floor" else name, max_position_embeddings=rows)
    if name == "floor":
        floor_mixer = floor_mixer_class()
        for block in model.encoder.layers:
            block.mixer.pooling = floor_mixer(block.mixer.pooling)
    return model.to(spec["device"])


def make_lra_batch(spec: dict) -> dict:
    """Random byte ids `[batch, length]` (no padding, as every input of a speed test fills its length) and labels."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(*BYTE_IDS, (spec["batch_size"], spec["length"]), generator=generator)
    labels = torch.randint(0, 2, (spec["batch_size"],), generator=generator)
    return {"input_ids": ids.to(spec["device"]), "labels": labels.to(spec["device"])}


def measure_lra_step(spec: dict) -> dict:
    """Time one training step (zero_grad, forward with labels under the precision's autocast, backward, the
    published AdamW step) and record the peak memory (CPU: the process's peak resident set minus its resident set
    after building the model and the batch; CUDA: `max_memory_allocated` minus the allocation before the first
    step). Returns a result dict."""
    import torch

    from ponet_training.tasks.lra.settings import ADAM_EPSILON, LEARNING_RATE

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = build_lra_text_model(spec).train()
    batch = make_lra_batch(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON, weight_decay=0.0)
    cuda = spec["device"].startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        memory_before = torch.cuda.memory_allocated()
    else:
        memory_before = psutil.Process().memory_info().rss
    result = timed_steps(optimizer_step(model, batch, optimizer, spec), spec)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - memory_before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - memory_before  # Linux reports KiB
    result.update(steps_per_s=1.0 / (result["time_ms"] / 1000.0), peak_memory_mb=max(0, peak) / 2**20,
                  num_parameters=sum(p.numel() for p in model.parameters()))
    return result
