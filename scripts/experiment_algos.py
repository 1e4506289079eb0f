"""GRPO vs SRPO vs Dr.GRPO on the demo's task: same data, same env-step budget, several seeds.

    python scripts/experiment_algos.py --seeds 0 1 2 --env-steps 16000 --out runs/experiment_algos

Each (variant, seed) trains the tiny policy from `examples/train_tiny_srpo.yaml` until it has
taken `--env-steps` env steps (every algorithm collects 32 episodes per step), then evaluates it
greedily on the same held-out questions. Results: `results.json` (per run and mean +- std),
`results.md` (the table for docs/experiments.md), `algos.png` (final accuracy and IoU per scale
bin) and `curves.png` (training curves against env steps), all in `--out`.

| algorithm | rollouts per question | advantage | loss aggregation |
|-----------|-----------------------|-----------|------------------|
| grpo      | G = 8                 | (r - mean) / std per question | token-mean |
| dr_grpo   | G = 8                 | r - mean per question (no std) | seq-mean-token-sum-norm, norm_len 4 |
| srpo      | G1 = 4 x G2 = 2 (replay) | intra-bin + inter-bin over crop-scale bins | token-mean |
| grpo_4x2  | G1 = 4 x G2 = 2 (replay) | as grpo | token-mean |
| srpo_8x1  | G = 8                 | as srpo | token-mean |

The last two are ablations: they separate SRPO's advantage from its rollout structure (fewer
distinct crops per question, each answered twice).
"""  # noqa: E501 (table rows)

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.analysis import plot_curve_panels, save_figure  # noqa: E402
from agents.config import load_config  # noqa: E402
from agents.trainer import Trainer  # noqa: E402
from grounding_gym.atomic import atomic_write_json, atomic_write_text  # noqa: E402

ALGOS: dict[str, list[str]] = {
    "grpo": ["algo=grpo", "g1=8", "g2=1", "adv_kwargs={}"],
    "dr_grpo": [
        "algo=dr_grpo",
        "g1=8",
        "g2=1",
        "adv_kwargs={}",
        "loss.agg=seq-mean-token-sum-norm",
        "loss.norm_len=4",
    ],
    "srpo": ["algo=srpo", "g1=4", "g2=2"],
    "grpo_4x2": ["algo=grpo", "g1=4", "g2=2", "adv_kwargs={}"],
    "srpo_8x1": ["algo=srpo", "g1=8", "g2=1"],
}
BINS = ("small", "medium", "large")
KEYS = [f"acc_{b}" for b in BINS] + ["acc"] + [f"miou_{b}" for b in BINS] + ["miou"]
LATE = {"acc": "rollout/acc", "acc_small": "rollout/acc_small"}
"""Training-rollout metrics averaged over each run's last 10 % of steps (columns `train_<key>`):
a steadier figure than the final greedy evaluation of one snapshot."""


def run_one(algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / f"{algo}-seed{seed}"
    overrides = [
        *ALGOS[algo],
        f"seed={seed}",
        f"output_dir={out}",
        "eval_every=0",
        "progress=false",
        "tensorboard=false",
        f"total_steps={args.max_steps}",
        f"eval_samples={args.eval_questions}",
        f"total_env_steps={args.env_steps}",
        "resume=false",
    ]
    cfg = load_config(args.config, overrides)
    start = time.perf_counter()
    trainer = Trainer(cfg)
    history = trainer.train()
    final = {k[len("eval/") :]: v for k, v in history[-1].items() if k.startswith("eval/")}
    return {
        "algo": algo,
        "seed": seed,
        "steps": trainer.step,
        "episodes": trainer.episodes,
        "env_steps": trainer.env_steps,
        "seconds": time.perf_counter() - start,
        "eval": final,
    }


def late_training(history: list[dict[str, Any]]) -> dict[str, float]:
    """`LATE` metrics over the last 10 % of a run's steps (`metrics.jsonl` rows)."""
    tail = history[-max(1, len(history) // 10) :]
    return {
        f"train_{name}": float(np.nanmean([row.get(key, math.nan) for row in tail]))
        for name, key in LATE.items()
    }


def summarise(
    runs: list[dict[str, Any]], histories: list[list[dict[str, Any]]]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per variant, mean and sample std (ddof 1) over seeds of the final evaluation and of
    `late_training` (`histories[i]`: the `metrics.jsonl` rows of `runs[i]`)."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for algo in ALGOS:
        chosen = [
            {**r["eval"], **late_training(h)}
            for r, h in zip(runs, histories, strict=True)
            if r["algo"] == algo
        ]
        if not chosen:
            continue
        table[algo] = {}
        for key in [*KEYS, *(f"train_{name}" for name in LATE)]:
            values = np.array([m.get(key, math.nan) for m in chosen], dtype=float)
            std = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else math.nan
            table[algo][key] = (float(np.nanmean(values)), std)
    return table


def read_history(out: Path, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The `metrics.jsonl` rows of `run` (trained into `out`)."""
    with open(
        out / f"{run['algo']}-seed{run['seed']}" / "metrics.jsonl", encoding="utf-8"
    ) as handle:
        return [json.loads(line) for line in handle]


def markdown(table: dict[str, dict[str, tuple[float, float]]], runs: list[dict[str, Any]]) -> str:
    keys = next(iter(table.values())).keys()
    head = "| algorithm | seeds | " + " | ".join(keys) + " |"
    lines = [head, "|---|---|" + "---|" * len(keys)]
    for algo, row in table.items():
        n = sum(r["algo"] == algo for r in runs)
        lines.append(
            f"| {algo} | {n} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in row.values()) + " |"
        )
    return "\n".join(lines)


def plot(table: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = [*BINS, "all"]
    width = 0.8 / max(len(table), 1)
    for panel, prefix in zip(axes, ("acc", "miou"), strict=True):
        for i, (algo, row) in enumerate(table.items()):
            keys = [f"{prefix}_{b}" for b in BINS] + [prefix]
            means = [row[k][0] for k in keys]
            stds = [row[k][1] for k in keys]
            x = np.arange(len(groups)) + (i - (len(table) - 1) / 2) * width
            panel.bar(x, means, width, yerr=stds, capsize=3, label=algo)
        panel.set_xticks(np.arange(len(groups)), groups)
        panel.set(
            title=("accuracy" if prefix == "acc" else "best-crop IoU")
            + " per target scale bin (mean ± std)"
        )
        panel.grid(axis="y", alpha=0.3)
        panel.legend()
    fig.tight_layout()
    save_figure(fig, path)


CURVES = (
    ("rollout/acc", "accuracy (all)"),
    ("rollout/acc_small", "accuracy (small targets)"),
    ("rollout/reward_grounding", "grounding reward (weighted coverage)"),
)


def plot_curves(
    runs: list[dict[str, Any]], histories: list[list[dict[str, Any]]], path: Path
) -> None:
    """Training-rollout metrics against env steps: per algorithm, the mean over seeds (band: +- std)
    of each run's metric smoothed over 10 steps, on the env steps all its runs cover."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_algo = {
        algo: [h for r, h in zip(runs, histories, strict=True) if r["algo"] == algo]
        for algo in ALGOS
    }
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.8))
    plot_curve_panels(axes, by_algo, CURVES, band="std")
    fig.suptitle("training rollouts (sampled actions), mean +- std over seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "train_tiny_srpo.yaml")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--env-steps", type=int, default=16_000, help="env steps per run (equal for all)"
    )
    parser.add_argument(
        "--max-steps", type=int, default=10_000, help="safety cap on optimisation steps"
    )
    parser.add_argument("--eval-questions", type=int, default=120)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "experiment_algos")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: tables and plots of every finished run in --out",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    done_path = args.out / "runs.jsonl"
    runs = (
        [json.loads(line) for line in done_path.read_text().splitlines()]
        if done_path.exists()
        else []
    )
    for seed in [] if args.report_only else args.seeds:
        for algo in args.algos:
            if any(r["algo"] == algo and r["seed"] == seed for r in runs):
                continue  # finished in an earlier invocation
            result = run_one(algo, seed, args)
            runs.append(result)
            with open(done_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(result) + "\n")
            ev = result["eval"]
            print(
                f"{algo} seed {seed}: acc {ev.get('acc', math.nan):.3f} (small "
                f"{ev.get('acc_small', math.nan):.3f}), "
                f"IoU {ev.get('miou', math.nan):.3f}, {result['env_steps']} env steps, "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    if not args.report_only:
        runs = [r for r in runs if r["algo"] in args.algos and r["seed"] in args.seeds]
    histories = [read_history(args.out, r) for r in runs]
    table = summarise(runs, histories)
    atomic_write_json(
        args.out / "results.json", {"runs": runs, "summary": table, "env_steps": args.env_steps}
    )
    text = markdown(table, runs)
    atomic_write_text(args.out / "results.md", text + "\n")
    plot(table, args.out / "algos.png")
    plot_curves(runs, histories, args.out / "curves.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
