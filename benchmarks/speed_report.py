"""The reports of benchmarks/bench_speed.py: results.md (tables and the ratios of the measurements), the plot, and
the merge of a run into an earlier one (`--append`). `python benchmarks/speed_report.py FOLDER` redraws a results
folder's plots from its results.json."""

import json
import os

from ponet_training.provenance import write_provenance
from speed_measure import (
    FOCUS_LENGTH, LABELS, MODELS, MODES, PRECISION_LABELS, PRECISIONS, TRAINING_PRECISIONS, ceiling_precision,
)


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


def ratios(report: dict) -> list[str]:
    """The ratios a reader compares (batch 1), where the run measured both sides: measurements, no verdicts."""
    table = _index(report)
    lines = []
    at = FOCUS_LENGTH

    def get(model, mode, precision, length=at):
        return _lookup(table, model, mode, precision, length, 1)

    # bf16 and int8 on CPU.
    ponet32 = get("ponet", "forward", "fp32")
    for precision in ("bf16_autocast", "bf16_weights"):
        ponet16, floor16 = get("ponet", "forward", precision), get("floor", "forward", precision)
        label = PRECISION_LABELS[precision]
        if _ok(ponet16) and _ok(ponet32):
            speedup = ponet32["time_ms"] / ponet16["time_ms"]
            lines.append(f"PoNet forward at {at}, {label} vs fp32: {speedup:.2f}x faster")
        if _ok(ponet16) and _ok(floor16):
            ratio = ponet16["time_ms"] / floor16["time_ms"]
            lines.append(f"PoNet / floor forward at {at}, {label}: {ratio:.2f}")
    train32, train16 = get("ponet", "train", "fp32"), get("ponet", "train", "bf16_autocast")
    if _ok(train32) and _ok(train16):
        speedup = train32["time_ms"] / train16["time_ms"]
        lines.append(f"PoNet training step at {at}, bf16 autocast vs fp32: {speedup:.2f}x faster")
    float_precisions = ("fp32", "bf16_autocast", "bf16_weights", "fp16_autocast", "fp16_weights")
    ponet_best = _best(table, "ponet", "forward", at, ("bf16_autocast", "bf16_weights"))
    for peer in ("bert", "fnet"):
        peer_best = _best(table, peer, "forward", at, float_precisions)
        if ponet_best and peer_best:
            speedup = peer_best[1]["time_ms"] / ponet_best[1]["time_ms"]
            lines.append(
                f"{LABELS[peer]} at its best ({PRECISION_LABELS[peer_best[0]]}) / PoNet bf16 "
                f"({PRECISION_LABELS[ponet_best[0]]}), forward at {at}: {speedup:.2f}x"
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
    # float32: what the pooling costs next to PoNet's GEMMs, and BERT on long inputs.
    for mode in ("forward", "train"):
        ponet, floor = get("ponet", mode, "fp32"), get("floor", mode, "fp32")
        if _ok(ponet) and _ok(floor):
            ratio = ponet["time_ms"] / floor["time_ms"]
            lines.append(f"PoNet / floor, {mode}, fp32, {at} tokens: {ratio:.3f}")
    lengths = sorted({r["length"] for r in report["results"]})
    for length in [n for n in lengths if n >= 2048]:
        ponet, bert = get("ponet", "forward", "fp32", length), get("bert", "forward", "fp32", length)
        if _ok(ponet) and bert:
            if _ok(bert):
                speedup = bert["time_ms"] / ponet["time_ms"]
                lines.append(f"BERT-SDPA / PoNet, forward, fp32, {length} tokens: {speedup:.2f}x")
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
    ratio_lines = ratios(report)
    if ratio_lines:
        out += ["### Ratios (batch 1)", ""] + [f"- {line}" for line in ratio_lines] + [""]
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
        ("ponet", "floor"), ("ponet", "gemm"), ("bert", "ponet"), ("modernbert", "ponet"), ("fnet", "ponet"),
        ("ponet", "ponet_compile"),
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


def best_precision_series(report: dict, model: str, mode: str, batch_size: int) -> list[tuple[int, str, dict]]:
    """(length, precision, result) of the fastest precision `model` was measured at in `mode`, at each length."""
    table, series = _index(report), []
    for length in sorted({r["length"] for r in report["results"]}):
        best = None
        for precision in PRECISIONS:
            result = _lookup(table, model, mode, precision, length, batch_size)
            if _ok(result) and (best is None or result["time_ms"] < best[1]["time_ms"]):
                best = (precision, result)
        if best:
            series.append((length, *best))
    return series


# Short precision names written beside a point of the "how fast" panels where a model's best precision changes.
_SHORT_PRECISIONS = {"fp32": "fp32", "bf16_autocast": "bf16a", "bf16_weights": "bf16w", "fp16_autocast": "fp16a",
                     "fp16_weights": "fp16w", "int8": "int8"}


def plot(report: dict, path: str, batch_size: int):
    """Four panels, one question each, log-log against length: how fast is each model's forward, and its training
    step, at its best precision (written where it changes); what does PoNet's pooling cost (PoNet / floor; colour =
    precision, solid = training step, dashed = forward); how much memory does each model's training step take (at
    that best precision). Where a model ran out of memory or time at every precision: a cross at the bottom. The
    compiled PoNet is left out (its points sit on PoNet's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, settings = _index(report), report["settings"]
    lengths = sorted({r["length"] for r in report["results"] if r["batch_size"] == batch_size})
    models = [m for m in _present(report, "model", MODELS) if m != "ponet_compile"]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours, precision_colours = dict(zip(MODELS, cycle)), dict(zip(PRECISIONS, cycle))
    figure, axes = plt.subplots(2, 2, figsize=(13, 10))
    speed_axes = {"forward": axes[0][0], "train": axes[0][1]}
    ratio_axis, memory_axis = axes[1][0], axes[1][1]
    best = {(model, mode): best_precision_series(report, model, mode, batch_size) for model in models for mode in MODES}
    for mode, axis in speed_axes.items():
        for model in models:
            if not best[(model, mode)]:
                continue
            xs, precisions, results = zip(*best[(model, mode)])
            times = [r["time_ms"] for r in results]
            axis.plot(xs, times, "o-", color=colours[model], label=LABELS[model])
            for i, (length, precision, value) in enumerate(zip(xs, precisions, times)):
                if i == 0 or precision != precisions[i - 1]:
                    axis.annotate(_SHORT_PRECISIONS[precision], (length, value), fontsize=7, xytext=(3, 3),
                                  textcoords="offset points", color=colours[model])
            if mode == "train" and model != "gemm":
                memory_axis.plot(xs, [r["peak_memory_mb"] for r in results], "o-", color=colours[model],
                                 label=LABELS[model])
        axis.set_title(f"How fast? {mode}, each model at its best precision, batch {batch_size}", fontsize=10)
        axis.set_ylabel("time (ms)")
    for mode in MODES:
        for precision in PRECISIONS:
            pairs = [(n, _lookup(table, "ponet", mode, precision, n, batch_size),
                      _lookup(table, "floor", mode, precision, n, batch_size)) for n in lengths]
            points = [(n, a["time_ms"] / b["time_ms"]) for n, a, b in pairs if _ok(a) and _ok(b)]
            if points:
                ratio_axis.plot(*zip(*points), "o-" if mode == "train" else "s--", color=precision_colours[precision],
                                label=f"{mode}, {PRECISION_LABELS[precision]}")
    ratio_axis.axhline(1.0, color="black", linewidth=0.8)
    ratio_axis.set_title("What does the pooling cost? PoNet time / floor time (the network without it)", fontsize=10)
    ratio_axis.set_ylabel("time ratio")
    memory_axis.set_title(f"How much memory? Training step at the best precision, batch {batch_size}", fontsize=10)
    memory_axis.set_ylabel("peak memory (MiB)")
    for mode, axis in (*speed_axes.items(), ("train", memory_axis)):
        bottom = axis.get_ylim()[0]
        for model in models:
            failed = sorted({r["length"] for r in report["results"] if r["model"] == model and r["mode"] == mode
                             and r["batch_size"] == batch_size and r["status"] in ("oom", "timeout")}
                            - {n for n, *_ in best[(model, mode)]})
            if failed and axis.lines:
                axis.plot(failed, [bottom] * len(failed), "x", color=colours[model], markersize=9,
                          label=f"{LABELS[model]}: out of memory or time")
    for axis in (*speed_axes.values(), ratio_axis, memory_axis):
        axis.set_xscale("log", base=2)
        axis.set_xticks(lengths, [str(n) for n in lengths])
        if axis is not ratio_axis:
            axis.set_yscale("log")
        axis.set_xlabel("sequence length (tokens)")
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # the ratio panel has only its line at 1 without a floor
            axis.legend(fontsize=7)
    hardware = report["machine"].get("gpu", report["machine"]["cpu"])
    figure.suptitle(f"{settings['device']} ({hardware}, {settings['threads']} threads), hidden "
                    f"{settings['hidden_size']} x {settings['num_layers']} layers")
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


def write_json_and_markdown(report: dict, output_dir: str, text: str) -> list[str]:
    """`<output_dir>/results.json` (the report), `results.md` (`text`) and `provenance.json` (what made them);
    returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, "results.json"), os.path.join(output_dir, "results.md"),
             str(write_provenance(output_dir))]
    with open(paths[0], "w") as handle:
        json.dump(report, handle, indent=1)
    with open(paths[1], "w") as handle:
        handle.write(text)
    return paths


def write_plots(report: dict, output_dir: str) -> list[str]:
    """One plot per device and batch size, `speed_<device>_b<batch>.png`; returns their paths."""
    device, paths = report["settings"]["device"].split(":")[0], []
    for batch in sorted({r["batch_size"] for r in report["results"]}):
        paths.append(os.path.join(output_dir, f"speed_{device}_b{batch}.png"))
        plot(report, paths[-1], batch)
    return paths


def write_reports(report: dict, output_dir: str) -> list[str]:
    return write_json_and_markdown(report, output_dir, markdown(report)) + write_plots(report, output_dir)


def main(argv=None):
    """Redraw the plots of a bench_speed results folder from its results.json (its provenance.json keeps the run's
    record under `earlier` and records this command)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("(")[0].strip())
    parser.add_argument("folder", help="a folder bench_speed.py wrote (with results.json)")
    folder = parser.parse_args(argv).folder
    with open(os.path.join(folder, "results.json")) as handle:
        report = _with_precision(json.load(handle))
    paths = write_plots(report, folder) + [str(write_provenance(folder, keep_earlier=True))]
    print("\n".join(f"wrote {path}" for path in paths))


if __name__ == "__main__":
    main()
