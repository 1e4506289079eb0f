"""Exploration bonuses on the crop scale, added to the rewards before any advantage estimator.

Pixel Reasoner (curiosity-driven RL for pixel-space reasoning) pays a bonus when a question's
group rarely uses a tool: ``bonus = alpha * max(H - share, 0)`` for the rollouts that use it,
``share`` the group's rate of tool use, H = 0.3. `scale_curiosity` is its per-scale version: a
rollout whose first crop falls in crop bin k gets ``coef * max(H - share_k, 0)``, ``share_k`` the
fraction of its group's rollouts in that bin, so a scale the group rarely tries earns reward and
a group does not go dead (all rewards equal) while a scale is still unexplored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from grounding_gym.scale import scale_bins

__all__ = ["scale_curiosity"]


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
