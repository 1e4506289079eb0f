"""Advantage estimators (a registry by name) and GRPO-family losses: pure torch functions.

Typical use in a trainer::

    from agents.algos import LossConfig, compute_loss, estimator_needs, get_advantage_estimator

    est = get_advantage_estimator(cfg.adv_estimator)                  # "grpo", "srpo", ...
    extras = {k: batch[k] for k in estimator_needs(cfg.adv_estimator)}
    adv = est(batch["rewards"], batch["group_ids"], **extras, **cfg.adv_kwargs)  # (B,)
    loss, metrics = compute_loss(logp, old_logp, ref_logp, adv, mask, cfg.loss)
"""

from agents.algos.advantages import (
    ROLLOUT_FIELDS,
    AdvantageEstimator,
    dr_grpo,
    estimator_inputs,
    estimator_needs,
    estimator_options,
    get_advantage_estimator,
    grpo,
    list_advantage_estimators,
    register_adv_est,
    rloo,
    srpo,
    srpo_target,
)
from agents.algos.losses import (
    AGG_MODES,
    LossConfig,
    agg_loss,
    compute_loss,
    dynamic_sampling_mask,
    kl_k3,
    overlong_penalty,
    policy_loss,
)

__all__ = [
    "AGG_MODES",
    "ROLLOUT_FIELDS",
    "AdvantageEstimator",
    "LossConfig",
    "agg_loss",
    "compute_loss",
    "dr_grpo",
    "dynamic_sampling_mask",
    "estimator_inputs",
    "estimator_needs",
    "estimator_options",
    "get_advantage_estimator",
    "grpo",
    "kl_k3",
    "list_advantage_estimators",
    "overlong_penalty",
    "policy_loss",
    "register_adv_est",
    "rloo",
    "srpo",
    "srpo_target",
]
