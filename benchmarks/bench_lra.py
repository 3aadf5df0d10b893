"""Training speed and memory at the Long Range Arena width: the PoNet paper's Table 2 setting, on this machine.

The model is `ponet_training`'s LRA encoder shell at the published LRA Text setting (2 pre-LayerNorm layers, hidden
64, 2 heads, feed-forward 128, mean-pool head; PoNet's segment blocks of 2 tokens) with each mixer:
  ponet    the package's `PoNetPoolingMixer` (GA, SMP over the fixed blocks, LMP, PF).
  floor    the same shell with the pooling removed: each mixer sums its five projections (one Linear);
           `ponet / floor` is what the pooling costs in a training step.
  softmax  multi-head softmax attention (`scaled_dot_product_attention`, attention dropout 0.1).
  fnet     the real part of a 2-D FFT (no parameters).
One step is `zero_grad`, the forward with labels (under autocast for `--precision bf16_autocast` /
`fp16_autocast`), the backward and the published AdamW step; inputs are random byte ids filling the length, batch
`--batch_size` (the published 32). Every measurement runs in its own process with a memory cap (CPU) and a time
cap (bench_speed's driver). A model that runs out of memory is retried at half the batch, down to
`--min_batch_size`, and every other model is then measured at that batch too, so that each ratio compares two
models at one batch; a model that fails at every batch is skipped at the longer lengths.

Writes `<output_dir>/results.json`, `results.md` (steps/s, peak memory and the ratios of the measurements beside
the paper's GPU Table 2: measurements, no verdicts), `lra_speed.png` and `provenance.json`:
    python benchmarks/bench_lra.py --threads 2                    # CPU, fp32, 512 to 16384 tokens
    python benchmarks/bench_lra.py --device cuda                  # a GPU, fp16 autocast as the paper
"""

import argparse
import time

from bench_speed import _context, _names, _positive_ints, machine_info, resolve_device, run_one  # beside this script
from bench_training import cpu_description
from lra_measure import LRA_MODELS, LRA_PRECISIONS, measure_lra_step
from lra_report import markdown, plot, ratios
from speed_report import write_json_and_markdown


DEFAULT_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)


def _spec(args, device: str, model: str, length: int, batch_size: int) -> dict:
    return dict(model=model, length=length, batch_size=batch_size, device=device, threads=args.threads,
                precision=args.precision, warmup=args.warmup, repeats=args.repeats,
                measure_budget_s=args.measure_budget_s)


def _measure(context, args, device, memory_cap, model, length, batch_size, results) -> dict:
    spec = _spec(args, device, model, length, batch_size)
    outcome = run_one(context, spec, memory_cap, args.time_cap_s, measure_fn=measure_lra_step)
    record = {k: spec[k] for k in ("model", "precision", "length", "batch_size", "device")}
    record.update(outcome)
    results.append(record)
    print(_progress_line(record), flush=True)
    return record


def run_all(args) -> dict:
    import torch

    device = resolve_device(args.device)
    args.threads = args.threads or torch.get_num_threads()
    if args.precision is None:
        args.precision = "fp16_autocast" if device.startswith("cuda") else "fp32"
    memory_cap = int(args.memory_cap_gb * 2**30) if args.memory_cap_gb and device == "cpu" else None
    context = _context(preload=["ponet_training.models.lra", "ponet_training.tasks.lra.settings"])
    results, failed = [], set()  # models that failed at every batch: skipped at longer lengths
    began = time.monotonic()
    for length in args.lengths:
        smaller_batches = set()
        for model in args.models:
            if model in failed:
                results.append({"model": model, "precision": args.precision, "length": length,
                                "batch_size": args.batch_size, "device": device, "status": "skipped",
                                "error": "failed at every batch at a shorter length"})
                continue
            batch = args.batch_size
            while True:
                record = _measure(context, args, device, memory_cap, model, length, batch, results)
                if record["status"] != "oom" or batch // 2 < args.min_batch_size:
                    break
                batch //= 2
            if record["status"] != "ok":
                failed.add(model)
            elif batch < args.batch_size:
                smaller_batches.add(batch)
        for batch in sorted(smaller_batches, reverse=True):  # the others at that batch too, for equal-batch ratios
            for model in args.models:
                measured = {(r["model"], r["batch_size"]) for r in results if r["length"] == length}
                if model not in failed and (model, batch) not in measured:
                    _measure(context, args, device, memory_cap, model, length, batch, results)
    settings = {k: getattr(args, k) for k in ("threads", "precision", "batch_size", "min_batch_size", "warmup",
                                              "repeats", "measure_budget_s", "memory_cap_gb", "time_cap_s",
                                              "output_dir")}
    settings.update(device=device, run_minutes=round((time.monotonic() - began) / 60, 1),
                    model="LRA Text (PUBLISHED['text']): 2 pre-LN layers, hidden 64, 2 heads, feed-forward 128, "
                          "PoNet segment blocks of 2 tokens, mean-pool head",
                    step="zero_grad + forward with labels + backward + AdamW step (lr 1e-4, eps 1e-6)",
                    peak_memory="CPU: ru_maxrss minus the resident set after building the model and the batch; "
                                "CUDA: max_memory_allocated minus the allocation before the first step")
    machine = {**machine_info(device, args.threads), **cpu_description()}
    return {"machine": machine, "settings": settings, "results": results}


def _progress_line(r: dict) -> str:
    head = f"{r['precision']:13s} L={r['length']:6d} b={r['batch_size']:3d} {r['model']:8s}"
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r.get('error', '')}"
    return (f"{head} {r['time_ms']:10.1f} ms  {r['steps_per_s']:8.3f} steps/s  peak {r['peak_memory_mb']:8.0f} MiB"
            f"  (first step {r['first_call_s']:.1f} s)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=_names(LRA_MODELS, "model"), default=list(LRA_MODELS))
    parser.add_argument("--lengths", type=_positive_ints, default=list(DEFAULT_LENGTHS))
    parser.add_argument("--batch_size", type=int, default=32, help="the published LRA Text batch")
    parser.add_argument("--min_batch_size", type=int, default=4,
                        help="a model out of memory is retried at half the batch down to this")
    parser.add_argument("--precision", choices=LRA_PRECISIONS, default=None,
                        help="default: fp32 on CPU, fp16_autocast on CUDA (the paper's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per measurement (default: torch's)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps (the first allocates AdamW's state)")
    parser.add_argument("--repeats", type=int, default=5, help="at most this many timed steps; the median is reported")
    parser.add_argument("--measure_budget_s", type=float, default=20.0,
                        help="stop timing once the timed steps took this long (at least one step is timed)")
    parser.add_argument("--memory_cap_gb", type=float, default=16.0,
                        help="CPU: a measurement whose resident memory passes this is killed and recorded as OOM")
    parser.add_argument("--time_cap_s", type=float, default=600.0)
    parser.add_argument("--output_dir", default="results/benchmarks/lra_text")
    args = parser.parse_args(argv)
    for name in ("batch_size", "min_batch_size", "warmup", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.min_batch_size > args.batch_size:
        parser.error(f"--min_batch_size {args.min_batch_size} is above --batch_size {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.memory_cap_gb < 0 or args.measure_budget_s <= 0 or args.time_cap_s <= 0:
        parser.error("--memory_cap_gb must be >= 0, --measure_budget_s and --time_cap_s positive")
    return args


def main(argv=None):
    report = run_all(parse_args(argv))
    output_dir = report["settings"]["output_dir"]
    written = write_json_and_markdown(report, output_dir, markdown(report))
    written.append(plot(report, output_dir))
    print("\n".join([f"wrote {path}" for path in written] + ratios(report)))


if __name__ == "__main__":
    main()
