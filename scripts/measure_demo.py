"""Measure `grounding-gym demo`: its result over seeds, and its speed against an older commit.

    python scripts/measure_demo.py seeds --seeds 0 1 2          # the README's expected result
    python scripts/measure_demo.py speed --baseline-ref 2c62228  # steps/min before and after
    python scripts/measure_demo.py first-view runs/demo          # which view reads which target

`seeds` runs the demo's exact command (`grounding-gym demo --seed S`, default steps and
questions) once per seed, one at a time, and reports each run's accuracy per target scale bin,
steps, steps per minute and wall time, then the mean and a 95 % bootstrap interval over seeds
(`agents.analysis.bootstrap_ci`). `speed` extracts `--baseline-ref` with `git archive` into a
temporary folder and runs short demos (`--steps`, `--eval-questions`) of that code and of this
checkout in turn, `--pairs` rounds, the order rotated every round so a load change on a shared
machine hits every arm alike; it reports each arm's training steps per minute and the paired
ratios to the baseline. Arms: `baseline` (the ref), `current` (this checkout, defaults) and
`current-k1` (this checkout with `--grad-diagnostics-every 1`, the baseline's diagnostics
schedule, which separates the two changes; `--arms current` runs only the default). Run either
under `nice -n 10` on a shared machine.
`first-view RUN...` evaluates each finished run's trained policy (its checkpoint) on its held-out
questions as trained and with its crops masked (it answers from the first view, like no-crop).
Outputs in `--out` (default runs/measure-demo): `seeds.json` / `speed.json` and a plot each,
`first_view.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.analysis import bootstrap_ci, save_figure  # noqa: E402
from grounding_gym.atomic import atomic_write_json  # noqa: E402

BINS = ("small", "medium", "large")


def run_demo(code_root: Path, out: Path, args: Sequence[str]) -> dict:
    """`python -m agents.demo ARGS --out OUT` with `code_root`'s packages; its results.json
    plus the wall time measured here (s)."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    cmd = [sys.executable, "-m", "agents.demo", *args, "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=code_root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {code_root}:\n{done.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    results["measured_wall_seconds"] = time.perf_counter() - start
    results["stdout"] = done.stdout
    return results


def steps_per_minute(results: dict) -> float:
    """Training steps per minute of a demo run (older results.json lack the key)."""
    return results.get("steps_per_minute", 60 * results["steps"] / results["train_seconds"])


def cmd_seeds(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    runs = {}
    for seed in args.seeds:
        print(f"[measure] grounding-gym demo --seed {seed} ...", file=sys.stderr, flush=True)
        extra = [] if args.steps is None else ["--steps", str(args.steps)]
        done = out / f"seed{seed}" / "results.json"
        if args.reuse and done.exists():
            res = json.loads(done.read_text())
        else:
            res = run_demo(
                ROOT, out / f"seed{seed}", ["--seed", str(seed), "--no-progress", *extra]
            )
        after, no_crop = res["results"]["tiny (after)"], res["results"]["no-crop"]
        runs[seed] = {
            **{f"acc_{b}": after.get(f"acc_{b}", float("nan")) for b in BINS},
            "acc": after["acc"],
            **{f"no_crop_acc_{b}": no_crop.get(f"acc_{b}", float("nan")) for b in BINS},
            "before_acc_small": res["results"]["tiny (before)"].get("acc_small", float("nan")),
            "steps": res["steps"],
            "steps_per_minute": steps_per_minute(res),
            "wall_seconds": res["wall_seconds"],
        }
        print(json.dumps({"seed": seed, **runs[seed]}), flush=True)
    keys = list(next(iter(runs.values())))
    summary = {k: bootstrap_ci([r[k] for r in runs.values()]) for k in keys}
    lines = [
        "| seed | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        *(
            f"| {seed} | " + " | ".join(f"{r[k]:.3g}" for k in keys) + " |"
            for seed, r in runs.items()
        ),
        "| mean [95 % CI] | "
        + " | ".join(f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in summary.values())
        + " |",
    ]
    table = "\n".join(lines)
    print(table)
    atomic_write_json(
        out / "seeds.json",
        {"command": "grounding-gym demo --seed S", "runs": runs, "summary": summary},
    )
    _plot_seeds(runs, out / "seeds.png")
    return 0


def _plot_seeds(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [*(f"acc_{b}" for b in BINS), "acc", "before_acc_small"]
    for i, name in enumerate(names):
        values = [r[name] for r in runs.values()]
        ax.scatter([i] * len(values), values, alpha=0.7)
        ax.hlines(sum(values) / len(values), i - 0.25, i + 0.25, color="k")
        no_crop = [r.get(f"no_crop_{name}") for r in runs.values()]
        if name.startswith("acc_") and None not in no_crop:  # the scripted reference, same bin
            mean = sum(no_crop) / len(no_crop)
            ax.hlines(mean, i - 0.3, i + 0.3, color="grey", ls="--", lw=1)
            ax.annotate("no-crop", (i + 0.3, mean), fontsize=7, color="grey", va="center")
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
    ax.set(ylabel="held-out accuracy", ylim=(0, 1), title=f"demo, {len(runs)} seeds (dots), mean")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def cmd_first_view(args: argparse.Namespace) -> int:
    """Each finished demo run's trained policy, greedy on its held-out questions, as trained and
    with its crop actions masked (`max_crops=0`: it answers from the first view, as no-crop
    does): which view the trained reader reads each target bin from best."""
    from agents.baselines.policy_checkpoint import load_policy
    from agents.config import load_config
    from agents.demo import evaluate
    from agents.trainer import build_envs

    rows = {}
    for run in map(Path, args.runs):
        cfg = load_config(run / "config.yaml", ["num_envs=4"])
        envs, policy = build_envs(cfg), load_policy(run)
        as_trained = evaluate(envs, policy, cfg.eval_ids)
        policy.max_crops = 0
        first_view = evaluate(envs, policy, cfg.eval_ids)
        no_crop = json.loads((run / "results.json").read_text())["results"]["no-crop"]
        rows[str(run)] = {"as trained": as_trained, "first view": first_view, "no-crop": no_crop}
        line = {
            f"{agent} acc_{b}": round(m.get(f"acc_{b}", float("nan")), 3)
            for agent, m in rows[str(run)].items()
            for b in BINS
        }
        print(json.dumps({"run": str(run), **line}), flush=True)
    atomic_write_json(Path(args.out) / "first_view.json", rows)
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    short = ["--steps", str(args.steps), "--eval-questions", str(args.eval_questions)]
    short += ["--no-progress", "--seed", "0"]
    with tempfile.TemporaryDirectory(prefix="gg-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", args.baseline_ref], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        every_arm = {
            "baseline": (Path(tmp), short),
            "current-k1": (ROOT, [*short, "--grad-diagnostics-every", "1"]),
            "current": (ROOT, short),
        }
        arms = {name: every_arm[name] for name in ("baseline", *args.arms)}
        rates: dict[str, list[float]] = {name: [] for name in arms}
        names = list(arms)
        for p in range(args.pairs):
            for name in names[p % len(names) :] + names[: p % len(names)]:
                code, demo_args = arms[name]
                res = run_demo(code, out / "speed" / f"{name}-{p}", demo_args)
                rates[name].append(steps_per_minute(res))
                print(f"[measure] round {p} {name}: {rates[name][-1]:.1f} steps/min", flush=True)
    base = rates["baseline"]
    summary = {
        name: {
            "steps_per_minute": bootstrap_ci(values),
            "ratio_to_baseline": bootstrap_ci([v / b for v, b in zip(values, base, strict=True)]),
            "runs": values,
        }
        for name, values in rates.items()
    }
    for name, row in summary.items():
        (m, lo, hi), (r, rlo, rhi) = row["steps_per_minute"], row["ratio_to_baseline"]
        print(f"{name}: {m:.1f} steps/min [{lo:.1f}, {hi:.1f}], x{r:.2f} [{rlo:.2f}, {rhi:.2f}]")
    atomic_write_json(
        out / "speed.json",
        {
            "baseline_ref": args.baseline_ref,
            "demo_args": short,
            "pairs": args.pairs,
            "summary": summary,
        },
    )
    _plot_speed(rates, out / "speed.png")
    return 0


def _plot_speed(rates: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in rates.items():
        ax.plot(range(len(values)), values, marker="o", label=name)
    ax.set(xlabel="round (arms interleaved)", ylabel="training steps / min", title="demo speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/measure-demo", help="output folder")
    sub = parser.add_subparsers(dest="command", required=True)
    seeds = sub.add_parser("seeds", help="the demo's result over seeds")
    seeds.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    seeds.add_argument("--steps", type=int, default=None, help="default: the demo's own")
    seeds.add_argument(
        "--reuse",
        action="store_true",
        help="summarise a seed's existing OUT/seedS/results.json instead of running it again",
    )
    speed = sub.add_parser("speed", help="steps/min against an older commit, interleaved")
    speed.add_argument("--baseline-ref", required=True, help="git commit to compare against")
    speed.add_argument("--pairs", type=int, default=3, help="rounds of every arm")
    speed.add_argument("--steps", type=int, default=30, help="training steps per run")
    speed.add_argument("--eval-questions", type=int, default=8)
    speed.add_argument(
        "--arms",
        nargs="+",
        choices=("current-k1", "current"),
        default=["current-k1", "current"],
        help="arms of this checkout run beside the baseline (default both)",
    )
    first_view = sub.add_parser(
        "first-view", help="trained policies read as trained and from the first view only"
    )
    first_view.add_argument("runs", nargs="+", help="demo output folders (--out of each run)")
    args = parser.parse_args(argv)
    commands = {"seeds": cmd_seeds, "speed": cmd_speed, "first-view": cmd_first_view}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
