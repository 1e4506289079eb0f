"""Group advantage estimators (GRPO, Dr.GRPO, RLOO, SRPO) and their registry by name.

One call convention for every estimator::

    fn = get_advantage_estimator("srpo")
    extras = {k: batch[k] for k in estimator_needs("srpo")}      # {"rel_areas": ...}
    adv = fn(rewards, group_ids, **extras, **options)            # (B,) float32

* ``rewards`` (B,) and ``group_ids`` (B,) come first, positionally; numpy arrays, torch
  tensors and lists are accepted (``torch.as_tensor``). ``group_ids`` may be ints or strings;
  equal ids form one group (one question's rollouts), in any order.
* Everything else is keyword-only. Per-rollout data are the parameters named in
  `ROLLOUT_FIELDS` (``rel_areas``, ``target_rel_areas``, ``lengths``): those without a default
  are required and listed by `estimator_needs`; `estimator_inputs` lists every one an estimator
  accepts (the trainer passes them all). Tuning options are the other parameters, with defaults,
  listed by `estimator_options`. Estimators take no ``**kwargs``, so a misspelt option is a
  TypeError,
  never silently ignored.
* The result is a float32 tensor of shape (B,) on the rewards' device; the loss broadcasts it
  over the response mask (B, T). Statistics are computed in float64 and vectorised over groups
  (no Python loop over groups).

Register a new estimator with ``@register_adv_est("name")``; the `AdvantageEstimator` enum
holds the built-in names so that configs can be checked against typos.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Literal

import torch

from agents.algos._groups import (
    as_1d_float,
    bincount_sum,
    check_finite,
    group_index,
    segment_count,
    segment_moments,
    standardise,
    std_eps,
)
from grounding_gym.registry import Registry
from grounding_gym.scale import DEFAULT_BIN_EDGES, HR_BIN_EDGES, check_bin_edges, scale_bins
from grounding_gym.validation import did_you_mean

__all__ = [
    "AdvantageEstimator",
    "register_adv_est",
    "get_advantage_estimator",
    "list_advantage_estimators",
    "estimator_needs",
    "estimator_inputs",
    "estimator_options",
    "ROLLOUT_FIELDS",
    "grpo",
    "dr_grpo",
    "rloo",
    "srpo",
    "srpo_target",
]

Tensor = torch.Tensor
ArrayLike = Any  # numpy array, torch tensor or sequence, 1-D
AdvantageFn = Callable[..., Tensor]

_CALL_CONVENTION = ("rewards", "group_ids")

ROLLOUT_FIELDS = ("rel_areas", "target_rel_areas", "lengths")
"""Per-rollout (B,) inputs an estimator may take by name (`agents.rollout.rollout_arrays`):
the first crop's relative area (NaN without a crop), the question's target relative area, and
the rollout's loss tokens."""


class AdvantageEstimator(str, Enum):
    """Names of the built-in estimators; ``AdvantageEstimator("grpo")`` rejects typos."""

    GRPO = "grpo"
    DR_GRPO = "dr_grpo"
    RLOO = "rloo"
    SRPO = "srpo"
    SRPO_TARGET = "srpo_target"


ESTIMATORS: Registry[AdvantageFn] = Registry(
    "advantage estimator",
    same=lambda old, new: (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__),
    how_to_add="Add one with @register_adv_est(NAME).",
)
"""Every advantage estimator by name; `register_adv_est` adds one."""


def _key(name: str | AdvantageEstimator) -> str:
    return name.value if isinstance(name, AdvantageEstimator) else str(name)


def _check_convention(fn: AdvantageFn, name: str) -> None:
    params = list(inspect.signature(fn).parameters.values())
    first = tuple(p.name for p in params[:2])
    if first != _CALL_CONVENTION:
        raise TypeError(
            f"Advantage estimator {name!r} ({fn.__qualname__}) must take "
            f"`rewards, group_ids` first, got {first}. Signature: "
            f"def {fn.__name__}(rewards, group_ids, *, <extras>) -> Tensor."
        )
    if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params):
        raise TypeError(
            f"Advantage estimator {name!r} ({fn.__qualname__}) must declare its extras "
            f"explicitly (no *args/**kwargs), so that `estimator_needs` is exact."
        )


def register_adv_est(name: str | AdvantageEstimator) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator registering an advantage estimator under ``name``.

    Usage: ``@register_adv_est(AdvantageEstimator.GRPO)`` or ``@register_adv_est("my_est")``.
    Registering the same function again (same module and qualified name, e.g. after
    ``importlib.reload``) replaces it.

    Raises:
        ValueError: ``name`` is already registered to another function.
        TypeError: the function does not follow the call convention
            (``rewards, group_ids`` first, explicit extras, no ``**kwargs``).
    """
    key = _key(name)

    def decorator(fn: AdvantageFn) -> AdvantageFn:
        _check_convention(fn, key)
        ESTIMATORS.register(key, fn)
        return fn

    return decorator


def list_advantage_estimators() -> list[str]:
    """Sorted names of every registered estimator."""
    return ESTIMATORS.names()


def get_advantage_estimator(name: str | AdvantageEstimator) -> AdvantageFn:
    """The estimator registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the registered names and, when one is
            close, a "Did you mean" hint.
    """
    return ESTIMATORS.get(_key(name))


def _extras(name: str | AdvantageEstimator) -> list[inspect.Parameter]:
    fn = get_advantage_estimator(name)
    return list(inspect.signature(fn).parameters.values())[2:]


def estimator_needs(name: str | AdvantageEstimator) -> set[str]:
    """Per-rollout data the estimator requires beyond ``rewards, group_ids``.

    These are its extra parameters without a default, e.g. ``{"rel_areas"}`` for "srpo" and
    ``set()`` for "grpo". The trainer passes exactly these, each shaped (B,).

    Raises:
        ValueError: unknown name (see `get_advantage_estimator`).
    """
    return {p.name for p in _extras(name) if p.default is inspect.Parameter.empty}


def estimator_inputs(name: str | AdvantageEstimator) -> set[str]:
    """Every `ROLLOUT_FIELDS` entry the estimator accepts, required or optional; e.g.
    ``{"target_rel_areas"}`` for "grpo" (its ``reweight`` option reads them).

    Raises:
        ValueError: unknown name (see `get_advantage_estimator`).
    """
    return {p.name for p in _extras(name) if p.name in ROLLOUT_FIELDS} | estimator_needs(name)


def estimator_options(name: str | AdvantageEstimator) -> dict[str, Any]:
    """The estimator's tuning options and their defaults, e.g. ``{"eps": 1e-6, ...}``.

    Use it to validate a config's estimator kwargs before training starts. Per-rollout inputs
    (`ROLLOUT_FIELDS`) are not options.

    Raises:
        ValueError: unknown name (see `get_advantage_estimator`).
    """
    return {
        p.name: p.default
        for p in _extras(name)
        if p.default is not inspect.Parameter.empty and p.name not in ROLLOUT_FIELDS
    }


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------


def _prepare(rewards: ArrayLike, group_ids: ArrayLike) -> tuple[Tensor, Tensor, int]:
    """rewards (B,) float64 finite, group index (B,) int64, number of groups."""
    r = as_1d_float(rewards, "rewards")
    check_finite(r, "rewards")
    g, num = group_index(group_ids, r.shape[0], r.device)
    return r, g, num


def _out(a: Tensor) -> Tensor:
    return a.to(torch.float32)


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------


Reweight = Literal["none", "inverse_bin_frequency"]
_REWEIGHT = ("none", "inverse_bin_frequency")
DEFAULT_TARGET_EDGES = HR_BIN_EDGES
"""Target-scale bin edges of `srpo_target` and of `grpo(reweight=...)`: `grounding_gym.scale`'s
log-decade edges of the high-resolution datasets (small < 1e-3 <= medium < 1e-2); the trainer
passes the run's edges."""


@register_adv_est(AdvantageEstimator.GRPO)
def grpo(
    rewards: ArrayLike,
    group_ids: ArrayLike,
    *,
    eps: float = 1e-6,
    scale_by_std: bool = True,
    reweight: Reweight = "none",
    target_rel_areas: ArrayLike | None = None,
    bin_edges: Sequence[float] = DEFAULT_TARGET_EDGES,
) -> Tensor:
    """GRPO group-relative advantage (DeepSeekMath, Shao et al. 2024).

    ``A = (r - group mean) / (group std + eps)``, std unbiased (n - 1, torch's default, as in
    TRL and verl).

    With ``reweight="inverse_bin_frequency"`` (the control of the scale-bias experiment: "any
    rebalancing", without SRPO's comparisons) each rollout's advantage is multiplied by
    ``B / (K * n_bin)``, where ``n_bin`` is the number of rollouts in its target-scale bin and K
    the number of occupied bins: every occupied bin then weighs as much as if the batch were
    balanced, and the weights sum to B.

    Args:
        rewards: (B,) float outcome rewards, finite; B = questions * G.
        group_ids: (B,) int or str question id; equal ids form one group.
        eps: added to every std.
        scale_by_std: False gives ``r - mean`` (as Dr.GRPO; see `dr_grpo`).
        reweight: "none" (default) or "inverse_bin_frequency".
        target_rel_areas: (B,) the question's target area / image area (NaN: no target, a bin
            of its own); required by ``reweight="inverse_bin_frequency"``.
        bin_edges: strictly increasing target-scale edges in [0, 1] for ``reweight``.

    Returns:
        (B,) float32 on the rewards' device; the loss broadcasts it over the mask (B, T).

    Raises:
        ValueError: shapes differ, an input is not 1-D, a reward is not finite, or ``reweight``
            needs ``target_rel_areas`` that are missing.

    Note:
        A group of one rollout, or a group whose rewards are all equal (zero variance), gives
        advantage exactly 0 for its rollouts: there is nothing to compare against.
    """
    _choice(reweight, _REWEIGHT, "reweight")
    r, g, num = _prepare(rewards, group_ids)
    adv = standardise(r, g, num, eps=eps, scale_by_std=scale_by_std)
    if reweight == "inverse_bin_frequency":
        if target_rel_areas is None:
            raise ValueError("reweight='inverse_bin_frequency' needs `target_rel_areas` (B,).")
        bins, num_bins = _target_bins(target_rel_areas, r, _edges(bin_edges, None))
        count = segment_count(bins, num_bins, r.dtype)
        occupied = int((count > 0).sum())
        adv = adv * (r.shape[0] / (occupied * count[bins]))
    return _out(adv)


@register_adv_est(AdvantageEstimator.DR_GRPO)
def dr_grpo(rewards: ArrayLike, group_ids: ArrayLike) -> Tensor:
    """Dr.GRPO advantage: ``A = r - group mean``, no std division.

    From "Understanding R1-Zero-Like Training: A Critical Perspective" (Liu et al. 2025):
    dividing by the group std up-weights questions that are too easy or too hard (question-level
    difficulty bias), and the per-sequence ``1/|o_i|`` in the loss adds a length bias. This
    function removes the first; the second is removed by the loss aggregation
    ``agg="seq-mean-token-sum-norm"`` with a constant ``norm_len`` (see `agents.algos.losses`).

    Args:
        rewards: (B,) float outcome rewards, finite.
        group_ids: (B,) int or str question id; equal ids form one group.

    Returns:
        (B,) float32 on the rewards' device.

    Raises:
        ValueError: shapes differ, an input is not 1-D, or a reward is not finite.

    Note:
        A one-rollout or zero-variance group gives exactly 0.
    """
    r, g, num = _prepare(rewards, group_ids)
    return _out(standardise(r, g, num, eps=0.0, scale_by_std=False))


@register_adv_est(AdvantageEstimator.RLOO)
def rloo(rewards: ArrayLike, group_ids: ArrayLike) -> Tensor:
    """REINFORCE leave-one-out: ``A_i = r_i - mean_{j != i} r_j`` within the group.

    Kool et al. 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!"; Ahmadian et al. 2024,
    "Back to Basics". Equals ``n / (n - 1) * (r_i - group mean)``; the baseline does not depend
    on the rollout's own reward, so the estimate is unbiased.

    Args:
        rewards: (B,) float outcome rewards, finite.
        group_ids: (B,) int or str question id; equal ids form one group.

    Returns:
        (B,) float32 on the rewards' device.

    Raises:
        ValueError: shapes differ, an input is not 1-D, or a reward is not finite.

    Note:
        A one-rollout group has no baseline and gives 0; a zero-variance group gives 0.
    """
    r, g, num = _prepare(rewards, group_ids)
    n = segment_count(g, num, r.dtype)
    centred = standardise(r, g, num, eps=0.0, scale_by_std=False)  # 0 for n == 1
    return _out(centred * (n / (n - 1).clamp(min=1))[g])


NoBox = Literal["own_bin", "exclude", "smallest"]
InterScale = Literal["group_std", "none"]
Tie = Literal["all", "none"]
_NO_BOX = ("own_bin", "exclude", "smallest")
_INTER_SCALE = ("group_std", "none")
_TIE = ("all", "none")


def _choice(value: str, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        hint = did_you_mean(value, allowed)
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}.{hint}")


def _edges(bin_edges: Sequence[float], num_bins: int | None) -> list[float]:
    """Validated, strictly increasing bin edges (K bins = K - 1 edges)."""
    if num_bins is not None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
            raise ValueError(f"`num_bins` must be an int >= 1 (or None), got {num_bins!r}.")
        return [k / num_bins for k in range(1, num_bins)]
    return list(check_bin_edges(bin_edges, allow_empty=True))


@register_adv_est(AdvantageEstimator.SRPO)
def srpo(
    rewards: ArrayLike,
    group_ids: ArrayLike,
    *,
    rel_areas: ArrayLike,
    bin_edges: Sequence[float] = DEFAULT_BIN_EDGES,
    num_bins: int | None = None,
    eps: float = 1e-6,
    no_box: NoBox = "own_bin",
    inter_scale: InterScale = "group_std",
    tie: Tie = "all",
) -> Tensor:
    """SRPO (Ground-R1) scale-aware group advantage.

    A question's rollouts are binned by their predicted box's relative area.
    intra = (r - bin mean) / (bin std + eps); inter = 1 in the bin with the best
    mean reward, else 0, normalised over the group. A = intra + inter.

    Binning follows ``numpy.digitize``: bin k = number of edges <= area, so the default edges
    (0.1, 0.3) give bins 0 (small, area < 0.1), 1 (medium, 0.1 <= area < 0.3), 2 (large).
    Areas above 1 fall in the last bin.

    Args:
        rewards: (B,) float outcome rewards, finite; B = questions * G1 * G2.
        group_ids: (B,) int or str question id; equal ids form one group.
        rel_areas: (B,) float predicted-box area / original image area, >= 0; NaN = the rollout
            produced no box.
        bin_edges: strictly increasing scale-bin edges in [0, 1], as in `grounding_gym.scale`
            (3 bins by default); ``()`` gives one bin.
        num_bins: K >= 1 equal-width bins over [0, 1] (edges k/K); replaces ``bin_edges``.
        eps: added to every std (intra and inter).
        no_box: rollouts with NaN area: "own_bin" (an extra bin K of their own, the default),
            "exclude" (advantage 0, left out of every statistic), "smallest" (bin 0).
        inter_scale: "group_std" (default): inter = (x - group mean) / (group std + eps) over the
            group's (non-excluded) rollouts, x in {0, 1}; "none": inter = x - group mean.
        tie: several bins share the best mean reward: "all" (default) gives x = 1 to every tied
            bin; "none" gives x = 0 to all. Means are tied when within 1e-9.

    Returns:
        (B,) float32 on the rewards' device; the loss broadcasts it over `response_mask` (B, T).

    Raises:
        ValueError: shapes differ, a reward is not finite, an area is negative or infinite, or
            an option is not one of its allowed values.

    Note:
        Statistics use the unbiased std (n - 1). A one-member bin or a zero-variance bin gives
        intra = 0; a one-rollout group gives A = 0. With one bin per group, every rollout is
        in the best bin, so inter = 0 and A equals `grpo` with the same ``eps`` (tested).
    """
    _choice(no_box, _NO_BOX, "no_box")
    _choice(inter_scale, _INTER_SCALE, "inter_scale")
    _choice(tie, _TIE, "tie")
    edges = _edges(bin_edges, num_bins)
    r, g, num_groups = _prepare(rewards, group_ids)
    a = _rel_areas(rel_areas, r, "rel_areas", "'no box'")
    width = len(edges) + 2  # area bins 0..K-1 and the "no box" bin K
    keep = None
    if no_box == "own_bin":  # NaN in bin K, above every area bin
        bins = _scale_bins(a, edges, nan_bin=len(edges) + 1)
    else:  # NaN in bin 0, as no_box="smallest"
        bins = _scale_bins(a, edges, nan_bin=0)
    if no_box == "exclude":  # left out of every statistic, A = 0
        keep = ~torch.isnan(a)
        r, g, bins = r[keep], g[keep], bins[keep]

    # Cells (group, bin) index a dense (num_groups, width) table; empty cells stay unused.
    cell = torch.add(bins, g, alpha=width)
    m = segment_moments(r, cell, num_groups * width, eps)  # intra = (d - mean_d) / den

    # Inter-bin reward x = 1 in the group's best cell(s) (empty cells: mean -inf), standardised
    # over the group's rollouts from the cell counts (NaN in a group without rollouts, unread).
    mean = torch.add(m.s, m.mean_d).view(num_groups, width)
    tol = 1e-9 if r.dtype == torch.float64 else 1e-6
    best = mean >= mean.amax(1, keepdim=True).sub_(tol)
    if tie == "none":
        best &= best.sum(1, keepdim=True) == 1
    x = best.to(r.dtype)
    count = m.n.view(num_groups, width)
    size = count.sum(1, keepdim=True)
    ones = (count * x).sum(1, keepdim=True)
    x_mean = ones / size
    inter = x - x_mean  # exactly 0 where every x of the group is equal
    if inter_scale == "group_std":
        inter /= std_eps(torch.addcmul(ones, ones, x_mean, value=-1), size, eps)

    offset = torch.addcdiv(inter.view(-1), m.mean_d, m.den, value=-1)
    adv = torch.addcdiv(offset.index_select(0, cell), m.d, m.den.index_select(0, cell))
    if keep is not None:
        adv = r.new_zeros(keep.shape).masked_scatter_(keep, adv)
    return _out(adv)


def _rel_areas(values: ArrayLike, r: Tensor, name: str, nan_means: str) -> Tensor:
    """(B,) float relative areas on the rewards' device, >= 0 and finite or NaN.

    Raises:
        ValueError: shape differs from the rewards', or an area is negative or infinite.
    """
    a = as_1d_float(values, name, device=r.device)
    if a.shape != r.shape:
        raise ValueError(
            f"`{name}` must have the shape of `rewards` {tuple(r.shape)}, got {tuple(a.shape)}."
        )
    nan_inf = a.nan_to_num(nan=torch.inf, posinf=-1.0)  # bad values become negative
    if a.numel() and float(nan_inf.amin()) < 0:
        bad = (nan_inf < 0).nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"`{name}` must be >= 0 and finite, or NaN for {nan_means}; bad values at indices "
            f"{bad}: {[float(a[i]) for i in bad]}."
        )
    return a


def _scale_bins(a: Tensor, edges: Sequence[float], nan_bin: int) -> Tensor:
    """(B,) int64 `grounding_gym.scale.scale_bins` of the areas `a` (float64), NaN in `nan_bin`."""
    bins = torch.from_numpy(scale_bins(a.cpu().numpy(), edges)).to(a.device)
    return torch.where(bins < 0, nan_bin, bins)


def _target_bins(target_rel_areas: ArrayLike, r: Tensor, edges: list[float]) -> tuple[Tensor, int]:
    """(B,) int64 target-scale bin (`numpy.digitize` on `edges`; NaN: the extra bin K) and K + 1.

    Raises:
        ValueError: shape differs from the rewards', or an area is negative or infinite.
    """
    a = _rel_areas(target_rel_areas, r, "target_rel_areas", "no target")
    return _scale_bins(a, edges, nan_bin=len(edges) + 1), len(edges) + 2


@register_adv_est(AdvantageEstimator.SRPO_TARGET)
def srpo_target(
    rewards: ArrayLike,
    group_ids: ArrayLike,
    *,
    target_rel_areas: ArrayLike,
    lengths: ArrayLike,
    bin_edges: Sequence[float] = DEFAULT_TARGET_EDGES,
    eps: float = 1e-6,
) -> Tensor:
    """SRPO read by target scale: equal credit for every occupied target-scale bin of the batch.

    A second reading of Ground-R1's scale-relative grouping (`srpo` is the first: bins by each
    rollout's crop scale within its question). Here the bins are the questions' TARGET scales
    across the batch. The intra-bin comparison is the question group (a question's rollouts all
    share its target, hence its bin): ``a = grpo(rewards, group_ids, eps=eps)``. The advantage
    mass ``m_k = sum_{i in bin k} |a_i| * lengths_i`` (what the loss spends on bin k) is then
    rescaled so that every bin with ``m_k > 0`` carries ``M / K`` of the total ``M = sum_k m_k``
    (K such bins): ``A_i = a_i * M / (K * m_k)``. A batch of 80 % large-target questions thus
    gives its small-target questions as much credit as its large ones. The inter-bin comparison
    (the bins' mean rewards) does not enter A; the trainer logs it (``bin_reward/<bin>``).

    Args:
        rewards: (B,) float outcome rewards, finite.
        group_ids: (B,) int or str question id; equal ids form one group.
        target_rel_areas: (B,) the question's target box area / image area, >= 0 (NaN: no
            target; such rollouts form a bin of their own).
        lengths: (B,) loss tokens of each rollout (policy tokens), >= 0.
        bin_edges: strictly increasing target-scale edges in [0, 1] (default: log-decade
            edges (1e-3, 1e-2): small / medium / large).
        eps: added to every group std.

    Returns:
        (B,) float32 on the rewards' device.

    Raises:
        ValueError: shapes differ, a reward is not finite, an area or length is invalid.

    Note:
        The total mass M is unchanged, so the step size matches GRPO's. Zero-mass bins (every
        group constant) stay 0; with one occupied bin A equals `grpo` (tested).
    """
    r, g, num = _prepare(rewards, group_ids)
    tokens = as_1d_float(lengths, "lengths", device=r.device)
    if tokens.shape != r.shape or (
        tokens.numel() and float(tokens.nan_to_num(nan=-1.0, posinf=-1.0).amin()) < 0
    ):
        raise ValueError(f"`lengths` must be finite, >= 0 and of shape {tuple(r.shape)}.")
    bins, num_bins = _target_bins(target_rel_areas, r, _edges(bin_edges, None))
    adv = standardise(r, g, num, eps=eps)  # = grpo(rewards, group_ids, eps=eps), float64
    mass = bincount_sum(bins, adv.abs() * tokens, num_bins)
    # M / (K m_k) on the K bins with m_k > 0; 1 on the others (there x / 0 gives inf or NaN)
    share = (mass.sum() / (torch.count_nonzero(mass) * mass)).nan_to_num_(nan=1.0, posinf=1.0)
    return _out(adv * share.index_select(0, bins))
