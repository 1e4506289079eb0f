"""Reports of a summary: JSON, CSV and Markdown tables, PNG plots, and run comparisons.

Comparisons carry their uncertainty: every accuracy of a run is shown with its 95 % Wilson
interval and its n; two runs that answered the same sample ids get a paired difference with a
bootstrap interval over those samples (`grounding_gym.eval.stats`), and a note says when their n
or sample sets differ. Published numbers are ranked only beside runs of their own benchmark.

Every file is written atomically (a temporary file in the same folder, then `os.replace`), so a
reader never sees half a report. Plots use matplotlib's Agg backend and are skipped, with a
warning, when matplotlib is not installed (`pip install matplotlib`, or the `eval` extra).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grounding_gym.atomic import atomic_write_bytes, atomic_write_text
from grounding_gym.eval.pairing import paired_differences, rotation_note, sample_set_notes
from grounding_gym.eval.published import OVERALL, PublishedBenchmark, match_category
from grounding_gym.eval.records import EPISODES_FILE, jsonable, read_records
from grounding_gym.eval.stats import PairedDifference, wilson_interval

__all__ = [
    "TABLE_METRICS",
    "compare_table",
    "load_run_records",
    "load_summary",
    "plot_acc_by_bin",
    "plot_acc_vs_area",
    "plot_iou_hist",
    "published_table",
    "summary_csv",
    "summary_markdown",
    "write_reports",
]

TABLE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("n", "n", "d"),
    ("accuracy", "accuracy", "pct"),
    ("miou", "mIoU", "f3"),
    ("acc_at_0.5", "Acc@0.5", "pct"),
    ("crop_coverage", "coverage", "f3"),
    ("mean_turns", "turns", "f2"),
    ("crop_rate", "crop rate", "pct"),
    ("invalid_action_rate", "invalid", "pct"),
)
"""(summary key, column title, format) of the Markdown/CSV tables."""


def load_summary(path: str | os.PathLike) -> dict[str, Any]:
    """A run's summary from its folder (`summary.json` inside) or from the JSON file itself.

    Raises:
        FileNotFoundError: no summary there (the message says how to make one).
    """
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"no summary at {file}; run `grounding-gym eval --out {path} ...` first "
            "(an interrupted run writes its summary when it is resumed and finishes)"
        )
    summary = json.loads(file.read_text(encoding="utf-8"))
    summary.setdefault("meta", {}).setdefault("path", str(file.parent))
    return summary


def load_run_records(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The episode records beside a loaded summary (`episodes.jsonl` in its folder), limited to
    the run's first `n` episodes as its summary was; [] when the folder has none (a shipped
    baseline may keep only its summary). Read only: a torn last line is skipped, not repaired."""
    meta = summary.get("meta", {})
    folder = meta.get("path")
    if not folder:
        return []
    records = read_records(Path(folder) / EPISODES_FILE, repair=False)
    n = meta.get("n")
    return [r for r in records if n is None or 0 <= int(r.get("episode", -1)) < int(n)]


# ---------------------------------------------------------------- tables


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "d":
        return str(int(value))
    if kind == "pct":
        return f"{100.0 * value:.1f}"
    if kind == "f2":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _interval(stats: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The 95 % Wilson interval (fractions) of a group's accuracy, or None without one."""
    if not stats or not stats.get("n") or stats.get("accuracy") is None:
        return None
    n = int(stats["n"])
    return wilson_interval(float(stats["accuracy"]) * n, n)


def _fmt_interval(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "-"
    return f"[{100.0 * interval[0]:.1f}, {100.0 * interval[1]:.1f}]"


def _rows(summary: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    rows: list[tuple[str, str, Mapping[str, Any]]] = [("overall", "all", summary["overall"])]
    rows += [("bin", name, stats) for name, stats in summary["per_bin"].items()]
    rows += [("category", name, stats) for name, stats in summary["per_category"].items()]
    return rows


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown report: a header line, one table (overall, scale bins, categories), cycle accuracy.

    Percentages for accuracy-like columns; "-" where a metric does not apply (no boxes, n = 0).
    """
    meta = summary.get("meta", {})
    lines = [
        f"# {meta.get('label') or meta.get('agent', 'agent')} on {meta.get('env_id', 'env')} / "
        f"{meta.get('benchmark', meta.get('dataset', ''))}",
        "",
    ]
    errors = summary.get("errors") or {}
    if errors.get("n"):
        lines += [
            f"**{errors['n']} episode(s) failed** and are left out of every metric below "
            "(their records carry `error`; `grounding-gym check-dataset` lists bad rows).",
            "",
        ]
    lines.append(
        f"{summary['overall']['n']} episodes, seed {meta.get('seed')}; accuracy, Acc@0.5, crop "
        "rate and "
        "invalid in %; mIoU counts an episode without a crop as 0; coverage is over cropped "
        "episodes."
    )
    if meta.get("bin_edges"):
        source = f" ({meta['bin_edges_source']})" if meta.get("bin_edges_source") else ""
        lines.append(
            "Scale bins on the target's relative area, edges "
            f"{', '.join(f'{e:g}' for e in meta['bin_edges'])}{source}."
        )
    lines.append("")
    header = ["group", "name"] + [title for _, title, _ in TABLE_METRICS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * len(TABLE_METRICS)) + "|")
    for group, name, stats in _rows(summary):
        cells = [group, name] + [_fmt(stats.get(key), kind) for key, _, kind in TABLE_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    cycle = summary.get("cycle")
    if cycle:
        lines += [
            "",
            f"HR-Bench cycle accuracy: {_fmt(cycle['cycle_accuracy'], 'pct')} % (mean over "
            "rotations), "
            f"{_fmt(cycle['cycle_accuracy_all'], 'pct')} % (all rotations right), "
            f"{cycle['n_questions']} questions.",
        ]
    return "\n".join(lines) + "\n"


def summary_csv(summary: Mapping[str, Any]) -> str:
    """CSV with one row per group (overall, each bin, each category) and raw (unscaled) values."""
    keys = [key for key, _, _ in TABLE_METRICS] + [
        "accuracy_se",
        "crop_iou",
        "full_coverage_rate",
        "mean_return",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["group", "name", *keys])
    for group, name, stats in _rows(summary):
        writer.writerow(
            [group, name] + ["" if stats.get(k) is None else stats.get(k) for k in keys]
        )
    return buffer.getvalue()


# ---------------------------------------------------------------- plots


def _pyplot() -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: no plots (pip install matplotlib)", stacklevel=3
        )
        return None
    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _yerr(points: Sequence[Mapping[str, Any]]) -> list[list[float]]:
    """Asymmetric error bars (percent) of accuracies: to their 95 % Wilson interval's ends."""
    low, high = [], []
    for p in points:
        interval = _interval(p) or (p["accuracy"], p["accuracy"])
        low.append(100.0 * (p["accuracy"] - interval[0]))
        high.append(100.0 * (interval[1] - p["accuracy"]))
    return [low, high]


def _draw_acc_vs_area(
    ax: Any, runs: Sequence[Mapping[str, Any]], bin_edges: Sequence[float]
) -> None:
    """Accuracy against target relative area on `ax`: one line per run, 95 % Wilson bars."""
    for summary in runs:
        points = summary.get("acc_vs_area") or []
        if not points:
            continue
        xs = [p["center"] for p in points]
        ys = [100.0 * p["accuracy"] for p in points]
        line = ax.errorbar(xs, ys, yerr=_yerr(points), marker="o", capsize=3, label=_label(summary))
        if len(runs) == 1:
            for x, p in zip(xs, points, strict=True):
                ax.annotate(
                    f"n={p['n']}",
                    (x, 0.015),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    fontsize=7,
                    color=line[0].get_color(),
                )
    for edge in bin_edges:
        ax.axvline(edge, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"bin edge {edge:g}",
            (edge, 0.985),
            xycoords=("data", "axes fraction"),
            ha="right",
            va="top",
            rotation=90,
            fontsize=7,
            color="grey",
        )
    chance = runs[0].get("meta", {}).get("chance")
    if chance:
        ax.axhline(100.0 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_ylim(-8, 105)
    ax.set_xlabel("target relative area (box area / image area, log scale)")
    ax.set_ylabel("accuracy (%), 95 % Wilson interval")
    ax.set_title("Accuracy against target size")
    ax.grid(True, which="major", alpha=0.3)


def _draw_acc_by_bin(ax: Any, runs: Sequence[Mapping[str, Any]]) -> None:
    """Grouped bars on `ax`: overall and each scale bin, one bar per run, 95 % Wilson bars, n
    written in each bar."""
    groups = [g for g in _groups(runs) if g[0] in ("overall", "bin")]
    width = 0.8 / max(1, len(runs))
    for i, summary in enumerate(runs):
        xs, ys, points = [], [], []
        for k, (tag, name) in enumerate(groups):
            stats = summary["overall"] if tag == "overall" else summary.get("per_bin", {}).get(name)
            if not stats or not stats.get("n") or stats.get("accuracy") is None:
                continue
            xs.append(k - 0.4 + width * (i + 0.5))
            ys.append(100.0 * stats["accuracy"])
            points.append(stats)
        bars = ax.bar(xs, ys, width=width * 0.95, label=_label(summary))
        ax.errorbar(xs, ys, yerr=_yerr(points), fmt="none", ecolor="black", capsize=3, lw=1)
        for bar, stats in zip(bars, points, strict=True):
            ax.annotate(
                f"n={stats['n']}",
                (bar.get_x() + bar.get_width() / 2, 1.0),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if len(runs) > 2 else 0,
            )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([name if tag == "bin" else "overall" for tag, name in groups])
    ax.set_ylim(0, 105)
    ax.set_xlabel("scale bin (target relative area)")
    ax.set_ylabel("accuracy (%), 95 % Wilson interval")
    ax.set_title("Accuracy per scale bin")
    ax.grid(True, axis="y", alpha=0.3)


def _legend(ax: Any, runs: int) -> None:
    if runs > 2:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8)


def plot_acc_vs_area(
    runs: Sequence[Mapping[str, Any]], path: str | os.PathLike, bin_edges: Sequence[float] = ()
) -> bool:
    """Accuracy against target relative area (log x, two bins per decade, 95 % Wilson bars).

    Args:
        runs: summaries; one line each, labelled by `meta["agent"]` (or `meta["label"]`).
        path: the PNG to write.
        bin_edges: scale-bin edges drawn as dotted vertical lines.

    Returns:
        False when nothing was plotted (no matplotlib, or no record with a target).
    """
    plt = _pyplot()
    if plt is None or not any(r.get("acc_vs_area") for r in runs):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    _draw_acc_vs_area(ax, runs, bin_edges)
    _legend(ax, len(runs))
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return True


def plot_acc_by_bin(
    runs: Sequence[Mapping[str, Any]], path: str | os.PathLike, bin_edges: Sequence[float] = ()
) -> bool:
    """Two panels for a comparison: a bar chart of accuracy per scale bin (and overall) with 95 %
    Wilson bars and each bar's n, beside the accuracy-against-area lines (`plot_acc_vs_area`).

    Returns:
        False when nothing was plotted (no matplotlib, or no run with a non-empty group).
    """
    plt = _pyplot()
    if plt is None or not any(s["overall"].get("n") for s in runs):
        return False
    area = any(r.get("acc_vs_area") for r in runs)
    fig, axes = plt.subplots(1, 2 if area else 1, figsize=(13 if area else 6.5, 4.4), squeeze=False)
    _draw_acc_by_bin(axes[0][0], runs)
    if area:
        _draw_acc_vs_area(axes[0][1], runs, bin_edges)
    _legend(axes[0][-1], len(runs))
    fig.tight_layout()
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return True


def plot_iou_hist(
    records: Sequence[Mapping[str, Any]], path: str | os.PathLike, label: str = ""
) -> bool:
    """Histogram of each cropped episode's best crop IoU (20 bins over [0, 1]).

    Returns:
        False when nothing was plotted (no matplotlib, or no cropped episode with a target).
    """
    plt = _pyplot()
    values = [float(r["iou"]) for r in records if r.get("iou") is not None]
    if plt is None or not values:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(values, bins=[k / 20 for k in range(21)], color="tab:orange", edgecolor="black")
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("best crop IoU with the ground truth")
    ax.set_ylabel("episodes")
    ax.set_title(f"Crop IoU{(' - ' + label) if label else ''} ({len(values)} cropped episodes)")
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)
    return True


def write_reports(
    out_dir: str | os.PathLike,
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    plots: bool = True,
) -> dict[str, str]:
    """Write summary.json, summary.csv, summary.md and (with `plots`) acc_vs_area.png and
    iou_hist.png into `out_dir`; returns {kind: path} of what was written."""
    out = Path(out_dir)
    written = {
        "json": out / "summary.json",
        "csv": out / "summary.csv",
        "markdown": out / "summary.md",
    }
    atomic_write_text(written["json"], json.dumps(jsonable(summary), indent=2) + "\n")
    atomic_write_text(written["csv"], summary_csv(summary))
    atomic_write_text(written["markdown"], summary_markdown(summary))
    if plots:
        edges = summary.get("meta", {}).get("bin_edges") or ()
        if plot_acc_vs_area([summary], out / "acc_vs_area.png", edges):
            written["acc_vs_area"] = out / "acc_vs_area.png"
        if plot_iou_hist(records, out / "iou_hist.png", _label(summary)):
            written["iou_hist"] = out / "iou_hist.png"
    return {k: str(v) for k, v in written.items()}


# ---------------------------------------------------------------- comparison


def _label(summary: Mapping[str, Any]) -> str:
    meta = summary.get("meta", {})
    return str(meta.get("label") or meta.get("agent") or Path(meta.get("path", "run")).name)


def _groups(summaries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(tag, name) of every row: overall, then each scale bin and category any run has."""
    groups: list[tuple[str, str]] = [("overall", "all")]
    for section, tag in (("per_bin", "bin"), ("per_category", "category")):
        for summary in summaries:
            for name in summary.get(section, {}):
                if (tag, name) not in groups:
                    groups.append((tag, name))
    return groups


def _group_stats(summary: Mapping[str, Any], tag: str, name: str) -> Mapping[str, Any] | None:
    """The metrics of one group (overall, a scale bin, a category) of one run, or None."""
    if tag == "overall":
        return summary["overall"]
    return summary.get("per_bin" if tag == "bin" else "per_category", {}).get(name)


def _group_value(summary: Mapping[str, Any], tag: str, name: str, metric: str) -> tuple[Any, int]:
    """(metric value, n) of one group of one run; (None, 0) when the run lacks it or it is empty."""
    stats = _group_stats(summary, tag, name)
    if not stats or not stats.get("n"):
        return None, 0
    return stats.get(metric), int(stats["n"])


def _delta(value: Any, ref_value: Any, kind: str) -> str:
    if value is None or ref_value is None:
        return "-"
    if kind == "pct":
        return f"{100.0 * (value - ref_value):+.1f}"
    return f"{value - ref_value:+.3f}"


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _render_table(title: str, header: list[str], rows: list[list[str]], markdown: bool) -> str:
    """`title`, then the table: Markdown (first column left-aligned, the rest right) or aligned
    text."""
    if markdown:
        lines = [
            title,
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    return "\n".join([title, *_text_table(header, rows)]) + "\n"


def _fmt_paired(diff: PairedDifference) -> str:
    if math.isnan(diff.low):
        return f"{100.0 * diff.mean:+.1f} (pairs={diff.n})"
    return (
        f"{100.0 * diff.mean:+.1f} [{100.0 * diff.low:+.1f}, {100.0 * diff.high:+.1f}] "
        f"(pairs={diff.n})"
    )


def compare_table(
    summaries: Sequence[Mapping[str, Any]],
    metric: str = "accuracy",
    ref: int = 0,
    markdown: bool = False,
    records: Sequence[Sequence[Mapping[str, Any]] | None] | None = None,
) -> str:
    """Side-by-side table of `metric` per group (overall, scale bins, categories) for several runs.

    Each run other than the reference gets a delta column: `run - reference` (percentage points
    for accuracy-like metrics). Groups a run lacks show "-". The `n` column lists the distinct
    episode counts of the runs in that group. For `metric="accuracy"` each value carries its 95 %
    Wilson interval, and each Δ of two runs with episode `records` that share sample ids is
    paired: the mean per-sample difference over the shared samples of that group, with a
    bootstrap 95 % interval (`paired_bootstrap`; HR-Bench rotations of one question form one
    sample); notes below the table say when n or the sample sets differ.

    Args:
        summaries: loaded summaries (`load_summary`).
        metric: a key of the per-group metrics ("accuracy", "miou", "acc_at_0.5", ...).
        ref: index of the reference run in `summaries`.
        markdown: a Markdown table instead of aligned plain text.
        records: each run's episode records (`load_run_records`), or None / [] where absent.
    """
    if not summaries:
        raise ValueError("compare_table needs at least one summary")
    if not 0 <= ref < len(summaries):
        raise ValueError(f"ref={ref} is out of range for {len(summaries)} runs")
    known = sorted(k for k in summaries[0]["overall"] if k != "reward_terms")
    if metric not in known:
        raise ValueError(f"unknown metric {metric!r}; choose from {known}")
    if records is not None and len(records) != len(summaries):
        raise ValueError(f"records has {len(records)} entries for {len(summaries)} summaries")
    kind = {key: k for key, _, k in TABLE_METRICS}.get(metric, "f3")
    accuracy = metric == "accuracy"
    labels = [_label(s) for s in summaries]
    groups = _groups(summaries)
    run_records = list(records) if records is not None else [None] * len(summaries)
    edges = summaries[ref].get("meta", {}).get("bin_edges") or ()
    paired: dict[int, dict[tuple[str, str], PairedDifference]] = {}
    notes: list[str] = []
    if accuracy:
        for i, summary in enumerate(summaries):
            notes += rotation_note(labels[i], summary)
            if i == ref:
                continue
            notes += sample_set_notes(
                labels[i], labels[ref], summary, summaries[ref], run_records[i], run_records[ref]
            )
            mine, theirs = run_records[i], run_records[ref]
            if mine and theirs:
                paired[i] = paired_differences(theirs, mine, groups, edges)
    header = ["group", "n"]
    for i, label in enumerate(labels):
        header += [label + " (ref)"] if i == ref else [label, "Δ"]
    rows = []
    for tag, name in groups:
        values = [_group_value(s, tag, name, metric) for s in summaries]
        row = [
            name if tag != "overall" else "overall",
            "/".join(str(n) for n in dict.fromkeys(n for _, n in values)),
        ]
        for i, (value, _) in enumerate(values):
            cell = _fmt(value, kind)
            if accuracy and value is not None:
                cell += " " + _fmt_interval(_interval(_group_stats(summaries[i], tag, name)))
            row.append(cell)
            if i != ref:
                diff = paired.get(i, {}).get((tag, name))
                row.append(_fmt_paired(diff) if diff else _delta(value, values[ref][0], kind))
        rows.append(row)
    if accuracy:
        unit = (
            " (%, 95 % Wilson interval; Δ in points, paired over shared samples with a bootstrap "
            "95 % interval)"
        )
    else:
        unit = " (%, Δ in points)" if kind == "pct" else ""
    table = _render_table(f"{metric}{unit}; Δ = run - {labels[ref]}", header, rows, markdown)
    return table + "".join(line + "\n" for line in notes)


def compare_area_table(summaries: Sequence[Mapping[str, Any]], markdown: bool = False) -> str:
    """Accuracy per log-spaced target-area bin (`acc_vs_area`, two per decade) for several runs:
    a comparison that does not depend on the runs' scale-bin edges."""
    keyed: dict[tuple[float, float], dict[int, Mapping[str, Any]]] = {}
    for i, summary in enumerate(summaries):
        for point in summary.get("acc_vs_area") or []:
            key = (round(math.log10(point["lo"]), 3), round(math.log10(point["hi"]), 3))
            keyed.setdefault(key, {})[i] = point
    labels = [_label(s) for s in summaries]
    header = ["target area", *labels]
    rows = []
    for (lo, hi), points in sorted(keyed.items()):
        cells = [f"[{10**lo:.0e}, {10**hi:.0e})"]
        for i in range(len(summaries)):
            p = points.get(i)
            cells.append(f"{100.0 * p['accuracy']:.1f} (n={p['n']})" if p else "-")
        rows.append(cells)
    return _render_table("accuracy (%) by target relative area", header, rows, markdown)


def _run_category_values(
    summary: Mapping[str, Any], benchmark: PublishedBenchmark, unmatched: set[str]
) -> dict[str, Any]:
    """A run's overall and per-category accuracies, keyed by the benchmark's split names."""
    values: dict[str, Any] = {OVERALL: summary["overall"].get("accuracy")}
    for name, stats in summary.get("per_category", {}).items():
        category = match_category(name, benchmark.categories, benchmark.category_aliases)
        if category is None:
            unmatched.add(name)
        elif stats.get("n"):
            values.setdefault(category, stats.get("accuracy"))
    return values


def published_table(
    benchmark: PublishedBenchmark,
    summaries: Sequence[Mapping[str, Any]] = (),
    markdown: bool = False,
) -> str:
    """Published accuracies of `benchmark` ranked with the runs of that benchmark, in %.

    Each row says how the number was measured (`protocol`), by whom (`reported_by`) and where it
    was read (`source`). A run is ranked only when its dataset (and split: HR-Bench 4K / 8K) is
    the benchmark's (`PublishedBenchmark.run_mismatch`); it shows its n and 95 % Wilson interval.
    Other runs are listed below the table as "not comparable", unranked. A run's categories match
    the published ones by name or alias (`match_category`: HR-Bench "single" is FSP). Below the
    table: the markers' meanings, the sources, the rows' notes, and that per-scale-bin accuracies
    are not published.

    Args:
        benchmark: a loaded published benchmark (`grounding_gym.eval.published`).
        summaries: loaded run summaries (`load_summary`); may be empty.
        markdown: a Markdown table instead of aligned plain text.
    """
    columns = [OVERALL, *benchmark.categories]
    labels = [benchmark.category_labels.get(c, c) for c in columns]
    header = ["system", "size", "protocol", "reported by", "source", labels[0], "95 % CI", "n"]
    header += labels[1:]
    ranked: list[tuple[float, list[str]]] = []
    apart: list[str] = []
    run_notes: list[str] = []
    unmatched: set[str] = set()
    for summary in summaries:
        overall = summary["overall"]
        interval = _fmt_interval(_interval(overall))
        why = benchmark.run_mismatch(summary.get("meta", {}))
        if why is not None:
            apart.append(
                f"  run: {_label(summary)}: {_fmt(overall.get('accuracy'), 'pct')} % {interval}, "
                f"n = {overall.get('n')}: {why}; not ranked among {benchmark.title} results"
            )
            continue
        values = _run_category_values(summary, benchmark, unmatched)
        run_notes += rotation_note(f"run: {_label(summary)}", summary)
        cells = [f"run: {_label(summary)}", "-", "this run", "you", "-"]
        cells += [_fmt(values[OVERALL], "pct"), interval, str(overall.get("n"))]
        cells += [_fmt(values.get(c), "pct") for c in columns[1:]]
        score = values[OVERALL]
        ranked.append((-1.0 if score is None else 100.0 * score, cells))
    for row in benchmark.rows:
        cells = [row.system + row.marker, row.size or "-", row.protocol, row.reported_by]
        cells += [row.source.key, _printed(row.accuracy.get(OVERALL)), "-", "-"]
        cells += [_printed(row.accuracy.get(c)) for c in columns[1:]]
        ranked.append((row.accuracy.get(OVERALL, -1.0), cells))
    ranked.sort(key=lambda item: -item[0])  # stable: a run ties above the published rows after it
    title = (
        f"published accuracy (%) on {benchmark.title} ({benchmark.path.name}), ranked with the "
        "runs of this benchmark"
    )
    lines = [_render_table(title, header, [c for _, c in ranked], markdown).rstrip("\n")]
    if apart:
        lines += ["", "not comparable (not ranked):", *apart]
    markers = {(r.source.key, r.marker): r.marker_meaning for r in benchmark.rows if r.marker}
    if markers:
        lines += ["", "markers:"]
        lines += [f"  {m} [{key}]: {meaning}" for (key, m), meaning in markers.items()]
    used = {r.source.key: r.source for r in benchmark.rows}
    if used:
        lines += ["", "sources:", *(f"  [{s.key}] {s.cite()}" for s in used.values())]
    notes = [f"  {r.system} [{r.source.key}]: {r.note}" for r in benchmark.rows if r.note]
    if notes:
        lines += ["notes:", *notes]
    if benchmark.note:
        lines.append(f"note: {benchmark.note}")
    lines += run_notes
    if unmatched:
        lines.append(
            f"run categories with no published counterpart: {', '.join(sorted(unmatched))}"
        )
    lines.append(
        f"note: per-scale-bin accuracies are not published for {benchmark.title} (papers report "
        "overall "
        "and per-category numbers only); a run's own per-bin accuracies are in its summary and in "
        "`grounding-gym compare RUN`'s table. How each row was checked: `check` in "
        f"{benchmark.path.name}."
    )
    if lines[1]:  # a blank line between the table and what follows it
        lines.insert(1, "")
    return "\n".join(lines) + "\n"


def _printed(value: float | None) -> str:
    """A published percentage as the source prints it (88.0, 54.87), or "-"."""
    return "-" if value is None else repr(value)
