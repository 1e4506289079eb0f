"""Small statistics and plotting helpers shared by the experiment scripts (numpy, matplotlib).

* `bootstrap_ci`: mean and percentile-bootstrap 95 % interval of per-seed values (or of paired
  per-seed differences), seeded; it lives in `grounding_gym.eval.stats` and is re-exported here.
* `curves_on_grid`: training curves of several runs, smoothed and interpolated onto one env-step
  grid, for mean +- band plots.
* `plot_curve_panels`: those curves, one panel per metric, one line (mean) and band per group.
* `save_figure`: a matplotlib figure written atomically as PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from grounding_gym.atomic import atomic_open
from grounding_gym.eval.stats import bootstrap_ci  # re-exported: the scripts import it from here

__all__ = ["bootstrap_ci", "curves_on_grid", "plot_curve_panels", "save_figure", "trailing_mean"]


def trailing_mean(values: Sequence[float], window: int = 10) -> np.ndarray:
    """Mean over the last `window` entries at each index, ignoring NaN (steps without the
    metric); NaN where the window holds none."""
    y = np.asarray(values, dtype=float)
    out = np.full_like(y, np.nan)
    for i in range(len(y)):
        chunk = y[max(0, i - window + 1) : i + 1]
        chunk = chunk[~np.isnan(chunk)]
        if chunk.size:
            out[i] = chunk.mean()
    return out


def curves_on_grid(
    histories: Sequence[Sequence[dict[str, Any]]], key: str, grid: np.ndarray, window: int = 10
) -> np.ndarray:
    """(runs, len(grid)): each run's `key` (a `metrics.jsonl` row key) smoothed by
    `trailing_mean` and interpolated at the `grid` of env steps (NaN for a run without it)."""
    curves = []
    for history in histories:
        x = np.array([row["env_steps"] for row in history], dtype=float)
        y = trailing_mean([row.get(key, math.nan) for row in history], window)
        ok = ~np.isnan(y)
        curves.append(np.interp(grid, x[ok], y[ok]) if ok.any() else np.full(len(grid), np.nan))
    return np.array(curves)


def plot_curve_panels(
    axes: Sequence[Any],
    groups: dict[str, Sequence[Sequence[dict[str, Any]]]],
    panels: Sequence[tuple[str, str]],
    band: str = "std",
) -> None:
    """Per panel `(key, title)` and group of runs (`metrics.jsonl` rows): the mean over the
    group's runs of `curves_on_grid` on the env steps all of them cover, with a band of
    +- the std (`band="std"`) or the inter-quartile range (`"iqr"`); legend, grid, titles."""
    for label, runs in groups.items():
        if not runs:
            continue
        grid = np.linspace(
            max(h[0]["env_steps"] for h in runs), min(h[-1]["env_steps"] for h in runs), 100
        )
        for ax, (key, title) in zip(axes, panels, strict=True):
            curves = curves_on_grid(runs, key, grid)
            mean = np.nanmean(curves, axis=0)
            if band == "iqr":
                low, high = (
                    np.nanpercentile(curves, 25, axis=0),
                    np.nanpercentile(curves, 75, axis=0),
                )
            else:
                std = np.nanstd(curves, axis=0)
                low, high = mean - std, mean + std
            ax.plot(grid, mean, label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(grid, low, high, alpha=0.2)
            ax.set(xlabel="env steps", title=title)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write a matplotlib figure to `path` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi)
    plt.close(fig)
