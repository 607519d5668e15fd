"""PNG plots for the report, drawn with matplotlib's object API (Agg, no pyplot, no display).

- ``ssim_hist.png``: one SSIM histogram per table row;
- ``throughput.png``: images/s per shard over the run, from the stats files.

The contact sheets (``contact_<n>_<label>.png``) are drawn by ``genaug.contact_sheet.write_sheet``, the
renderer `genaug inspect --grid` uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100  # pixels per inch of the written PNGs
HIST_BINS = 40  # SSIM histogram bins


def slug(text: str) -> str:
    """A file-name-safe version of a row label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "row"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)


def ssim_histograms(values: Mapping[str, Sequence[float]], path: Path) -> None:
    """One histogram per label, on a shared SSIM axis."""
    labels = list(values)
    low = min(0.0, min(min(v) for v in values.values()))
    fig = Figure(figsize=(6, 1.8 * len(labels) + 0.6), layout="constrained")
    axes = fig.subplots(len(labels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, label in zip(axes, labels):
        data = np.asarray(values[label], dtype=float)
        ax.hist(data, bins=HIST_BINS, range=(low, 1.0), color="tab:blue")
        ax.axvline(float(np.mean(data)), color="tab:red", linestyle="--", label=f"mean {np.mean(data):.3f}")
        ax.set_title(f"{label} (n={len(data)})", fontsize=9)
        ax.set_ylabel("pairs")
        ax.legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("SSIM (aug vs real)")
    _save(fig, path)


def throughput(series: Mapping[str, Sequence[tuple[str, float]]], path: Path) -> Figure:
    """images/s per shard, one line per run, x = shard position in the run (whole shards: the axis spans
    half a shard either side, so one shard is one point at 0, not a hair-thin axis). Returns the figure."""
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    longest = max((len(points) for points in series.values()), default=0)
    for name, points in series.items():
        if points:
            ax.plot(range(len(points)), [v for _, v in points], marker="o", label=name)
    if longest <= 2:  # MaxNLocator falls back to fractions on a range this short
        ax.set_xticks(range(max(longest, 1)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.5, max(longest, 1) - 0.5)
    ax.set_xlabel("shard (build order)")
    ax.set_ylabel("images/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Build throughput per shard (stats files)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig
