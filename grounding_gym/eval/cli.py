"""`grounding-gym eval | render` (`compare` is in `compare_cli`): each `f(argv) -> exit code`.

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


def baselines_dir(override: str | None = None) -> Path:
    """Where shipped baseline results live: `--baselines-dir`, $GROUNDING_GYM_BASELINES, or
    `baselines/` at the repository root (beside the `grounding_gym` package)."""
    if override:
        return Path(override)
    if os.environ.get(BASELINES_ENV_VAR):
        return Path(os.environ[BASELINES_ENV_VAR])
    return Path(__file__).resolve().parents[2] / "baselines"


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
