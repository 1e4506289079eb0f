"""`grounding-gym compare`: result folders side by side (per scale bin, with intervals), beside
the shipped baselines and the published accuracies of their benchmark, and the contribution of
each counterfactual view.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grounding_gym.eval.cli import BASELINES_ENV_VAR, baselines_dir


def find_baselines(benchmark: str, root: Path) -> list[Path]:
    """Summary files of every baseline of `benchmark`: `root/benchmark/*/summary.json`, sorted."""
    folder = root / benchmark
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(
            f"no baselines for benchmark {benchmark!r} in {root}; available: {known}"
        )
    return sorted(folder.glob("*/summary.json"))


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grounding-gym compare",
        description="Compare evaluation runs side by side per scale bin and category, with deltas "
        "against a reference run (the first, unless --ref).",
    )
    parser.add_argument("runs", nargs="*", help="run folders (with summary.json) or summary files")
    parser.add_argument(
        "--baselines",
        nargs="?",
        const="auto",
        default=None,
        metavar="BENCHMARK",
        help="add the shipped baselines of BENCHMARK (default: the first run's benchmark)",
    )
    parser.add_argument(
        "--baselines-dir",
        default=None,
        help=f"baselines folder (default: ${BASELINES_ENV_VAR} or the repository's baselines/)",
    )
    parser.add_argument(
        "--published",
        nargs="?",
        const="auto",
        default=None,
        metavar="BENCHMARK",
        help="also print the accuracies papers report on BENCHMARK (vstar, hrbench-4k, hrbench-8k, "
        "mme-realworld, mme-realworld-lite, treebench; default: the first run's benchmark), with "
        "their protocol, reporter and source, from BASELINES_DIR/published/; runs of another "
        "dataset (or HR-Bench resolution) are listed apart, unranked",
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=None,
        help="metric to tabulate (repeatable): accuracy (default), miou, acc_at_0.5, "
        "crop_coverage, mean_turns, invalid_action_rate, ...",
    )
    parser.add_argument(
        "--ref",
        default="0",
        help="reference run: index or label (default 0, the first; baselines are labelled bl:NAME)",
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--by-area",
        action="store_true",
        help="also tabulate accuracy per log-spaced target-area bin (independent of bin edges)",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also plot accuracy per scale bin (bars, 95 %% intervals) beside accuracy against "
        "target area",
    )
    return parser


def compare_main(argv: Sequence[str]) -> int:
    args = compare_parser().parse_args(list(argv))
    from grounding_gym.eval.report import load_summary

    try:
        summaries = [load_summary(p) for p in args.runs]
    except FileNotFoundError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if args.baselines is not None:
        benchmark = args.baselines
        if benchmark == "auto":
            if not summaries:
                print(
                    "compare: --baselines without a run needs a benchmark name, e.g. --baselines "
                    "synthetic-hr",
                    file=sys.stderr,
                )
                return 2
            benchmark = _run_benchmark(summaries[0])
        try:
            files = find_baselines(str(benchmark), baselines_dir(args.baselines_dir))
        except FileNotFoundError as exc:
            print(f"compare: {exc}", file=sys.stderr)
            return 2
        for file in files:  # "bl:" tells shipped baselines from the user's runs
            summary = load_summary(file)
            meta = summary["meta"]
            meta["label"] = "bl:" + str(meta.get("label") or meta.get("agent") or file.parent.name)
            summaries.append(summary)
    if not summaries:
        if args.published is not None:
            return _print_published(args, [])
        print(
            "compare: give run folders and/or --baselines BENCHMARK / --published BENCHMARK",
            file=sys.stderr,
        )
        return 2
    labels = [str(s["meta"].get("label") or s["meta"].get("agent")) for s in summaries]
    ref = (
        int(args.ref)
        if args.ref.isascii() and args.ref.isdigit()
        else (labels.index(args.ref) if args.ref in labels else -1)
    )
    if not 0 <= ref < len(summaries):
        print(f"compare: --ref {args.ref!r} is not an index or one of {labels}", file=sys.stderr)
        return 2
    _warn_config_mismatch(summaries)
    code = _print_comparison(args, summaries, ref) or _print_contributions(args, summaries, ref)
    if code:
        return code
    if args.published is not None:
        return _print_published(args, summaries)
    return 0


def _print_comparison(args: argparse.Namespace, summaries: list[dict[str, Any]], ref: int) -> int:
    """Print the per-group tables of the runs (with intervals and paired differences where their
    episode records allow), the by-area table and the plot; 2 on an unreadable episodes file."""
    from grounding_gym.eval.report import (
        compare_area_table,
        compare_table,
        load_run_records,
        plot_acc_by_bin,
    )

    try:
        records = [load_run_records(s) for s in summaries]
    except ValueError as exc:  # an edited or corrupted episodes.jsonl
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    for metric in args.metric or ["accuracy"]:
        print(compare_table(summaries, metric, ref, args.markdown, records))
    if args.by_area:
        print(compare_area_table(summaries, markdown=args.markdown))
    if args.plot:
        edges = summaries[0]["meta"].get("bin_edges") or ()
        if plot_acc_by_bin(summaries, args.plot, edges):
            print(f"plot: {args.plot}")
    return 0


def _print_contributions(
    args: argparse.Namespace, summaries: list[dict[str, Any]], ref: int
) -> int:
    """For each counterfactual run (`eval --counterfactual`), the crops' gain / harm per scale bin
    against the real run (the reference, else the first run without a counterfactual), and with
    `--plot X.png` a plot `X_contribution_LABEL.png` beside it; 2 when a run has no records."""
    from grounding_gym.eval.contribution import (
        contribution_table,
        plot_contribution,
        tool_contribution,
    )
    from grounding_gym.eval.report import load_run_records

    real = [i for i, s in enumerate(summaries) if not s["meta"].get("counterfactual")]
    if not real:
        return 0
    base = ref if ref in real else real[0]
    real_label = str(summaries[base]["meta"].get("label") or summaries[base]["meta"].get("agent"))
    real_records = load_run_records(summaries[base])
    edges = summaries[base]["meta"].get("bin_edges") or ()
    for summary in summaries:
        meta = summary["meta"]
        if not meta.get("counterfactual"):
            continue
        label = str(meta.get("label") or meta.get("agent"))
        cf_records = load_run_records(summary)
        if not real_records or not cf_records:
            missing = real_label if not real_records else label
            print(
                f"compare: tool contribution needs the episode records of both runs; {missing} "
                "has no episodes.jsonl",
                file=sys.stderr,
            )
            return 2
        rows = tool_contribution(real_records, cf_records, edges)
        print(contribution_table(rows, real_label, label, args.markdown))
        if args.plot:
            plot = Path(args.plot)
            slug = label.replace("/", "_").replace(":", "_")
            path = plot.with_name(f"{plot.stem}_contribution_{slug}{plot.suffix or '.png'}")
            if plot_contribution(rows, path, real_label, label):
                print(f"plot: {path}")
    return 0


def _run_benchmark(summary: dict[str, Any]) -> str:
    """The benchmark a run was evaluated on: its `--benchmark` name, else its dataset."""
    return str(summary["meta"].get("benchmark") or summary["meta"].get("dataset"))


def _print_published(args: argparse.Namespace, summaries: list[dict[str, Any]]) -> int:
    """Print the published accuracies of `--published` (or the first run's benchmark) beside the
    runs."""
    from grounding_gym.eval.published import PublishedFormatError, find_published
    from grounding_gym.eval.report import published_table

    name = args.published
    if name == "auto":
        if not summaries:
            print(
                "compare: --published without a run needs a benchmark name, e.g. --published vstar",
                file=sys.stderr,
            )
            return 2
        name = _run_benchmark(summaries[0])
    try:
        benchmarks = find_published(name, baselines_dir(args.baselines_dir) / "published")
    except (FileNotFoundError, PublishedFormatError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    runs = [s for s in summaries if not str(s["meta"].get("label", "")).startswith("bl:")]
    for benchmark in benchmarks:
        print(published_table(benchmark, runs, markdown=args.markdown))
    return 0


def _warn_config_mismatch(summaries: Sequence[dict[str, Any]]) -> None:
    keys = ("env_id", "dataset", "dataset_kwargs", "seed", "bin_edges")
    first = summaries[0]["meta"]
    for summary in summaries[1:]:
        meta = summary["meta"]
        diffs = [k for k in keys if meta.get(k) != first.get(k)]
        env_a = {k: v for k, v in (first.get("env_kwargs") or {}).items() if k != "dataset_kwargs"}
        env_b = {k: v for k, v in (meta.get("env_kwargs") or {}).items() if k != "dataset_kwargs"}
        if env_a != env_b:
            diffs.append("env_kwargs")
        same_n = meta.get("n_episodes") == first.get("n_episodes")
        if (
            same_n
            and meta.get("data_fingerprint")
            and meta.get("data_fingerprint") != first.get("data_fingerprint")
        ):
            diffs.append(
                "the questions themselves (data_fingerprint; was the dataset generator changed?)"
            )
        if diffs:
            print(
                f"note: {meta.get('label') or meta.get('agent')} differs from "
                f"{first.get('label') or first.get('agent')} "
                f"in {', '.join(diffs)}: the samples or the env differ, so compare with care",
                file=sys.stderr,
            )
