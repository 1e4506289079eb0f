"""Policy-gradient losses for GRPO-family training: pure torch functions on (B, T) tensors.

Shapes: B = rollouts (sequences) in the batch, T = padded response length. ``mask`` (B, T) is 1
(or True) on tokens the policy generated and 0 on padding and on every env-inserted token
(user turns, image tokens: MGPO multi-turn masking is done by the rollout code, not here).
Log-probs are per token, natural log, of the token actually sampled.

* `agg_loss` reduces a (B, T) loss to a scalar with a named mode (registry `AGG_MODES`).
* `policy_loss` is the clipped PPO/GRPO surrogate with asymmetric clipping (DAPO clip-higher).
* `kl_k3` is the per-token k3 KL estimator to a reference policy.
* `compute_loss` combines them under one `LossConfig`.
* `dynamic_sampling_mask` and `overlong_penalty` are DAPO's batch-level options.

Metrics are returned as detached 0-d tensors (no host sync); the trainer prefixes the keys
(``train/clipfrac``) and calls ``.item()`` when it logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from agents.algos._groups import as_1d_float, group_index, segment_constant
from grounding_gym.validation import did_you_mean

__all__ = [
    "AGG_MODES",
    "agg_loss",
    "policy_loss",
    "kl_k3",
    "LossConfig",
    "compute_loss",
    "dynamic_sampling_mask",
    "overlong_penalty",
]

Tensor = torch.Tensor
AggFn = Callable[[Tensor, Tensor, "float | None"], Tensor]

_LOG_RATIO_CLAMP = 20.0  # exp(20) ~ 4.9e8: keeps exp() finite on wild log-ratio outliers


# ---------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------


def _token_mean(loss_mat: Tensor, mask: Tensor, norm_len: float | None) -> Tensor:
    # DAPO: every generated token in the batch weighs the same.
    return (loss_mat * mask).sum() / mask.sum().clamp(min=1.0)


def _seq_mean_token_mean(loss_mat: Tensor, mask: Tensor, norm_len: float | None) -> Tensor:
    # GRPO (DeepSeekMath): mean over each sequence's tokens, then over sequences that have any.
    tokens = mask.sum(dim=-1)  # (B,)
    seq = (loss_mat * mask).sum(dim=-1) / tokens.clamp(min=1.0)  # (B,)
    has_tokens = (tokens > 0).to(seq.dtype)
    return (seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


def _seq_mean_token_sum_norm(loss_mat: Tensor, mask: Tensor, norm_len: float | None) -> Tensor:
    # Dr.GRPO: token sum / a constant length, then mean over all B rows (also constant).
    denom = float(loss_mat.shape[-1]) if norm_len is None else float(norm_len)
    return ((loss_mat * mask).sum(dim=-1) / denom).mean()


AGG_MODES: dict[str, AggFn] = {
    "token-mean": _token_mean,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}
"""Loss aggregation modes by name; `agg_loss` dispatches through this dict."""


def _check_agg(mode: str) -> None:
    if mode not in AGG_MODES:
        names = list(AGG_MODES)
        hint = did_you_mean(mode, names)
        raise ValueError(f"Unknown loss aggregation mode {mode!r}.{hint} Modes: {names}.")


def _check_norm_len(norm_len: float | None) -> None:
    if norm_len is not None and not norm_len > 0:
        raise ValueError(
            f"`norm_len` must be > 0 (e.g. the max response length), got {norm_len!r}."
        )


def _check_2d(name: str, x: Tensor, shape: torch.Size | None = None) -> None:
    if x.dim() != 2:
        raise ValueError(f"`{name}` must have shape (B, T), got {tuple(x.shape)}.")
    if shape is not None and x.shape != shape:
        raise ValueError(
            f"`{name}` must have shape {tuple(shape)} like `logp`, got {tuple(x.shape)}."
        )


def agg_loss(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    norm_len: float | None = None,
) -> Tensor:
    """Reduce a per-token loss (B, T) to a scalar.

    Modes (see `AGG_MODES`):

    * ``"token-mean"``: ``sum(loss * mask) / sum(mask)``; every token weighs the same
      (DAPO, Yu et al. 2025). Long sequences get more total weight.
    * ``"seq-mean-token-mean"``: each sequence's masked token mean, then the mean over sequences
      with at least one token (original GRPO). Short sequences' tokens weigh more.
    * ``"seq-mean-token-sum-norm"``: each sequence's masked token sum / ``norm_len``, then the
      mean over all B rows (Dr.GRPO, Liu et al. 2025). ``norm_len`` should be a constant such as
      the generation budget; None uses T, which changes with padding (as in verl).

    Args:
        loss_mat: (B, T) float per-token loss.
        mask: (B, T) bool or {0, 1} float; 0 = ignore the token.
        mode: one of ``AGG_MODES``.
        norm_len: the constant divisor for "seq-mean-token-sum-norm" (> 0); ignored otherwise.

    Returns:
        0-d tensor, differentiable w.r.t. ``loss_mat``. An all-zero mask gives 0.

    Raises:
        ValueError: unknown ``mode`` (lists the modes), shapes differ, or ``norm_len <= 0``.
    """
    _check_agg(mode)
    _check_norm_len(norm_len)
    _check_2d("loss_mat", loss_mat)
    _check_2d("mask", mask, loss_mat.shape)
    return AGG_MODES[mode](loss_mat, mask.to(loss_mat.dtype), norm_len)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------
# surrogate and KL
# ---------------------------------------------------------------------------------------------


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
    norm_len: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped PPO surrogate with asymmetric clipping.

    ``ratio = exp(logp - old_logp)``; per token
    ``loss = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))``, aggregated by
    `agg_loss`. Where the clipped branch wins, the token has zero gradient.

    Args:
        logp: (B, T) float log-probs under the current policy (requires grad).
        old_logp: (B, T) float log-probs under the sampling policy (treated as constant).
        advantages: (B,) float, broadcast over T; or (B, T) per-token advantages (constant).
        mask: (B, T) bool or {0, 1}; 0 = padding / env-inserted token.
        clip_low: ratio lower bound is ``1 - clip_low``; in [0, 1).
        clip_high: ratio upper bound is ``1 + clip_high``; >= 0. DAPO's clip-higher uses
            0.2 / 0.28 to keep low-probability tokens exploring.
        agg: aggregation mode, see `agg_loss`.
        norm_len: constant divisor for ``agg="seq-mean-token-sum-norm"``.

    Returns:
        ``(loss, metrics)``: loss 0-d; metrics (detached 0-d tensors, masked token means):
        ``clipfrac`` (fraction of tokens where the clipped branch is active) and ``approx_kl``
        (k3 estimate of KL(old || new), ``(ratio - 1) - log ratio``, as in cleanrl).

    Raises:
        ValueError: shapes differ, clip values out of range, or unknown ``agg``.
    """
    if not 0.0 <= clip_low < 1.0:
        raise ValueError(f"`clip_low` must be in [0, 1), got {clip_low!r}.")
    if not clip_high >= 0.0:
        raise ValueError(f"`clip_high` must be >= 0, got {clip_high!r}.")
    _check_agg(agg)
    _check_2d("logp", logp)
    _check_2d("old_logp", old_logp, logp.shape)
    _check_2d("mask", mask, logp.shape)
    adv = torch.as_tensor(advantages, device=logp.device).detach().to(logp.dtype)
    if adv.shape == logp.shape[:1]:
        adv = adv.unsqueeze(-1)  # (B, 1) broadcasts over T
    elif adv.shape != logp.shape:
        raise ValueError(
            f"`advantages` must have shape ({logp.shape[0]},) or {tuple(logp.shape)}, "
            f"got {tuple(adv.shape)}."
        )
    m = mask.to(logp.dtype)

    log_ratio = (logp - old_logp.detach()).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss_mat = torch.maximum(unclipped, clipped)
    loss = agg_loss(loss_mat, m, agg, norm_len)

    with torch.no_grad():
        metrics = {
            "clipfrac": _masked_mean((clipped > unclipped).to(m.dtype), m),
            "approx_kl": _masked_mean((ratio - 1.0) - log_ratio, m),
        }
    return loss, metrics


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi || pi_ref) (Schulman, "Approximating KL Divergence").

    ``k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1``: unbiased for samples from pi,
    always >= 0, and 0 exactly where ``logp == ref_logp``. The log-ratio is clamped to
    [-20, 20] before ``exp`` so that outliers stay finite.

    Args:
        logp: (B, T) float log-probs of the sampled tokens under the current policy.
        ref_logp: (B, T) float log-probs under the reference policy (treated as constant).

    Returns:
        (B, T) float, same dtype as ``logp``; mask and aggregate with `agg_loss`.

    Raises:
        ValueError: shapes differ.
    """
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"`logp` {tuple(logp.shape)} and `ref_logp` {tuple(ref_logp.shape)} must match."
        )
    d = (ref_logp.detach() - logp).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    return torch.exp(d) - d - 1.0


# ---------------------------------------------------------------------------------------------
# config + combined loss
# ---------------------------------------------------------------------------------------------


@dataclass
class LossConfig:
    """Options of the GRPO-family policy loss (`compute_loss`).

    Common settings: GRPO ``LossConfig(beta=0.04, agg="seq-mean-token-mean")``;
    DAPO ``LossConfig(clip_high=0.28, agg="token-mean")``;
    Dr.GRPO ``LossConfig(agg="seq-mean-token-sum-norm", norm_len=<max new tokens>)``.
    """

    clip_low: float = 0.2
    """ratio lower bound 1 - clip_low; in [0, 1)"""
    clip_high: float = 0.2
    """ratio upper bound 1 + clip_high; >= 0 (DAPO clip-higher: 0.28)"""
    beta: float = 0.0
    """weight of the k3 KL to the reference policy; 0 disables it (no reference model needed)"""
    agg: str = "token-mean"
    """loss aggregation mode, one of `AGG_MODES`: token-mean | seq-mean-token-mean |
    seq-mean-token-sum-norm"""
    norm_len: float | None = None
    """constant divisor for agg="seq-mean-token-sum-norm" (the generation budget); None = T"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.clip_low < 1.0:
            raise ValueError(f"clip_low ({self.clip_low}) must be in [0, 1).")
        if not self.clip_high >= 0.0:
            raise ValueError(f"clip_high ({self.clip_high}) must be >= 0.")
        if not self.beta >= 0.0:
            raise ValueError(f"beta ({self.beta}) must be >= 0; 0 disables the KL term.")
        _check_agg(self.agg)
        _check_norm_len(self.norm_len)

    @property
    def needs_ref(self) -> bool:
        """Whether `compute_loss` needs reference log-probs (``beta > 0``)."""
        return self.beta > 0.0


def compute_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    cfg: LossConfig | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GRPO-family loss: clipped surrogate + ``beta`` * k3 KL to the reference.

    ``loss = agg(pg_loss_mat) + beta * agg(kl_k3(logp, ref_logp))``, both aggregated with
    ``cfg.agg`` / ``cfg.norm_len`` (KL in the loss, as in GRPO, not in the reward).

    Args:
        logp: (B, T) float current log-probs (requires grad).
        old_logp: (B, T) float sampling-policy log-probs.
        ref_logp: (B, T) float reference log-probs, or None when ``cfg.beta == 0``.
            Given with beta 0, the KL is still reported in the metrics.
        advantages: (B,) float (e.g. from `get_advantage_estimator`), or (B, T).
        mask: (B, T) bool or {0, 1}.
        cfg: loss options; None = ``LossConfig()``.

    Returns:
        ``(loss, metrics)``: loss 0-d; metrics (detached 0-d tensors): ``loss``, ``pg_loss``,
        ``clipfrac``, ``approx_kl``, and ``kl`` (aggregated k3 to the reference) when
        ``ref_logp`` is given.

    Raises:
        ValueError: ``cfg.beta > 0`` but ``ref_logp`` is None, or shapes differ.
    """
    cfg = LossConfig() if cfg is None else cfg
    if cfg.needs_ref and ref_logp is None:
        raise ValueError(
            f"beta ({cfg.beta}) > 0 needs `ref_logp` (reference-model log-probs); "
            f"pass them or set beta=0."
        )
    pg_loss, metrics = policy_loss(
        logp, old_logp, advantages, mask, cfg.clip_low, cfg.clip_high, cfg.agg, cfg.norm_len
    )
    loss = pg_loss
    out: dict[str, Any] = {"pg_loss": pg_loss.detach(), **metrics}
    if ref_logp is not None:
        _check_2d("ref_logp", ref_logp, logp.shape)
        kl = agg_loss(kl_k3(logp, ref_logp), mask.to(logp.dtype), cfg.agg, cfg.norm_len)
        if cfg.needs_ref:
            loss = loss + cfg.beta * kl
        out["kl"] = kl.detach()
    out["loss"] = loss.detach()
    return loss, out


# ---------------------------------------------------------------------------------------------
# DAPO batch options
# ---------------------------------------------------------------------------------------------


def dynamic_sampling_mask(rewards: Any, group_ids: Any) -> Tensor:
    """DAPO dynamic sampling: keep only groups whose rewards are not all equal.

    A group with identical rewards has zero advantage under GRPO-family estimators, so it adds
    no gradient but dilutes the batch. DAPO drops such groups and samples more; use this mask to
    select rows (``batch[keep]``) or zero their loss mask.

    Args:
        rewards: (B,) float rewards (numpy, torch or list).
        group_ids: (B,) int or str question id.

    Returns:
        (B,) bool on the rewards' device: True = the rollout's group has reward variance.
        One-rollout groups are dropped (False).

    Raises:
        ValueError: shapes differ or an input is not 1-D.
    """
    r = as_1d_float(rewards, "rewards")
    g, num = group_index(group_ids, r.shape[0], r.device)
    return ~segment_constant(r, g, num)[g]


def overlong_penalty(lengths: Any, max_len: int, cache_len: int) -> Tensor:
    """DAPO soft overlong punishment, added to the reward.

    With ``L`` the response length in tokens::

        0                                  if L <= max_len - cache_len
        ((max_len - cache_len) - L) / cache_len   if max_len - cache_len < L <= max_len
        -1                                 if L > max_len

    i.e. 0 up to the start of the cache window, linear down to -1 at ``max_len``, -1 beyond.

    Args:
        lengths: (B,) int or float response lengths (tokens).
        max_len: the generation budget L_max (> 0).
        cache_len: width of the soft window L_cache, 0 <= cache_len <= max_len; 0 gives a hard
            step (-1 only beyond ``max_len``).

    Returns:
        (B,) float32 in [-1, 0] on the lengths' device.

    Raises:
        ValueError: ``lengths`` not 1-D, or ``max_len`` / ``cache_len`` out of range.
    """
    if not max_len > 0:
        raise ValueError(f"`max_len` must be > 0, got {max_len!r}.")
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"`cache_len` ({cache_len!r}) must be in [0, max_len] = [0, {max_len}].")
    length = as_1d_float(lengths, "lengths")
    start = float(max_len - cache_len)
    ramp = (start - length) / max(float(cache_len), 1.0)
    pen = torch.where(length <= start, torch.zeros_like(length), ramp)
    pen = torch.where(length > max_len, torch.full_like(length, -1.0), pen)
    return pen.to(torch.float32)
