"""agents/algos/losses.py: aggregation modes, the clipped surrogate, the k3 KL and `compute_loss`,
DAPO's dynamic sampling and overlong penalty, on hand-computed numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.algos import (
    AGG_MODES,
    LossConfig,
    agg_loss,
    compute_loss,
    dynamic_sampling_mask,
    get_advantage_estimator,
    kl_k3,
    overlong_penalty,
    policy_loss,
    srpo,
)
from tests.agents.algos.test_advantages import NAN, close

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


MASK = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_agg_modes_registry():
    assert set(AGG_MODES) == {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"}


def test_agg_loss_by_hand():
    # tokens kept: row 0 -> 1, 2; row 1 -> 4
    # token-mean: (1 + 2 + 4) / 3 = 7/3
    assert agg_loss(LOSS, MASK, "token-mean").item() == pytest.approx(7 / 3)
    # seq-mean-token-mean: ((1 + 2) / 2 + 4 / 1) / 2 = (1.5 + 4) / 2 = 2.75
    assert agg_loss(LOSS, MASK, "seq-mean-token-mean").item() == pytest.approx(2.75)
    # seq-mean-token-sum-norm, norm_len None -> T = 3: (3 / 3 + 4 / 3) / 2 = 7/6
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 6)
    # norm_len = 4: (3 / 4 + 4 / 4) / 2 = 0.875
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", norm_len=4).item() == pytest.approx(
        0.875
    )
    # float mask is the same as bool mask
    assert agg_loss(LOSS, MASK.float(), "token-mean").item() == pytest.approx(7 / 3)


def test_agg_loss_empty_rows():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    # token-mean: (1 + 2) / 2 = 1.5; seq-mean-token-mean skips the empty row: 1.5
    # seq-mean-token-sum-norm divides by all B = 2 rows: (3 / 3 + 0) / 2 = 0.5
    assert agg_loss(LOSS, mask, "token-mean").item() == pytest.approx(1.5)
    assert agg_loss(LOSS, mask, "seq-mean-token-mean").item() == pytest.approx(1.5)
    assert agg_loss(LOSS, mask, "seq-mean-token-sum-norm").item() == pytest.approx(0.5)
    zero = torch.zeros(2, 3)
    for mode in AGG_MODES:
        assert agg_loss(LOSS, zero, mode).item() == 0.0


def test_agg_loss_gradient_weights():
    x = LOSS.clone().requires_grad_(True)
    agg_loss(x, MASK, "token-mean").backward()
    # d/dx = mask / 3 tokens
    torch.testing.assert_close(x.grad, MASK.float() / 3)
    x.grad = None
    agg_loss(x, MASK, "seq-mean-token-mean").backward()
    # row 0: 1 / (2 tokens * 2 rows) = 0.25; row 1: 1 / (1 token * 2 rows) = 0.5
    torch.testing.assert_close(x.grad, torch.tensor([[0.25, 0.25, 0.0], [0.5, 0.0, 0.0]]))


def test_agg_loss_errors():
    with pytest.raises(ValueError, match="Did you mean 'token-mean'") as exc:
        agg_loss(LOSS, MASK, "token_mean")
    assert "seq-mean-token-sum-norm" in str(exc.value)
    with pytest.raises(ValueError, match="norm_len"):
        agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", norm_len=0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        agg_loss(LOSS, MASK[:, :2], "token-mean")


def test_policy_loss_clip_higher_by_hand():
    # one sequence, old_logp = 0, ratios [1.5, 1.0, 0.7], A = +1, clip 0.2 / 0.28 -> [0.8, 1.28]
    #   token 0: unclipped -1.5, clipped -1.28 -> max -1.28 (clipped, gradient 0)
    #   token 1: -1.0 both                      (gradient d(-ratio)/dlogp = -ratio = -1)
    #   token 2: unclipped -0.7, clipped -0.8   -> max -0.7 (unclipped, gradient -0.7)
    # token-mean: (-1.28 - 1 - 0.7) / 3 = -0.993333
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.7]])).requires_grad_(True)
    old = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    loss, m = policy_loss(logp, old, torch.tensor([1.0]), mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-2.98 / 3, abs=1e-6)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0, -0.7]]) / 3)
    # clipfrac: only token 0 (clipped -1.28 > unclipped -1.5) -> 1/3
    assert m["clipfrac"].item() == pytest.approx(1 / 3)
    # approx_kl = mean((ratio - 1) - log ratio) = (0.5 - ln 1.5 + 0 + (-0.3) - ln 0.7) / 3
    kl = ((0.5 - math.log(1.5)) + (-0.3 - math.log(0.7))) / 3
    assert m["approx_kl"].item() == pytest.approx(kl, abs=1e-6)
    assert not m["clipfrac"].requires_grad


def test_policy_loss_symmetric_vs_asymmetric_clip():
    # ratio 1.25, A = +1: clip_high 0.2 -> clipped at 1.2 (gradient 0);
    # clip_high 0.28 -> inside (gradient -1.25)
    for clip_high, grad in ((0.2, 0.0), (0.28, -1.25)):
        logp = torch.log(torch.tensor([[1.25]])).requires_grad_(True)
        loss, _ = policy_loss(
            logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), clip_high=clip_high
        )
        loss.backward()
        assert logp.grad.item() == pytest.approx(grad)


def test_policy_loss_negative_advantage():
    # A = -1: ratio 0.5 -> unclipped 0.5, clipped 0.8 -> 0.8 (clipped, gradient 0);
    #         ratio 1.5 -> unclipped 1.5, clipped 1.2 -> 1.5 (unclipped, gradient +1.5)
    # token-mean (0.8 + 1.5) / 2 = 1.15; clipfrac 1/2
    logp = torch.log(torch.tensor([[0.5, 1.5]])).requires_grad_(True)
    loss, m = policy_loss(logp, torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(1.15)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 1.5]]) / 2)
    assert m["clipfrac"].item() == pytest.approx(0.5)


def test_policy_loss_broadcasts_advantages_and_masks():
    # ratio 1 everywhere -> per-token loss = -A; rows A = [2, -1]; mask drops row 0's last token
    # token-mean: (-2 - 2 + 1 + 1 + 1) / 5 = -0.2 ; seq-mean-token-mean: (-2 + 1) / 2 = -0.5
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = np.array([2.0, -1.0])  # numpy accepted
    loss, m = policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-0.2)
    loss2, _ = policy_loss(logp, logp, adv, mask, agg="seq-mean-token-mean")
    assert loss2.item() == pytest.approx(-0.5)
    assert m["clipfrac"].item() == 0.0 and m["approx_kl"].item() == 0.0
    # (B, T) per-token advantages give the same as the broadcast (B,)
    loss3, _ = policy_loss(logp, logp, torch.tensor([[2.0] * 3, [-1.0] * 3]), mask)
    assert loss3.item() == pytest.approx(-0.2)


def test_policy_loss_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"advantages.*\(2,\)"):
        policy_loss(x, x, torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(x, torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="clip_low"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), clip_low=1.0)
    with pytest.raises(ValueError, match="clip_high"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), clip_high=-0.1)
    with pytest.raises(ValueError, match="Modes"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), agg="mean")


def test_kl_k3_by_hand():
    logp = torch.tensor([[-1.0, -2.0, 0.0, math.log(2.0)]])
    ref = torch.tensor([[-1.0, -2.0, math.log(2.0), 0.0]])
    # equal -> 0; d = ref - logp = ln 2 -> 2 - ln 2 - 1 = 0.306853;
    # d = -ln 2 -> 0.5 + ln 2 - 1 = 0.193147
    k = kl_k3(logp, ref)
    torch.testing.assert_close(
        k, torch.tensor([[0.0, 0.0, 1 - math.log(2.0), math.log(2.0) - 0.5]])
    )
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)
    assert (kl_k3(a, b) > 0).all()
    assert kl_k3(a, a).eq(0).all()
    with pytest.raises(ValueError, match="must match"):
        kl_k3(a, b[:, :3])


def test_loss_config_validation():
    assert LossConfig().needs_ref is False and LossConfig(beta=0.04).needs_ref is True
    with pytest.raises(ValueError, match=r"clip_low \(1.0\)"):
        LossConfig(clip_low=1.0)
    with pytest.raises(ValueError, match=r"clip_high \(-0.1\)"):
        LossConfig(clip_high=-0.1)
    with pytest.raises(ValueError, match=r"beta \(-1"):
        LossConfig(beta=-1.0)
    with pytest.raises(ValueError, match="Did you mean 'token-mean'"):
        LossConfig(agg="tokenmean")
    with pytest.raises(ValueError, match="norm_len"):
        LossConfig(norm_len=0)


def test_compute_loss_with_kl_by_hand():
    # ratio 1, A = 1 -> pg per token -1 -> token-mean -1
    # ref = [ln 2, 0] vs logp 0: k3 = [1 - ln 2, 0] -> token-mean (1 - ln 2) / 2 = 0.153426
    # loss = -1 + 0.1 * 0.153426 = -0.984657
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    cfg = LossConfig(beta=0.1)
    loss, m = compute_loss(logp, logp.detach(), ref, torch.tensor([1.0]), torch.ones(1, 2), cfg)
    kl = (1 - math.log(2.0)) / 2
    assert loss.item() == pytest.approx(-1 + 0.1 * kl)
    assert m["kl"].item() == pytest.approx(kl)
    assert m["pg_loss"].item() == pytest.approx(-1.0)
    assert m["loss"].item() == pytest.approx(loss.item())
    assert set(m) == {"loss", "pg_loss", "clipfrac", "approx_kl", "kl"}
    loss.backward()
    assert torch.isfinite(logp.grad).all() and logp.grad.abs().sum() > 0


def test_compute_loss_beta_zero_and_missing_ref():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    # beta 0: the KL is reported but not added
    loss, m = compute_loss(logp, logp, ref, torch.tensor([1.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(-1.0) and "kl" in m
    loss, m = compute_loss(logp, logp, None, torch.tensor([1.0]), torch.ones(1, 2))
    assert "kl" not in m
    with pytest.raises(ValueError, match="ref_logp"):
        compute_loss(logp, logp, None, torch.tensor([1.0]), torch.ones(1, 2), LossConfig(beta=0.1))


def test_compute_loss_dr_grpo_aggregation():
    # ratio 1, A = [1, 1], mask lengths 1 and 3, norm_len 4:
    # seq-mean-token-sum-norm: ((-1) / 4 + (-3) / 4) / 2 = -0.5
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    cfg = LossConfig(agg="seq-mean-token-sum-norm", norm_len=4)
    loss, _ = compute_loss(logp, logp, None, torch.ones(2), mask, cfg)
    assert loss.item() == pytest.approx(-0.5)


def test_dynamic_sampling_mask_by_hand():
    # groups: 0 -> {1, 1} all equal (drop); 1 -> {0, 1} (keep); 2 -> {0.5, 0.5} (drop);
    # 3 -> a single rollout (drop)
    keep = dynamic_sampling_mask([1.0, 0.0, 1.0, 0.5, 1.0, 0.5, 2.0], [0, 1, 0, 2, 1, 2, 3])
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False, True, False, False, True, False, False]
    # numpy rewards and string ids are accepted
    assert dynamic_sampling_mask(np.array([0.2, 0.2]), ["a", "a"]).tolist() == [False, False]


def test_overlong_penalty_by_hand():
    # max_len 100, cache 20 -> soft window (80, 100]
    # 50 -> 0; 80 -> 0; 90 -> (80 - 90) / 20 = -0.5; 95 -> -0.75; 100 -> -1; 101 -> -1
    out = overlong_penalty([50, 80, 90, 95, 100, 101], max_len=100, cache_len=20)
    assert out.dtype == torch.float32
    close(out, [0.0, 0.0, -0.5, -0.75, -1.0, -1.0])
    # cache_len 0: hard cut beyond max_len
    close(overlong_penalty(np.array([100, 101]), max_len=100, cache_len=0), [0.0, -1.0])
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty([1], max_len=10, cache_len=11)
    with pytest.raises(ValueError, match="max_len"):
        overlong_penalty([1], max_len=0, cache_len=0)


def test_advantages_are_constants():
    # Rewards that carry a graph must not leak it into the advantages.
    r = torch.tensor([1.0, 0.0, 0.5], requires_grad=True)
    for name in ("grpo", "dr_grpo", "rloo"):
        assert not get_advantage_estimator(name)(r, [0, 0, 0]).requires_grad
    assert not srpo(r, [0, 0, 0], rel_areas=[0.2, 0.2, NAN]).requires_grad
