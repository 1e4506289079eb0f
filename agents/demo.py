"""`grounding-gym demo`: train the tiny policy with SRPO on high-resolution synthetic data, then
compare it per scale bin with its untrained self and with scripted no-crop / oracle-crop agents.

The task (`GroundedVQA-HR-v0`, synthetic `read` family): "What fills the red ring?" about a
2048 x 2048 px image shown at 448 x 448 px. The target is the only ring of its colour; its fill
(stripes, checks or dots at a 3+ px period) is illegible in the downsampled first view, so an
agent must crop the ring (one zoom), then answer from the zoomed view.

The demo trains a fixed number of steps (`--steps`, default `DEMO_STEPS`, about 5 minutes with
the four evaluations and the plot on a 2-core CPU), so its result does not depend on the
machine's speed; a progress bar shows the steps and their ETA. `--minutes` is an opt-in cap on
the whole demo's wall time (training then stops early, leaving time for the final evaluation).
The scale-bias diagnostic that costs a backward pass per bin (`grad_share`) runs every
`--grad-diagnostics-every` steps (default 10). Outputs in `--out` (default runs/demo):
`results.json`, `learning_curve.png`, the trainer's `metrics.jsonl`, `checkpoint.pt` and
TensorBoard events. `scripts/measure_demo.py` reruns it over seeds for the README's numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.analysis import save_figure, trailing_mean
from agents.policies.base import Generation, Trajectory
from agents.rollout import collect_groups, rollout_metrics
from grounding_gym.atomic import atomic_write_json
from grounding_gym.scale import HR_BIN_EDGES

IMAGE_SIZE = 2048
MAX_PIXELS = 448 * 448
TARGET_REL_AREA = (3e-4, 3e-2)
BIN_EDGES = HR_BIN_EDGES  # synthetic-hr's declared edges
BIN_NAMES = ("small", "medium", "large")
SCALES = (0.22, 0.12)
SRPO_BIN_EDGES = (0.03,)  # one SRPO scale bin per crop scale: first-crop areas 0.0484 and 0.0144
CROP_NAMES = tuple(f"{s:g}" for s in sorted(SCALES))
"""Names of the first crop's bins on `SRPO_BIN_EDGES`, smallest first: the crop scale."""
DEMO_STEPS = 250
"""Training steps of the demo (`--steps`): about 5 minutes in all on a 2-core CPU."""


def demo_config(args: argparse.Namespace) -> Any:
    """The `TrainerConfig` of the demo (also in examples/train_tiny_srpo.yaml)."""
    from agents.config import TrainerConfig

    return TrainerConfig(
        exp_name="demo-tiny-srpo",
        output_dir=str(args.out),
        seed=args.seed,
        torch_threads=1,
        env_id="GroundedVQA-HR-v0",
        env_kwargs={
            "max_pixels": MAX_PIXELS,
            "max_turns": 3,
            "grounding_metric": "coverage",
            "reward_weights": {"answer": 1.0, "format": 0.1, "grounding": 0.5},
            "dataset_kwargs": {
                "num_samples": 100_000,
                "seed": 0,
                "image_size": args.image_size,
                "families": ["read"],
                "content_kinds": ["pattern"],
                "target_rel_area": list(TARGET_REL_AREA),
                "difficulty": 0.5,
            },
        },
        num_envs=16,
        env_threads=2,
        train_samples=90_000,
        eval_samples=args.eval_questions,
        bin_edges=BIN_EDGES,
        bin_names=BIN_NAMES,
        policy="tiny",
        policy_kwargs={"scales": list(SCALES), "max_crops": 1, "scale_head": True},
        algo=args.algo,
        adv_kwargs={"bin_edges": list(SRPO_BIN_EDGES)} if args.algo == "srpo" else {},
        questions_per_step=4,
        g1=4,
        g2=2,
        lr=args.lr,
        update_epochs=2,
        total_steps=args.steps,
        checkpoint_every=25,
        final_eval=False,  # the demo evaluates every agent itself, on the same questions
        resume=False,
        progress=not args.no_progress,
        max_minutes=0.0,
        grad_diagnostics_every=args.grad_diagnostics_every,
    )


# ------------------------------------------------------------------------------ baselines


class ScriptedPolicy:
    """Adapts a scripted agent (`act(observations, infos) -> list[str]`) to the `Policy`
    protocol for rollouts: actions carry no tokens (nothing to train)."""

    def __init__(self, agent: Any, index_of_id: dict[str, int]):
        self.agent, self.index_of_id = agent, index_of_id

    def act(self, observations, infos, *, greedy: bool = False) -> list[Generation]:  # noqa: ARG002
        infos = [{**info, "sample_index": self.index_of_id[info["sample_id"]]} for info in infos]
        return [Generation(text, (), ()) for text in self.agent.act(observations, infos)]

    def trajectory_logprobs(self, trajectories: Sequence[Trajectory]):  # pragma: no cover
        raise NotImplementedError("scripted agents are not trained")


def scripted_agents(env: Any, eval_ids: Sequence[int]) -> dict[str, ScriptedPolicy]:
    """no-crop and oracle-crop from `agents.baselines.heuristic`, as policies."""
    from agents.baselines.heuristic import NoCropAgent, OracleCropAgent

    index_of_id = {env.dataset[i].id: i for i in eval_ids}
    return {
        "no-crop": ScriptedPolicy(NoCropAgent(env), index_of_id),
        "oracle-crop": ScriptedPolicy(OracleCropAgent(env), index_of_id),
    }


# ------------------------------------------------------------------------------ report


def evaluate(
    envs: Sequence[Any], policy: Any, eval_ids: Sequence[int], executor: Any = None
) -> dict[str, float]:
    """Greedy, one episode per held-out question: accuracy and best-crop IoU per scale bin, and
    `p_crop_<scale>_<bin>`: the share of the bin's episodes whose first crop had that scale."""
    if hasattr(policy, "eval"):
        policy.eval()
    trajs = collect_groups(
        list(envs),
        policy,
        eval_ids,
        1,
        seed=10**9,
        greedy=True,
        executor=executor,
        keep_views=False,
    )
    return rollout_metrics(
        trajs,
        BIN_EDGES,
        BIN_NAMES,
        prefix="",
        crop_bin_edges=SRPO_BIN_EDGES,
        crop_bin_names=CROP_NAMES,
    )


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Accuracy and crop IoU per target scale bin, one row per agent."""
    bins = [*BIN_NAMES, "all"]
    first = next(iter(results.values()))
    counts = [int(first.get(f"n_{b}", 0)) for b in BIN_NAMES]
    head = " | ".join(f"acc {b}" for b in bins) + " | " + " | ".join(f"IoU {b}" for b in bins)
    lines = [
        f"| agent | {head} |",
        "|---|" + "---|" * (2 * len(bins)),
    ]
    for name, m in results.items():
        acc = [m.get(f"acc_{b}" if b != "all" else "acc", math.nan) for b in bins]
        iou = [m.get(f"miou_{b}" if b != "all" else "miou", math.nan) for b in bins]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in acc + iou) + " |")
    edges = ", ".join(f"{e:g}" for e in BIN_EDGES)
    lines.append(
        f"Scale bins on the target's relative area (box area / image area), edges ({edges}): "
        + ", ".join(f"{b} n={n}" for b, n in zip(BIN_NAMES, counts, strict=True))
        + ". IoU = best crop IoU with the target (0 without a crop)."
    )
    return "\n".join(lines)


def format_crop_choice(results: dict[str, dict[str, float]]) -> str:
    """Which first crop each agent takes per target scale bin (share of the bin's episodes)."""
    scales = CROP_NAMES[::-1]
    lines = [
        "| agent | target bin | no crop | " + " | ".join(f"crop {s}" for s in scales) + " |",
        "|---|---|" + "---|" * (1 + len(scales)),
    ]
    for name, m in results.items():
        for b in BIN_NAMES:
            shares = [m.get(f"p_crop_{s}_{b}", math.nan) for s in scales]
            lines.append(
                f"| {name} | {b} | {1 - sum(shares):.2f} | "
                + " | ".join(f"{v:.2f}" for v in shares)
                + " |"
            )
    lines.append("Crop sides as fractions of the first view's side (the whole image).")
    return "\n".join(lines)


def plot_learning_curve(
    history: Sequence[dict[str, Any]], path: Path, baselines: dict[str, dict[str, float]]
) -> None:
    """Training-rollout accuracy (all / small targets), crop IoU and each target bin's share of
    the advantage mass (`adv_share/<bin>`, the scale-bias diagnostic) per step, smoothed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([row["step"] for row in history])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for key, label in (
        ("rollout/acc", "accuracy (all)"),
        ("rollout/acc_small", "accuracy (small)"),
        ("rollout/reward", "reward"),
    ):
        values = np.array([row.get(key, np.nan) for row in history], dtype=float)
        axes[0].plot(steps, trailing_mean(values), label=label)
    for name, m in baselines.items():
        axes[0].axhline(
            m.get("acc_small", np.nan),
            ls="--",
            lw=1,
            color="grey" if name == "no-crop" else "k",
            label=f"{name} (eval, small)",
        )
    for key, label in (
        ("rollout/miou", "mIoU (best crop IoU, 0 without a crop)"),
        ("rollout/crop_rel_area", "first crop's relative area"),
    ):
        values = np.array([row.get(key, np.nan) for row in history], dtype=float)
        axes[1].plot(steps, trailing_mean(values), label=f"{label} (training rollouts)")
    axes[0].set(xlabel="step", title="tiny policy, SRPO: training rollouts (smoothed)")
    axes[1].set(xlabel="step", title="grounding")
    for name in BIN_NAMES:
        shares = [row.get(f"adv_share/{name}", np.nan) for row in history]
        rollouts = [row.get(f"rollout_share/{name}", np.nan) for row in history]
        line = axes[2].plot(
            steps, trailing_mean(shares), label=f"{name}: share of sum |A| x tokens"
        )
        axes[2].plot(
            steps,
            trailing_mean(rollouts),
            ls=":",
            color=line[0].get_color(),
            label=f"{name}: share of rollouts",
        )
    axes[2].set(xlabel="step", title="scale bias: credit per target bin", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grounding-gym demo",
        description=(
            "Train the tiny CPU policy with SRPO on GroundedVQA-HR-v0 (synthetic read family, "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} px images shown at 448x448), then report accuracy and crop "
            "IoU per scale bin before/after training beside scripted no-crop and oracle-crop "
            "agents."
        ),
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEMO_STEPS,
        help=f"training steps (default {DEMO_STEPS}: about 5 minutes in all on 2 CPU cores)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="optional cap on the whole demo's wall time, evaluations included: training stops "
        "early when it would overrun (default: no cap, the result depends only on --steps)",
    )
    parser.add_argument(
        "--grad-diagnostics-every",
        type=int,
        default=10,
        help="log grad_share (one extra backward per scale bin) every K steps (default 10)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algo", default="srpo", help="advantage estimator name (default srpo)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--eval-questions", type=int, default=120, help="held-out questions (default 120)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
        help=f"image side in px (default {IMAGE_SIZE})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    from agents.trainer import Trainer

    cfg = demo_config(args)
    trainer = Trainer(cfg)
    eval_ids = cfg.eval_ids
    print(
        f"grounding-gym demo: tiny policy + {cfg.algo.upper()} (G1={cfg.g1} x G2={cfg.g2}, "
        f"{cfg.questions_per_step} questions/step) on {cfg.env_id}: synthetic 'read' family, "
        f"{args.image_size}x{args.image_size} px images, first view {int(math.sqrt(MAX_PIXELS))}x"
        f"{int(math.sqrt(MAX_PIXELS))} px (max_pixels={MAX_PIXELS}), target relative area "
        f"{TARGET_REL_AREA[0]:g}-{TARGET_REL_AREA[1]:g}; {len(eval_ids)} held-out questions.",
        flush=True,
    )
    results: dict[str, dict[str, float]] = {}
    eval_start = time.perf_counter()
    results["tiny (before)"] = evaluate(trainer.envs, trainer.policy, eval_ids, trainer.executor)
    for name, agent in scripted_agents(trainer.envs[0], eval_ids).items():
        results[name] = evaluate(trainer.envs, agent, eval_ids, trainer.executor)
    eval_seconds = (time.perf_counter() - eval_start) / 3  # one agent's evaluation

    if args.minutes is not None:  # cap: train for what the final evaluation and report leave
        left = 60 * args.minutes - (time.perf_counter() - start) - 1.5 * eval_seconds - 20
        cfg.max_minutes = max(left, 1.0) / 60
    train_start = time.perf_counter()
    history = trainer.train()
    train_seconds = time.perf_counter() - train_start
    results["tiny (after)"] = evaluate(trainer.envs, trainer.policy, eval_ids, trainer.executor)

    order = ["no-crop", "oracle-crop", "tiny (before)", "tiny (after)"]
    table = format_table({k: results[k] for k in order})
    wall = time.perf_counter() - start
    print(
        f"\nTrained {trainer.step} steps ({trainer.episodes} episodes) in {train_seconds:.0f} s "
        f"({60 * trainer.step / train_seconds:.1f} steps/min); demo wall time {wall:.0f} s.\n"
    )
    print(table)
    print("\n" + format_crop_choice({k: results[k] for k in ("tiny (before)", "tiny (after)")}))
    out = Path(args.out)
    plot_learning_curve(
        history, out / "learning_curve.png", {k: results[k] for k in ("no-crop", "oracle-crop")}
    )
    atomic_write_json(
        out / "results.json",
        {
            "config": cfg.to_dict(),
            "steps": trainer.step,
            "episodes": trainer.episodes,
            "train_seconds": train_seconds,
            "steps_per_minute": 60 * trainer.step / train_seconds,
            "wall_seconds": wall,
            "bin_edges": list(BIN_EDGES),
            "results": {k: results[k] for k in order},
        },
    )
    print(f"\nSaved {out / 'results.json'}, {out / 'learning_curve.png'}, {out / 'metrics.jsonl'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
