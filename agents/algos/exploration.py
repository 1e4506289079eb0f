"""Exploration bonuses on the crop scale, added to the rewards before any advantage estimator.

Pixel Reasoner (curiosity-driven RL for pixel-space reasoning) pays a bonus when a question's
group rarely uses a tool: ``bonus = alpha * max(H - share, 0)`` for the rollouts that use it,
``share`` the group's rate of tool use, H = 0.3. `scale_curiosity` is its per-scale version: a
rollout whose first crop falls in crop bin k gets ``coef * max(H - share_k, 0)``, ``share_k`` the
fraction of its group's rollouts in that bin, so a scale the group rarely tries earns reward and
a group does not go dead (all rewards equal) while a scale is still unexplored.

The other two change the behaviour distribution of the first crop's scale instead of the
reward (`agents.policies.ScaleBehaviour`, trainer option `scale_exploration`):

* `floor_mix`: an exploration floor, the scale drawn from ``mix = (1 - eps) * pi + eps / K``.
* `forced_scales`: a question's G1 crops forced to distinct scales (stratified: every scale
  when G1 >= K).

Both record the behaviour probability mu of the drawn scale; the trainer multiplies the scale
token's advantage by the importance weight ``w = pi / mu`` (not clipped: it is bounded, by
1 / (1 - eps) for the floor and by K for forced scales), so that token's policy gradient
``E_mu[w A grad log pi] = E_pi[A grad log pi]`` stays on-policy in expectation. The cell and
answer tokens that follow are drawn from pi given the scale and keep weight 1: each learns at
the scales the behaviour visits (the state distribution is not corrected, as in off-policy
actor-critic, Degris et al. 2012), which is the point of exploring them. So the whole update
is not on-policy: where parameters are shared (`TinyPolicy`'s target map M feeds both the cell
softmax and the scale logits), cell-token updates at the behaviour's scales move pi(scale) too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from grounding_gym.scale import scale_bins

__all__ = ["floor_mix", "forced_scales", "scale_curiosity"]


def scale_curiosity(
    crop_rel_areas: np.ndarray,
    group_ids: np.ndarray,
    crop_bin_edges: Sequence[float],
    *,
    target_share: float = 0.3,
    coef: float = 0.5,
) -> np.ndarray:
    """(B,) float64 per-rollout bonus ``coef * max(target_share - share_k, 0)``.

    Args:
        crop_rel_areas: (B,) first crop's area / image area; NaN (no crop): no bonus.
        group_ids: (B,) question group of each rollout.
        crop_bin_edges: edges of the crop-scale bins (`numpy.digitize` convention).
        target_share: H, the share below which a scale earns a bonus (Pixel Reasoner: 0.3).
        coef: alpha, the bonus at share 0 is ``coef * H``.

    >>> scale_curiosity(np.array([0.01, 0.2, 0.2, 0.2]), np.zeros(4), [0.1]).round(3).tolist()
    [0.025, 0.0, 0.0, 0.0]
    """
    if not 0.0 <= target_share <= 1.0 or coef < 0:
        raise ValueError(
            f"need 0 <= target_share <= 1 and coef >= 0, got target_share={target_share}, "
            f"coef={coef}"
        )
    bins = scale_bins(crop_rel_areas, crop_bin_edges)
    groups = np.asarray(group_ids)
    bonus = np.zeros(len(bins))
    for g in np.unique(groups):
        members = groups == g
        for k in np.unique(bins[members & (bins >= 0)]):
            cell = members & (bins == k)
            share = cell.sum() / members.sum()
            bonus[cell] = coef * max(target_share - share, 0.0)
    return bonus


ProbsT = TypeVar("ProbsT")


def floor_mix(probs: ProbsT, eps: float) -> ProbsT:
    """``(1 - eps) * probs + eps / K`` over the last axis of K scales (numpy or torch).

    Args:
        probs: (..., K) probabilities pi(scale | crop), summing to 1 over the last axis.
        eps: the floor's weight in [0, 1): every scale gets at least eps / K.

    >>> floor_mix(np.array([0.9, 0.1, 0.0]), 0.3).round(3).tolist()
    [0.73, 0.17, 0.1]
    """
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"the floor eps must be in [0, 1), got {eps}")
    return (1.0 - eps) * probs + eps / probs.shape[-1]  # type: ignore[attr-defined, operator, return-value]


def forced_scales(
    num_groups: int, g1: int, num_scales: int, rng: np.random.Generator
) -> np.ndarray:
    """(num_groups * g1,) int64 forced scale index of each first-turn crop, group-major.

    Each group draws a uniformly random start r; its branch b crops at ``(r + b) % K``. The
    first K branches cover every scale; further ones cycle on (G1 = 4, K = 3: the 4th repeats
    the start, itself uniform). Every branch's scale is marginally uniform, so 1 / K is its
    behaviour probability.

    >>> forced_scales(2, 4, 3, np.random.default_rng(0)).reshape(2, 4).tolist()
    [[2, 0, 1, 2], [1, 2, 0, 1]]
    """
    if num_groups < 0 or g1 < 1 or num_scales < 1:
        raise ValueError(
            f"need num_groups >= 0, g1 >= 1 and num_scales >= 1, got {num_groups}, {g1}, "
            f"{num_scales}"
        )
    start = rng.integers(0, num_scales, size=num_groups)
    return ((start[:, None] + np.arange(g1)[None, :]) % num_scales).reshape(-1).astype(np.int64)
