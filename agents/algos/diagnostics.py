"""Scale-bias diagnostics of one optimisation step, for any advantage estimator (pure numpy).

SRPO's claim (Ground-R1) is that GRPO's credit is dominated by large visual regions. These
functions measure where a step's credit goes, per TARGET-scale bin of the run (the trainer's
`bin_edges` / `bin_names`) and per CROP-scale bin (`crop_bin_edges`):

| key | meaning |
|-----|---------|
| `rollout_share/<bin>` | share of the step's rollouts whose question's target is in the bin |
| `adv_share/<bin>` | share of ``sum |A| x loss tokens`` (what the loss spends) on those rollouts |
| `grad_share/<bin>` | share of the squared gradient norm: ``|g_bin|^2 / sum_b |g_b|^2``, ``g_bin`` the gradient of the step's loss with every other bin's advantages zeroed (the trainer computes it: one extra backward per bin) |
| `bin_reward/<bin>` | mean reward of the bin's rollouts (`srpo_target`'s inter-bin comparison); absent for empty bins |
| `crop_bin_occupancy/<bin>` | share of rollouts whose first crop falls in the crop bin (`none`: no crop) |
| `multi_bin_group_frac` | fraction of question groups whose rollouts span >= 2 crop bins (0 means `srpo` equals `grpo` on that step) |
| `dead_group_frac`, `dead_group_frac/<bin>` | fraction of question groups (of the target bin's groups) whose rewards are all equal: every group-normalised estimator gives them zero advantage |
| `crop_reward/<crop bin>/<bin>` | mean reward of the rollouts whose first crop is in the crop bin and whose target is in the target bin (the reward table the policy is learning; absent for empty cells) |

`crop_choice` gives the held-out side: P(first crop in each crop bin | target bin) and the
conditioning index CI = P(smallest crop bin | smallest target bin) - P(smallest crop bin |
largest target bin): 1 for a policy that zooms tight exactly on small targets, 0 for one that
cannot tell them apart.

Every share family sums to 1 over its bins. A step whose advantages are all zero has no credit
to share: its `adv_share` falls back to `rollout_share` (and the trainer's `grad_share` likewise),
so the shares still sum to 1; `adv_mass` (``sum |A| x tokens``) shows such steps as 0.
"""  # noqa: E501 (table rows)

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from grounding_gym.scale import scale_bins

__all__ = ["NO_CROP", "crop_bin_names", "crop_choice", "scale_bias_metrics", "shares"]

NO_CROP = "none"
"""Crop-bin name of rollouts without a crop."""


def crop_bin_names(num_edges: int, target_names: Sequence[str]) -> tuple[str, ...]:
    """Names of `num_edges + 1` crop bins: the target bins' names when the counts match, else
    `bin0`, `bin1`, ..."""
    if len(target_names) == num_edges + 1:
        return tuple(target_names)
    return tuple(f"bin{k}" for k in range(num_edges + 1))


def shares(
    weights: np.ndarray, bins: np.ndarray, num_bins: int, fallback: np.ndarray | None = None
) -> np.ndarray:
    """(num_bins,) share of ``sum(weights)`` per bin (`bins` in 0..num_bins-1; others ignored).

    A zero total returns `fallback` (default: zeros).
    """
    inside = (bins >= 0) & (bins < num_bins)
    totals = np.bincount(
        bins[inside], weights=np.asarray(weights, dtype=np.float64)[inside], minlength=num_bins
    )
    total = totals.sum()
    if total > 0:
        return totals / total
    return np.zeros(num_bins) if fallback is None else np.asarray(fallback, dtype=np.float64)


def scale_bias_metrics(
    *,
    advantages: np.ndarray,
    lengths: np.ndarray,
    rewards: np.ndarray,
    group_ids: np.ndarray,
    target_rel_areas: np.ndarray,
    crop_rel_areas: np.ndarray,
    bin_edges: Sequence[float],
    bin_names: Sequence[str],
    crop_bin_edges: Sequence[float],
    crop_names: Sequence[str],
) -> dict[str, float]:
    """The table's keys except `grad_share` (see the module docstring), for one step's batch.

    Args:
        advantages: (B,) the estimator's output.
        lengths: (B,) loss tokens per rollout.
        rewards: (B,) returns.
        group_ids: (B,) question group of each rollout.
        target_rel_areas: (B,) target area / image area (NaN: no target, counted in no bin).
        crop_rel_areas: (B,) first crop's area / image area (NaN: no crop).
        bin_edges, bin_names: target-scale bins (`len(names) == len(edges) + 1`).
        crop_bin_edges, crop_names: crop-scale bins, likewise.

    Returns:
        Flat dict of floats, keys as in the table, plus `adv_mass`.
    """
    k = len(bin_names)
    target = scale_bins(target_rel_areas, bin_edges)
    rollout = shares(np.ones(len(target)), target, k)
    mass = np.abs(np.asarray(advantages, dtype=np.float64)) * np.asarray(lengths, dtype=np.float64)
    credit = shares(mass, target, k, fallback=rollout)
    out: dict[str, float] = {"adv_mass": float(mass.sum())}
    rewards = np.asarray(rewards, dtype=np.float64)
    for b, name in enumerate(bin_names):
        out[f"rollout_share/{name}"] = float(rollout[b])
        out[f"adv_share/{name}"] = float(credit[b])
        if (target == b).any():
            out[f"bin_reward/{name}"] = float(rewards[target == b].mean())

    crop = scale_bins(crop_rel_areas, crop_bin_edges)
    crop = np.where(crop < 0, len(crop_names), crop)  # no crop: the extra bin
    occupancy = shares(np.ones(len(crop)), crop, len(crop_names) + 1)
    for b, name in enumerate((*crop_names, NO_CROP)):
        out[f"crop_bin_occupancy/{name}"] = float(occupancy[b])
    groups = np.asarray(group_ids)
    spans = [len(np.unique(crop[groups == g])) for g in np.unique(groups)]
    out["multi_bin_group_frac"] = float(np.mean([s >= 2 for s in spans])) if spans else math.nan
    out.update(_dead_groups(rewards, groups, target, bin_names))
    for c, crop_name in enumerate((*crop_names, NO_CROP)):
        for b, name in enumerate(bin_names):
            cell = (crop == c) & (target == b)
            if cell.any():
                out[f"crop_reward/{crop_name}/{name}"] = float(rewards[cell].mean())
    return out


def _dead_groups(
    rewards: np.ndarray, groups: np.ndarray, target: np.ndarray, bin_names: Sequence[str]
) -> dict[str, float]:
    """`dead_group_frac` over all groups and per target bin (a group's bin: its first
    rollout's; bins without groups are left out). Rewards within 1e-9 count as equal."""
    ids, first = np.unique(groups, return_index=True)
    if not len(ids):
        return {}
    dead = np.array([np.ptp(rewards[groups == g]) <= 1e-9 for g in ids])
    out = {"dead_group_frac": float(dead.mean())}
    for b, name in enumerate(bin_names):
        chosen = target[first] == b
        if chosen.any():
            out[f"dead_group_frac/{name}"] = float(dead[chosen].mean())
    return out


def crop_choice(
    crop_rel_areas: np.ndarray,
    target_rel_areas: np.ndarray,
    *,
    bin_edges: Sequence[float],
    bin_names: Sequence[str],
    crop_bin_edges: Sequence[float],
    crop_names: Sequence[str],
) -> dict[str, float]:
    """Which crop scale the policy takes for which target scale.

    Args:
        crop_rel_areas: (N,) first crop's area / image area (NaN: no crop, in no crop bin).
        target_rel_areas: (N,) target area / image area (NaN: in no target bin).
        bin_edges, bin_names, crop_bin_edges, crop_names: as in `scale_bias_metrics`.

    Returns:
        `p_crop_<crop bin>_<bin>` = P(first crop in the crop bin | target in the bin) for every
        target bin with rollouts, and `conditioning_index` = P(smallest crop bin | smallest target
        bin) - P(smallest crop bin | largest target bin) when both target bins have rollouts.
    """
    target = scale_bins(target_rel_areas, bin_edges)
    crop = scale_bins(crop_rel_areas, crop_bin_edges)
    out: dict[str, float] = {}
    for b, name in enumerate(bin_names):
        chosen = target == b
        if chosen.any():
            for c, crop_name in enumerate(crop_names):
                out[f"p_crop_{crop_name}_{name}"] = float(np.mean(crop[chosen] == c))
    low, high = f"p_crop_{crop_names[0]}_{bin_names[0]}", f"p_crop_{crop_names[0]}_{bin_names[-1]}"
    if low in out and high in out:
        out["conditioning_index"] = out[low] - out[high]
    return out
