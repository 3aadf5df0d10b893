"""The reports of `bench_speed.py`: `results.md` (times, tokens/s, ratios, memory and the checks) and one log-log
plot per device and batch size, from the `results.json` report.

- `checks(report)`, `markdown(report)`, `plot(report, path, batch_size)`.
- `merge_previous(report, path)`: keep the measurements of an earlier run that this one did not repeat.
- `write_reports(report, output_dir)`: results.json, results.md and the plots.
"""

import json
import os


MODELS = ("ponet", "ponet_compile", "floor", "bert", "fnet")
MODES = ("forward", "train")
LABELS = {
    "ponet": "PoNet",
    "ponet_compile": "PoNet (compiled)",
    "floor": "floor (no pooling)",
    "bert": "BERT-SDPA",
    "fnet": "FNet",
}


def _index(report: dict) -> dict:
    return {(r["model"], r["mode"], r["length"], r["batch_size"]): r for r in report["results"]}


def _cell(result: dict | None, field: str, fmt: str) -> str:
    if result is None:
        return "-"
    if result["status"] != "ok":
        return result["status"].upper()
    return format(result[field], fmt)


def _ratio(numerator: dict | None, denominator: dict | None, field: str = "time_ms") -> str:
    if not numerator or not denominator or numerator["status"] != "ok" or denominator["status"] != "ok":
        return "-"
    return f"{numerator[field] / denominator[field]:.2f}x"


def checks(report: dict) -> list[str]:
    """The issue's "Done when" figures, where the run holds them (batch 1)."""
    table = _index(report)
    lines = []

    def get(model, mode, length):
        return table.get((model, mode, length, 1))

    for mode, bound in (("forward", 1.10), ("train", 1.20)):
        ponet, floor = get("ponet", mode, 4096), get("floor", mode, 4096)
        if ponet and floor and ponet["status"] == floor["status"] == "ok":
            ratio = ponet["time_ms"] / floor["time_ms"]
            verdict = "meets" if ratio <= bound else "misses"
            lines.append(f"PoNet / floor, {mode}, 4096 tokens: {ratio:.3f} ({verdict} the <= {bound:.2f} target)")
    lengths = sorted({r["length"] for r in report["results"]})
    for length in [n for n in lengths if n >= 2048]:
        ponet, bert = get("ponet", "forward", length), get("bert", "forward", length)
        if ponet and bert and ponet["status"] == "ok":
            if bert["status"] == "ok":
                speedup = bert["time_ms"] / ponet["time_ms"]
                target = 2.0 if length >= 8192 else 1.0
                verdict = "meets" if speedup > target or (target == 2.0 and speedup >= 2.0) else "misses"
                lines.append(
                    f"BERT-SDPA / PoNet, forward, {length} tokens: {speedup:.2f}x "
                    f"({verdict} the {'>= 2' if target == 2.0 else '> 1'} target)"
                )
            else:
                lines.append(f"BERT-SDPA forward at {length} tokens: {bert['status'].upper()}, PoNet ran")
    for length in (4096,):
        ponet, bert = get("ponet", "train", length), get("bert", "train", length)
        if ponet and bert:
            ponet_text = f"{ponet['peak_memory_mb']:.0f} MiB" if ponet["status"] == "ok" else ponet["status"].upper()
            bert_text = f"{bert['peak_memory_mb']:.0f} MiB" if bert["status"] == "ok" else bert["status"].upper()
            lines.append(f"Training step at {length} tokens, peak memory: PoNet {ponet_text}, BERT-SDPA {bert_text}")
    return lines


def markdown(report: dict) -> str:
    settings, machine = report["settings"], report["machine"]
    table = _index(report)
    models = [m for m in MODELS if any(r["model"] == m for r in report["results"])]
    lengths = sorted({r["length"] for r in report["results"]})
    batches = sorted({r["batch_size"] for r in report["results"]})
    modes = [m for m in MODES if any(r["mode"] == m for r in report["results"])]
    device = settings["device"]
    hardware = machine.get("gpu", machine["cpu"])
    out = [
        f"## {device.upper()}: {hardware}, {settings['dtype']}, {settings['threads']} threads, torch {machine['torch']}",
        "",
        f"Size: hidden {settings['hidden_size']}, {settings['num_layers']} layers, {settings['num_heads']} heads, "
        f"intermediate {settings['intermediate_size']}; median of {settings['repeats']} after {settings['warmup']} "
        f"warm-up call(s). `train` = {settings['train_step']}.",
        "",
    ]
    ratio_columns = []
    if "floor" in models:
        ratio_columns.append(("PoNet / floor", "ponet", "floor"))
    if "bert" in models:
        ratio_columns.append(("BERT / PoNet", "bert", "ponet"))
    if "fnet" in models:
        ratio_columns.append(("FNet / PoNet", "fnet", "ponet"))
    if "ponet_compile" in models:
        ratio_columns.append(("PoNet / compiled", "ponet", "ponet_compile"))
    for batch in batches:
        for mode in modes:
            out += [f"### {mode}, batch {batch}: time (ms)", ""]
            header = ["length"] + [LABELS[m] for m in models] + [c[0] for c in ratio_columns]
            out += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
            for length in lengths:
                row = [str(length)] + [_cell(table.get((m, mode, length, batch)), "time_ms", ".0f") for m in models]
                row += [
                    _ratio(table.get((a, mode, length, batch)), table.get((b, mode, length, batch)))
                    for _, a, b in ratio_columns
                ]
                out.append("| " + " | ".join(row) + " |")
            out += ["", f"### {mode}, batch {batch}: tokens/s and peak memory (MiB above the loaded model)", ""]
            saved = [m for m in models if m != "ponet_compile"] if mode == "train" else []
            header = ["length"] + [f"{LABELS[m]} tok/s" for m in models] + [f"{LABELS[m]} MiB" for m in models]
            header += [f"{LABELS[m]} saved MiB" for m in saved]
            out += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
            for length in lengths:
                cells = [table.get((m, mode, length, batch)) for m in models]
                row = [str(length)] + [_cell(c, "tokens_per_s", ".0f") for c in cells]
                row += [_cell(c, "peak_memory_mb", ".0f") for c in cells]
                row += [_cell(table.get((m, mode, length, batch)), "saved_activations_mb", ".0f") for m in saved]
                out.append("| " + " | ".join(row) + " |")
            out.append("")
    compiled = [r for r in report["results"] if r["model"] == "ponet_compile" and r["status"] == "ok"]
    if compiled:
        out.append(
            "Compilation (first call of the compiled model): "
            + ", ".join(f"{r['mode']} L={r['length']} b={r['batch_size']}: {r['first_call_s']:.0f} s" for r in compiled)
        )
        out.append("")
    failures = [r for r in report["results"] if r["status"] not in ("ok",)]
    if failures:
        out += ["Not measured:", ""]
        out += [
            f"- {LABELS[r['model']]} {r['mode']} L={r['length']} b={r['batch_size']}: {r['status'].upper()} "
            f"({r.get('error', '')})"
            for r in failures
        ]
        out.append("")
    check_lines = checks(report)
    if check_lines:
        out += ["### Checks (batch 1)", ""] + [f"- {line}" for line in check_lines] + [""]
    return "\n".join(out)


def plot(report: dict, path: str, batch_size: int):
    """Time and peak memory against length, log-log, one panel per mode (forward, train)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _index(report)
    models = [m for m in MODELS if any(r["model"] == m for r in report["results"])]
    lengths = sorted({r["length"] for r in report["results"]})
    modes = [m for m in MODES if any(r["mode"] == m for r in report["results"])]
    figure, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 8), squeeze=False)
    settings = report["settings"]
    for column, mode in enumerate(modes):
        for row, (field, label) in enumerate((("time_ms", "time (ms)"), ("peak_memory_mb", "peak memory (MiB)"))):
            axis = axes[row][column]
            for model in models:
                points = [
                    (n, table[(model, mode, n, batch_size)][field])
                    for n in lengths
                    if (model, mode, n, batch_size) in table and table[(model, mode, n, batch_size)]["status"] == "ok"
                ]
                if points:
                    xs, ys = zip(*points)
                    axis.plot(xs, ys, marker="o", label=LABELS[model])
                failed = [
                    n for n in lengths
                    if table.get((model, mode, n, batch_size), {}).get("status") in ("oom", "timeout")
                ]
                if failed:  # where a model fell over: a cross on the x axis
                    axis.plot(failed, [axis.get_ylim()[0]] * len(failed), "x", color="red")
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xlabel("sequence length (tokens)")
            axis.set_ylabel(label)
            axis.set_title(f"{mode}, batch {batch_size}")
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=8)
    hardware = report["machine"].get("gpu", report["machine"]["cpu"])
    figure.suptitle(
        f"{settings['device']} ({hardware}, {settings['threads']} threads), {settings['dtype']}, "
        f"hidden {settings['hidden_size']} x {settings['num_layers']} layers"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def merge_previous(report: dict, path: str) -> dict:
    """`report` plus the measurements of an earlier run in `path` that it did not repeat."""
    if not os.path.exists(path):
        return report
    with open(path) as handle:
        previous = json.load(handle)
    for field in ("device", "dtype", "hidden_size", "num_layers"):
        if previous["settings"][field] != report["settings"][field]:
            raise SystemExit(f"--append: {path} has {field}={previous['settings'][field]!r}, this run "
                             f"{report['settings'][field]!r}; use another --output_dir")
    new_keys = {_key(r) for r in report["results"]}
    kept = [r for r in previous["results"] if _key(r) not in new_keys]
    return {**report, "results": kept + report["results"]}


def _key(result: dict) -> tuple:
    return (result["model"], result["mode"], result["length"], result["batch_size"])


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
