"""Scale exploration (agents/algos/exploration.py and its users): the forced design, the floor's
mixture, the importance weights pi / mu, and that the corrected policy gradient is on-policy in
expectation (the curiosity bonus is tested in test_scale_conditioning.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.algos import LossConfig, compute_loss
from agents.algos.exploration import floor_mix, forced_scales
from agents.policies import Generation, ScaleBehaviour, Trajectory, Turn
from agents.policies.tiny import TinyPolicy
from agents.rollout import rollout_arrays
from agents.trainer import Trainer, batch_importance_weights, batch_old_logprobs
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.scale import scale_bins
from tests.agents.algos.test_scale_bias import small_scale_bias_config as small_config

CROP_EDGES = (0.02, 0.15)  # examples/scale_bias.yaml: one bin per crop scale


# ---------------------------------------------------------------- pure functions


def test_forced_scales_cover_every_scale_and_are_marginally_uniform():
    design = forced_scales(3000, 4, 3, np.random.default_rng(0)).reshape(3000, 4)
    assert all(sorted(row[:3]) == [0, 1, 2] for row in design.tolist())  # every scale once
    assert (design[:, 3] == design[:, 0]).all()  # the 4th cycles on to the start
    for branch in range(4):  # each branch's scale is uniform: behaviour probability 1/3
        freq = np.bincount(design[:, branch], minlength=3) / 3000
        np.testing.assert_allclose(freq, 1 / 3, atol=4 * math.sqrt(2 / 9 / 3000))
    two = forced_scales(50, 2, 3, np.random.default_rng(1)).reshape(50, 2)
    assert (two[:, 0] != two[:, 1]).all()  # fewer branches than scales: still distinct
    with pytest.raises(ValueError, match="g1 >= 1"):
        forced_scales(2, 0, 3, np.random.default_rng(0))


def test_floor_mix_by_hand():
    mix = floor_mix(np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]]), 0.3)
    np.testing.assert_allclose(mix, [[0.59, 0.24, 0.17], [0.8, 0.1, 0.1]], atol=1e-12)
    torch.testing.assert_close(floor_mix(torch.tensor([0.5, 0.5]), 0.2), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="eps"):
        floor_mix(np.ones(3) / 3, 1.0)
    with pytest.raises(ValueError, match="floor"):
        ScaleBehaviour(floor=0.1, forced=(0,))


def _trajectory(logprobs, behaviour) -> Trajectory:
    tokens = tuple(range(1, len(logprobs) + 1))
    turn = Turn({}, Generation("<answer>A</answer>", tokens, logprobs, behaviour), 0.0, {}, {})
    return Trajectory("s", 0, [turn])


def test_importance_weights_are_pi_over_mu_on_a_hand_built_case():
    # the scale token: pi = 0.6, drawn by mu = 0.5 -> w = 1.2; the cell token from pi -> 1
    explored = _trajectory((math.log(0.6), math.log(0.2)), (math.log(0.5), math.log(0.2)))
    on_policy = _trajectory((math.log(0.3),), None)
    np.testing.assert_allclose(explored.importance_weights(), [1.2, 1.0], rtol=1e-6)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    weights = batch_importance_weights([explored, on_policy], mask)
    torch.testing.assert_close(weights, torch.tensor([[1.2, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="behaviour log-probs"):
        Generation("x", (1, 2), (0.0, 0.0), (0.0,))


@pytest.mark.parametrize("design", ["floor", "forced"])
def test_corrected_gradient_is_on_policy_in_expectation_on_a_3_armed_toy(design):
    """Arms drawn from mu, the scale token's advantage times pi / mu, through `compute_loss`
    (token-mean, first epoch: ratio 1): the mean gradient over many draws equals the exact
    on-policy gradient -grad sum_k pi_k r_k (within 5 Monte Carlo standard errors), and the
    uncorrected one does not."""
    theta = torch.tensor([1.5, 0.0, -1.0], requires_grad=True)
    reward = torch.tensor([0.2, 1.0, 0.6])
    pi = torch.softmax(theta, 0)
    (exact,) = torch.autograd.grad(-(pi * reward).sum(), theta)
    n, rng = 60_000, np.random.default_rng(0)
    p = pi.detach().numpy()
    if design == "floor":
        mu = floor_mix(p, 0.3)
        arms = rng.choice(3, size=n, p=mu)
    else:  # groups of 4 forced to distinct scales: each draw marginally uniform
        mu = np.full(3, 1 / 3)
        arms = forced_scales(n // 4, 4, 3, rng)
    trajs = [_trajectory((math.log(p[a]),), (math.log(mu[a]),)) for a in arms]
    mask = torch.ones(n, 1)
    adv = torch.as_tensor(reward.numpy()[arms])[:, None]
    logp = torch.log_softmax(theta, 0)[torch.as_tensor(arms)][:, None]
    old = batch_old_logprobs(trajs, mask)
    per_draw = []
    for weights in (batch_importance_weights(trajs, mask), torch.ones(n, 1)):
        loss, _ = compute_loss(logp, old, None, adv * weights, mask, LossConfig(agg="token-mean"))
        (grad,) = torch.autograd.grad(loss, theta, retain_graph=True)
        per_draw.append(grad)
    corrected, uncorrected = per_draw
    # standard error of the mean of w r grad log pi(a), per coordinate
    onehot = np.eye(3)[arms]
    terms = -(p[arms] / mu[arms] * reward.numpy()[arms])[:, None] * (onehot - p)
    se = terms.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(corrected.numpy() - exact.numpy()) < 5 * se)
    assert np.any(np.abs(uncorrected.numpy() - exact.numpy()) > 20 * se)


# ---------------------------------------------------------------- the tiny policy's sampling


def _first_views(toy_dataset, n: int, **policy_kwargs):
    torch.manual_seed(0)
    policy = TinyPolicy(grid=12, min_crops=1, max_crops=1, **policy_kwargs)
    with torch.no_grad():
        policy.region_bias.copy_(torch.tensor([2.0, 0.5, -1.0, -2.5]))  # a skewed pi(scale)
    env = GroundedVQAEnv(toy_dataset, min_pixels=28 * 28, max_pixels=224 * 168)
    obs, info = env.reset(seed=0, options={"sample_id": "toy-0"})
    return policy, [obs] * n, [info] * n


def _scale_probs(policy, observations, infos) -> np.ndarray:
    """pi(scale) of the first action, from the log-probs `act` records for each scale."""
    torch.manual_seed(1)
    probs = np.zeros(len(policy.scales))
    for gen in policy.act(observations, infos, scale_behaviour=ScaleBehaviour(forced=(0, 1, 2, 3))):
        probs[gen.token_ids[0] - 1] = math.exp(gen.logprobs[0])
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)  # min_crops=1: the answer is masked
    return probs


def test_tiny_policy_floor_draws_from_the_mix_and_records_it(toy_dataset):
    n, eps = 4000, 0.5
    policy, observations, infos = _first_views(toy_dataset, n)
    pi = _scale_probs(policy, observations[:4], infos[:4])
    mix = floor_mix(pi, eps)
    torch.manual_seed(2)
    gens = policy.act(observations, infos, scale_behaviour=ScaleBehaviour(floor=eps))
    kinds = np.array([g.token_ids[0] - 1 for g in gens])
    freq = np.bincount(kinds, minlength=len(pi)) / n
    np.testing.assert_allclose(freq, mix, atol=4 * math.sqrt(0.25 / n))
    assert abs(freq[0] - pi[0]) > 0.1  # the floor visibly moved the draw off pi
    for g, k in zip(gens[:20], kinds[:20], strict=True):
        assert g.logprobs[0] == pytest.approx(math.log(pi[k]), abs=1e-5)
        assert g.behaviour_logprobs[0] == pytest.approx(math.log(mix[k]), abs=1e-5)
        assert g.behaviour_logprobs[1] == g.logprobs[1]  # the cell: drawn from pi
    weights = _trajectory(gens[0].logprobs, gens[0].behaviour_logprobs).importance_weights()
    assert weights[0] == pytest.approx(pi[kinds[0]] / mix[kinds[0]], rel=1e-5)
    assert weights.max() <= 1 / (1 - eps) + 1e-6  # the bound that makes clipping unnecessary


def test_tiny_policy_forced_scales_and_their_errors(toy_dataset):
    policy, observations, infos = _first_views(toy_dataset, 4)
    forced = (3, 1, 0, 3)
    torch.manual_seed(0)
    gens = policy.act(observations, infos, scale_behaviour=ScaleBehaviour(forced=forced))
    assert [g.token_ids[0] - 1 for g in gens] == list(forced)
    assert all(g.behaviour_logprobs[0] == pytest.approx(-math.log(4)) for g in gens)
    with pytest.raises(ValueError, match="greedy"):
        policy.act(observations, infos, greedy=True, scale_behaviour=ScaleBehaviour(floor=0.1))
    with pytest.raises(ValueError, match="one index in"):
        policy.act(observations, infos, scale_behaviour=ScaleBehaviour(forced=(0, 1, 2, 4)))
    cropped = [{**info, "crops": [(0, 0, 10, 10)]} for info in infos]  # max_crops reached
    with pytest.raises(ValueError, match="must answer"):
        policy.act(observations, cropped, scale_behaviour=ScaleBehaviour(forced=forced))


# ---------------------------------------------------------------- the trainer option


def test_trainer_forced_groups_cover_every_scale_with_weights_pi_over_mu(tmp_path):
    cfg = small_config(tmp_path, "total_steps=1", "g2=2", "scale_exploration=forced")
    trainer = Trainer(cfg)
    trajs = trainer.collect([0, 1, 2], seed=5)
    crop_bins = scale_bins(rollout_arrays(trajs)["rel_areas"], CROP_EDGES).reshape(3, 4, 2)
    assert (crop_bins[:, :, 0] == crop_bins[:, :, 1]).all()  # G2 answers share their crop
    assert all(set(group[:3, 0].tolist()) == {0, 1, 2} for group in crop_bins)
    logp, mask = trainer.policy.trajectory_logprobs(trajs)
    old = batch_old_logprobs(trajs, mask)
    assert float((logp.detach() - old).abs().max()) < 1e-5  # logprobs stay pi's
    weights = batch_importance_weights(trajs, mask)
    torch.testing.assert_close(weights[:, 0], 3 * old[:, 0].exp())  # pi / (1/3)
    assert bool((weights[:, 1:] == 1).all())
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    row = trainer.train_step()
    assert math.isfinite(row["train/loss"])
    assert any(
        not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters(), strict=True)
    )


def test_trainer_floor_runs_and_bad_options_teach(tmp_path):
    cfg = small_config(tmp_path, "total_steps=1", "scale_exploration=floor", "scale_floor=0.3")
    Trainer(cfg).train()
    with pytest.raises(ValueError, match="Did you mean 'forced'"):
        small_config(tmp_path, "scale_exploration=froced")
    with pytest.raises(ValueError, match="scale_floor"):
        small_config(tmp_path, "scale_exploration=floor", "scale_floor=0")
    cfg = small_config(tmp_path, "scale_exploration=forced", "init_checkpoint=null")
    with pytest.raises(ValueError, match="discrete crop scales"):
        Trainer(cfg, policy=torch.nn.Linear(1, 1))
