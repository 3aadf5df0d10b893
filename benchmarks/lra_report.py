"""The report of benchmarks/bench_lra.py: results.md (steps/s, peak memory and the ratios of the measurements beside
the paper's GPU Table 2) and the figure `lra_speed.png` (one question per panel)."""

import os

from lra_measure import LRA_LABELS, LRA_MODELS


# The PoNet paper's Table 2 (one GPU, the LRA Text setting, fp16): training steps/s and peak memory (GB) per length;
# None where the model ran out of memory. "9x faster, 1/10 of the memory" is the 4096 column.
PAPER_TABLE_2 = {
    "softmax": {512: (45.1, 1.4), 1024: (19.4, 2.5), 2048: (6.3, 6.7), 4096: (1.8, 23.8), 8192: None, 16384: None},
    "fnet": {512: (83.4, 1.1), 1024: (61.3, 1.2), 2048: (38.1, 1.4), 4096: (21.4, 1.7), 8192: (11.0, 2.3),
             16384: (5.4, 3.8)},
    "ponet": {512: (50.4, 1.1), 1024: (40.1, 1.3), 2048: (27.8, 1.7), 4096: (16.2, 2.4), 8192: (8.7, 3.6),
              16384: (4.5, 6.5)},
}
PAPER_BATCH = 32
FOCUS_LENGTH = 4096  # where the paper states its ratios


def _ok(record) -> bool:
    return bool(record) and record["status"] == "ok"


def _table(report) -> dict:
    return {(r["model"], r["length"], r["batch_size"]): r for r in report["results"]}


def _lengths(report) -> list[int]:
    return sorted({r["length"] for r in report["results"]})


def common_batch(table, a: str, b: str, length: int) -> int | None:
    """The largest batch at which both models ran at `length`."""
    batches = [batch for (model, n, batch), r in table.items() if model == a and n == length and _ok(r)
               and _ok(table.get((b, length, batch)))]
    return max(batches) if batches else None


def measured_ratio(table, a: str, b: str, length: int, field: str = "time_ms") -> tuple[float, int] | None:
    """(`field` of a / `field` of b, the batch) at the largest batch both ran at `length`, or None."""
    batch = common_batch(table, a, b, length)
    if batch is None:
        return None
    return table[(a, length, batch)][field] / table[(b, length, batch)][field], batch


def paper_ratio(a: str, b: str, length: int, column: int = 0) -> float | None:
    """The paper's steps/s (column 0) or GB (column 1) of a over b at `length` (None where either ran out)."""
    pa, pb = PAPER_TABLE_2.get(a, {}).get(length), PAPER_TABLE_2.get(b, {}).get(length)
    return pa[column] / pb[column] if pa and pb else None


# (label, numerator, denominator, field, paper column or None): what a reader compares, > 1 meaning "more".
RATIO_COLUMNS = (
    ("PoNet step / floor step", "ponet", "floor", "time_ms", None),
    ("PoNet speed-up over softmax", "softmax", "ponet", "time_ms", 0),
    ("PoNet step / FNet step", "ponet", "fnet", "time_ms", 0),
    ("PoNet memory / softmax memory", "ponet", "softmax", "peak_memory_mb", 1),
)


def _paper_for(numerator, denominator, field, column, length):
    if column is None:
        return None
    if field == "time_ms":  # a step time ratio is the inverse ratio of steps/s
        return paper_ratio(denominator, numerator, length, column)
    return paper_ratio(numerator, denominator, length, column)


def ratios(report) -> list[str]:
    """The ratios at the focus length, with the batch they were measured at and the paper's (measurements only)."""
    table, lines = _table(report), []
    for label, a, b, field, column in RATIO_COLUMNS:
        found = measured_ratio(table, a, b, FOCUS_LENGTH, field)
        if found:
            paper = _paper_for(a, b, field, column, FOCUS_LENGTH)
            lines.append(f"- {label} at {FOCUS_LENGTH} tokens, batch {found[1]}: {found[0]:.2f}"
                         + (f" (the paper, GPU, batch {PAPER_BATCH}: {paper:.2f})" if paper else ""))
    return lines


def _cell(record) -> str:
    if record is None:
        return "–"
    if not _ok(record):
        return record["status"].upper()
    return f"{record['steps_per_s']:.2f} steps/s, {record['peak_memory_mb']:.0f} MiB"


def markdown(report) -> str:
    machine, settings, table = report["machine"], report["settings"], _table(report)
    models = [m for m in LRA_MODELS if any(r["model"] == m for r in report["results"])]
    flags = ", ".join(f"{f} {'yes' if has else 'no'}" for f, has in machine["cpu_flags"].items())
    hardware = machine.get("gpu") or machine.get("lscpu_model_name") or machine["cpu"]
    out = [
        "# LRA Text training step: speed and memory at width 64", "",
        f"Device: {settings['device']}, {hardware}; {machine['cpu_count']} CPUs, {machine['ram_gb']} GB; CPU flags: "
        f"{flags}. torch {machine['torch']}, transformers {machine['transformers']}; {settings['threads']} threads, "
        f"load average at start {machine['load_average_at_start']}.", "",
        f"Model: {settings['model']}. Step: {settings['step']}, {settings['precision']}; median of up to "
        f"{settings['repeats']} steps after {settings['warmup']} untimed. Peak memory: {settings['peak_memory']}. "
        f"Batch {settings['batch_size']}; a model out of memory (cap {settings['memory_cap_gb']} GiB on CPU) was "
        f"retried at half the batch, down to {settings['min_batch_size']}, and the others measured at that batch "
        f"too. Run: {settings['run_minutes']} minutes.", "",
        "## Steps per second and peak memory", "",
        "| length | batch | " + " | ".join(LRA_LABELS[m] for m in models) + " |", "|---:|---:|" + "---:|" * len(models),
    ]
    for length in _lengths(report):
        for batch in sorted({r["batch_size"] for r in report["results"] if r["length"] == length}, reverse=True):
            out.append(f"| {length} | {batch} | " + " | ".join(_cell(table.get((m, length, batch))) for m in models)
                       + " |")
    out += ["", "## Ratios beside the paper's (GPU, fp16, batch 32)", "",
            "Each ratio of this run compares two models at the largest batch both ran at (in brackets when it is not "
            f"{settings['batch_size']}); the paper's from its Table 2. Step-time ratios: > 1 means the first is "
            "slower; the speed-up over softmax is softmax's step time / PoNet's.", "",
            "| length | " + " | ".join(f"{label} (this run / paper)" for label, *_ in RATIO_COLUMNS) + " |",
            "|---:|" + "---:|" * len(RATIO_COLUMNS)]
    for length in _lengths(report):
        cells = []
        for label, a, b, field, column in RATIO_COLUMNS:
            found, paper = measured_ratio(table, a, b, length, field), _paper_for(a, b, field, column, length)
            ours = "–" if not found else f"{found[0]:.2f}" + (
                "" if found[1] == settings["batch_size"] else f" (batch {found[1]})")
            if column is not None and length in PAPER_TABLE_2["ponet"]:  # the paper measured this length
                ours += f" / {paper:.2f}" if paper else " / OOM"
            cells.append(ours)
        out.append(f"| {length} | " + " | ".join(cells) + " |")
    out += ["", "## The paper's Table 2 (one GPU, fp16, batch 32): steps/s, peak GB", "",
            "| length | " + " | ".join(LRA_LABELS[m] for m in PAPER_TABLE_2) + " |", "|---:|" + "---:|" * 3]
    for length in sorted(PAPER_TABLE_2["ponet"]):
        cells = [f"{p[0]}, {p[1]} GB" if p else "OOM" for p in (PAPER_TABLE_2[m][length] for m in PAPER_TABLE_2)]
        out.append(f"| {length} | " + " | ".join(cells) + " |")
    failed = [r for r in report["results"] if r["status"] != "ok"]
    if failed:
        out += ["", "## Not measured", ""] + [
            f"- {LRA_LABELS[r['model']]} at {r['length']} tokens, batch {r['batch_size']}: {r['status']} "
            f"({r.get('error', '')[:200]})" for r in failed]
    lines = ratios(report)
    if lines:
        out += ["", f"## At {FOCUS_LENGTH} tokens", ""] + lines
    return "\n".join(out) + "\n"


def plot(report, output_dir: str) -> str:
    """`lra_speed.png`, four panels, each one question: how fast is each model (steps/s at the run's batch, the
    paper's GPU figures dashed); what does PoNet's pooling cost (PoNet / floor); how do PoNet's ratios to softmax and
    FNet compare with the paper's; how much memory does each model take (ours solid, the paper's dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, settings = _table(report), report["settings"]
    batch, lengths = settings["batch_size"], _lengths(report)
    colours = dict(zip(LRA_MODELS, ("tab:blue", "tab:grey", "tab:red", "tab:green")))
    figure, axes = plt.subplots(2, 2, figsize=(12, 9))

    def series(model, field, at_batch=batch):
        points = [(n, table[(model, n, at_batch)][field]) for n in lengths if _ok(table.get((model, n, at_batch)))]
        return zip(*points) if points else ((), ())

    def paper_series(model, column, scale=1.0):
        points = [(n, v[column] * scale) for n, v in PAPER_TABLE_2.get(model, {}).items() if v]
        return zip(*points) if points else ((), ())

    speed, cost, versus, memory = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for model in LRA_MODELS:
        if not any(r["model"] == model for r in report["results"]):
            continue
        speed.plot(*series(model, "steps_per_s"), "o-", color=colours[model], label=f"{LRA_LABELS[model]}, this run")
        memory.plot(*series(model, "peak_memory_mb"), "o-", color=colours[model], label=f"{LRA_LABELS[model]}, this run")
        if model in PAPER_TABLE_2:
            speed.plot(*paper_series(model, 0), "s--", color=colours[model], alpha=0.6, label=f"{LRA_LABELS[model]}, paper (GPU)")
            memory.plot(*paper_series(model, 1, 1024), "s--", color=colours[model], alpha=0.6,
                        label=f"{LRA_LABELS[model]}, paper (GPU)")
    bottom = speed.get_ylim()[0] if speed.lines else 1.0
    for model in LRA_MODELS:  # where a model fell over at the run's batch: a cross at the bottom
        failed = [n for n in lengths if (r := table.get((model, n, batch))) and r["status"] in ("oom", "timeout")]
        if failed:
            speed.plot(failed, [bottom] * len(failed), "x", color=colours[model], markersize=10,
                       label=f"{LRA_LABELS[model]}: out of memory or time at batch {batch}")
    for label, a, b, field, column in RATIO_COLUMNS[:3]:
        points = [(n, found[0]) for n in lengths if (found := measured_ratio(table, a, b, n, field))]
        axis, colour = (cost, "tab:blue") if b == "floor" else (versus, colours[b if a == "ponet" else a])
        if points:
            axis.plot(*zip(*points), "o-", color=colour, label=f"{label}, this run")
        paper = [(n, p) for n in lengths if (p := _paper_for(a, b, field, column, n))]
        if paper:
            axis.plot(*zip(*paper), "s--", alpha=0.6, color=colour, label=f"{label}, paper (GPU)")
    cost.axhline(1.0, color="black", linewidth=0.8)
    versus.axhline(1.0, color="black", linewidth=0.8)
    titles = ((speed, f"How fast? Training steps/s, batch {batch}", "steps per second"),
              (cost, "What does the pooling cost? PoNet step / floor step", "step-time ratio"),
              (versus, "Against the others (softmax at the largest batch both ran)", "ratio"),
              (memory, f"How much memory? Peak, batch {batch}", "MiB"))
    for axis, title, ylabel in titles:
        axis.set_xscale("log", base=2)
        if axis is not cost:
            axis.set_yscale("log")
        axis.set_xticks(lengths, [str(n) for n in lengths])
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("tokens")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    machine = report["machine"]
    hardware = machine.get("gpu") or machine.get("lscpu_model_name") or machine["cpu"]
    figure.suptitle(f"LRA Text setting (hidden 64, 2 layers), {settings['precision']}, {settings['device']} "
                    f"({hardware}, {settings['threads']} threads); dashed: the paper's GPU (fp16)")
    figure.tight_layout()
    path = os.path.join(output_dir, "lra_speed.png")
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
