"""Speed and memory of PoNet against BERT (SDPA attention) and FNet, at the same width and depth.

Every measurement (one model, one mode, one length, one batch size) runs in a fresh process, so that peak
memory is its own and an out-of-memory kill, a memory cap or a time cap is recorded instead of ending the run.

Models (`--models`):
  ponet          PoNetModel with its pooling mixer.
  ponet_compile  the same, under `torch.compile` (default mode; the first call, which compiles, is timed apart).
  floor          PoNet with the pooling removed: each mixer still computes its five projections (one GEMM) and
                 returns their sum, so every matrix multiply, LayerNorm, activation, dropout and residual stays.
                 `ponet / floor` is what the pooling itself costs.
  bert           transformers' BertModel, `attn_implementation="sdpa"`.
  fnet           transformers' FNetModel (Fourier mixing).
All are bare encoders without pooler, no padding (no attention mask), inputs of random word ids with a `[CLS]`
first and a `[SEP]` every 32 tokens (PoNet's segments are the sentences between them).

Modes (`--modes`):
  forward  inference: `eval()`, `torch.no_grad()`.
  train    a training step without the optimizer: `train()` (dropout on), forward, loss = mean square of the
           last hidden state, `loss.backward()`; gradients are set to None before each step. The optimizer step
           is left out: it costs the same for every model and does not depend on the length.

Timing: `--warmup` untimed calls, then `--repeats` timed calls; the median is reported (CUDA: CUDA events).
Peak memory: CUDA: `torch.cuda.max_memory_allocated()` minus what was allocated before the first call (model,
inputs). CPU: the process's peak resident set (`resource.getrusage(...).ru_maxrss`) minus its resident set
before the first call; both include the gradients in `train` mode. CPU figures depend on the allocator; `train`
also records the exact activation memory autograd keeps for the backward ("saved", via saved-tensor hooks).

Writes `<output_dir>/results.json`, `results.md` (times, tokens/s, ratios, memory, and the issue's checks) and
one log-log plot per device and batch size, `speed_<device>_b<batch>.png` (the reports: `speed_report.py`).

Example (the figures in benchmarks/RESULTS.md):
    python benchmarks/bench_speed.py --device cpu --threads 2 --batch_sizes 1 \
        --lengths 512,1024,2048,4096,8192,16384 --output_dir benchmarks/results_cpu
"""

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
import traceback

import psutil

from speed_report import MODELS, MODES, checks, merge_previous, write_reports


SEP_EVERY = 32  # a sentence boundary every 32 tokens in the synthetic inputs


# ----------------------------------------------------------------------------------------------------------------
# What runs inside one measurement process
# ----------------------------------------------------------------------------------------------------------------


def _floor_mixer_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class FloorMixer(nn.Module):
        """PoNet's mixer without pooling: the five projections in one GEMM, summed. Shares the mixer's parameters."""

        def __init__(self, mixer):
            super().__init__()
            self.layers = nn.ModuleList(
                [mixer.dense_q, mixer.dense_k, mixer.dense_o, mixer.dense_segment, mixer.dense_local]
            )

        def forward(self, hidden_states, mixer_inputs):
            weight = torch.cat([layer.weight for layer in self.layers])
            bias = torch.cat([layer.bias for layer in self.layers])
            projected = F.linear(hidden_states, weight, bias)
            return projected.unflatten(-1, (5, -1)).sum(dim=-2), None

    return FloorMixer


def build_model(spec: dict):
    """The bare encoder named by `spec["model"]`, at the width/depth of `spec`, position table = length."""
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
            floor_mixer = _floor_mixer_class()
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
    model = model.to(device=spec["device"], dtype=getattr(torch, spec["dtype"]))
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


def _is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "can't allocate memory" in text or "defaultcpuallocator" in text


def measure(spec: dict) -> dict:
    """Time one (model, mode, length, batch) and record its peak memory. Returns a result dict."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    cuda = spec["device"].startswith("cuda")
    if spec.get("simulate_oom"):
        raise MemoryError("simulated out-of-memory (--simulate_oom)")
    model = build_model(spec)
    input_ids = make_input_ids(spec)
    train = spec["mode"] == "train"
    model.train(train)

    def step():
        if train:
            model.zero_grad(set_to_none=True)
            hidden = model(input_ids=input_ids).last_hidden_state
            hidden.float().square().mean().backward()
        else:
            with torch.no_grad():
                model(input_ids=input_ids)

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
    saved_mb = saved_activations_mb(model, input_ids) if train and spec["model"] != "ponet_compile" else None
    for _ in range(max(0, spec["warmup"] - 1)):
        timed()
    times = [timed() for _ in range(spec["repeats"])]

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
        "peak_memory_mb": peak_delta / 2**20,
        "peak_process_memory_mb": peak_total / 2**20,
        "saved_activations_mb": saved_mb,
    }


def saved_activations_mb(model, input_ids) -> float:
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

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
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

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def run_all(args) -> dict:
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but torch sees no CUDA device")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    threads = args.threads or torch.get_num_threads()
    memory_cap = int(args.memory_cap_gb * 2**30) if args.memory_cap_gb and not device.startswith("cuda") else None
    settings = {
        "device": device,
        "dtype": dtype,
        "threads": threads,
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "num_heads": args.num_heads,
        "intermediate_size": args.intermediate_size,
        "vocab_size": args.vocab_size,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "memory_cap_gb": args.memory_cap_gb if memory_cap else None,
        "time_cap_s": args.time_cap_s,
        "train_step": "forward + loss.backward() (mean square of the last hidden state), no optimizer step",
        "cpu_peak_memory": "ru_maxrss minus the resident set before the first call",
        "gpu_peak_memory": "torch.cuda.max_memory_allocated minus the allocation before the first call",
    }
    context = _context()
    results = []
    failed_at = {}  # (model, mode, batch) -> the length that failed: longer ones are skipped
    for batch_size in args.batch_sizes:
        for mode in args.modes:
            for length in args.lengths:
                for model in args.models:
                    spec = dict(
                        model=model, mode=mode, length=length, batch_size=batch_size, device=device, dtype=dtype,
                        threads=threads, hidden_size=args.hidden_size, num_layers=args.num_layers,
                        num_heads=args.num_heads, intermediate_size=args.intermediate_size,
                        vocab_size=args.vocab_size, warmup=args.warmup, repeats=args.repeats,
                        simulate_oom=f"{model}:{length}" in args.simulate_oom or model in args.simulate_oom,
                    )
                    key = (model, mode, batch_size)
                    if key in failed_at:
                        outcome = {"status": "skipped", "error": f"failed at the shorter length {failed_at[key]}"}
                    else:
                        outcome = run_one(context, spec, memory_cap, args.time_cap_s)
                        if outcome["status"] in ("oom", "timeout"):
                            failed_at[key] = length
                    record = {k: spec[k] for k in ("model", "mode", "length", "batch_size", "device", "dtype")}
                    record.update(outcome)
                    results.append(record)
                    print(_progress_line(record), flush=True)
    return {"machine": machine_info(device, threads), "settings": settings, "results": results}


def _progress_line(r: dict) -> str:
    head = f"{r['device']} {r['mode']:7s} b={r['batch_size']} L={r['length']:6d} {r['model']:14s}"
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r.get('error', '')}"
    return (
        f"{head} {r['time_ms']:10.1f} ms  {r['tokens_per_s']:10.0f} tok/s  peak {r['peak_memory_mb']:8.0f} MiB"
        f"  (first call {r['first_call_s']:.1f} s)"
    )


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _names(allowed):
    def parse(text: str) -> list[str]:
        names = [x for x in text.split(",") if x]
        unknown = [x for x in names if x not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_names(MODELS), default=list(MODELS), help="comma-separated")
    parser.add_argument("--modes", type=_names(MODES), default=list(MODES), help="forward,train")
    parser.add_argument("--lengths", type=_ints, default=[512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--batch_sizes", type=_ints, default=[1, 4])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: float32 on CPU, bf16 on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: torch's)")
    parser.add_argument("--hidden_size", type=int, default=768)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=12)
    parser.add_argument("--intermediate_size", type=int, default=3072)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (the first compiles)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the median is reported")
    parser.add_argument(
        "--memory_cap_gb", type=float, default=16.0,
        help="CPU only: a measurement whose resident memory passes this is killed and recorded as OOM (0: no cap)",
    )
    parser.add_argument("--time_cap_s", type=float, default=1800.0, help="a longer measurement is recorded as timeout")
    parser.add_argument(
        "--simulate_oom", type=lambda s: [x for x in s.split(",") if x], default=[],
        help="models (or model:length) whose measurement raises MemoryError, to exercise the OOM path",
    )
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument(
        "--append", action="store_true",
        help="merge into <output_dir>/results.json (same device and dtype): new measurements replace old ones",
    )
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.repeats < 1:
        parser.error("--warmup and --repeats must be at least 1")
    if args.hidden_size % args.num_heads:
        parser.error(f"--hidden_size {args.hidden_size} is not a multiple of --num_heads {args.num_heads}")
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run_all(args)
    if args.append:
        report = merge_previous(report, os.path.join(args.output_dir, "results.json"))
    for path in write_reports(report, args.output_dir):
        print(f"wrote {path}")
    for line in checks(report):
        print(line)


if __name__ == "__main__":
    main()
