"""Training throughput: tokens/s and peak memory of a full pretraining optimizer step for PoNet, BERT and ModernBERT.

One step is `zero_grad`, the forward with the model's pretraining labels (under `torch.autocast` for bf16), the
backward and an AdamW step; every measurement (model, precision, length) runs in a fresh process (bench_speed's
driver: a memory cap or a time cap becomes an "oom" / "timeout" entry instead of ending the run).

Models (`--models`), all at the same width and depth (`--hidden_size`, `--num_layers`, `--num_heads`):
  ponet          PoNetForPreTraining, MLM + SSO, `sparse_prediction=True` (the decoder at the masked tokens only).
  ponet_dense    the same with the dense MLM head (the decoder at every token): the published behaviour.
  ponet_compile  `ponet` after `model.compile()` (the first step, which compiles, is reported apart);
                 measured at `--compile_lengths` only.
  floor          `ponet` with the pooling removed (bench_speed's floor: each mixer returns the sum of its five
                 projections): `ponet / floor` is what the pooling costs in a training step.
  bert           transformers' BertForPreTraining (MLM + NSP, SDPA attention): its heads have no sparse option.
  modernbert     transformers' ModernBertForMaskedLM, `sparse_prediction=True`, SDPA; its GLU feed-forward is 2/3
                 of `--intermediate_size` wide (3072 -> 2048: BERT's feed-forward parameters); its own attention
                 pattern (a global layer every 3, the others a 128-token sliding window).
Inputs: bench_speed's synthetic ids (`[CLS]` first, a `[SEP]` every 32 tokens), 15% of the other tokens masked and
labelled, no padding. Each step holds `--tokens_per_step` tokens: batch = tokens_per_step // length (at least 1).

Writes `<output_dir>/results.json`, `results.md` (the machine and its CPU flags, the tables and the ratios:
measurements, no verdicts) and `provenance.json` (`ponet_training.provenance`). The run of results/benchmarks/training_throughput/RESULTS.md:
    python benchmarks/bench_training.py --threads 2
"""

import argparse
import subprocess
import time

from bench_speed import _context, _names, _positive_ints, machine_info, resolve_device, run_one  # beside this script
from speed_report import write_json_and_markdown
from training_measure import TRAIN_LABELS, TRAIN_MODELS, TRAIN_PRECISIONS, measure_training


DEFAULT_MODELS = ("ponet", "ponet_dense", "ponet_compile", "floor", "bert", "modernbert")
PRECISION_LABELS = {"fp32": "fp32", "bf16_autocast": "bf16 autocast"}
# CPU features that decide how fast bf16 runs: native bf16 dot products (AVX512-BF16) and matrix tiles (AMX).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> dict:
    """`lscpu`'s model name and which of CPU_FLAGS the CPU has."""
    model_name, flags = None, set()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model_name = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"lscpu_model_name": model_name, "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS}}


def gemm_probe(threads: int, rows: int = 4096, width: int = 768) -> dict:
    """Milliseconds of one `[rows, width] x [width, width]` matrix multiply in float32 and in bfloat16 (best of 3), on
    the CPU: where the CPU has no bf16 instructions the bf16 GEMM falls back to slow kernels and bf16 autocast
    cannot pay, whatever the model does."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(rows, width).to(dtype), torch.randn(width, width).to(dtype)
        runs = []
        for _ in range(3):
            begin = time.perf_counter()
            torch.mm(a, b)
            runs.append((time.perf_counter() - begin) * 1000)
        times[f"{name}_ms"] = round(min(runs), 2)
    torch.set_num_threads(previous)
    times["bf16_over_fp32"] = round(times["bf16_ms"] / times["fp32_ms"], 2)
    times["shape"] = f"[{rows}, {width}] x [{width}, {width}]"
    return times


def plan(args, device: str) -> list[dict]:
    planned = []
    for precision in args.precisions:
        for length in args.lengths:
            for model in args.models:
                if model == "ponet_compile" and length not in args.compile_lengths:
                    continue
                planned.append(dict(
                    model=model, precision=precision, length=length,
                    batch_size=max(1, args.tokens_per_step // length), device=device, threads=args.threads,
                    hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
                    intermediate_size=args.intermediate_size, vocab_size=args.vocab_size, warmup=args.warmup,
                    repeats=args.repeats, measure_budget_s=args.measure_budget_s,
                ))
    return planned


def run_all(args) -> dict:
    import torch

    device = resolve_device(args.device)
    args.threads = args.threads or torch.get_num_threads()
    memory_cap = int(args.memory_cap_gb * 2**30) if args.memory_cap_gb and device == "cpu" else None
    context = _context(preload=["transformers.models.modernbert.modeling_modernbert"])
    results, failed_at = [], {}
    began = time.monotonic()
    for spec in plan(args, device):
        key = (spec["model"], spec["precision"])
        if key in failed_at:
            outcome = {"status": "skipped", "error": f"failed at the shorter length {failed_at[key]}"}
        else:
            outcome = run_one(context, spec, memory_cap, args.time_cap_s, measure_fn=measure_training)
            if outcome["status"] in ("oom", "timeout"):
                failed_at[key] = spec["length"]
        record = {k: spec[k] for k in ("model", "precision", "length", "batch_size", "device")}
        record.update(outcome)
        results.append(record)
        print(_progress_line(record), flush=True)
    settings = {k: getattr(args, k) for k in ("threads", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                                              "vocab_size", "tokens_per_step", "warmup", "repeats",
                                              "measure_budget_s", "memory_cap_gb", "time_cap_s", "output_dir")}
    settings.update(device=device, run_minutes=round((time.monotonic() - began) / 60, 1),
                    step="zero_grad + forward with labels + backward + AdamW step",
                    peak_memory="CPU: ru_maxrss minus the resident set after building the model (weights, AdamW "
                                "state, activations, gradients); CUDA: max_memory_allocated")
    machine = {**machine_info(device, args.threads), **cpu_description()}
    if device == "cpu":
        machine["gemm_probe"] = gemm_probe(args.threads)
    return {"machine": machine, "settings": settings, "results": results}


def _progress_line(r: dict) -> str:
    head = f"{r['precision']:13s} L={r['length']:5d} b={r['batch_size']:3d} {r['model']:14s}"
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r.get('error', '')}"
    return (f"{head} {r['time_ms']:10.1f} ms  {r['tokens_per_s']:8.0f} tok/s  peak {r['peak_memory_mb']:7.0f} MiB"
            f"  (first step {r['first_call_s']:.1f} s)")


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


# (label, numerator, denominator): time ratios, > 1 where the denominator is faster.
RATIOS = (
    ("dense / sparse head", "ponet_dense", "ponet"),
    ("BERT / PoNet", "bert", "ponet"),
    ("ModernBERT / PoNet", "modernbert", "ponet"),
    ("PoNet / floor", "ponet", "floor"),
    ("PoNet / compiled", "ponet", "ponet_compile"),
)


def _table(report) -> dict:
    return {(r["model"], r["precision"], r["length"]): r for r in report["results"]}


def _ratio(table, a, b, precision, length) -> float | None:
    ra, rb = table.get((a, precision, length)), table.get((b, precision, length))
    if ra and rb and ra["status"] == rb["status"] == "ok":
        return ra["time_ms"] / rb["time_ms"]
    return None


def _cell(record) -> str:
    if record is None:
        return "–"
    if record["status"] != "ok":
        return record["status"].upper()
    return f"{record['time_ms']:.0f} ms, {record['tokens_per_s']:.0f} tok/s, {record['peak_memory_mb']:.0f} MiB"


def ratios(report) -> list[str]:
    """The ratios a reader compares (measurements of one run, on one machine), where the run measured both sides."""
    table = _table(report)
    lines = []

    def ratio(text, value):
        if value is not None:
            lines.append(f"- {text}: {value:.2f}x")

    ratio("PoNet bf16 step at 512, dense head / sparse", _ratio(table, "ponet_dense", "ponet", "bf16_autocast", 512))
    ratio("BERT / PoNet, bf16 step at 512", _ratio(table, "bert", "ponet", "bf16_autocast", 512))
    ratio("ModernBERT / PoNet, bf16 step at 512", _ratio(table, "modernbert", "ponet", "bf16_autocast", 512))
    ratio("ModernBERT / PoNet, bf16 step at 4096", _ratio(table, "modernbert", "ponet", "bf16_autocast", 4096))
    ratio("PoNet / floor, bf16 step at 4096", _ratio(table, "ponet", "floor", "bf16_autocast", 4096))
    for model in ("ponet", "floor"):
        fp32, bf16 = table.get((model, "fp32", 4096)), table.get((model, "bf16_autocast", 4096))
        if fp32 and bf16 and fp32["status"] == bf16["status"] == "ok":
            ratio(f"{TRAIN_LABELS[model]} at 4096, fp32 / bf16 step", fp32["time_ms"] / bf16["time_ms"])
    ratio("PoNet / floor, fp32 step at 4096", _ratio(table, "ponet", "floor", "fp32", 4096))
    return lines


def markdown(report) -> str:
    machine, settings, table = report["machine"], report["settings"], _table(report)
    models = [m for m in TRAIN_MODELS if any(r["model"] == m for r in report["results"])]
    lengths = sorted({r["length"] for r in report["results"]})
    flags = ", ".join(f"{f} {'yes' if has else 'no'}" for f, has in machine["cpu_flags"].items())
    out = [
        "# Training throughput: one pretraining optimizer step", "",
        f"Machine: {machine.get('lscpu_model_name') or machine['cpu']}, {machine['cpu_count']} CPUs, "
        f"{machine['ram_gb']} GB; CPU flags: {flags}. torch {machine['torch']}, transformers "
        f"{machine['transformers']}; {settings['threads']} threads, load average at start "
        f"{machine['load_average_at_start']}.", "",
        f"Size: hidden {settings['hidden_size']}, {settings['num_layers']} layers, {settings['num_heads']} heads, "
        f"intermediate {settings['intermediate_size']} (ModernBERT: its GLU at 2/3 of it); vocabulary "
        f"{settings['vocab_size']}; {settings['tokens_per_step']} tokens per step. Step: {settings['step']}; median "
        f"of up to {settings['repeats']} steps after {settings['warmup']} untimed. Peak memory: "
        f"{settings['peak_memory']}. Run: {settings['run_minutes']} minutes.", "",
    ]
    probe = machine.get("gemm_probe")
    if probe:
        out += [f"GEMM probe ({probe['shape']}, {settings['threads']} threads): fp32 {probe['fp32_ms']:.1f} ms, bf16 "
                f"{probe['bf16_ms']:.1f} ms: bf16 / fp32 = {probe['bf16_over_fp32']:.2f}x"
                + (" (bf16 slower than fp32: this CPU has no fast bf16 GEMM, so bf16 autocast cannot pay here)"
                   if probe["bf16_over_fp32"] > 1 else "") + ".", ""]
    for precision in PRECISION_LABELS:
        if not any(r["precision"] == precision for r in report["results"]):
            continue
        out += [f"## {PRECISION_LABELS[precision]}", "",
                "| length x batch | " + " | ".join(TRAIN_LABELS[m] for m in models) + " |",
                "|---|" + "---:|" * len(models)]
        for length in lengths:
            batch = next((r["batch_size"] for r in report["results"] if r["length"] == length), "?")
            out.append(f"| {length} x {batch} | " + " | ".join(_cell(table.get((m, precision, length)))
                                                          for m in models) + " |")
        ratios = [(label, a, b) for label, a, b in RATIOS if a in models and b in models]
        if ratios:
            out += ["", "Step-time ratios (> 1: the second is faster):", "",
                    "| length | " + " | ".join(label for label, _, _ in ratios) + " |", "|---|" + "---:|" * len(ratios)]
            for length in lengths:
                cells = [_ratio(table, a, b, precision, length) for _, a, b in ratios]
                out.append(f"| {length} | " + " | ".join("–" if c is None else f"{c:.2f}x" for c in cells) + " |")
        out.append("")
    if all(p in PRECISION_LABELS and any(r["precision"] == p for r in report["results"]) for p in PRECISION_LABELS):
        out += ["## bf16 autocast speed-up over fp32 (fp32 step time / bf16 step time)", "",
                "| length | " + " | ".join(TRAIN_LABELS[m] for m in models) + " |", "|---|" + "---:|" * len(models)]
        for length in lengths:
            cells = []
            for m in models:
                fp32, bf16 = table.get((m, "fp32", length)), table.get((m, "bf16_autocast", length))
                ok = fp32 and bf16 and fp32["status"] == bf16["status"] == "ok"
                cells.append(f"{fp32['time_ms'] / bf16['time_ms']:.2f}x" if ok else "–")
            out.append(f"| {length} | " + " | ".join(cells) + " |")
        out.append("")
    compiled = [r for r in report["results"] if r["model"] == "ponet_compile" and r["status"] == "ok"]
    if compiled:
        out += ["First step of the compiled model (compilation included): " + ", ".join(
            f"{PRECISION_LABELS[r['precision']]} at {r['length']}: {r['first_call_s']:.0f} s" for r in compiled), ""]
    lines = ratios(report)
    if lines:
        out += ["## Ratios", ""] + lines + [""]
    failed = [r for r in report["results"] if r["status"] != "ok"]
    if failed:
        out += ["## Not measured", ""] + [
            f"- {TRAIN_LABELS[r['model']]} {PRECISION_LABELS[r['precision']]} at {r['length']}: {r['status']} "
            f"({r.get('error', '')[:200]})" for r in failed] + [""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_names(TRAIN_MODELS, "model"), default=list(DEFAULT_MODELS))
    parser.add_argument("--precisions", type=_names(TRAIN_PRECISIONS, "precision"), default=list(TRAIN_PRECISIONS))
    parser.add_argument("--lengths", type=_positive_ints, default=[128, 512, 4096])
    parser.add_argument("--compile_lengths", type=_positive_ints, default=[512],
                        help="the lengths ponet_compile is measured at (compiling takes minutes per shape)")
    parser.add_argument("--tokens_per_step", type=int, default=4096, help="batch = this // length (at least 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: torch's)")
    parser.add_argument("--hidden_size", type=int, default=768)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=12)
    parser.add_argument("--intermediate_size", type=int, default=3072)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps (the first allocates AdamW's state)")
    parser.add_argument("--repeats", type=int, default=3, help="at most this many timed steps; the median is reported")
    parser.add_argument("--measure_budget_s", type=float, default=30.0,
                        help="stop timing once the timed steps took this long (at least one step is timed)")
    parser.add_argument("--memory_cap_gb", type=float, default=12.0,
                        help="CPU: a measurement whose resident memory passes this is killed and recorded as OOM")
    parser.add_argument("--time_cap_s", type=float, default=600.0)
    parser.add_argument("--output_dir", default="results/benchmarks/training_throughput")
    args = parser.parse_args(argv)
    for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "warmup", "repeats",
                 "tokens_per_step"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.hidden_size % args.num_heads:
        parser.error(f"--hidden_size {args.hidden_size} is not a multiple of --num_heads {args.num_heads}")
    if args.vocab_size < 1001:
        parser.error(f"--vocab_size {args.vocab_size}: input ids are drawn from 1000..vocab_size-1, give at least 1001")
    if args.memory_cap_gb < 0 or args.measure_budget_s <= 0 or args.time_cap_s <= 0:
        parser.error("--memory_cap_gb must be >= 0, --measure_budget_s and --time_cap_s positive")
    return args


def main(argv=None):
    report = run_all(parse_args(argv))
    written = write_json_and_markdown(report, report["settings"]["output_dir"], markdown(report))
    print("\n".join([f"wrote {path}" for path in written] + ratios(report)))


if __name__ == "__main__":
    main()
