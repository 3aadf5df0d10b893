"""The pooling study's summary, rebuilt from the record: a markdown table (mean ± std over seeds, the best pooling
of each backbone and regime in bold), a figure (grouped bars with error bars, matplotlib) and `all_results.json`.

- `Cell`, `summarize(rows, metric)`, `markdown_table(cells, ...)`, `plot_study(cells, path, ...)`.
- `describe_data(args)`, `write_summary(output_dir, metric, title)`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from ponet_training.engine.run import write_all_results
from ponet_training.tasks.pooling_study.settings import BASELINES_JSON, FIGURE_PNG, REGIMES, RESULTS_CSV, TABLE_MD, VADER_PRESETS, display_name
from ponet_training.tasks.pooling_study.store import read_results


def describe_data(args: argparse.Namespace) -> str:
    """The dataset in a few words, for the figure."""
    if args.train_file:
        return os.path.basename(args.train_file)
    if args.dataset_name in VADER_PRESETS:
        from ponet_training.data.vader_ratings import DOMAINS

        return (f"{args.dataset_name}: {DOMAINS[VADER_PRESETS[args.dataset_name]].description} rated by people "
                "(Hutto & Gilbert 2014), dev split")
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


def _shown(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(cells: list[Cell], metric: str = "accuracy", baselines: dict[str, float] | None = None) -> str:
    """Markdown table: one row per backbone and regime, one column per pooling, `mean ± std` of the metric in %
    over seeds (just the mean for a single seed); the best pooling of each row in bold, unless all its poolings
    tie (as shown). `baselines`: name -> the baseline's value in the same metric, given under the table."""
    poolings = _ordered(c.pooling for c in cells)
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    seeds = sorted({c.n for c in cells})
    header = ["backbone", "regime", *poolings]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + [":---:"] * len(poolings)) + "|"]
    for backbone in _ordered(c.backbone for c in cells):
        for regime in [r for r in REGIMES if any(c.backbone == backbone and c.regime == r for c in cells)]:
            row_cells = [by_key.get((backbone, regime, p)) for p in poolings]
            shown = {_shown(c.mean) for c in row_cells if c is not None}
            best = max(shown, key=float) if len(shown) > 1 else None  # all tie: nothing is best
            entries = []
            for cell in row_cells:
                if cell is None:
                    entries.append("–")
                    continue
                text = _shown(cell.mean) + (f" ± {_shown(cell.std)}" if cell.n > 1 else "")
                entries.append(f"**{text}**" if _shown(cell.mean) == best else text)
            lines.append("| " + " | ".join([display_name(backbone), regime, *entries]) + " |")
    name = metric.replace("_", "-")
    note = f"Dev {name} (%), mean ± standard deviation over {' / '.join(map(str, seeds))} seed(s)"
    if baselines:
        note += "; baselines (dev " + name + "): " + ", ".join(f"{k} {_shown(v)}" for k, v in baselines.items())
    note += ". Bold: the best pooling of each backbone and regime (none when all tie)."
    return "\n".join(lines) + "\n\n" + note + "\n"


BASELINE_STYLES = ("--", ":", "-.")


def y_limits(cells: list[Cell], baselines: dict[str, float] | None = None) -> tuple[float, float]:
    """A panel's y-range (%): its bars with their error bars, and the baselines, with a margin."""
    values = list((baselines or {}).values())
    low = min([c.mean - c.std for c in cells] + values)
    high = max([c.mean + c.std for c in cells] + values)
    margin = max(0.02, 0.08 * (high - low))
    return 100 * max(0.0, low - margin), 100 * (high + margin)


def plot_study(cells: list[Cell], path: str | os.PathLike, metric: str = "accuracy",
               baselines: dict[str, float] | None = None, title: str | None = None) -> Path:
    """Grouped bar chart (PNG): one panel per regime, a group of bars per backbone, one bar per pooling,
    error bars = standard deviation over seeds; a line per baseline. Each panel's y-axis covers its bars, error
    bars and baselines; the legend sits below the panels in as many rows as it needs; `title` is the caption."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    poolings = _ordered(c.pooling for c in cells)
    backbones = _ordered(c.backbone for c in cells)
    regimes = [r for r in REGIMES if any(c.regime == r for c in cells)]
    by_key = {(c.backbone, c.regime, c.pooling): c for c in cells}
    baselines = baselines or {}
    width = 0.8 / len(poolings)
    colors = plt.get_cmap("tab10" if len(poolings) <= 10 else "tab20")
    panel_width = max(4.5, 1.1 + 0.32 * len(poolings) * len(backbones))
    fig, axes = plt.subplots(1, len(regimes), figsize=(panel_width * len(regimes), 4.2), squeeze=False,
                             layout="constrained")
    for ax, regime in zip(axes[0], regimes):
        panel = [c for c in cells if c.regime == regime]
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
        for k, (name, value) in enumerate(baselines.items()):
            ax.axhline(100 * value, color="gray", linestyle=BASELINE_STYLES[k % len(BASELINE_STYLES)], linewidth=1,
                       label=f"{name} ({_shown(value)})")
        ax.set_ylim(*y_limits(panel, baselines))
        ax.set_xticks(range(len(backbones)))
        ax.set_xticklabels([display_name(b) for b in backbones], fontsize=8)
        ax.set_title({"frozen": "frozen backbone (linear probe)", "full": "full fine-tuning"}[regime], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"dev {metric.replace('_', '-')} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # As many entries per row as the figure's width holds (about 1.6 inches each).
    columns = max(1, min(len(labels), int(panel_width * len(regimes) / 1.6)))
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=8, frameon=False)
    if title:  # wrapped to the figure's width (about 14 characters per inch at 9 points)
        fig.suptitle(textwrap.fill(title, width=int(13 * panel_width * len(regimes))), fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def read_baselines(output_dir: str | os.PathLike, metric: str) -> dict[str, float]:
    """The study's baselines in `metric` (`study_baselines.json`, written with the first run), {} without the file."""
    path = Path(output_dir) / BASELINES_JSON
    if not path.is_file():
        return {}
    return {name: scores[metric] for name, scores in json.loads(path.read_text()).items()}


def write_summary(output_dir: str | os.PathLike, metric: str = "accuracy", title: str | None = None) -> dict:
    """(Re)write the table, the figure and `all_results.json` from the CSV; returns what went into all_results."""
    output_dir = Path(output_dir)
    rows = read_results(output_dir / RESULTS_CSV)
    if not rows:
        raise ValueError(f"No finished run in {output_dir / RESULTS_CSV}: nothing to summarise")
    cells = summarize(rows, metric)
    baselines = read_baselines(output_dir, metric)
    (output_dir / TABLE_MD).write_text(markdown_table(cells, metric, baselines))
    plot_study(cells, output_dir / FIGURE_PNG, metric, baselines=baselines, title=title)
    results = {
        "metric": metric,
        "num_runs": len(rows),
        "baselines": baselines,
        "results": [
            {"backbone": c.backbone, "regime": c.regime, "pooling": c.pooling, "seeds": c.n,
             f"{metric}_mean": c.mean, f"{metric}_std": c.std}
            for c in cells
        ],
    }
    write_all_results(output_dir, results)
    return results



__all__ = ["Cell", "describe_data", "markdown_table", "plot_study", "read_baselines", "summarize", "write_summary", "y_limits"]
