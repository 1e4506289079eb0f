"""Vectorised per-group statistics shared by the advantage estimators (private).

Every helper works on a flat batch ``(B,)`` and a segment index ``(B,)`` int64 in
``0..num_segments-1`` (see `group_index`); nothing loops over groups in Python.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

Tensor = torch.Tensor


def stat_dtype(device: torch.device) -> torch.dtype:
    """float64 for the statistics (exact enough for tie checks), float32 where unsupported."""
    return torch.float32 if device.type == "mps" else torch.float64


def as_1d_float(x: Any, name: str, *, device: torch.device | None = None) -> Tensor:
    """`torch.as_tensor` a 1-D numeric array into the statistics dtype, detached.

    Raises:
        ValueError: ``x`` is not 1-D.
    """
    t = torch.as_tensor(x, device=device)
    if t.dim() != 1:
        raise ValueError(f"`{name}` must be 1-D with shape (B,), got shape {tuple(t.shape)}.")
    return t.detach().to(stat_dtype(t.device))


def check_finite(x: Tensor, name: str) -> None:
    """Raise ValueError naming the first non-finite entries of ``x``."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = bad.nonzero().flatten()[:5].tolist()
        vals = [float(x[i]) for i in idx]
        raise ValueError(
            f"`{name}` must be finite; {int(bad.sum())} non-finite value(s), e.g. at "
            f"indices {idx}: {vals}. Fix the reward function (a NaN usually means a "
            f"failed parse) or map failures to a finite reward such as 0."
        )


def group_index(group_ids: Any, batch: int, device: torch.device) -> tuple[Tensor, int]:
    """Map arbitrary group ids to a contiguous int64 index.

    Args:
        group_ids: (B,) ints (numpy, torch, list) or strings (numpy/list, e.g. question ids).
        batch: expected B.
        device: device of the result.

    Returns:
        ``(index, num_groups)``: index (B,) int64 in ``0..num_groups-1``.

    Raises:
        ValueError: ``group_ids`` is not 1-D of shape ``(batch,)``, or holds NaN.
    """
    if isinstance(group_ids, Tensor):
        gid = group_ids
    else:
        arr = np.asarray(group_ids)
        if arr.dtype.kind in "OUS":  # strings / objects: factorise in numpy
            if arr.ndim != 1:
                raise ValueError(
                    f"`group_ids` must be 1-D with shape ({batch},), got shape {arr.shape}."
                )
            _, inv = np.unique(arr, return_inverse=True)
            gid = torch.as_tensor(inv.reshape(-1).astype(np.int64))
        else:
            gid = torch.as_tensor(arr)
    if gid.dim() != 1 or gid.shape[0] != batch:
        raise ValueError(
            f"`group_ids` must have shape ({batch},) like `rewards`, got shape {tuple(gid.shape)}."
        )
    if gid.is_floating_point() and bool(torch.isnan(gid).any()):
        raise ValueError("`group_ids` contains NaN; every rollout needs a group (question) id.")
    _, inv = torch.unique(gid.to(device), return_inverse=True)
    num = int(inv.max()) + 1 if batch else 0
    return inv.to(torch.int64), num


def segment_sum(x: Tensor, seg: Tensor, num: int) -> Tensor:
    """(num,) sum of ``x`` over each segment."""
    return torch.zeros(num, dtype=x.dtype, device=x.device).index_add_(0, seg, x)


def bincount_sum(seg: Tensor, x: Tensor, num: int) -> Tensor:
    """(num,) sum of ``x`` per segment: `segment_sum` in one call (`torch.bincount`), except on
    CUDA under ``torch.use_deterministic_algorithms``, which rejects a weighted bincount."""
    if x.is_cuda and torch.are_deterministic_algorithms_enabled():
        return segment_sum(x, seg, num)
    total = torch.bincount(seg, x, minlength=num)
    return total if seg.numel() else total.to(x.dtype)  # int64 when seg is empty


def segment_count(seg: Tensor, num: int, dtype: torch.dtype) -> Tensor:
    """(num,) number of members of each segment, as ``dtype``."""
    return torch.bincount(seg, minlength=num).to(dtype)


def segment_constant(x: Tensor, seg: Tensor, num: int) -> Tensor:
    """(num,) bool: every member of the segment has exactly the same value (max == min).

    Exact comparison, so a group of identical rewards is detected even when
    ``sum / n`` rounds and leaves a tiny nonzero ``r - mean``.
    """
    hi = torch.full((num,), -torch.inf, dtype=x.dtype, device=x.device)
    lo = torch.full((num,), torch.inf, dtype=x.dtype, device=x.device)
    hi = hi.scatter_reduce(0, seg, x, reduce="amax", include_self=True)
    lo = lo.scatter_reduce(0, seg, x, reduce="amin", include_self=True)
    return hi == lo


class Moments(NamedTuple):
    """Per-segment statistics from `segment_moments`, tables (num,).

    The standardised value of member i is ``(d[i] - mean_d[seg[i]]) / den[seg[i]]``.
    """

    d: Tensor  # (N,) x - s[seg]: exactly 0 in a one-member or constant segment
    s: Tensor  # one member's value (-inf for an empty segment)
    n: Tensor  # members, x's dtype
    mean_d: Tensor  # mean of d; the segment mean of x is s + mean_d
    den: Tensor  # unbiased std (n - 1) + eps


def segment_moments(x: Tensor, seg: Tensor, num: int, eps: float) -> Moments:
    """Per-segment mean and ``std + eps`` of ``x``, taken around one member of each segment.

    With ``s`` one member's value, ``d = x - s[seg]`` is 0 for that member, so a one-member or
    constant segment gives ``d`` and ``mean_d`` exactly 0 without the max/min pass of
    `segment_constant`. The squared deviations ``sum(d^2) - mean_d * sum(d)`` lose at most a
    factor ~2n of precision, as ``|mean_d| <= range`` and they are ``>= range^2 / 2``.

    Args:
        x: (N,) values.
        seg: (N,) int64 segment index in ``0..num-1`` (empty segments allowed).
        num: number of segments.
        eps: added to every std.
    """
    s = x.new_full((num,), -torch.inf).scatter_(0, seg, x)  # any member's value
    d = x - s.index_select(0, seg)
    n = segment_count(seg, num, x.dtype)
    sum_d = bincount_sum(seg, d, num)
    mean_d = sum_d / n.clamp(min=1)
    ss = bincount_sum(seg, d * d, num).addcmul_(mean_d, sum_d, value=-1)
    return Moments(d, s, n, mean_d, std_eps(ss, n, eps))


def std_eps(ss: Tensor, n: Tensor, eps: float) -> Tensor:
    """Unbiased std (n - 1) + eps from the sums of squared deviations ``ss`` of ``n`` values;
    ``ss`` is overwritten (callers pass a fresh tensor).

    With eps <= 0 the result is at least the smallest normal float, so a constant segment
    (deviations exactly 0) standardises to 0, not 0 / 0.
    """
    std = ss.div_((n - 1).clamp_(min=1)).sqrt_()
    return std.add_(eps) if eps > 0 else std.add_(eps).clamp_(min=torch.finfo(std.dtype).tiny)


def standardise(
    x: Tensor, seg: Tensor, num: int, *, eps: float, scale_by_std: bool = True
) -> Tensor:
    """Per-segment ``(x - mean) / (std + eps)`` (or ``x - mean``), std unbiased (n - 1), from
    `segment_moments` (the one place group statistics are computed).

    A one-member or constant segment gives exactly 0.

    Args:
        x: (N,) values.
        seg: (N,) int64 segment index.
        num: number of segments.
        eps: added to every std.
        scale_by_std: divide by ``std + eps``; False centres only.

    Returns:
        (N,) same dtype as ``x``.
    """
    m = segment_moments(x, seg, num, eps)
    dev = m.d - m.mean_d.index_select(0, seg)
    return dev / m.den.index_select(0, seg) if scale_by_std else dev
