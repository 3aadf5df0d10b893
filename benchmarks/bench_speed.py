"""Speed and memory of PoNet against BERT (SDPA attention) and FNet, in several precisions, next to the machine's
GEMM-only ceiling.

Every measurement (one model, mode, precision, length and batch size) runs in a fresh process, so that peak memory
is its own and an out-of-memory kill, a memory cap or a time cap is recorded instead of ending the run.

Models (`--models`):
  ponet          PoNetModel with its pooling mixer.
  ponet_compile  the same, under `torch.compile` (default mode; the first call, which compiles, is timed apart).
  floor          PoNet with the pooling removed: each mixer still computes its five projections (one Linear) and
                 returns their sum, so every matrix multiply, LayerNorm, activation, dropout and residual stays.
                 `ponet / floor` is what the pooling itself costs.
  bert           transformers' BertModel, `attn_implementation="sdpa"`.
  fnet           transformers' FNetModel (Fourier mixing).
  gemm           not a network: the matrix multiplies of PoNet's linear layers alone (per layer `[L, h] x [h, 5h]`
                 for the five projections, `[h, h]` for the mixer output, `[h, I]` and `[I, h]` for the feed-forward)
                 as bare GEMMs into preallocated outputs (`train`: also the two GEMMs of each one's backward). Its
                 GFLOP/s is what this machine's GEMMs reach at that precision: the ceiling of a model made of them.
All are bare encoders without pooler, no padding (no attention mask), inputs of random word ids with a `[CLS]`
first and a `[SEP]` every 32 tokens (PoNet's segments are the sentences between them).

Precisions (`--precisions`):
  fp32            float32 weights and activations.
  bf16_autocast   float32 weights under `torch.autocast(device, torch.bfloat16)`, as Accelerate's
                  `--mixed_precision bf16` runs a model.
  bf16_weights    the model cast to bfloat16 (`model.to(torch.bfloat16)`): an inference format.
  fp16_autocast, fp16_weights   the same with float16 (for CUDA).
  int8            CPU, forward only: every Linear in dynamic int8 (`quantization.quantize_dynamic_int8`).
Training steps run in fp32 and the autocast precisions (the weights stay float32, as in mixed-precision training).
Combinations that cannot run are recorded as "n/a" with the reason (FNet's `torch.fft` has no bfloat16 CPU kernel).

Modes (`--modes`):
  forward  inference: `eval()`, `torch.no_grad()`.
  train    a training step without the optimizer: `train()` (dropout on), forward, loss = mean square of the
           last hidden state, `loss.backward()`; gradients are set to None before each step. The optimizer step
           is left out: it costs the same for every model and does not depend on the length.

Timing: `--warmup` untimed calls, then up to `--repeats` timed calls, fewer once the timed calls have taken
`--measure_budget_s` (at least one); the median is reported (CUDA: CUDA events). GFLOP/s counts the dense layers'
matrix multiplies (BERT: also its attention products; FNet's Fourier transforms are not counted), three times
the forward's for a training step. Peak memory: CUDA: `torch.cuda.max_memory_allocated()` minus what was allocated
before the first call (model, inputs). CPU: the process's peak resident set (`ru_maxrss`) minus its resident set
before the first call; both include the gradients in `train` mode. `train` also records the exact activation memory
autograd keeps for the backward ("saved", via saved-tensor hooks).

Lengths: `--length_caps` limits the lengths of some (model, mode, precision) series, so that a full run stays
bounded; once a measurement runs out of memory or time, the longer lengths of its series are skipped.

Writes `<output_dir>/results.json`, `results.md` (times, ratios, tokens/s, GFLOP/s, memory and the issues'
targets) and one log-log plot per device and batch size, `speed_<device>_b<batch>.png`.

The full CPU run of benchmarks/RESULTS.md (about 25 minutes on an idle 2-core machine):
    python benchmarks/bench_speed.py --device cpu --threads 2 --output_dir benchmarks/results_cpu
"""

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
import traceback
from contextlib import nullcontext

import psutil

from quantization import quantize_dynamic_int8  # benchmarks/quantization.py, beside this script


MODELS = ("ponet", "ponet_compile", "floor", "bert", "fnet", "gemm")
DEFAULT_MODELS = ("ponet", "floor", "bert", "fnet", "gemm")
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
DEFAULT_PRECISIONS = {"cpu": ("fp32", "bf16_autocast", "bf16_weights", "int8"), "cuda": ("fp32", "bf16_autocast", "bf16_weights")}
TRAINING_PRECISIONS = ("fp32", "bf16_autocast", "fp16_autocast")
DEFAULT_LENGTHS = (512, 2048, 4096, 8192, 16384)
# model:mode:precision=N, `*` matches anything; a series' cap is the smallest matching one. Chosen so that the default
# CPU run takes about 25 minutes: fp32 and training steps up to 4096 tokens (the issues' targets are at 4096; the
# fp32 forward up to 16384 is in the float32 tables of RESULTS.md), BERT up to 8192 (its attention is quadratic;
# int8 leaves the attention in fp32: 4096), FNet's and the GEMMs' fp32 training steps up to 2048.
DEFAULT_LENGTH_CAPS = (
    "*:train:*=4096", "*:forward:fp32=4096", "bert:*:*=8192", "bert:*:int8=4096", "fnet:train:fp32=2048",
    "gemm:train:fp32=2048",
)
LABELS = {
    "ponet": "PoNet",
    "ponet_compile": "PoNet (compiled)",
    "floor": "floor (no pooling)",
    "bert": "BERT-SDPA",
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
    else:  # fnet: the feed-forward only
        per_token = 2 * (2 * h * inter)
    forward = spec["num_layers"] * batch * length * per_token
    return 3 * forward if spec["mode"] == "train" else forward


# ----------------------------------------------------------------------------------------------------------------
# What runs inside one measurement process
# ----------------------------------------------------------------------------------------------------------------


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
    """PoNet's linear layers as bare GEMMs (see the module docstring), at one precision."""

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
        "status": "ok",
        "time_ms": median * 1000.0,
        "time_ms_min": min(times) * 1000.0,
        "times_ms": [t * 1000.0 for t in times],
        "first_call_s": first_call_s,
        "tokens_per_s": spec["batch_size"] * spec["length"] / median,
        "gflop_per_s": dense_flops(spec) / median / 1e9,
        "peak_memory_mb": peak_delta / 2**20,
        "peak_process_memory_mb": peak_total / 2**20,
        "saved_activations_mb": saved_mb,
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


def _worker(spec: dict, result_path: str):
    """Entry point of a measurement process: writes its result (or its failure) as JSON to `result_path`."""
    try:
        result = measure(spec)
    except BaseException as error:  # noqa: BLE001 - every failure is a recorded result, not a crash
        result = {
            "status": "oom" if _is_oom(error) else "error",
            "error": f"{type(error).__name__}: {error}"[:2000],
        }
        if result["status"] == "error":
            result["traceback"] = traceback.format_exc()[-4000:]
    with open(result_path, "w") as handle:
        json.dump(result, handle)


# ----------------------------------------------------------------------------------------------------------------
# The driver: one process per measurement, with a memory cap and a time cap
# ----------------------------------------------------------------------------------------------------------------


def _context():
    # forkserver: each measurement is a fresh process forked from a server that imported torch once, so small
    # runs do not pay the import for every measurement; falls back to spawn where forkserver does not exist.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([
            "torch", "psutil", "modeling_ponet", "transformers.models.bert.modeling_bert",
            "transformers.models.fnet.modeling_fnet",
        ])
        return context
    return multiprocessing.get_context("spawn")


def run_one(context, spec: dict, memory_cap_bytes: int | None, time_cap_s: float) -> dict:
    """Run `measure(spec)` in its own process; a cap or a kill becomes an "oom" / "timeout" result."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "result.json")
        process = context.Process(target=_worker, args=(spec, result_path), daemon=True)
        begin = time.monotonic()
        process.start()
        watched = psutil.Process(process.pid)
        peak_rss = 0
        killed_for = None
        while process.is_alive():
            try:  # sample before waiting: a short measurement may end within the first wait
                rss = watched.memory_info().rss
            except psutil.Error:
                break
            peak_rss = max(peak_rss, rss)
            if memory_cap_bytes and rss > memory_cap_bytes:
                killed_for = "oom"
            elif time.monotonic() - begin > time_cap_s:
                killed_for = "timeout"
            if killed_for:
                process.kill()
                process.join()
                break
            process.join(0.05)
        process.join()
        wall_s = time.monotonic() - begin
        if killed_for == "oom":
            return {"status": "oom", "error": f"resident memory passed the cap of {memory_cap_bytes / 2**30:.2f} GiB"}
        if killed_for == "timeout":
            return {"status": "timeout", "error": f"still running after the time cap of {time_cap_s:.0f} s"}
        if os.path.exists(result_path):
            with open(result_path) as handle:
                result = json.load(handle)
            result["wall_s"] = wall_s
            return result
        if process.exitcode is not None and process.exitcode < 0:
            # killed by a signal without writing a result: on Linux almost always the kernel's OOM killer
            return {"status": "oom", "error": f"killed by signal {-process.exitcode} (the system's OOM killer?)"}
        return {"status": "error", "error": f"exited with code {process.exitcode} and no result"}


def machine_info(device: str, threads: int) -> dict:
    import torch
    import transformers

    cpu, flags = None, set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu or platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "cpu_low_precision": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"}),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "threads": threads,
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def length_cap(caps: list[tuple[str, str, str, int]], model: str, mode: str, precision: str) -> int | None:
    """The smallest cap whose pattern matches (model, mode, precision), or None."""
    matching = [
        limit for m, o, p, limit in caps
        if m in ("*", model) and o in ("*", mode) and p in ("*", precision)
    ]
    return min(matching) if matching else None


def plan(args, device: str) -> list[tuple[dict, str | None]]:
    """The measurements of a run in order, each with None (to measure) or the reason it is not applicable."""
    planned = []
    for batch_size in args.batch_sizes:
        for mode in args.modes:
            for precision in args.precisions:
                if mode == "train" and precision not in TRAINING_PRECISIONS:
                    continue  # inference formats (see the module docstring)
                for length in args.lengths:
                    for model in args.models:
                        run_precision = ceiling_precision(precision) if model == "gemm" else precision
                        if model == "gemm" and any(
                            s["model"] == "gemm" and s["mode"] == mode and s["precision"] == run_precision
                            and s["length"] == length and s["batch_size"] == batch_size for s, _ in planned
                        ):
                            continue  # one ceiling per hardware precision
                        cap = length_cap(args.length_caps, model, mode, precision)
                        if cap is not None and length > cap:
                            continue
                        spec = dict(
                            model=model, mode=mode, precision=run_precision, length=length, batch_size=batch_size,
                            device=device, threads=args.threads, hidden_size=args.hidden_size,
                            num_layers=args.num_layers, num_heads=args.num_heads,
                            intermediate_size=args.intermediate_size, vocab_size=args.vocab_size,
                            warmup=args.warmup, repeats=args.repeats, measure_budget_s=args.measure_budget_s,
                            simulate_oom=f"{model}:{length}" in args.simulate_oom or model in args.simulate_oom,
                        )
                        planned.append((spec, unsupported(model, run_precision, device.split(":")[0])))
    return planned


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but torch sees no CUDA device")
    return device


def run_all(args) -> dict:
    import torch

    device = resolve_device(args.device)
    args.threads = args.threads or torch.get_num_threads()
    memory_cap = int(args.memory_cap_gb * 2**30) if args.memory_cap_gb and not device.startswith("cuda") else None
    settings = {
        "device": device,
        "threads": args.threads,
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "num_heads": args.num_heads,
        "intermediate_size": args.intermediate_size,
        "vocab_size": args.vocab_size,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "measure_budget_s": args.measure_budget_s,
        "memory_cap_gb": args.memory_cap_gb if memory_cap else None,
        "time_cap_s": args.time_cap_s,
        "length_caps": [f"{m}:{o}:{p}={n}" for m, o, p, n in args.length_caps],
        "train_step": "forward + loss.backward() (mean square of the last hidden state), no optimizer step",
        "cpu_peak_memory": "ru_maxrss minus the resident set before the first call",
        "gpu_peak_memory": "torch.cuda.max_memory_allocated minus the allocation before the first call",
    }
    context = _context()
    results = []
    failed_at = {}  # (model, mode, precision, batch) -> the length that failed: longer ones are skipped
    began = time.monotonic()
    for spec, reason in plan(args, device):
        key = (spec["model"], spec["mode"], spec["precision"], spec["batch_size"])
        if reason:
            outcome = {"status": "n/a", "error": reason}
        elif key in failed_at:
            outcome = {"status": "skipped", "error": f"failed at the shorter length {failed_at[key]}"}
        else:
            outcome = run_one(context, spec, memory_cap, args.time_cap_s)
            if outcome["status"] in ("oom", "timeout"):
                failed_at[key] = spec["length"]
        record = {k: spec[k] for k in ("model", "mode", "precision", "length", "batch_size", "device")}
        record.update(outcome)
        results.append(record)
        print(_progress_line(record), flush=True)
    settings["run_minutes"] = round((time.monotonic() - began) / 60, 1)
    return {"machine": machine_info(device, args.threads), "settings": settings, "results": results}


def _progress_line(r: dict) -> str:
    head = (f"{r['device']} {r['mode']:7s} {r['precision']:13s} b={r['batch_size']} L={r['length']:6d} "
            f"{r['model']:14s}")
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r.get('error', '')}"
    return (
        f"{head} {r['time_ms']:10.1f} ms  {r['tokens_per_s']:10.0f} tok/s  {r['gflop_per_s']:6.0f} GFLOP/s"
        f"  peak {r['peak_memory_mb']:8.0f} MiB  (first call {r['first_call_s']:.1f} s)"
    )


# ----------------------------------------------------------------------------------------------------------------
# Reports: markdown and plot
# ----------------------------------------------------------------------------------------------------------------


def _key(result: dict) -> tuple:
    return (result["model"], result["mode"], result["precision"], result["length"], result["batch_size"])


def _index(report: dict) -> dict:
    return {_key(r): r for r in report["results"]}


def _lookup(table: dict, model: str, mode: str, precision: str, length: int, batch: int) -> dict | None:
    if model == "gemm":
        precision = ceiling_precision(precision)
    return table.get((model, mode, precision, length, batch))


def _ok(result: dict | None) -> bool:
    return bool(result) and result["status"] == "ok"


def _cell(result: dict | None, field: str, fmt: str) -> str:
    if result is None:
        return "-"
    if result["status"] != "ok":
        return {"skipped": "skip", "n/a": "n/a"}.get(result["status"], result["status"].upper())
    return format(result[field], fmt) if result.get(field) is not None else "-"


def _ratio(numerator: dict | None, denominator: dict | None, field: str = "time_ms") -> str:
    if not _ok(numerator) or not _ok(denominator):
        return "-"
    return f"{numerator[field] / denominator[field]:.2f}x"


def _best(table: dict, model: str, mode: str, length: int, precisions) -> tuple[str, dict] | None:
    """The fastest measured precision of `model` among `precisions`: (precision, result)."""
    found = [(p, _lookup(table, model, mode, p, length, 1)) for p in precisions]
    found = [(p, r) for p, r in found if _ok(r)]
    return min(found, key=lambda item: item[1]["time_ms"]) if found else None


def checks(report: dict) -> list[str]:
    """The issues' "Done when" figures, where the run holds them (batch 1)."""
    table = _index(report)
    lines = []
    at = FOCUS_LENGTH

    def get(model, mode, precision, length=at):
        return _lookup(table, model, mode, precision, length, 1)

    def verdict(ok: bool) -> str:
        return "meets" if ok else "misses"

    # Issue 13: bf16 and int8 on CPU.
    ponet32 = get("ponet", "forward", "fp32")
    for precision in ("bf16_autocast", "bf16_weights"):
        ponet16, floor16 = get("ponet", "forward", precision), get("floor", "forward", precision)
        label = PRECISION_LABELS[precision]
        if _ok(ponet16) and _ok(ponet32):
            speedup = ponet32["time_ms"] / ponet16["time_ms"]
            lines.append(f"PoNet forward at {at}, {label} vs fp32: {speedup:.2f}x faster ({verdict(speedup >= 3)} >= 3x)")
        if _ok(ponet16) and _ok(floor16):
            ratio = ponet16["time_ms"] / floor16["time_ms"]
            lines.append(f"PoNet / floor forward at {at}, {label}: {ratio:.2f} ({verdict(ratio <= 1.3)} <= 1.3)")
    train32, train16 = get("ponet", "train", "fp32"), get("ponet", "train", "bf16_autocast")
    if _ok(train32) and _ok(train16):
        speedup = train32["time_ms"] / train16["time_ms"]
        lines.append(f"PoNet training step at {at}, bf16 autocast vs fp32: {speedup:.2f}x faster ({verdict(speedup >= 2)} >= 2x)")
    float_precisions = ("fp32", "bf16_autocast", "bf16_weights", "fp16_autocast", "fp16_weights")
    ponet_best = _best(table, "ponet", "forward", at, ("bf16_autocast", "bf16_weights"))
    for peer, target in (("bert", 4.0), ("fnet", 1.0)):
        peer_best = _best(table, peer, "forward", at, float_precisions)
        if ponet_best and peer_best:
            speedup = peer_best[1]["time_ms"] / ponet_best[1]["time_ms"]
            goal = ">= 4x" if target > 1 else "> 1x"
            ok = speedup >= target if target > 1 else speedup > 1
            lines.append(
                f"{LABELS[peer]} at its best ({PRECISION_LABELS[peer_best[0]]}) / PoNet bf16 "
                f"({PRECISION_LABELS[ponet_best[0]]}), forward at {at}: {speedup:.2f}x ({verdict(ok)} {goal})"
            )
    ponet8 = get("ponet", "forward", "int8")
    if _ok(ponet8):
        text = f"PoNet int8 dynamic forward at {at}: {ponet8['time_ms']:.0f} ms"
        if _ok(ponet32):
            text += f", {ponet32['time_ms'] / ponet8['time_ms']:.2f}x faster than fp32"
        if ponet_best:
            text += f", {ponet_best[1]['time_ms'] / ponet8['time_ms']:.2f}x the speed of bf16 ({PRECISION_LABELS[ponet_best[0]]})"
        lines.append(text)
    for precision in PRECISIONS:
        for mode in MODES:
            ponet, ceiling = get("ponet", mode, precision), get("gemm", mode, precision)
            if _ok(ponet) and _ok(ceiling):
                lines.append(
                    f"PoNet / GEMM-only ceiling, {mode} at {at}, {PRECISION_LABELS[precision]}: "
                    f"{ponet['time_ms'] / ceiling['time_ms']:.2f} (GEMMs alone reach {ceiling['gflop_per_s']:.0f} GFLOP/s, "
                    f"PoNet's dense layers {ponet['gflop_per_s']:.0f})"
                )
    # The earlier float32 targets (PoNet's pooling is free next to its GEMMs; faster than BERT on long inputs).
    for mode, bound in (("forward", 1.10), ("train", 1.20)):
        ponet, floor = get("ponet", mode, "fp32"), get("floor", mode, "fp32")
        if _ok(ponet) and _ok(floor):
            ratio = ponet["time_ms"] / floor["time_ms"]
            lines.append(f"PoNet / floor, {mode}, fp32, {at} tokens: {ratio:.3f} ({verdict(ratio <= bound)} <= {bound:.2f})")
    lengths = sorted({r["length"] for r in report["results"]})
    for length in [n for n in lengths if n >= 2048]:
        ponet, bert = get("ponet", "forward", "fp32", length), get("bert", "forward", "fp32", length)
        if _ok(ponet) and bert:
            if _ok(bert):
                speedup = bert["time_ms"] / ponet["time_ms"]
                target = 2.0 if length >= 8192 else 1.0
                ok = speedup >= 2.0 if target == 2.0 else speedup > 1.0
                lines.append(
                    f"BERT-SDPA / PoNet, forward, fp32, {length} tokens: {speedup:.2f}x "
                    f"({verdict(ok)} the {'>= 2' if target == 2.0 else '> 1'} target)"
                )
            else:
                lines.append(f"BERT-SDPA forward fp32 at {length} tokens: {bert['status'].upper()}, PoNet ran")
    for precision in TRAINING_PRECISIONS:
        ponet, bert = get("ponet", "train", precision), get("bert", "train", precision)
        if ponet and bert:
            texts = [
                f"{r['peak_memory_mb']:.0f} MiB" if _ok(r) else r["status"].upper() for r in (ponet, bert)
            ]
            lines.append(
                f"Training step at {at} tokens, {PRECISION_LABELS[precision]}, peak memory: PoNet {texts[0]}, "
                f"BERT-SDPA {texts[1]}"
            )
    return lines


def _present(report: dict, field: str, order) -> list:
    return [x for x in order if any(r[field] == x for r in report["results"])]


def markdown(report: dict) -> str:
    settings, machine = report["settings"], report["machine"]
    table = _index(report)
    models = _present(report, "model", MODELS)
    networks = [m for m in models if m != "gemm"]
    lengths = sorted({r["length"] for r in report["results"]})
    batches = sorted({r["batch_size"] for r in report["results"]})
    modes = _present(report, "mode", MODES)
    device = settings["device"]
    hardware = machine.get("gpu", machine["cpu"])
    flags = ", ".join(machine.get("cpu_low_precision") or []) or "none listed"
    out = [
        f"## {device.upper()}: {hardware}, {settings['threads']} threads, torch {machine['torch']}",
        "",
        f"Size: hidden {settings['hidden_size']}, {settings['num_layers']} layers, {settings['num_heads']} heads, "
        f"intermediate {settings['intermediate_size']}; median of up to {settings['repeats']} timed calls "
        f"(fewer once they took {settings.get('measure_budget_s', '-')} s) after {settings['warmup']} warm-up "
        f"call(s). `train` = {settings['train_step']}. CPU low-precision features: {flags}. Load average at the "
        f"start: {machine.get('load_average_at_start', '-')}; the run took {settings.get('run_minutes', '-')} min.",
        "",
    ]
    for batch in batches:
        for mode in modes:
            precisions = [p for p in PRECISIONS if any(
                r["precision"] == p and r["mode"] == mode and r["model"] != "gemm" for r in report["results"]
            )]
            measured = sorted({r["length"] for r in report["results"] if r["mode"] == mode and _ok(r)})
            if measured:
                focus = FOCUS_LENGTH if FOCUS_LENGTH in measured else measured[-1]
                out += _summary_table(table, mode, batch, networks, precisions, focus)
            for precision in precisions:
                out += _precision_tables(table, mode, precision, batch, models, lengths)
    compiled = [r for r in report["results"] if r["model"] == "ponet_compile" and r["status"] == "ok"]
    if compiled:
        out.append(
            "Compilation (first call of the compiled model): "
            + ", ".join(f"{r['mode']} {r['precision']} L={r['length']} b={r['batch_size']}: {r['first_call_s']:.0f} s"
                        for r in compiled)
        )
        out.append("")
    failures = [r for r in report["results"] if r["status"] != "ok"]
    if failures:
        out += ["Not measured:", ""]
        out += [
            f"- {LABELS[r['model']]} {r['mode']} {PRECISION_LABELS[r['precision']]} L={r['length']} "
            f"b={r['batch_size']}: {r['status'].upper()} ({r.get('error', '')})"
            for r in failures
        ]
        out.append("")
    check_lines = checks(report)
    if check_lines:
        out += ["### Checks (batch 1)", ""] + [f"- {line}" for line in check_lines] + [""]
    return "\n".join(out)


def _summary_table(table, mode, batch, networks, precisions, length) -> list[str]:
    """Each network at `length` in every precision, and its speed-up over its own fp32."""
    header = ["model"] + [PRECISION_LABELS[p] for p in precisions]
    out = [f"### {mode}, batch {batch}, {length} tokens: time (ms) and speed-up over fp32", ""]
    out += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(precisions)]
    for model in networks + ["gemm"]:
        cells = []
        base = _lookup(table, model, mode, "fp32", length, batch)
        for precision in precisions:
            result = _lookup(table, model, mode, precision, length, batch)
            cell = _cell(result, "time_ms", ".0f")
            if _ok(result) and _ok(base) and precision != "fp32":
                cell += f" ({base['time_ms'] / result['time_ms']:.1f}x)"
            cells.append(cell)
        if any(c != "-" for c in cells):
            out.append("| " + " | ".join([LABELS[model]] + cells) + " |")
    return out + [""]


def _precision_tables(table, mode, precision, batch, models, lengths) -> list[str]:
    def get(model, length):
        return _lookup(table, model, mode, precision, length, batch)

    ratio_columns = [(f"{LABELS[a]} / {LABELS[b]}", a, b) for a, b in (
        ("ponet", "floor"), ("ponet", "gemm"), ("bert", "ponet"), ("fnet", "ponet"), ("ponet", "ponet_compile")
    ) if a in models and b in models]
    label = PRECISION_LABELS[precision]
    rows = [n for n in lengths if any(get(m, n) for m in models if m != "gemm")]
    if not rows:
        return []
    out = [f"#### {mode}, {label}, batch {batch}: time (ms)", ""]
    header = ["length"] + [LABELS[m] for m in models] + [c[0] for c in ratio_columns]
    out += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for length in rows:
        row = [str(length)] + [_cell(get(m, length), "time_ms", ".0f") for m in models]
        row += [_ratio(get(a, length), get(b, length)) for _, a, b in ratio_columns]
        out.append("| " + " | ".join(row) + " |")
    out += ["", f"#### {mode}, {label}, batch {batch}: tokens/s, GFLOP/s of the dense layers, peak MiB", ""]
    saved = [m for m in models if m not in ("ponet_compile", "gemm")] if mode == "train" else []
    header = ["length"] + [f"{LABELS[m]} tok/s" for m in models if m != "gemm"]
    header += [f"{LABELS[m]} GFLOP/s" for m in models]
    header += [f"{LABELS[m]} MiB" for m in models if m != "gemm"] + [f"{LABELS[m]} saved MiB" for m in saved]
    out += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for length in rows:
        row = [str(length)] + [_cell(get(m, length), "tokens_per_s", ".0f") for m in models if m != "gemm"]
        row += [_cell(get(m, length), "gflop_per_s", ".0f") for m in models]
        row += [_cell(get(m, length), "peak_memory_mb", ".0f") for m in models if m != "gemm"]
        row += [_cell(get(m, length), "saved_activations_mb", ".0f") for m in saved]
        out.append("| " + " | ".join(row) + " |")
    return out + [""]


def plot(report: dict, path: str, batch_size: int):
    """Time and peak memory against length, log-log, one column per mode; colour = model, line style = precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if r["batch_size"] == batch_size]
    models = _present(report, "model", MODELS)
    modes = _present(report, "mode", MODES)
    colours = dict(zip(MODELS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    styles = dict(zip(PRECISIONS, ("-", "--", ":", "-.", (0, (1, 4)), (0, (5, 2, 1, 2)))))
    figure, axes = plt.subplots(2, len(modes), figsize=(7 * len(modes), 9), squeeze=False)
    settings = report["settings"]
    for column, mode in enumerate(modes):
        for row, (field, label) in enumerate((("time_ms", "time (ms)"), ("peak_memory_mb", "peak memory (MiB)"))):
            axis = axes[row][column]
            for model in models:
                if model == "gemm" and field == "peak_memory_mb":
                    continue
                for precision in PRECISIONS:
                    series = sorted(
                        (r["length"], r) for r in results
                        if r["model"] == model and r["mode"] == mode and r["precision"] == precision
                    )
                    points = [(n, r[field]) for n, r in series if _ok(r)]
                    if points:
                        xs, ys = zip(*points)
                        axis.plot(xs, ys, marker="o", markersize=3, color=colours[model], linestyle=styles[precision],
                                  label=f"{LABELS[model]}, {PRECISION_LABELS[precision]}")
            failed = sorted({r["length"] for r in results if r["mode"] == mode and r["status"] in ("oom", "timeout")})
            if failed and axis.lines:  # where a model fell over: a cross on the x axis
                axis.plot(failed, [axis.get_ylim()[0]] * len(failed), "x", color="red")
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xlabel("sequence length (tokens)")
            axis.set_ylabel(label)
            axis.set_title(f"{mode}, batch {batch_size}")
            axis.grid(True, which="both", alpha=0.3)
            if axis.lines:
                axis.legend(fontsize=6, ncol=2)
    hardware = report["machine"].get("gpu", report["machine"]["cpu"])
    figure.suptitle(
        f"{settings['device']} ({hardware}, {settings['threads']} threads), "
        f"hidden {settings['hidden_size']} x {settings['num_layers']} layers; colour = model, line = precision"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


# ----------------------------------------------------------------------------------------------------------------
# Appending to an earlier run
# ----------------------------------------------------------------------------------------------------------------

COMPARABLE_SETTINGS = ("device", "threads", "hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size")
_OLD_DTYPES = {"float32": "fp32", "bfloat16": "bf16_weights", "float16": "fp16_weights"}


def _with_precision(previous: dict) -> dict:
    """Records of a results.json written before precisions existed get the precision of its one dtype."""
    precision = _OLD_DTYPES.get(previous["settings"].get("dtype", "float32"), "fp32")
    previous["results"] = [{"precision": precision, **r} for r in previous["results"]]
    return previous


def merge_previous(report: dict, path: str) -> dict:
    """`report` merged into the earlier run in `path`: a measurement of this run replaces the earlier one of the
    same (model, mode, precision, length, batch), except that a failed or skipped one never replaces a successful
    one (the earlier success is kept and said so)."""
    if not os.path.exists(path):
        return report
    with open(path) as handle:
        previous = _with_precision(json.load(handle))
    for field in COMPARABLE_SETTINGS:
        old, new = previous["settings"].get(field), report["settings"].get(field)
        if old is not None and old != new:
            raise SystemExit(f"--append: {path} has {field}={old!r}, this run {new!r}; use another --output_dir")
    merged = {_key(r): r for r in previous["results"]}
    for result in report["results"]:
        earlier = merged.get(_key(result))
        if _ok(earlier) and not _ok(result):
            print(f"--append: kept the earlier successful measurement of {' '.join(map(str, _key(result)))} "
                  f"(this run: {result['status'].upper()})")
            continue
        merged[_key(result)] = result
    return {**report, "results": list(merged.values())}


def write_reports(report: dict, output_dir: str) -> list[str]:
    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, "results.json"), os.path.join(output_dir, "results.md")]
    with open(paths[0], "w") as handle:
        json.dump(report, handle, indent=1)
    with open(paths[1], "w") as handle:
        handle.write(markdown(report))
    device = report["settings"]["device"].split(":")[0]
    for batch in sorted({r["batch_size"] for r in report["results"]}):
        path = os.path.join(output_dir, f"speed_{device}_b{batch}.png")
        plot(report, path, batch)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    bad = [v for v in values if v < 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be a positive integer")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value")
    return values


def _names(allowed, what: str):
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [x for x in names if x not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
        if not names or len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more {what}s, each once")
        return names

    return parse


def _length_caps(text: str) -> list[tuple[str, str, str, int]]:
    caps = []
    for rule in [x.strip() for x in text.split(",") if x.strip()]:
        pattern, _, limit = rule.partition("=")
        parts = pattern.split(":")
        if len(parts) != 3 or not limit.strip().isdigit() or int(limit) < 1:
            raise argparse.ArgumentTypeError(f"{rule!r}: a cap is model:mode:precision=N (* matches any), N > 0")
        for part, allowed, what in zip(parts, (MODELS, MODES, tuple(PRECISIONS)), ("model", "mode", "precision")):
            if part != "*" and part not in allowed:
                raise argparse.ArgumentTypeError(f"{rule!r}: unknown {what} {part!r}; choose from {', '.join(allowed)} or *")
        caps.append((*parts, int(limit)))
    return caps


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_names(MODELS, "model"), default=list(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--modes", type=_names(MODES, "mode"), default=list(MODES), help="forward,train")
    parser.add_argument(
        "--precisions", type=_names(tuple(PRECISIONS), "precision"), default=None,
        help=f"comma-separated, from {', '.join(PRECISIONS)} (default: {','.join(DEFAULT_PRECISIONS['cpu'])} on CPU, "
        f"{','.join(DEFAULT_PRECISIONS['cuda'])} on CUDA)",
    )
    parser.add_argument("--lengths", type=_positive_ints, default=list(DEFAULT_LENGTHS))
    parser.add_argument(
        "--length_caps", type=_length_caps, default=_length_caps(",".join(DEFAULT_LENGTH_CAPS)),
        help=f"model:mode:precision=N rules, * for any (default: {','.join(DEFAULT_LENGTH_CAPS)}; '' for none)",
    )
    parser.add_argument("--batch_sizes", type=_positive_ints, default=[1])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: torch's)")
    parser.add_argument("--hidden_size", type=int, default=768)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=12)
    parser.add_argument("--intermediate_size", type=int, default=3072)
    parser.add_argument("--vocab_size", type=int, default=30522, help=f"at least {MIN_VOCAB_SIZE}")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (the first compiles)")
    parser.add_argument("--repeats", type=int, default=3, help="at most this many timed calls; the median is reported")
    parser.add_argument(
        "--measure_budget_s", type=float, default=10.0,
        help="stop timing a measurement once its timed calls took this long (at least one call is timed)",
    )
    parser.add_argument(
        "--memory_cap_gb", type=float, default=16.0,
        help="CPU only: a measurement whose resident memory passes this is killed and recorded as OOM (0: no cap)",
    )
    parser.add_argument("--time_cap_s", type=float, default=300.0, help="a longer measurement is recorded as timeout")
    parser.add_argument(
        "--simulate_oom", type=lambda s: [x for x in s.split(",") if x], default=[],
        help="models (or model:length) whose measurement raises MemoryError, to exercise the OOM path",
    )
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument(
        "--append", action="store_true",
        help="merge into <output_dir>/results.json (same device, threads and size): a new measurement replaces the "
        "old one, except that a failed one never replaces a successful one",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the measurements the run would make and exit")
    args = parser.parse_args(argv)

    if args.device != "auto" and args.device != "cpu" and not (
        args.device == "cuda" or (args.device.startswith("cuda:") and args.device[5:].isdigit())
    ):
        parser.error(f"--device {args.device!r}: choose cpu, cuda, cuda:N or auto")
    for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "warmup", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.hidden_size % args.num_heads:
        parser.error(f"--hidden_size {args.hidden_size} is not a multiple of --num_heads {args.num_heads}")
    if args.vocab_size < MIN_VOCAB_SIZE:
        parser.error(
            f"--vocab_size {args.vocab_size} is too small: input ids are drawn from 1000..vocab_size-1 (clear of "
            f"[CLS]=101 and [SEP]=102), so it must be at least {MIN_VOCAB_SIZE}"
        )
    if args.measure_budget_s <= 0 or args.time_cap_s <= 0:
        parser.error("--measure_budget_s and --time_cap_s must be positive")
    if args.memory_cap_gb < 0:
        parser.error(f"--memory_cap_gb must be 0 (no cap) or positive, got {args.memory_cap_gb}")
    on_cuda = args.device.startswith("cuda")
    if args.precisions is None:
        args.precisions = list(DEFAULT_PRECISIONS["cuda" if on_cuda else "cpu"])
    elif on_cuda and "int8" in args.precisions:
        parser.error("--precisions int8 runs on CPU only (dynamic int8 quantization has no CUDA kernels)")
    if not any(mode == "forward" or p in TRAINING_PRECISIONS for mode in args.modes for p in args.precisions):
        parser.error(
            f"--modes train runs at {', '.join(TRAINING_PRECISIONS)} only (bf16/fp16 weights and int8 are inference "
            f"formats): add one of them to --precisions or add --modes forward"
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.dry_run:
        planned = plan(args, "cuda" if args.device.startswith("cuda") else "cpu")
        for spec, reason in planned:
            note = f"  n/a: {reason}" if reason else ""
            print(f"{spec['mode']:7s} {spec['precision']:13s} b={spec['batch_size']} L={spec['length']:6d} "
                  f"{spec['model']}{note}")
        print(f"{sum(reason is None for _, reason in planned)} measurements")
        return
    report = run_all(args)
    if args.append:
        report = merge_previous(report, os.path.join(args.output_dir, "results.json"))
    for path in write_reports(report, args.output_dir):
        print(f"wrote {path}")
    for line in checks(report):
        print(line)


if __name__ == "__main__":
    main()
