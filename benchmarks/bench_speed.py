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
  modernbert     transformers' ModernBertModel (SDPA) at the same width and depth, its GLU feed-forward 2/3 as wide
                 (`--intermediate_size 3072` -> 2048: BERT's feed-forward parameters), its own attention pattern (a
                 global layer every 3, the others a 128-token sliding window).
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
  int8            CPU, forward only: every Linear in dynamic int8
                  (`ponet_training.inference.quantization.quantize_dynamic_int8`).
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

The full CPU run of results/benchmarks/RESULTS.md (about 25 minutes on an idle 2-core machine):
    python benchmarks/bench_speed.py --device cpu --threads 2 --output_dir results/benchmarks/cpu
"""

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time

import psutil

from speed_measure import (  # beside this script
    MIN_VOCAB_SIZE, MODELS, MODES, PRECISIONS, TRAINING_PRECISIONS, ceiling_precision, unsupported, worker,
)
from speed_report import merge_previous, ratios, write_reports


DEFAULT_MODELS = ("ponet", "floor", "bert", "modernbert", "fnet", "gemm")
DEFAULT_PRECISIONS = {"cpu": ("fp32", "bf16_autocast", "bf16_weights", "int8"), "cuda": ("fp32", "bf16_autocast", "bf16_weights")}
DEFAULT_LENGTHS = (512, 2048, 4096, 8192, 16384)
# model:mode:precision=N, `*` matches anything; a series' cap is the smallest matching one. Chosen so that the default
# CPU run takes about 25 minutes: fp32 and training steps up to 4096 tokens (the issues' targets are at 4096; the
# fp32 forward up to 16384 is in the float32 tables of RESULTS.md), BERT up to 8192 (its attention is quadratic;
# int8 leaves the attention in fp32: 4096), FNet's and the GEMMs' fp32 training steps up to 2048.
DEFAULT_LENGTH_CAPS = (
    "*:train:*=4096", "*:forward:fp32=4096", "bert:*:*=8192", "bert:*:int8=4096", "modernbert:*:*=8192",
    "modernbert:*:int8=4096", "fnet:train:fp32=2048",
    "gemm:train:fp32=2048",
)


# ----------------------------------------------------------------------------------------------------------------
# The driver: one process per measurement, with a memory cap and a time cap
# ----------------------------------------------------------------------------------------------------------------


def _context(preload=()):
    # forkserver: each measurement is a fresh process forked from a server that imported torch once, so small
    # runs do not pay the import for every measurement; falls back to spawn where forkserver does not exist.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([
            "torch", "psutil", "modeling_ponet", "transformers.models.bert.modeling_bert",
            "transformers.models.fnet.modeling_fnet", "transformers.models.modernbert.modeling_modernbert", *preload,
        ])
        return context
    return multiprocessing.get_context("spawn")


def run_one(context, spec: dict, memory_cap_bytes: int | None, time_cap_s: float, measure_fn=None) -> dict:
    """Run `measure_fn(spec)` (default: speed_measure's `measure`) in its own process; a cap or a kill becomes an
    "oom" / "timeout" result."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = os.path.join(tmp, "result.json")
        process = context.Process(target=worker, args=(spec, result_path, measure_fn), daemon=True)
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
    parser.add_argument("--output_dir", default="results/benchmarks/latest")
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
    for line in ratios(report):
        print(line)


if __name__ == "__main__":
    main()
