"""The pooling study's summary, rebuilt from the record: a markdown table (mean ± std over seeds, the best pooling
of each backbone and regime in bold), a figure (grouped bars with error bars, matplotlib) and `all_results.json`.

- `Cell`, `summarize(rows, metric)`, `markdown_table(cells, ...)`, `plot_study(cells, path, ...)`.
- `describe_data(args)`, `write_summary(output_dir, metric, title)`.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..run import write_all_results
from .settings import FIGURE_PNG, REGIMES, RESULTS_CSV, TABLE_MD, display_name
from .store import read_results


def describe_data(args: argparse.Namespace) -> str:
    """The dataset in a few words, for the figure."""
    if args.train_file:
        return os.path.basename(args.train_file)
    name = args.dataset_name or "sst2"
    return name + (f"/{args.dataset_config_name}" if args.dataset_config_name else "")


@dataclass
class Cell:
    """Mean and sample standard deviation of a metric over the seeds of one (backbone, regime, pooling)."""

    backbone: str
    regime: str
    pooling: str
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0


def summarize(rows: list[dict], metric: str = "accuracy") -> list[Cell]:
    """One `Cell` per (backbone, regime, pooling), in the order the CSV first lists them."""
    cells: dict[tuple, Cell] = {}
    for row in rows:
        key = (row["backbone"], row["regime"], row["pooling"])
        cells.setdefault(key, Cell(*key)).values.append(float(row[metric]))
    return list(cells.values())


def _ordered(values):
    return list(dict.fromkeys(values))


def markdown_table(cells: list[Cell], metric: str = "accuracy", baselines: dict | None = None) -> str:
    """Markdown table: one row per backbone and regime, one column per pooling, `mean ± std` of the metric in %
    over seeds (just the mean for a single seed); the best pooling of each row in bold."""
    poolings = _ordered(c.pooling for c in cells)
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    seeds = sorted({c.n for c in cells})
    header = ["backbone", "regime", *poolings]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + [":---:"] * len(poolings)) + "|"]
    for backbone in _ordered(c.backbone for c in cells):
        for regime in [r for r in REGIMES if any(c.backbone == backbone and c.regime == r for c in cells)]:
            row_cells = [by_key.get((backbone, regime, p)) for p in poolings]
            best = max(c.mean for c in row_cells if c is not None)
            entries = []
            for cell in row_cells:
                if cell is None:
                    entries.append("–")
                    continue
                text = f"{100 * cell.mean:.1f}" + (f" ± {100 * cell.std:.1f}" if cell.n > 1 else "")
                entries.append(f"**{text}**" if cell.mean == best else text)
            lines.append("| " + " | ".join([display_name(backbone), regime, *entries]) + " |")
    note = f"Dev {metric.replace('_', '-')} (%), mean ± standard deviation over {' / '.join(map(str, seeds))} seed(s)"
    if baselines:
        note += "; majority-class baseline " + ", ".join(f"{100 * v:.1f}" for v in sorted(set(baselines.values())))
    note += ". Bold: the best pooling of each backbone and regime."
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot_study(cells: list[Cell], path: str | os.PathLike, metric: str = "accuracy",
               baseline: float | None = None, title: str | None = None) -> Path:
    """Grouped bar chart (PNG): one panel per regime, a group of bars per backbone, one bar per pooling,
    error bars = standard deviation over seeds; a dashed line at the majority-class baseline when given."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    poolings = _ordered(c.pooling for c in cells)
    backbones = _ordered(c.backbone for c in cells)
    regimes = [r for r in REGIMES if any(c.regime == r for c in cells)]
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    width = 0.8 / len(poolings)
    colors = plt.get_cmap("tab10" if len(poolings) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(regimes), figsize=(max(4.5, 1.1 + 0.32 * len(poolings) * len(backbones)) * len(regimes),
                                                       3.8), sharey=True, squeeze=False)
    low = min(c.mean - c.std for c in cells)
    floor = max(0.0, min(low, baseline if baseline is not None else low) - 0.05)
    for ax, regime in zip(axes[0], regimes):
        for j, pooling in enumerate(poolings):
            xs, means, stds = [], [], []
            for i, backbone in enumerate(backbones):
                cell = by_key.get((backbone, regime, pooling))
                if cell is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    means.append(100 * cell.mean)
                    stds.append(100 * cell.std)
            ax.bar(xs, means, width, yerr=stds, capsize=2, color=colors(j), label=pooling, edgecolor="black",
                   linewidth=0.3, error_kw=dict(linewidth=0.8))
        if baseline is not None:
            ax.axhline(100 * baseline, color="gray", linestyle="--", linewidth=1, label="majority class")
        ax.set_xticks(range(len(backbones)))
        ax.set_xticklabels([display_name(b) for b in backbones], fontsize=8)
        ax.set_title({"frozen": "frozen backbone (linear probe)", "full": "full fine-tuning"}[regime], fontsize=10)
        ax.set_ylim(bottom=100 * floor)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"dev {metric.replace('_', '-')} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9, y=0.02, va="bottom")
    fig.tight_layout(rect=(0, 0.05 if title else 0, 1, 0.93))
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_summary(output_dir: str | os.PathLike, metric: str = "accuracy", title: str | None = None) -> dict:
    """(Re)write the table, the figure and `all_results.json` from the CSV; returns what went into all_results."""
    output_dir = Path(output_dir)
    rows = read_results(output_dir / RESULTS_CSV)
    if not rows:
        raise ValueError(f"No finished run in {output_dir / RESULTS_CSV}: nothing to summarise")
    cells = summarize(rows, metric)
    baselines = {(r["backbone"], r["regime"]): r["majority_baseline"] for r in rows if r.get("majority_baseline") != ""}
    baseline_values = sorted(set(baselines.values()))
    table = markdown_table(cells, metric, baselines)
    (output_dir / TABLE_MD).write_text(table)
    plot_study(cells, output_dir / FIGURE_PNG, metric,
               baseline=baseline_values[0] if len(baseline_values) == 1 else None, title=title)
    results = {
        "metric": metric,
        "num_runs": len(rows),
        "results": [
            {"backbone": c.backbone, "regime": c.regime, "pooling": c.pooling, "seeds": c.n,
             f"{metric}_mean": c.mean, f"{metric}_std": c.std}
            for c in cells
        ],
    }
    write_all_results(output_dir, results)
    return results



__all__ = ["Cell", "describe_data", "markdown_table", "plot_study", "summarize", "write_summary"]
