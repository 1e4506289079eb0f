"""Scale bias: does GRPO under-train small targets on a skewed mix, and do the SRPOs fix it?

    python scripts/experiment_scale_bias.py --seeds 0 1 2 3 4 5 6 7 8 9 --jobs 2
    python scripts/experiment_scale_bias.py --report-only      # tables and plots of finished runs

Task: `examples/scale_bias.yaml` (4096 px images, one ring per image; small targets are legible
only through the small crop, large ones only through a crop wide enough to hold them; the
policy crops once at one of three scales, then answers; reward = answer + format). Every arm
starts from the same warm-started reader (`baselines/scale-bias/reader.pt`, `agents.reader_sft`:
it reads any legible crop; where and how wide to crop are untrained), trains with the same
seed-dependent RNG streams (paired seeds) until it has taken its env-step budget, then answers
the same 100 held-out questions, balanced 50/50 small/large, greedily.

| arm | training mix (small / large) | estimator | env steps |
|-----|------------------------------|-----------|-----------|
| grpo_skewed | 20 / 80 | grpo | `--env-steps` |
| srpo_skewed | 20 / 80 | srpo (bins: each rollout's crop scale, within its question) | `--env-steps` |
| srpo_target_skewed | 20 / 80 | srpo_target (bins: the question's target scale, across the batch) | `--env-steps` |
| grpo_reweight_skewed | 20 / 80 | grpo, reweight="inverse_bin_frequency" (any rebalancing) | `--env-steps` |
| grpo_balanced | 50 / 50 | grpo | 0.4 x `--env-steps`: the same number of small-target episodes as the skewed arms |
| grpo_small_only | 100 / 0 | grpo | 0.2 x `--env-steps` (the capacity check; not in the default `--arms`) |

Block B (`--arms b_...`, docs/experiments.md section 5): the same comparison from a partial
scale-SFT (`PARTIAL_SFT`: the reader plus a scale head that already prefers the small crop for
small targets, P ~ 0.6 vs ~ 0.2), in the paper's shape G1 x G2 = 4 x 2, with the held-out probe
(`heldout/conditioning_index`) every step:

| arm | estimator |
|-----|-----------|
| b_grpo_skewed | grpo (the reference of the Block B pairs) |
| b_srpo_paper_skewed | srpo, K = 3 equal-width bins of the crop's relative area (`num_bins: 3`) |
| b_srpo_skewed | srpo, our crop-scale edges (0.02, 0.15) |
| b_srpo_target_skewed, b_grpo_reweight_skewed | as above |
| b_grpo_balanced | grpo on 50 / 50, 0.4 x `--env-steps` |

Block A (`--arms a_...`, exploration): from the reader (no scale SFT), scale head on, 4 x 2,
each arm a different way of drawing the first crop's scale (`agents.algos.exploration`):

| arm | first crop's scale | estimator |
|-----|--------------------|-----------|
| a_grpo_skewed | pi (the reference of the Block A pairs) | grpo |
| a_grpo_curiosity_skewed | pi, + a per-scale curiosity bonus (H 0.3, `CURIOSITY_COEF`) | grpo |
| a_grpo_forced_skewed, a_srpo_forced_skewed | forced to distinct scales per question | grpo; srpo on the crop-scale edges |
| a_grpo_floor_skewed | (1 - eps) pi + eps / 3, eps = `FLOOR_EPS` | grpo |

`a_pilot_*` (`PILOT_A`) are the 3-seed pilot that picked `CURIOSITY_COEF` and `FLOOR_EPS`.

The section-4 arms use 8 independent rollouts per question (G1 = 8, G2 = 1), so the estimator is
the only difference between the skewed arms. grpo_balanced is the bias control: it sees as many
small-target questions as a skewed run, without the large majority; if skewed GRPO does worse
on small targets than it, the large targets suppress small-target learning (scale bias).

Outputs in `--out`: one folder per run (the trainer's metrics.jsonl, checkpoint.pt, config.yaml,
and `result.json`: final evaluation, diagnostics averaged over training, seconds), `results.json`
(every run, per-arm means with 95 % bootstrap CIs, paired differences against grpo_skewed),
`results.md` (the tables), `accuracy.png` (per-bin accuracy and P(small crop | small target) with
CIs) and `diagnostics.png` (adv_share and grad_share of small targets, and P(small crop) over
training). Resumable: finished runs are skipped, an interrupted one continues from its checkpoint.

`--ship-baselines DIR` (after the runs) copies the seed-0 policy of each of `--arms` (weights and trainer
config: what the `policy-checkpoint` eval agent loads) to `DIR/tiny-<arm>/checkpoint.pt` and
evaluates it, with `no-crop` and `oracle-crop` for reference, on the same held-out questions
through `grounding-gym eval` (benchmark `scale-bias`), so `grounding-gym compare RUN --baselines
scale-bias` lists them.
"""  # noqa: E501 (table rows)

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.analysis import bootstrap_ci, plot_curve_panels, save_figure  # noqa: E402
from grounding_gym.atomic import atomic_write_json, atomic_write_text  # noqa: E402

SKEWED, BALANCED = "[0.2, 0.8]", "[0.5, 0.5]"
TARGET_EDGES = "[0.001, 0.01]"
ARMS: dict[str, list[str]] = {
    "grpo_skewed": ["algo=grpo", "adv_kwargs={}"],
    "srpo_skewed": ["algo=srpo", "adv_kwargs={bin_edges: [0.02, 0.15]}"],
    "srpo_target_skewed": ["algo=srpo_target", f"adv_kwargs={{bin_edges: {TARGET_EDGES}}}"],
    "grpo_reweight_skewed": [
        "algo=grpo",
        f"adv_kwargs={{reweight: inverse_bin_frequency, bin_edges: {TARGET_EDGES}}}",
    ],
    "grpo_balanced": [
        "algo=grpo",
        "adv_kwargs={}",
        f"env_kwargs.dataset_kwargs.target_mix={BALANCED}",
    ],
    "grpo_small_only": [
        "algo=grpo",
        "adv_kwargs={}",
        "env_kwargs.dataset_kwargs.target_mix=[1, 0]",
    ],
}
PARTIAL_SFT = "baselines/scale-bias/scale-sft-partial.pt"
"""Block B's start: the reader plus a partial scale-SFT of the scale head (`agents.scale_sft
--p-small-small 0.6 --p-small-large 0.2`), so that small-target groups start alive."""
BLOCK_B_COMMON = [
    f"init_checkpoint={PARTIAL_SFT}",
    "policy_kwargs.scale_head=true",
    "g1=4",
    "g2=2",
    "grad_diagnostics=false",
]
"""Every Block B arm: the paper's G1 x G2 = 4 x 2 shape, from the partial scale-SFT."""
BLOCK_B: dict[str, list[str]] = {
    "b_grpo_skewed": ARMS["grpo_skewed"],
    "b_srpo_paper_skewed": ["algo=srpo", "adv_kwargs={num_bins: 3}"],
    **{
        f"b_{arm}": ARMS[arm]
        for arm in ("srpo_skewed", "srpo_target_skewed", "grpo_reweight_skewed", "grpo_balanced")
    },
}
"""Block B's estimators: section 4's arms (same overrides) plus SRPO with the paper's bins."""
ARMS.update({arm: [*BLOCK_B_COMMON, *extra] for arm, extra in BLOCK_B.items()})
CURIOSITY_COEF, FLOOR_EPS = 0.2, 0.1
"""Block A's constants (H = 0.3 is Pixel Reasoner's), picked by the 3-seed pilot (`PILOT_A`):
every candidate ended at held-out conditioning index 0.00, so the tie-break (small-target
accuracy, 0.253 vs 0.247 for both pairs) decided (docs/experiments.md section 5)."""
CROP_EDGES = "[0.02, 0.15]"
"""This task's crop-scale edges: one bin per crop scale (0.0036, 0.0625, 0.25 of the image)."""
BLOCK_A: dict[str, list[str]] = {
    "a_grpo_skewed": ["algo=grpo", "adv_kwargs={}"],
    "a_grpo_curiosity_skewed": [
        "algo=grpo",
        "adv_kwargs={}",
        f"scale_curiosity=[0.3, {CURIOSITY_COEF}]",
    ],
    "a_grpo_forced_skewed": ["algo=grpo", "adv_kwargs={}", "scale_exploration=forced"],
    "a_srpo_forced_skewed": [
        "algo=srpo",
        f"adv_kwargs={{bin_edges: {CROP_EDGES}}}",
        "scale_exploration=forced",
    ],
    "a_grpo_floor_skewed": [
        "algo=grpo",
        "adv_kwargs={}",
        "scale_exploration=floor",
        f"scale_floor={FLOOR_EPS}",
    ],
}
"""Block A (exploration) from the reader (no scale SFT), with the scale head, 4 x 2: the first
crop's scale on-policy (a_grpo_skewed, the reference), with a per-scale curiosity bonus, forced
to distinct scales per question (GRPO; SRPO with the crop-scale edges, so that every group
spans its bins), or drawn with an exploration floor; forced and floor weight the scale token by
pi / mu (`agents.algos.exploration`)."""
PILOT_A: dict[str, list[str]] = {
    **{
        f"a_pilot_curiosity_{coef}": [
            "algo=grpo",
            "adv_kwargs={}",
            f"scale_curiosity=[0.3, {coef}]",
        ]
        for coef in (0.2, 0.5)
    },
    **{
        f"a_pilot_floor_{eps}": [
            "algo=grpo",
            "adv_kwargs={}",
            "scale_exploration=floor",
            f"scale_floor={eps}",
        ]
        for eps in (0.1, 0.3)
    },
}
"""Block A's 3-seed pilot: the candidate constants, picked by the held-out conditioning index."""
ARMS.update({arm: [*BLOCK_B_COMMON[1:], *extra] for arm, extra in {**BLOCK_A, **PILOT_A}.items()})
REFERENCES_A = {arm: "a_grpo_skewed" for arm in BLOCK_A}
MAIN_ARMS = [
    arm for arm in ARMS if arm != "grpo_small_only" and arm not in {**BLOCK_B, **BLOCK_A, **PILOT_A}
]
BUDGET = {"grpo_balanced": 0.4, "grpo_small_only": 0.2, "b_grpo_balanced": 0.4}
"""Env-step budget of an arm as a fraction of `--env-steps` (default 1): 0.4 x 50 % small =
1.0 x 20 % small, the same small-target exposure."""
REFERENCE = "grpo_skewed"
REFERENCES = {**{arm: "b_grpo_skewed" for arm in BLOCK_B}, **REFERENCES_A}
"""Paired-difference reference of an arm (`REFERENCE` unless listed)."""

PRIMARY = ("conditioning_index", "acc_small", "p_crop_small_small")
SECONDARY = ("acc_large", "acc", "miou", "p_crop_small_large")
DIAGNOSTICS = (
    "dead_group_frac/small",
    "dead_group_frac/large",
    "rollout_share/small",
    "adv_share/small",
    "grad_share/small",
    "crop_bin_occupancy/small",
    "multi_bin_group_frac",
)
"""Per-step diagnostics averaged over each run's training (`result.json`, `train_<key>`)."""
LABELS = {
    "conditioning_index": "CI",
    "acc_small": "acc small",
    "p_crop_small_small": "P(small crop \\| small)",
    "acc_large": "acc large",
    "acc": "acc all",
    "miou": "mIoU",
    "p_crop_small_large": "P(small crop \\| large)",
}


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / f"{arm}-seed{seed}"


NO_GRAD_SHARE_AFTER = (2, 9)
"""Runs of seeds 3-8 skip the `grad_share` backward passes (12-15 % of a step; training is
identical: they change no weight and draw no random number) so that 10 seeds fit the session:
grad_share is measured on seeds 0-2 and 9."""


def overrides(arm: str, seed: int, out: Path, env_steps: int, eval_questions: int) -> list[str]:
    """The `grounding-gym train` key=value overrides of one run (its exact command line)."""
    no_grad_share = (
        NO_GRAD_SHARE_AFTER[0] < seed < NO_GRAD_SHARE_AFTER[1] and arm != "grpo_small_only"
    )
    budget = round(BUDGET.get(arm, 1.0) * env_steps)
    return [
        *(["grad_diagnostics=false"] if no_grad_share else []),
        *ARMS[arm],
        f"seed={seed}",
        f"output_dir={run_dir(out, arm, seed)}",
        f"total_env_steps={budget}",
        "total_steps=100000",
        f"eval_samples={eval_questions}",
        "progress=false",
        "tensorboard=false",
    ]


def run_one(
    arm: str, seed: int, config: str, out: str, env_steps: int, eval_questions: int
) -> dict[str, Any]:
    """Train and evaluate one (arm, seed); write and return its `result.json`."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from agents.config import load_config
    from agents.trainer import Trainer

    args = overrides(arm, seed, Path(out), env_steps, eval_questions)
    start, cpu = time.perf_counter(), time.process_time()
    trainer = Trainer(load_config(config, args))
    history = trainer.train()
    result = {
        "arm": arm,
        "seed": seed,
        "steps": trainer.step,
        "env_steps": trainer.env_steps,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,  # all threads: the cost on a shared machine
        "command": "grounding-gym train --config "
        + config
        + " "
        + " ".join(f"'{a}'" for a in args),
        "eval": {k[len("eval/") :]: v for k, v in history[-1].items() if k.startswith("eval/")},
        "train": {
            f"train_{k}": float(np.mean(v))
            if (v := [row[k] for row in history if k in row])
            else math.nan
            for k in DIAGNOSTICS
        },
    }
    atomic_write_json(run_dir(Path(out), arm, seed) / "result.json", result)
    return result


def load_results(out: Path, arms: list[str], seeds: list[int] | None) -> list[dict[str, Any]]:
    found = []
    for path in sorted(out.glob("*-seed*/result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result["arm"] in arms and (seeds is None or result["seed"] in seeds):
            found.append(result)
    return found


def metric(result: dict[str, Any], key: str) -> float:
    """An evaluation metric or a training average of one run; the conditioning index of runs
    from before it was logged is computed from its two terms."""
    ev = result["eval"]
    if key == "conditioning_index" and key not in ev and "p_crop_small_small" in ev:
        return float(ev["p_crop_small_small"] - ev.get("p_crop_small_large", math.nan))
    return float(ev.get(key, result["train"].get(key, math.nan)))


def summarise(results: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per arm: mean and 95 % bootstrap CI of every metric over seeds; per skewed arm: the paired
    difference against `REFERENCE` (same seeds only)."""
    keys = [*PRIMARY, *SECONDARY, *(f"train_{k}" for k in DIAGNOSTICS)]
    by_arm = {arm: {r["seed"]: r for r in results if r["arm"] == arm} for arm in arms}
    table: dict[str, Any] = {"arms": {}, "paired": {}, "power": {}}
    for arm, runs in by_arm.items():
        if runs:
            table["arms"][arm] = {
                "seeds": sorted(runs),
                "seconds": float(np.mean([r["seconds"] for r in runs.values()])),
                **{k: bootstrap_ci([metric(r, k) for r in runs.values()]) for k in keys},
            }
    for arm, runs in by_arm.items():
        ref_arm = REFERENCES.get(arm, REFERENCE)
        reference = by_arm.get(ref_arm, {})
        common = sorted(set(runs) & set(reference))
        if arm in (ref_arm, "grpo_small_only") or not common:
            continue
        diffs = {
            k: [metric(runs[s], k) - metric(reference[s], k) for s in common]
            for k in (*PRIMARY, *SECONDARY)
        }
        table["paired"][arm] = {"seeds": common, **{k: bootstrap_ci(v) for k, v in diffs.items()}}
        table["power"][arm] = {k: power(diffs[k]) for k in PRIMARY}
    return table


Z_POWER = 1.96 + 0.84
"""Two-sided 5 % test at 80 % power, normal approximation."""


def power(differences: list[float]) -> dict[str, float]:
    """What the paired differences can resolve: `sd` (their sample std), `mde` (the smallest
    mean difference a paired test of this many seeds detects: Z_POWER * sd / sqrt(n)) and
    `seeds_needed` (seeds that would resolve the observed mean: (Z_POWER * sd / mean)^2)."""
    d = np.asarray(differences, dtype=float)
    sd = float(np.std(d, ddof=1)) if d.size > 1 else math.nan
    mean = float(np.mean(d)) if d.size else math.nan
    needed = (Z_POWER * sd / abs(mean)) ** 2 if mean else math.inf
    return {"sd": sd, "mde": Z_POWER * sd / math.sqrt(max(d.size, 1)), "seeds_needed": needed}


def _ci(value: tuple[float, float, float], signed: bool = False) -> str:
    mean, low, high = value
    fmt = "{:+.3f}" if signed else "{:.3f}"
    if math.isnan(low):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def _seeds(n: float) -> str:
    return "-" if not math.isfinite(n) else (">1000" if n > 1000 else str(math.ceil(n)))


def markdown(table: dict[str, Any]) -> str:
    cols = [*PRIMARY, *SECONDARY]
    lines = [
        "Final greedy evaluation on the balanced held-out set, mean over seeds "
        "[95 % bootstrap CI]:",
        "",
        "| arm | seeds | " + " | ".join(LABELS[k] for k in cols) + " | min/run |",
        "|---|---|" + "---|" * (len(cols) + 1),
    ]
    for arm, row in table["arms"].items():
        cells = " | ".join(_ci(row[k]) for k in cols)
        lines.append(f"| {arm} | {len(row['seeds'])} | {cells} | {row['seconds'] / 60:.1f} |")
    lines += [
        "",
        f"Paired differences against {REFERENCE} (Block B arms: against b_grpo_skewed; Block A "
        "arms: against a_grpo_skewed), same seeds, mean [95 % bootstrap CI]:",
        "",
        "| arm | pairs | " + " | ".join(LABELS[k] for k in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for arm, row in table["paired"].items():
        lines.append(
            f"| {arm} | {len(row['seeds'])} | "
            + " | ".join(_ci(row[k], signed=True) for k in cols)
            + " |"
        )
    lines += [
        "",
        "What the pairs resolve (80 % power, 5 % two-sided, normal approximation): the smallest "
        "detectable "
        "mean difference at this many seeds, and the seeds the observed difference would need:",
        "",
        "| arm | "
        + " | ".join(f"{LABELS[k]}: sd / detectable / seeds needed" for k in PRIMARY)
        + " |",
        "|---|" + "---|" * len(PRIMARY),
    ]
    for arm, row in table["power"].items():
        cells = [
            f"{p['sd']:.3f} / {p['mde']:.3f} / {_seeds(p['seeds_needed'])}"
            for p in (row[k] for k in PRIMARY)
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    diag = [f"train_{k}" for k in DIAGNOSTICS]
    lines += [
        "",
        "Scale-bias diagnostics averaged over training (small-target bin; mean [95 % CI] over "
        "seeds):",
        "",
        "| arm | " + " | ".join(DIAGNOSTICS) + " |",
        "|---|" + "---|" * len(diag),
    ]
    for arm, row in table["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(_ci(row[k]) for k in diag) + " |")
    return "\n".join(lines)


def plot_accuracy(table: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["acc_small", "acc_large", "acc", "p_crop_small_small", "p_crop_small_large"]
    arms = list(table["arms"])
    fig, ax = plt.subplots(figsize=(12, 4.2))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        row = table["arms"][arm]
        means = np.array([row[k][0] for k in keys])
        errors = np.abs(np.array([[row[k][1] for k in keys], [row[k][2] for k in keys]]) - means)
        x = np.arange(len(keys)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(
            x,
            means,
            width,
            yerr=np.nan_to_num(errors),
            capsize=3,
            label=f"{arm} ({len(row['seeds'])} seeds)",
        )
    ax.set_xticks(np.arange(len(keys)), [LABELS[k].replace("\\", "") for k in keys])
    ax.set(ylim=(0, 1.05), title="balanced held-out set: mean over seeds, 95 % bootstrap CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


CURVES = (
    ("adv_share/small", "small targets' share of sum |A| x tokens"),
    ("grad_share/small", "small targets' share of |grad|^2"),
    ("rollout/p_crop_small_small", "P(small crop | small target), training"),
    ("dead_group_frac/small", "small-target groups with equal rewards (dead)"),
    ("heldout/conditioning_index", "held-out conditioning index (greedy probe)"),
)


def plot_diagnostics(results: list[dict[str, Any]], out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories: dict[str, list[list[dict[str, Any]]]] = {}
    for r in results:
        with open(run_dir(out, r["arm"], r["seed"]) / "metrics.jsonl", encoding="utf-8") as handle:
            histories.setdefault(r["arm"], []).append([json.loads(line) for line in handle])
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.4 * len(CURVES), 4))
    plot_curve_panels(axes, histories, CURVES, band="iqr")
    for ax, (key, _) in zip(axes, CURVES, strict=True):
        ax.set_ylim(-1 if key.endswith("conditioning_index") else 0, 1)
    fig.suptitle(
        "training, per step (smoothed over 10 steps): mean over seeds, band = inter-quartile range",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path)


REFERENCE_AGENTS = ("no-crop", "oracle-crop")
BENCHMARK = "scale-bias"


def ship_baselines(
    out: Path, dest: Path, config: str, eval_questions: int, arms: list[str]
) -> None:
    """Seed-0 policies of `arms` (and the reference agents) evaluated into `dest` (see the
    module docstring); an evaluation already there is resumed or kept."""
    from agents.checkpoint import atomic_torch_save, load_checkpoint_file
    from agents.config import load_config, merge_kwargs

    cfg = load_config(config)
    env_kwargs = merge_kwargs(cfg.env_kwargs, cfg.eval_env_kwargs)
    start = cfg.train_samples
    common = [
        "--env",
        cfg.env_id,
        "--env-kwargs",
        json.dumps(env_kwargs),
        "--samples",
        f"{start}:{start + eval_questions}",
        "--benchmark",
        BENCHMARK,
        "--bin-edges",
        ",".join(str(e) for e in cfg.bin_edges),
        "--no-progress",
    ]
    jobs: list[tuple[str, list[str]]] = [(agent, ["--agent", agent]) for agent in REFERENCE_AGENTS]
    for arm in arms:
        run = run_dir(out, arm, 0) / "checkpoint.pt"
        if not run.exists():
            print(f"ship: no seed-0 run of {arm} in {out}; skipped", file=sys.stderr)
            continue
        state = load_checkpoint_file(run)
        target = dest / f"tiny-{arm}" / "checkpoint.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(
            {key: state[key] for key in ("policy", "config", "step", "env_steps")}, target
        )
        jobs.append(
            (
                f"tiny-{arm}",
                [
                    "--agent",
                    "policy-checkpoint",
                    "--agent-kwargs",
                    json.dumps({"path": str(target)}),
                    "--label",
                    f"tiny-{arm}",
                ],
            )
        )
    for label, agent in jobs:
        cmd = [
            sys.executable,
            "-m",
            "grounding_gym.cli",
            "eval",
            *agent,
            *common,
            "--out",
            str(dest / label),
        ]
        subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "examples" / "scale_bias.yaml"))
    parser.add_argument(
        "--arms",
        nargs="+",
        default=MAIN_ARMS,
        choices=list(ARMS),
        help="arms to train (grpo_small_only: the capacity check)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument(
        "--env-steps", type=int, default=9600, help="env-step budget of a skewed run"
    )
    parser.add_argument(
        "--eval-questions", type=int, default=100, help="balanced held-out questions"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once (one process each)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "experiment_scale_bias")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: tables and plots of every finished run in --out",
    )
    parser.add_argument(
        "--ship-baselines",
        type=Path,
        default=None,
        metavar="DIR",
        help="train nothing: evaluate the --arms seed-0 policies into DIR (baselines/scale-bias)",
    )
    args = parser.parse_args(argv)
    if args.ship_baselines is not None:
        ship_baselines(args.out, args.ship_baselines, args.config, args.eval_questions, args.arms)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        done = {(r["arm"], r["seed"]) for r in load_results(args.out, args.arms, args.seeds)}
        todo = [(arm, seed) for seed in args.seeds for arm in args.arms if (arm, seed) not in done]
        start = time.perf_counter()
        # One fresh process per run; glibc returns large image buffers (4K views: 50 MB each) to
        # the OS at once instead of keeping them in per-thread arenas (about 10 GB otherwise).
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 << 20))
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        with ProcessPoolExecutor(
            max(1, args.jobs), mp_context=get_context("spawn"), max_tasks_per_child=1
        ) as pool:
            futures = [
                pool.submit(
                    run_one,
                    arm,
                    seed,
                    args.config,
                    str(args.out),
                    args.env_steps,
                    args.eval_questions,
                )
                for arm, seed in todo
            ]
            for future in futures:
                r = future.result()
                print(
                    f"{r['arm']} seed {r['seed']}: acc small {metric(r, 'acc_small'):.3f} large "
                    f"{metric(r, 'acc_large'):.3f}, P(small crop | small) "
                    f"{metric(r, 'p_crop_small_small'):.2f}, "
                    f"{r['env_steps']} env steps, {r['seconds']:.0f} s",
                    flush=True,
                )
        print(f"trained {len(todo)} runs in {time.perf_counter() - start:.0f} s", flush=True)
    results = load_results(
        args.out,
        list(ARMS) if args.report_only else args.arms,
        None if args.report_only else args.seeds,
    )
    if not results:
        print(f"no finished runs in {args.out}", file=sys.stderr)
        return 1
    table = summarise(results, list(ARMS))
    atomic_write_json(
        args.out / "results.json", {"env_steps": args.env_steps, "summary": table, "runs": results}
    )
    text = markdown(table)
    atomic_write_text(args.out / "results.md", text + "\n")
    plot_accuracy(table, args.out / "accuracy.png")
    plot_diagnostics(results, args.out, args.out / "diagnostics.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
