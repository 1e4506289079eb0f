"""`grounding-gym eval | compare | render`: each `f(argv) -> exit code`.

grounding-gym eval --agent oracle-crop --env GroundedVQA-HR-v0 -n 50
grounding-gym eval --agent no-crop -n 50 --image-size 1024          # small images: fast
grounding-gym compare runs/eval/synthetic-hr/my-agent-s0 --baselines
grounding-gym compare runs/eval/vstar/my-agent-s0 --published    # papers' accuracies beside it
grounding-gym render --agent oracle-crop --episode 3 --out episode.png
grounding-gym render --run runs/eval/synthetic-hr/no-crop-s0 --episode 3 --out replay.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from grounding_gym.atomic import FolderLockedError, atomic_write_bytes

DEFAULT_ENV = "GroundedVQA-HR-v0"
BASELINES_ENV_VAR = "GROUNDING_GYM_BASELINES"


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def _size_arg(text: str) -> int | list[int]:
    parts = [p for p in text.replace("x", ",").split(",") if p]
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--image-size takes N or MIN,MAX, got {text!r}") from exc
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values
    raise argparse.ArgumentTypeError(f"--image-size takes N or MIN,MAX, got {text!r}")


def _range_arg(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(p) for p in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--samples takes START:STOP, got {text!r}") from exc
    return start, stop


def _edges_arg(text: str) -> list[float] | str:
    from grounding_gym.scale import parse_bin_spec

    try:
        parsed = parse_bin_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--bin-edges: {exc}") from exc
    return text.strip() if isinstance(parsed, int) else list(parsed)


def _add_env_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("environment")
    group.add_argument("--env", default=DEFAULT_ENV, help=f"env id (default {DEFAULT_ENV})")
    group.add_argument(
        "--env-kwargs",
        type=_json_arg,
        default={},
        metavar="JSON",
        help='env options, e.g. \'{"coord_frame": "norm1000", "max_turns": 3}\'',
    )
    group.add_argument(
        "--dataset", default=None, help="dataset name (default: the env's, synthetic-hr)"
    )
    group.add_argument(
        "--dataset-kwargs",
        type=_json_arg,
        default={},
        metavar="JSON",
        help='dataset options, e.g. \'{"num_samples": 200, "difficulty": 0.5}\'',
    )
    group.add_argument(
        "--data-dir", default=None, help="folder of a real benchmark (vstar, hrbench, ...)"
    )
    group.add_argument(
        "--image-size",
        type=_size_arg,
        default=None,
        metavar="N|MIN,MAX",
        help="synthetic image side(s) in px (dataset kwarg image_size); default 2048,8192",
    )


def _env_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    env_kwargs = dict(args.env_kwargs)
    dataset_kwargs = dict(args.dataset_kwargs)
    if args.image_size is not None:
        dataset_kwargs["image_size"] = args.image_size
    if args.data_dir is not None:
        env_kwargs["data_dir"] = args.data_dir
    return env_kwargs, dataset_kwargs


def _add_agent_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--agent",
        required=required,
        help="agent name (see `grounding-gym list agents`) or module:factory",
    )
    parser.add_argument(
        "--agent-kwargs",
        type=_json_arg,
        default={},
        metavar="JSON",
        help='agent options, e.g. \'{"seed": 1}\' or \'{"path": "ppo.zip"}\'',
    )


# ---------------------------------------------------------------- eval


def eval_parser() -> argparse.ArgumentParser:
    from grounding_gym.wrappers.counterfactual import COUNTERFACTUALS

    parser = argparse.ArgumentParser(
        prog="grounding-gym eval",
        description="Evaluate an agent: one JSON line per episode (resumable), then summary "
        "tables (JSON, CSV, Markdown) per scale bin and category, and PNG plots.",
        epilog="Run the same command again to resume an interrupted evaluation.",
    )
    _add_agent_args(parser, required=True)
    _add_env_args(parser)
    run = parser.add_argument_group("run")
    run.add_argument(
        "-n",
        "--num-episodes",
        dest="n",
        type=int,
        default=None,
        help="episodes (default: every sample of the dataset once)",
    )
    run.add_argument(
        "--num-envs", type=int, default=1, help="envs stepped together (agent batch size)"
    )
    run.add_argument(
        "--samples",
        type=_range_arg,
        default=None,
        metavar="START:STOP",
        help="evaluate only dataset indices START..STOP-1 (e.g. a trainer's held-out questions)",
    )
    run.add_argument(
        "--seed", type=int, default=None, help="fixes which samples run, in which order (default 0)"
    )
    run.add_argument(
        "--like",
        default=None,
        metavar="RUN",
        help="use the exact setting of another run or shipped baseline folder (env, env and "
        "dataset kwargs, seed, n, bin edges, benchmark), e.g. baselines/synthetic-hr/no-crop",
    )
    run.add_argument(
        "--out", default=None, help="result folder (default runs/eval/BENCHMARK/AGENT-sSEED)"
    )
    run.add_argument(
        "--benchmark",
        default=None,
        help="name used by `compare --baselines` (default: the dataset name)",
    )
    run.add_argument(
        "--label", default=None, help="the run's name in comparisons (default: the agent)"
    )
    run.add_argument(
        "--bin-edges",
        type=_edges_arg,
        default=None,
        metavar="E1,E2|quantiles:K",
        help="scale-bin edges on the target's relative area for the summary, or quantiles:K "
        "(K equal-count bins of this run); default: the dataset's (V*, HR-Bench, "
        "MME-RealWorld, TreeBench, synthetic-hr: 0.001,0.01), else 0.1,0.3",
    )
    run.add_argument(
        "--counterfactual",
        choices=sorted(COUNTERFACTUALS),
        default=None,
        help="replace what each crop returns: blank (uniform image), shuffle (the same box of "
        "another sample), no-tool (crops refused); compare the run with the real one for the "
        "tool's gain and harm per scale bin",
    )
    run.add_argument(
        "--answer-judge",
        type=_json_arg,
        default=None,
        metavar="JSON",
        help="judge free-form answers (env kwarg answer_judge): exact / numeric match first, then "
        "a model behind an OpenAI-compatible endpoint at temperature 0 with a versioned prompt, "
        'verdicts cached on disk, e.g. \'{"model": "Qwen/Qwen2.5-7B-Instruct", '
        '"base_url": "http://127.0.0.1:8000/v1"}\' (fields: grounding_gym.judge.JudgeConfig)',
    )
    run.add_argument(
        "--on-error",
        choices=("record", "skip", "raise"),
        default="record",
        help="an episode that fails (e.g. a corrupt image): record it with its error, left out "
        "of the metrics and counted in the summary (default); skip it (retried on resume); or "
        "raise (stop the run)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="discard a different evaluation in --out"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-plots", action="store_true", help="no PNG plots")
    return parser


def eval_main(argv: Sequence[str]) -> int:
    args = eval_parser().parse_args(list(argv))
    from grounding_gym.eval.harness import RunMismatchError, evaluate
    from grounding_gym.eval.report import summary_markdown
    from grounding_gym.judge import JudgeError

    env_kwargs, dataset_kwargs = _env_options(args)
    setting: dict[str, Any] = {
        "env": args.env,
        "dataset": args.dataset,
        "dataset_kwargs": dataset_kwargs or None,
        "env_kwargs": env_kwargs or None,
        "n": args.n,
        "seed": 0 if args.seed is None else args.seed,
        "benchmark": args.benchmark,
        "bin_edges": args.bin_edges,
        "bin_edges_source": None,
        "samples": args.samples,
    }
    if args.like is not None:
        if args.env != DEFAULT_ENV or env_kwargs or dataset_kwargs or args.dataset:
            print(
                "eval: --like takes the env and its options from that run; drop --env/--env-kwargs/"
                "--dataset/--dataset-kwargs/--image-size/--data-dir",
                file=sys.stderr,
            )
            return 2
        setting.update(_like(args.like, args))
    if args.answer_judge is not None:
        setting["env_kwargs"] = {**(setting["env_kwargs"] or {}), "answer_judge": args.answer_judge}
    benchmark = setting["benchmark"] or setting["dataset"] or _default_dataset(setting["env"])
    agent_slug = (args.label or args.agent).replace(":", "_").replace("/", "_")
    if args.counterfactual and not args.label:
        agent_slug += f"+{args.counterfactual}"
    out = args.out or os.path.join("runs", "eval", benchmark, f"{agent_slug}-s{setting['seed']}")
    try:
        summary = evaluate(
            args.agent,
            setting["env"],
            dataset=setting["dataset"],
            dataset_kwargs=setting["dataset_kwargs"],
            env_kwargs=setting["env_kwargs"],
            agent_kwargs=args.agent_kwargs or None,
            n=setting["n"],
            num_envs=args.num_envs,
            out_dir=out,
            seed=setting["seed"],
            progress=not args.no_progress,
            plots=not args.no_plots,
            overwrite=args.overwrite,
            benchmark=setting["benchmark"],
            label=args.label,
            bin_edges=setting["bin_edges"],
            bin_edges_source=setting["bin_edges_source"],
            samples=setting["samples"],
            counterfactual=args.counterfactual,
            on_error=args.on_error,
        )
    except (
        RunMismatchError,
        FolderLockedError,
        ImportError,
        JudgeError,
    ) as exc:  # ImportError: an agent's optional extra is missing; JudgeError: judge endpoint down
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    print(summary_markdown(summary))
    judged = summary["meta"].get("answer_judge")
    if judged:
        agreement = judged["agreement"]
        print(
            f"answer judge {judged['model']} (prompt {judged['prompt_version']}): {judged['n']} "
            f"answers, sources {judged['by_source']}, {judged['errors']} judge_error(s), agreement "
            "with exact match " + ("-" if agreement is None else f"{100.0 * agreement:.1f} %")
        )
    print(
        f"results: {out}/ (episodes.jsonl, summary.json/.csv/.md"
        + ("" if args.no_plots else ", acc_vs_area.png, iou_hist.png")
        + ")"
    )
    return 0


def _like(run: str, args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation setting of another run (its summary's meta); explicit -n/--seed/--bin-edges
    win. `run` is a folder, or a shipped baseline's name relative to the baselines folder
    (`synthetic-hr/no-crop`, or `baselines/synthetic-hr/no-crop` from anywhere)."""
    from grounding_gym.eval.report import load_summary

    run = str(resolve_run(run))
    meta = load_summary(run)["meta"]
    edges_source = (
        "given (--bin-edges)"
        if args.bin_edges
        else f"from --like {run}: {meta.get('bin_edges_source') or 'its edges'}"
    )
    return {
        "env": meta["env_id"],
        "dataset": None,
        "dataset_kwargs": None,
        "env_kwargs": dict(meta.get("env_kwargs") or {}),  # holds dataset and dataset_kwargs
        "n": args.n if args.n is not None else meta.get("n"),
        "seed": args.seed if args.seed is not None else meta.get("seed", 0),
        "benchmark": args.benchmark or meta.get("benchmark"),
        "bin_edges": args.bin_edges or meta.get("bin_edges"),
        "bin_edges_source": edges_source,
        "samples": args.samples or (tuple(meta["samples"]) if meta.get("samples") else None),
    }


def resolve_run(run: str) -> Path:
    """`run` as given when it exists, else the shipped baseline of that name (`baselines_dir()`,
    a leading `baselines/` dropped); as given when neither exists (the error names it)."""
    given = Path(run)
    if given.exists():
        return given
    name = Path(*given.parts[1:]) if given.parts[:1] == ("baselines",) else given
    shipped = baselines_dir() / name
    return shipped if shipped.exists() else given


def _run_label(run: str) -> str | None:
    """The `--label` of the evaluation in `run` (its summary), or None."""
    from grounding_gym.eval.report import load_summary

    try:
        return load_summary(run)["meta"].get("label")
    except (OSError, ValueError, KeyError):
        return None


def _default_dataset(env_id: str) -> str:
    import gymnasium as gym

    import grounding_gym  # noqa: F401  (registers the ids)

    try:
        name = gym.spec(env_id).kwargs.get("dataset")
    except gym.error.Error:
        return "custom"
    return name if isinstance(name, str) else "custom"


# ---------------------------------------------------------------- compare


def baselines_dir(override: str | None = None) -> Path:
    """Where shipped baseline results live: `--baselines-dir`, $GROUNDING_GYM_BASELINES, or
    `baselines/` at the repository root (beside the `grounding_gym` package)."""
    if override:
        return Path(override)
    if os.environ.get(BASELINES_ENV_VAR):
        return Path(os.environ[BASELINES_ENV_VAR])
    return Path(__file__).resolve().parents[2] / "baselines"


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


# ---------------------------------------------------------------- render


def render_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grounding-gym render",
        description="Draw one episode as PNG: the original with ground truth, crops and view, then "
        "every view the agent saw. Either run an agent (--agent) or replay a recorded episode "
        "(--run).",
    )
    _add_agent_args(parser, required=False)
    parser.add_argument("--run", default=None, help="replay an episode of this evaluation folder")
    parser.add_argument(
        "--episode", type=int, default=0, help="episode index (plan of --seed, or of --run)"
    )
    parser.add_argument(
        "--sample-id", default=None, help="a sample id instead of --episode (with --agent)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="evaluation seed that defines --episode"
    )
    parser.add_argument("--out", default="episode.png", help="PNG file (default episode.png)")
    parser.add_argument(
        "--label", default=None, help="the agent's name in the title (default: the run's label)"
    )
    _add_env_args(parser)
    return parser


def render_main(argv: Sequence[str]) -> int:
    parser = render_parser()
    args = parser.parse_args(list(argv))
    if (args.agent is None) == (args.run is None):
        parser.error("give exactly one of --agent NAME or --run DIR")
    from grounding_gym.eval.harness import episode_plan, episode_seed, make_eval_env
    from grounding_gym.eval.records import read_records
    from grounding_gym.eval.render import episode_png, play_episode

    if args.run is not None:
        config = json.loads((Path(args.run) / "config.json").read_text(encoding="utf-8"))
        records = {
            r["episode"]: r for r in read_records(Path(args.run) / "episodes.jsonl", repair=False)
        }
        if args.episode not in records:
            print(
                f"render: episode {args.episode} is not in {args.run} "
                f"(has {len(records)} episodes)",
                file=sys.stderr,
            )
            return 2
        record = records[args.episode]
        kwargs = dict(config.get("env_kwargs") or {})
        env, _, _ = make_eval_env(
            config["env_id"], env_kwargs={**kwargs, "render_mode": "rgb_array"}
        )
        frames = play_episode(
            env,
            record["actions"],
            seed=record["seed"],
            options={"sample_id": record["sample_index"]},
        )
        name = args.label or _run_label(args.run) or config.get("agent")
        title = f"{name} episode {args.episode} ({record['sample_id']}):"
    else:
        from grounding_gym.eval.agents import make_agent

        env_kwargs, dataset_kwargs = _env_options(args)
        env, _, _ = make_eval_env(
            args.env,
            args.dataset,
            dataset_kwargs or None,
            {**env_kwargs, "render_mode": "rgb_array"},
        )
        agent = make_agent(args.agent, env, **args.agent_kwargs)
        data = cast(Any, env.unwrapped).dataset
        if args.sample_id is not None:
            index = next((i for i in range(len(data)) if data[i].id == args.sample_id), None)
            if index is None:
                print(f"render: no sample {args.sample_id!r} in the dataset", file=sys.stderr)
                return 2
        else:
            index = episode_plan(args.seed, args.episode + 1, len(data))[args.episode]
        extra = {"episode": args.episode, "sample_index": index}
        frames = play_episode(
            env,
            lambda o, i: agent.act([o], [i])[0],
            seed=episode_seed(args.seed, args.episode),
            options={"sample_id": index},
            extra_info=extra,
        )
        title = f"{args.label or args.agent} ({data[index].id}):"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        png = episode_png(frames, title)
    atomic_write_bytes(args.out, png)
    env.close()
    print(f"wrote {args.out}")
    return 0
