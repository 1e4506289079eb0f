"""Supervised crop-scale choice for `TinyPolicy` (the scale-bias testbed's Block 0 and Block B
start).

Block 0 asks whether the policy CAN condition its crop scale on the target: cross-entropy of
P(scale | crop) on the first view against oracle labels (a small target -> the smallest crop; a
large one -> any wider crop), the reader frozen (`agents.reader_sft.READER_PARAMETERS` keep the
warm start's values; `--trained scale`, the default, trains only the how-wide parameters
`SCALE_PARAMETERS`, `--trained all` the target map too). It passes when, greedily on the balanced
held-out questions, P(small crop | small target) >= 0.9 and P(small crop | large target) <= 0.1.
Soft labels (`--p-small-small 0.6 --p-small-large 0.2`) give a *partial* scale-SFT: the policy's
sampling probabilities move towards those values, a start whose small-target groups are alive.

    python -m agents.scale_sft --config examples/scale_bias.yaml --seeds 0 1 2 --out sft-{seed}.pt

Only first views are needed (the scale is chosen on the first turn), so nothing is cropped.
Prints and writes (`--json`) the held-out conditioning: greedy and mean-probability P(small crop |
target bin) and the conditioning index CI = P(small | small) - P(small | large).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.checkpoint import atomic_torch_save
from agents.config import TrainerConfig, load_config, merge_kwargs
from agents.policies.tiny import TinyPolicy
from agents.probe import FirstViews
from agents.reader_sft import READER_PARAMETERS
from grounding_gym.atomic import atomic_write_json

__all__ = ["conditioning", "run_seed", "first_views", "scale_targets", "train_scale", "main"]

SCALE_PARAMETERS = ("region_gain", "region_bias", "scale_extent")
"""What `trained="scale"` trains: the per-scale gains and biases and the scale head (if built)."""
TRAINED = ("scale", "all")

PASS_SMALL, PASS_LARGE = 0.9, 0.1
"""Block 0's pass line: greedy P(small crop | small) >= 0.9 and P(small crop | large) <= 0.1."""


def first_views(
    cfg: TrainerConfig, sample_ids: Sequence[int], overrides: dict[str, Any]
) -> FirstViews:
    """`FirstViews` of `sample_ids` in an env built from `cfg.env_kwargs` with `overrides`."""
    import gymnasium as gym

    import grounding_gym  # noqa: F401  (registers the ids)

    env = gym.make(cfg.env_id, **merge_kwargs(cfg.env_kwargs, overrides))
    return FirstViews(env, sample_ids, cfg.bin_edges)


def scale_targets(
    bins: np.ndarray, scales: Sequence[float], p_small: tuple[float, float], num_bins: int
) -> torch.Tensor:
    """(N, K) target distributions over the crop scales: the smallest scale gets `p_small[0]` for
    a target in the smallest bin and `p_small[1]` for one in the largest bin; the rest is split
    equally over the other scales. Targets in a middle bin are rejected (no oracle for them)."""
    if np.any((bins != 0) & (bins != num_bins - 1)):
        raise ValueError(
            "scale SFT labels targets of the smallest and the largest bin only; "
            f"got bins {sorted(set(bins.tolist()))} of {num_bins}"
        )
    small = int(np.argmin(scales))
    out = np.zeros((len(bins), len(scales)), dtype=np.float32)
    for row, b in enumerate(bins):
        p = p_small[0] if b == 0 else p_small[1]
        out[row] = (1.0 - p) / (len(scales) - 1)
        out[row, small] = p
    return torch.from_numpy(out)


def scale_logp(policy: TinyPolicy, views: FirstViews) -> torch.Tensor:
    """(N, K) log P(scale | crop) on the first views (the answer type renormalised away)."""
    type_logp, _, _ = policy._forward(policy._batch(views.observations, views.infos, views.prompts))
    return F.log_softmax(type_logp[:, 1:], dim=-1)


def train_scale(
    policy: TinyPolicy,
    views: FirstViews,
    targets: torch.Tensor,
    *,
    epochs: int = 150,
    lr: float = 1e-2,
    trained: str = "scale",
) -> list[float]:
    """Full-batch cross-entropy of P(scale | crop) against `targets` (N, K) with Adam. Returns
    the loss per epoch (nats).

    Args:
        trained: "scale" trains `SCALE_PARAMETERS` only (how wide; where and what stay as
            warm-started); "all" every parameter but `READER_PARAMETERS` (the target map too).
    """
    if trained not in TRAINED:
        raise ValueError(f"`trained` must be one of {list(TRAINED)}, got {trained!r}")
    if trained == "scale":
        names = {n for n in SCALE_PARAMETERS if getattr(policy, n, None) is not None}
        params = [p for n, p in policy.named_parameters() if n.split(".")[0] in names]
        with torch.no_grad():  # the target map does not train: computed once
            target = policy.target_map(
                policy._batch(views.observations, views.infos, views.prompts)
            )

        def logp() -> torch.Tensor:
            return policy._scale_logp(target)
    else:
        frozen = {id(p) for n in READER_PARAMETERS for p in getattr(policy, n).parameters()}
        params = [p for p in policy.parameters() if id(p) not in frozen]

        def logp() -> torch.Tensor:
            return scale_logp(policy, views)

    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(epochs):
        loss = -(targets * logp()).sum(dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def conditioning(policy: TinyPolicy, views: FirstViews, num_bins: int) -> dict[str, float]:
    """Crop-scale choice per target bin on `views`: `greedy_small_<bin>` (argmax is the smallest
    scale), `prob_small_<bin>` (mean P(smallest scale | crop)) for the smallest (`small`) and
    largest (`large`) bins, and `ci_greedy`, `ci_prob` = the small-bin value - the large-bin one."""
    with torch.no_grad():
        probs = scale_logp(policy, views).exp()
    small = int(np.argmin(policy.scales))
    greedy = (probs.argmax(dim=1) == small).numpy()
    prob = probs[:, small].numpy()
    out: dict[str, float] = {}
    for label, b in (("small", 0), ("large", num_bins - 1)):
        chosen = views.bins == b
        out[f"greedy_small_{label}"] = float(greedy[chosen].mean()) if chosen.any() else np.nan
        out[f"prob_small_{label}"] = float(prob[chosen].mean()) if chosen.any() else np.nan
    out["ci_greedy"] = out["greedy_small_small"] - out["greedy_small_large"]
    out["ci_prob"] = out["prob_small_small"] - out["prob_small_large"]
    return out


def run_seed(
    cfg: TrainerConfig,
    pool: FirstViews,
    held_out: FirstViews,
    seed: int,
    *,
    samples: int,
    p_small: tuple[float, float],
    epochs: int,
    lr: float,
    trained: str = "scale",
) -> tuple[TinyPolicy, dict[str, Any]]:
    """One seed: `samples` questions of `pool` (drawn with the seed), the warm start
    (`cfg.init_checkpoint`), scale SFT of the `trained` parameters (`train_scale`); the
    held-out conditioning before and after."""
    num_bins = len(cfg.bin_names)
    torch.manual_seed(seed)
    policy = TinyPolicy(**cfg.policy_kwargs)
    if cfg.init_checkpoint:
        state = torch.load(cfg.init_checkpoint, map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    chosen = np.random.default_rng([seed, 7]).choice(len(pool), size=samples, replace=False)
    train = pool.take(chosen.tolist())
    before = conditioning(policy, held_out, num_bins)
    targets = scale_targets(train.bins, policy.scales, p_small, num_bins)
    start = time.perf_counter()
    losses = train_scale(policy, train, targets, epochs=epochs, lr=lr, trained=trained)
    after = conditioning(policy, held_out, num_bins)
    passed = after["greedy_small_small"] >= PASS_SMALL and after["greedy_small_large"] <= PASS_LARGE
    return policy, {
        "seed": seed,
        "loss": [losses[0], losses[-1]],
        "train_seconds": time.perf_counter() - start,
        "before": before,
        "after": after,
        "after_train": conditioning(policy, train, num_bins),
        "passed": bool(passed),
    }


def plot_result(result: dict[str, Any], path: str) -> None:
    """Bars of greedy P(small crop | small) and P(small crop | large) per run of a `--json`
    result (one group per scale-head setting, one bar per seed), with the pass lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.analysis import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, key, line in (
        (axes[0], "greedy_small_small", PASS_SMALL),
        (axes[1], "greedy_small_large", PASS_LARGE),
    ):
        labels, values = [], []
        for run in result["runs"]:
            labels.append(f"{'head' if run.get('scale_head') else 'no head'}\nseed {run['seed']}")
            values.append(run["after"][key])
        ax.bar(range(len(values)), values, color=["C0" if "no" in x else "C2" for x in labels])
        ax.axhline(line, color="k", ls="--", lw=1, label=f"pass line {line}")
        ax.set_xticks(range(len(values)), labels, fontsize=7)
        ax.set(title=key.replace("greedy_small_", "greedy P(small crop | ") + ")", ylim=(0, 1.05))
        ax.legend(fontsize=7)
    fig.suptitle("Block 0: scale SFT, 100 balanced held-out questions", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="trainer YAML (env, policy, reader)")
    parser.add_argument(
        "overrides", nargs="*", help="key=value config overrides (policy_kwargs.scale_head=true)"
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=300,
        help="training questions rendered once (balanced target groups); each seed draws from them",
    )
    parser.add_argument("--samples", type=int, default=200, help="training questions per seed")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one run each: which pool questions it trains on (the held-out set is fixed)",
    )
    parser.add_argument(
        "--p-small-small", type=float, default=1.0, help="target P(small crop | small target)"
    )
    parser.add_argument(
        "--p-small-large", type=float, default=0.0, help="target P(small crop | large target)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="policy state_dict path per seed, with {seed} (e.g. sft-{seed}.pt)",
    )
    parser.add_argument(
        "--trained",
        choices=TRAINED,
        default="scale",
        help="scale: the scale gains, biases and head only; all: every non-reader parameter",
    )
    parser.add_argument(
        "--compare-scale-head",
        action="store_true",
        help="run every seed twice, policy_kwargs.scale_head false then true (before / after the "
        "policy change), on the same rendered views",
    )
    parser.add_argument("--json", default=None, help="where to write the numbers (.json)")
    parser.add_argument(
        "--plot", default=None, help="write a bar chart of the runs (.png); with --plot-only"
    )
    parser.add_argument(
        "--plot-only", default=None, metavar="JSON", help="train nothing: plot a --json result"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.plot_only:
        with open(args.plot_only, encoding="utf-8") as handle:
            plot_result(json.load(handle), args.plot or args.plot_only.replace(".json", ".png"))
        return 0
    for name in ("p_small_small", "p_small_large"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise SystemExit(
                f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}"
            )
    if not 1 <= args.samples <= args.pool:
        raise SystemExit(f"need 1 <= --samples ({args.samples}) <= --pool ({args.pool})")
    if args.out and len(args.seeds) > 1 and "{seed}" not in args.out:
        raise SystemExit(f"--out {args.out!r} needs a {{seed}} field for {len(args.seeds)} seeds")

    start = time.perf_counter()
    cfg = load_config(args.config, args.overrides)
    pool_ids = np.random.default_rng(7).choice(cfg.train_samples, size=args.pool, replace=False)
    pool = first_views(cfg, pool_ids.tolist(), {"dataset_kwargs": {"target_mix": None}})
    held_out = first_views(cfg, cfg.eval_ids, cfg.eval_env_kwargs)
    heads = (False, True) if args.compare_scale_head else (None,)
    runs = []
    for head, seed in ((h, s) for h in heads for s in args.seeds):
        variant = cfg
        if head is not None:
            kwargs = {**cfg.policy_kwargs, "scale_head": head}
            variant = dataclasses.replace(cfg, policy_kwargs=kwargs)
        policy, result = run_seed(
            variant,
            pool,
            held_out,
            seed,
            samples=args.samples,
            p_small=(args.p_small_small, args.p_small_large),
            epochs=args.epochs,
            lr=args.lr,
            trained=args.trained,
        )
        result["scale_head"] = policy.scale_head
        runs.append(result)
        if args.out and head is not False:
            atomic_torch_save(policy.state_dict(), args.out.format(seed=seed))
        print(
            f"scale SFT seed {seed} (scale_head={policy.scale_head}): loss {result['loss'][0]:.3f}"
            f" -> {result['loss'][1]:.3f} on {args.samples} first views"
        )
        for label in ("before", "after", "after_train"):
            row = result[label]
            print(
                f"  {label}: greedy P(small crop | small) {row['greedy_small_small']:.2f}, "
                f"| large) {row['greedy_small_large']:.2f}; mean prob {row['prob_small_small']:.2f}"
                f" / {row['prob_small_large']:.2f}; CI greedy {row['ci_greedy']:+.2f}"
            )
        print(f"  Block 0 pass (>= {PASS_SMALL} and <= {PASS_LARGE}): {result['passed']}")
    if args.json:
        atomic_write_json(
            args.json,
            {
                "command": "python -m agents.scale_sft "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "trained": args.trained,
                "pool": args.pool,
                "samples": args.samples,
                "held_out": len(held_out),
                "epochs": args.epochs,
                "lr": args.lr,
                "targets": [args.p_small_small, args.p_small_large],
                "seconds": time.perf_counter() - start,
                "runs": runs,
            },
        )
    if args.plot:
        plot_result({"runs": runs}, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
