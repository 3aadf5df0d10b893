"""Where the time of one training step goes: torch.profiler over bench_training's pretraining step (or, with
`--lra_text`, bench_lra's LRA Text step at width 64), PoNet against its floor (the same network without the
pooling), the pooling's forward and backward broken down by operator.

    python benchmarks/profile_training_step.py --length 4096 --precision bf16_autocast --threads 2
    python benchmarks/profile_training_step.py --lra_text --length 4096 --batch_size 32 --precision fp32 --threads 2

`--pooling_only` profiles the pooling alone (random projections of one layer's shapes, in bf16 for bf16 autocast).
Writes `<output_dir>/profile_<model>_<precision>_<length>.json` (`profile_lra_<model>_...` with `--lra_text`): per
operator, self time and calls; inside the pooling's forward and backward, the same and prints the summary. The pooling is `PoNetPoolingFunction` (GA, SMP,
LMP and PF with the hand-written backward); the profile labels its forward and backward by wrapping it.
"""

import argparse
import json
import os
import time
from contextlib import nullcontext

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import modeling_ponet.modeling_ponet as modeling
from ponet_training.provenance import write_provenance
from lra_measure import build_lra_text_model, make_lra_batch  # beside this script
from speed_measure import PRECISIONS
from training_measure import build_pretraining_model, make_batch


PoolingFunction = modeling.PoNetPoolingFunction  # the original, which the labelled one calls


class LabelledPooling(PoolingFunction):
    """The mixer's pooling with its forward and backward as named profiler ranges (the same computation)."""

    @staticmethod
    def forward(ctx, *args):
        with record_function("pooling_forward"):
            return PoolingFunction.forward(ctx, *args)

    @staticmethod
    def backward(ctx, *grads):
        with record_function("pooling_backward"):
            return PoolingFunction.backward(ctx, *grads)


RANGES = ("forward", "backward", "optimizer", "pooling_forward", "pooling_backward")


def _inside(event, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False


def profile_step(spec: dict, steps: int, lra_text: bool = False) -> dict:
    modeling.PoNetPoolingFunction = LabelledPooling  # the mixer looks the name up at call time
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = (build_lra_text_model if lra_text else build_pretraining_model)(spec).train()
    batch = (make_lra_batch if lra_text else make_batch)(spec)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    autocast = PRECISIONS[spec["precision"]][1]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=getattr(torch, autocast)) if autocast else nullcontext():
            with record_function("forward"):
                loss = model(**batch).loss
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()

    step()  # AdamW state, allocator warm-up
    began = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall_ms = (time.perf_counter() - began) * 1000 / steps
    return {"step_ms": round(wall_ms, 1), **summarize(prof.events(), steps, RANGES)}


def profile_pooling(spec: dict, steps: int) -> dict:
    """The pooling alone (`PoNetPoolingFunction`, no GEMMs around it) at one layer's shapes, in the precision's
    dtype (bf16 autocast hands it bf16 projections): forward + backward, by operator."""
    modeling.PoNetPoolingFunction = LabelledPooling
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    dtype = torch.bfloat16 if spec["precision"] == "bf16_autocast" else torch.float32
    config = modeling.PoNetConfig(hidden_size=spec["hidden_size"], num_attention_heads=spec["num_heads"],
                                  num_hidden_layers=1, cls_token_id=101, sep_token_id=102)
    ids = make_batch(spec)["input_ids"]
    batch, length, hidden = *ids.shape, spec["hidden_size"]
    inputs = modeling.build_mixer_inputs(config, ids, None, None, batch, length, "cpu")
    ko = torch.randn(batch, length, 2 * hidden, dtype=dtype, requires_grad=True)
    segment = torch.randn(batch, length, hidden, dtype=dtype, requires_grad=True)
    ql = torch.randn(batch, length, 2 * hidden, dtype=dtype, requires_grad=True)
    grad = torch.randn(batch, length, hidden, dtype=dtype)

    def step():
        mixed = LabelledPooling.apply(ko, segment, ql, None, inputs.valid, inputs.blocked, inputs.segment_index,
                                      inputs.block_size, inputs.any_blocked, spec["num_heads"],
                                      config.local_window_size)
        mixed.backward(grad)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return summarize(prof.events(), steps, ("pooling_forward", "pooling_backward"))


def summarize(events, steps: int, range_names) -> dict:
    """Per-range CPU time and per-operator self time (all, and inside the pooling's forward / backward)."""

    def ops(within=None) -> dict:
        totals = {}
        for event in events:
            if event.name in RANGES or event.name.startswith("ProfilerStep"):
                continue
            if within is not None and not _inside(event, within):
                continue
            entry = totals.setdefault(event.name, [0.0, 0])
            entry[0] += event.self_cpu_time_total / 1000 / steps
            entry[1] += 1
        ranked = sorted(totals.items(), key=lambda item: -item[1][0])
        return {name: {"self_ms": round(ms, 2), "calls": calls // steps} for name, (ms, calls) in ranked}

    ranges = {}
    for event in events:
        if event.name in range_names:
            ranges[event.name] = ranges.get(event.name, 0.0) + event.cpu_time_total / 1000 / steps
    return {"ranges_ms": {k: round(v, 1) for k, v in ranges.items()}, "operators": ops(),
            "pooling_forward_operators": ops("pooling_forward"),
            "pooling_backward_operators": ops("pooling_backward")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ponet,floor")
    parser.add_argument("--precision", default="bf16_autocast", choices=["fp32", "bf16_autocast"])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1, help="profiled steps (after one untimed)")
    parser.add_argument("--hidden_size", type=int, default=768)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=12)
    parser.add_argument("--intermediate_size", type=int, default=3072)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--lra_text", action="store_true",
                        help="profile bench_lra's LRA Text step (width 64; the size arguments are ignored)")
    parser.add_argument("--pooling_only", action="store_true",
                        help="profile PoNetPoolingFunction alone at one layer's shapes (no model, no GEMMs)")
    parser.add_argument("--top", type=int, default=12, help="operators printed per table")
    parser.add_argument("--output_dir", default="results/benchmarks/training_throughput")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    write_provenance(args.output_dir, argv=None, keep_earlier=True)  # profiles of several commands share a folder
    models = ["pooling"] if args.pooling_only else args.models.split(",")
    for model in models:
        spec = dict(model=model, precision=args.precision, length=args.length, batch_size=args.batch_size,
                    device="cpu", threads=args.threads, hidden_size=args.hidden_size, num_layers=args.num_layers,
                    num_heads=args.num_heads, intermediate_size=args.intermediate_size, vocab_size=args.vocab_size)
        profiled = profile_pooling(spec, args.steps) if args.pooling_only else profile_step(spec, args.steps,
                                                                                             args.lra_text)
        result = {"spec": spec, "steps": args.steps, **profiled}
        name = f"lra_{model}" if args.lra_text else model
        path = os.path.join(args.output_dir, f"profile_{name}_{args.precision}_{args.length}.json")
        with open(path, "w") as handle:
            json.dump(result, handle, indent=1)
        print(f"== {model} {args.precision} L={args.length}: step {result.get('step_ms', '-')} ms (profiled), "
              f"ranges {result['ranges_ms']}  -> {path}")
        for key in ("operators", "pooling_forward_operators", "pooling_backward_operators"):
            if result[key]:
                print(f"  {key}:")
                for name, entry in list(result[key].items())[:args.top]:
                    print(f"    {entry['self_ms']:10.1f} ms  {entry['calls']:5d}x  {name}")


if __name__ == "__main__":
    main()
