"""What runs inside one measurement process of benchmarks/bench_speed.py: the model names, precisions and modes,
the models and their synthetic inputs, the GEMM-only ceiling, the timed step, and its peak and saved memory
(bench_speed.py's docstring says what each one measures)."""

import json
import math
import resource
import statistics
import time
import traceback
from contextlib import nullcontext

import psutil

from ponet_training.inference.quantization import quantize_dynamic_int8


MODELS = ("ponet", "ponet_compile", "floor", "bert", "modernbert", "fnet", "gemm")
MODES = ("forward", "train")
# name -> (weight dtype, autocast dtype or None)
PRECISIONS = {
    "fp32": ("float32", None),
    "bf16_autocast": ("float32", "bfloat16"),
    "bf16_weights": ("bfloat16", None),
    "fp16_autocast": ("float32", "float16"),
    "fp16_weights": ("float16", None),
    "int8": ("float32", None),
}
TRAINING_PRECISIONS = ("fp32", "bf16_autocast", "fp16_autocast")
LABELS = {
    "ponet": "PoNet",
    "ponet_compile": "PoNet (compiled)",
    "floor": "floor (no pooling)",
    "bert": "BERT-SDPA",
    "modernbert": "ModernBERT",
    "fnet": "FNet",
    "gemm": "GEMM-only",
}
PRECISION_LABELS = {
    "fp32": "fp32",
    "bf16_autocast": "bf16 autocast",
    "bf16_weights": "bf16 weights",
    "fp16_autocast": "fp16 autocast",
    "fp16_weights": "fp16 weights",
    "int8": "int8 dynamic",
}
FOCUS_LENGTH = 4096  # where the issues' targets are stated
SEP_EVERY = 32  # a sentence boundary every 32 tokens in the synthetic inputs
MIN_VOCAB_SIZE = 1001  # input ids are drawn from 1000..vocab_size-1, clear of [CLS]=101, [SEP]=102 and [MASK]=103


def ceiling_precision(precision: str) -> str:
    """The precision the GEMM-only ceiling runs at for `precision` (autocast GEMMs run on low-precision copies)."""
    return {"bf16_autocast": "bf16_weights", "fp16_autocast": "fp16_weights"}.get(precision, precision)


def unsupported(model: str, precision: str, device: str) -> str | None:
    """Why (model, precision) cannot run on `device`, or None."""
    if model == "fnet" and precision in ("bf16_weights", "fp16_weights") and device == "cpu":
        return "torch.fft has no half-precision CPU kernel"
    if model == "ponet_compile" and precision == "int8":
        return "torch.compile of torch.ao's dynamic int8 modules is not measured"
    return None


def dense_flops(spec: dict) -> float:
    """Matmul FLOPs of one step: dense layers (and BERT's attention products); 3x the forward for `train`."""
    length, batch, h, inter = spec["length"], spec["batch_size"], spec["hidden_size"], spec["intermediate_size"]
    model = spec["model"]
    if model in ("ponet", "ponet_compile", "floor", "gemm"):
        per_token = 2 * (5 * h * h + h * h + 2 * h * inter)
    elif model == "bert":
        per_token = 2 * (4 * h * h + 2 * h * inter) + 4 * length * h  # QK^T and PV
    elif model == "modernbert":  # GLU feed-forward of width modernbert_intermediate_size(inter); SDPA computes the
        # sliding-window layers' products in full (a masked attention), so all of them count as full
        glu = modernbert_intermediate_size(inter)
        per_token = 2 * (4 * h * h + 3 * h * glu) + 4 * length * h
    else:  # fnet: the feed-forward only
        per_token = 2 * (2 * h * inter)
    forward = spec["num_layers"] * batch * length * per_token
    return 3 * forward if spec["mode"] == "train" else forward


def modernbert_intermediate_size(intermediate_size: int) -> int:
    """ModernBERT's GLU width with the feed-forward parameters of a BERT of `intermediate_size` (3072 -> 2048)."""
    return intermediate_size * 2 // 3


def modernbert_config(spec: dict, **extra):
    """ModernBERT at the width and depth of `spec` (its own defaults otherwise: a global layer every 3, the others
    a 128-token sliding window), with BERT's special ids, so that it reads the same synthetic inputs."""
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"], num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"], intermediate_size=modernbert_intermediate_size(spec["intermediate_size"]),
        max_position_embeddings=max(spec["length"], 512), pad_token_id=0, bos_token_id=101, eos_token_id=102,
        cls_token_id=101, sep_token_id=102, **extra,
    )


def floor_mixer_class():
    import torch
    from torch import nn

    class FloorMixer(nn.Module):
        """PoNet's mixer without pooling: its five projections as one Linear (copied from the mixer), summed."""

        def __init__(self, mixer):
            super().__init__()
            layers = [mixer.dense_q, mixer.dense_k, mixer.dense_o, mixer.dense_segment, mixer.dense_local]
            weight = torch.cat([layer.weight for layer in layers])
            self.projections = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
            with torch.no_grad():
                self.projections.weight.copy_(weight)
                self.projections.bias.copy_(torch.cat([layer.bias for layer in layers]))

        def forward(self, hidden_states, mixer_inputs):
            return self.projections(hidden_states).unflatten(-1, (5, -1)).sum(dim=-2), None

    return FloorMixer


def build_model(spec: dict):
    """The bare encoder named by `spec["model"]`, at the width/depth and precision of `spec`, position table = length."""
    import torch

    length = spec["length"]
    size = dict(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_layers"],
        intermediate_size=spec["intermediate_size"],
        max_position_embeddings=length,
    )
    name = spec["model"]
    if name in ("ponet", "ponet_compile", "floor"):
        from modeling_ponet import PoNetConfig, PoNetModel

        config = PoNetConfig(num_attention_heads=spec["num_heads"], cls_token_id=101, sep_token_id=102, **size)
        model = PoNetModel(config, add_pooling_layer=False)
        if name == "floor":
            floor_mixer = floor_mixer_class()
            for layer in model.encoder.layer:
                layer.attention.self = floor_mixer(layer.attention.self)
    elif name == "bert":
        from transformers import BertConfig, BertModel

        config = BertConfig(num_attention_heads=spec["num_heads"], **size)
        model = BertModel._from_config(config, attn_implementation="sdpa", add_pooling_layer=False)
    elif name == "modernbert":
        from transformers import ModernBertModel

        model = ModernBertModel._from_config(modernbert_config(spec), attn_implementation="sdpa")
    elif name == "fnet":
        from transformers import FNetConfig, FNetModel

        model = FNetModel(FNetConfig(**size), add_pooling_layer=False)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    weight_dtype = PRECISIONS[spec["precision"]][0]
    model = model.to(device=spec["device"], dtype=getattr(torch, weight_dtype))
    if spec["precision"] == "int8":
        model = quantize_dynamic_int8(model)
    if name == "ponet_compile":
        model = torch.compile(model)
    return model


def make_input_ids(spec: dict):
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, spec["vocab_size"], (spec["batch_size"], spec["length"]), generator=generator)
    ids[:, 0] = 101
    ids[:, SEP_EVERY - 1 :: SEP_EVERY] = 102
    return ids.to(spec["device"])


class GemmCeiling:
    """PoNet's linear layers as bare GEMMs (see bench_speed.py's docstring), at one precision."""

    def __init__(self, spec: dict):
        import torch
        from torch import nn

        self.torch = torch
        self.layers, self.train = spec["num_layers"], spec["mode"] == "train"
        rows = spec["batch_size"] * spec["length"]
        h, inter = spec["hidden_size"], spec["intermediate_size"]
        device = spec["device"]
        shapes = [(h, 5 * h), (h, h), (h, inter), (inter, h)]  # (in, out)
        self.int8 = spec["precision"] == "int8"
        dtype = getattr(torch, PRECISIONS[ceiling_precision(spec["precision"])][0])
        generator = torch.Generator().manual_seed(0)
        inputs = {n: torch.randn(rows, n, generator=generator).to(device, dtype) for n in {h, inter}}
        self.gemms = []
        for n_in, n_out in shapes:
            weight = (torch.randn(n_out, n_in, generator=generator) / math.sqrt(n_in)).to(device, dtype)
            x = inputs[n_in]
            if self.int8:
                linear = nn.Linear(n_in, n_out, bias=False)
                with torch.no_grad():
                    linear.weight.copy_(weight)
                self.gemms.append((quantize_dynamic_int8(linear), x, None, None, None))
                continue
            out = torch.empty(rows, n_out, device=device, dtype=dtype)
            grad_x = torch.empty(rows, n_in, device=device, dtype=dtype) if self.train else None
            grad_w = torch.empty(n_out, n_in, device=device, dtype=dtype) if self.train else None
            self.gemms.append((weight, x, out, grad_x, grad_w))

    def __call__(self):
        torch = self.torch
        with torch.no_grad():
            for _ in range(self.layers):
                for weight, x, out, grad_x, grad_w in self.gemms:
                    if self.int8:
                        weight(x)
                        continue
                    torch.mm(x, weight.t(), out=out)
                    if self.train:  # dX = dY W and dW = dY^T X, with the output standing in for dY
                        torch.mm(out, weight, out=grad_x)
                        torch.mm(out.t(), x, out=grad_w)


def make_step(spec: dict):
    """(the callable that runs one timed step, the model or None for the GEMM ceiling, the input ids or None)."""
    import torch

    if spec["model"] == "gemm":
        return GemmCeiling(spec), None, None
    model = build_model(spec)
    input_ids = make_input_ids(spec)
    train = spec["mode"] == "train"
    model.train(train)
    autocast_dtype = PRECISIONS[spec["precision"]][1]
    device_type = spec["device"].split(":")[0]

    def autocast():
        if autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type, dtype=getattr(torch, autocast_dtype))

    def step():
        if train:
            model.zero_grad(set_to_none=True)
            with autocast():
                hidden = model(input_ids=input_ids).last_hidden_state
            hidden.float().square().mean().backward()
        else:
            with torch.no_grad(), autocast():
                model(input_ids=input_ids)

    return step, model, input_ids


def _is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text or "defaultcpuallocator" in text


def measure(spec: dict) -> dict:
    """Time one (model, mode, precision, length, batch) and record its peak memory. Returns a result dict."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    cuda = spec["device"].startswith("cuda")
    if spec.get("simulate_oom"):
        raise MemoryError("simulated out-of-memory (--simulate_oom)")
    step, model, input_ids = make_step(spec)

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        memory_before = torch.cuda.memory_allocated()
    else:
        memory_before = psutil.Process().memory_info().rss

    def timed() -> float:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000.0
        begin = time.perf_counter()
        step()
        return time.perf_counter() - begin

    first_call_s = timed()  # includes compilation for the compiled variant
    saved_mb = None
    if spec["mode"] == "train" and model is not None and spec["model"] != "ponet_compile":
        saved_mb = saved_activations_mb(model, input_ids, PRECISIONS[spec["precision"]][1])
    for _ in range(max(0, spec["warmup"] - 1)):
        timed()
    times = []
    while len(times) < spec["repeats"] and (not times or sum(times) < spec["measure_budget_s"]):
        times.append(timed())

    if cuda:
        peak_delta = torch.cuda.max_memory_allocated() - memory_before
        peak_total = torch.cuda.max_memory_allocated()
    else:
        peak_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        peak_delta = max(0, peak_total - memory_before)
    median = statistics.median(times)
    return {
        **timing_fields(spec, times, first_call_s),
        "gflop_per_s": dense_flops(spec) / median / 1e9,
        "peak_memory_mb": peak_delta / 2**20,
        "peak_process_memory_mb": peak_total / 2**20,
        "saved_activations_mb": saved_mb,
    }


def timing_fields(spec: dict, times: list[float], first_call_s: float) -> dict:
    """The timing part of a result: the median and minimum of the timed calls (ms), all of them, the first call
    and tokens/s at the median."""
    median = statistics.median(times)
    return {
        "status": "ok",
        "time_ms": median * 1000.0,
        "time_ms_min": min(times) * 1000.0,
        "times_ms": [t * 1000.0 for t in times],
        "first_call_s": first_call_s,
        "tokens_per_s": spec["batch_size"] * spec["length"] / median,
    }


def saved_activations_mb(model, input_ids, autocast_dtype: str | None) -> float:
    """What autograd keeps for the backward of one forward pass (distinct storages, parameters excluded), in MiB.

    Exact and allocator-independent, unlike the CPU process peak."""
    import torch

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    autocast = nullcontext()
    if autocast_dtype is not None:
        autocast = torch.autocast(input_ids.device.type, dtype=getattr(torch, autocast_dtype))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast:
        hidden = model(input_ids=input_ids).last_hidden_state
    del hidden
    return sum(storages.values()) / 2**20


def worker(spec: dict, result_path: str, measure_fn=None):
    """Entry point of a measurement process: writes the result of `measure_fn(spec)` (default `measure`; or its
    failure) as JSON to `result_path`."""
    try:
        result = (measure_fn or measure)(spec)
    except BaseException as error:  # noqa: BLE001 - every failure is a recorded result, not a crash
        result = {
            "status": "oom" if _is_oom(error) else "error",
            "error": f"{type(error).__name__}: {error}"[:2000],
        }
        if result["status"] == "error":
            result["traceback"] = traceback.format_exc()[-4000:]
    with open(result_path, "w") as handle:
        json.dump(result, handle)
