"""What the crops contribute: a run against its counterfactual, sample by sample, per scale bin.

A run with real crops (R) and the same evaluation under a counterfactual (C: `eval
--counterfactual blank|shuffle|no-tool`) are paired by sample (`grounding_gym.eval.pairing`).
Per sample, with r and c its fraction of episodes answered correctly in each run (0 or 1 with one
episode per sample):

| quantity | per sample | meaning |
|----------|------------|---------|
| gain | max(r - c, 0) | right only with the real crops |
| harm | max(c - r, 0) | right only without them |
| Δ | r - c = gain - harm | accuracy the crops add |
| survival | min(r, c) / r, pooled | share of R's correct answers that C keeps |

Counts are sums over the shared samples, rates their means. Gain and harm get percentile-bootstrap
95 % intervals over samples (`stats.bootstrap_ci`, the same seed and resamples as Δ's
`paired_bootstrap`, so the three are drawn from the same resamples); accuracies and survival get
Wilson intervals. Groups: overall and each scale bin of R's `bin_edges`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grounding_gym.atomic import atomic_write_bytes
from grounding_gym.eval.metrics import NO_BOX_BIN
from grounding_gym.eval.pairing import sample_scores
from grounding_gym.eval.report import _png, _pyplot, _render_table
from grounding_gym.eval.stats import (
    PairedDifference,
    bootstrap_ci,
    paired_bootstrap,
    wilson_interval,
)
from grounding_gym.scale import bin_names

__all__ = ["Contribution", "contribution_table", "plot_contribution", "tool_contribution"]


@dataclass(frozen=True)
class Contribution:
    """The crops' contribution in one group (fractions, not percent).

    Attributes:
        group: "all" or a scale bin's name.
        n: samples both runs answered in this group (the pairs).
        acc_real, acc_cf: accuracy of each run over those samples; `*_ci` their Wilson intervals.
        gain, harm: counts (sums of per-sample gain / harm); `gain_rate`, `harm_rate` their means
            over the n samples, `gain_ci`, `harm_ci` bootstrap intervals of the rates.
        delta: acc_real - acc_cf with its paired bootstrap interval.
        survival: share of the real run's correct answers also correct under the counterfactual
            (nan when it has none); `survival_ci` its Wilson interval.
    """

    group: str
    n: int
    acc_real: float
    acc_real_ci: tuple[float, float]
    acc_cf: float
    acc_cf_ci: tuple[float, float]
    gain: float
    gain_rate: float
    gain_ci: tuple[float, float]
    harm: float
    harm_rate: float
    harm_ci: tuple[float, float]
    delta: PairedDifference
    survival: float
    survival_ci: tuple[float, float]


def _one_group(group: str, real: Mapping[str, float], cf: Mapping[str, float]) -> Contribution:
    shared = sorted(set(real) & set(cf))
    r = [real[k] for k in shared]
    c = [cf[k] for k in shared]
    gains = [max(a - b, 0.0) for a, b in zip(r, c, strict=True)]
    harms = [max(b - a, 0.0) for a, b in zip(r, c, strict=True)]
    n = len(shared)
    kept, right = sum(min(a, b) for a, b in zip(r, c, strict=True)), sum(r)
    gain_rate, gain_low, gain_high = bootstrap_ci(gains)
    harm_rate, harm_low, harm_high = bootstrap_ci(harms)
    return Contribution(
        group=group,
        n=n,
        acc_real=sum(r) / n,
        acc_real_ci=wilson_interval(sum(r), n),
        acc_cf=sum(c) / n,
        acc_cf_ci=wilson_interval(sum(c), n),
        gain=sum(gains),
        gain_rate=gain_rate,
        gain_ci=(gain_low, gain_high),
        harm=sum(harms),
        harm_rate=harm_rate,
        harm_ci=(harm_low, harm_high),
        delta=paired_bootstrap({k: cf[k] for k in shared}, {k: real[k] for k in shared}),
        survival=kept / right if right else math.nan,
        survival_ci=wilson_interval(kept, round(right)) if right else (math.nan, math.nan),
    )


def tool_contribution(
    real_records: Sequence[Mapping[str, Any]],
    cf_records: Sequence[Mapping[str, Any]],
    bin_edges: Sequence[float],
) -> list[Contribution]:
    """Gain, harm, Δ and survival overall and per scale bin (target relative area, `bin_edges`),
    over the samples both runs answered; groups without a shared sample are left out."""
    groups = [("overall", "all")] + [("bin", name) for name in (*bin_names(bin_edges), NO_BOX_BIN)]
    out = []
    for tag, name in groups:
        real = sample_scores(real_records, tag, name, bin_edges)
        cf = sample_scores(cf_records, tag, name, bin_edges)
        if set(real) & set(cf):
            out.append(_one_group(name, real, cf))
    return out


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100.0 * value:.1f}"


def _pct_ci(value: float, ci: tuple[float, float]) -> str:
    if math.isnan(ci[0]):
        return _pct(value)
    return f"{_pct(value)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def contribution_table(
    rows: Sequence[Contribution], real_label: str, cf_label: str, markdown: bool = False
) -> str:
    """The contribution rows as a table (percent, 95 % intervals in brackets)."""
    header = [
        "group",
        "n",
        f"acc {real_label}",
        f"acc {cf_label}",
        "gain",
        "gain %",
        "harm",
        "harm %",
        "Δ (real - cf)",
        "survival %",
    ]
    body = [
        [
            row.group,
            str(row.n),
            _pct_ci(row.acc_real, row.acc_real_ci),
            _pct_ci(row.acc_cf, row.acc_cf_ci),
            _count(row.gain),
            _pct_ci(row.gain_rate, row.gain_ci),
            _count(row.harm),
            _pct_ci(row.harm_rate, row.harm_ci),
            _pct_ci(row.delta.mean, (row.delta.low, row.delta.high)),
            _pct_ci(row.survival, row.survival_ci),
        ]
        for row in rows
    ]
    notes = [
        f"note: {row.group}: {what} {_count(count)} of {row.n}: the bootstrap interval collapses "
        f"to a point; the 95 % Wilson interval of the rate is [{_pct(low)}, {_pct(high)}]"
        for row in rows
        for what, count in (("gain", row.gain), ("harm", row.harm))
        if count in (0, row.n)
        for low, high in [wilson_interval(count, row.n)]
    ]
    title = (
        f"Tool contribution: {real_label} (real crops) vs {cf_label}, paired over samples; "
        "gain = right only with real crops, harm = right only under the counterfactual; "
        "95 % intervals (bootstrap over samples; Wilson for accuracies and survival)"
    )
    table = _render_table(title, header, body, markdown)
    return table + ("\n" + "\n".join(notes) + "\n" if notes else "")


def plot_contribution(
    rows: Sequence[Contribution], path: str | os.PathLike, real_label: str, cf_label: str
) -> bool:
    """Bars per group: accuracy of both runs (Wilson bars) beside gain and harm rates (bootstrap
    bars). Returns False when matplotlib is missing or there is no row."""
    plt = _pyplot()
    if plt is None or not rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.4))
    series = (
        (f"acc {real_label}", lambda r: (r.acc_real, r.acc_real_ci), "tab:blue"),
        (f"acc {cf_label}", lambda r: (r.acc_cf, r.acc_cf_ci), "tab:grey"),
        ("gain", lambda r: (r.gain_rate, r.gain_ci), "tab:green"),
        ("harm", lambda r: (r.harm_rate, r.harm_ci), "tab:red"),
    )
    width = 0.8 / len(series)
    for i, (label, get, colour) in enumerate(series):
        values = [get(r) for r in rows]
        xs = [k - 0.4 + width * (i + 0.5) for k in range(len(rows))]
        ys = [100.0 * v for v, _ in values]
        err = [
            [100.0 * (v - ci[0]) if not math.isnan(ci[0]) else 0.0 for v, ci in values],
            [100.0 * (ci[1] - v) if not math.isnan(ci[1]) else 0.0 for v, ci in values],
        ]
        ax.bar(xs, ys, width=width * 0.95, label=label, color=colour)
        ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r.group}\nn={r.n}" for r in rows])
    ax.set_ylim(0, 118)  # room for the legend above the bars
    ax.set_xlabel("scale bin (target relative area)")
    ax.set_ylabel("% of samples, 95 % interval")
    ax.set_title(f"What the crops contribute: {real_label} vs {cf_label}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(series), loc="upper center")
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return True
