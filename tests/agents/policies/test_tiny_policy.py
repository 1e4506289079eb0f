"""agents/policies/tiny.py: text actions in every frame, exact log-prob recompute, learning step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.algos import LossConfig, compute_loss, get_advantage_estimator
from agents.policies import list_policies, make_policy
from agents.policies.tiny import (
    COLOUR_WORDS,
    N_HUES,
    N_TEXTURE,
    TinyPolicy,
    colour_query,
    hash_words,
    parse_prompt,
    view_features,
)
from agents.rollout import collect_groups, rollout_arrays
from agents.trainer import batch_old_logprobs
from grounding_gym.actions import parse_action
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import FRAMES, Box

BUDGET = {"min_pixels": 28 * 28, "max_pixels": 224 * 168}


def small_policy(**kwargs) -> TinyPolicy:
    torch.manual_seed(0)
    return TinyPolicy(grid=12, **kwargs)


def test_registry_builds_the_tiny_policy():
    assert "tiny" in list_policies()
    policy = make_policy("tiny", grid=8, max_crops=2)
    assert isinstance(policy, TinyPolicy) and policy.max_crops == 2
    with pytest.raises(ValueError, match="Did you mean 'tiny'"):
        make_policy("tiyn")


def test_prompt_parsing_and_hashing():
    question, options = parse_prompt(
        "Question: What fills the red ring?\nOptions:\n(A) dots\n(B) vertical stripes"
    )
    assert question == "What fills the red ring?" and options == ["dots", "vertical stripes"]
    assert hash_words("The RED ring", 64) == hash_words("the red ring!", 64)
    assert hash_words("", 64)  # never empty
    query = colour_query("Which digit is inside the Blue ring?")
    assert query.sum() == 1 and query[COLOUR_WORDS.index("blue")] == 1


def test_view_features_shapes_and_colour():
    image = np.full((90, 120, 3), 128, dtype=np.uint8)
    image[30:40, 50:60] = (230, 20, 20)  # a red patch
    colour, texture = view_features(image, 6)
    assert colour.shape == (N_HUES + 1, 6, 6) and texture.shape == (N_TEXTURE, 6, 6)
    red = colour[0]  # hue channel 0 points at red (+a)
    assert red.argmax().item() == np.ravel_multi_index((2, 2), (6, 6)) and red.max() > 0.5
    assert float(texture[:, 0, 0].max()) == 0.0  # flat grey has no texture energy


@pytest.mark.parametrize("frame", FRAMES)
def test_actions_are_valid_text_in_every_frame(toy_dataset, frame):
    policy = small_policy()
    env = GroundedVQAEnv(toy_dataset, coord_frame=frame, **BUDGET)
    obs, info = env.reset(options={"sample_id": "toy-2"})
    for scale_index in range(len(policy.scales)):
        for cell in (0, 5, policy.num_cells - 1):
            text = policy.crop_text(scale_index, cell, info, obs)
            parsed = parse_action(text)
            assert parsed.kind == "crop" and parsed.format_ok, text
            expected = policy.crop_box_view(scale_index, cell, info["view_size"])
            # the env maps the frame back to view px: the box the policy meant (up to rounding)
            view_box, view_size = Box(*info["view_box"]), info["view_size"]
            from grounding_gym.geometry import from_original, to_original

            got = from_original(
                to_original(Box(*parsed.boxes[0]), frame, view_box, view_size),
                "view",
                view_box,
                view_size,
            )
            unit = {
                "view": 0.5,
                "norm1000": 0.05 * view_size[0] / 1000 + 0.01,
                "norm1": 0.5e-4 * view_size[0] + 0.01,
                "original": 0.5 * view_size[0] / 960 + 0.5,
            }[frame]
            assert got.as_tuple() == pytest.approx(expected.as_tuple(), abs=unit + 1e-6)
    generations = policy.act([obs], [info])
    assert parse_action(generations[0].text).kind in ("crop", "answer")


def test_crop_boxes_stay_inside_the_view():
    policy = small_policy()
    for k in range(len(policy.scales)):
        for cell in range(policy.num_cells):
            box = policy.crop_box_view(k, cell, (300, 200))
            assert 0 <= box.x1 < box.x2 <= 300 + 1e-9 and 0 <= box.y1 < box.y2 <= 200 + 1e-9
            assert box.width == pytest.approx(policy.scales[k] * 300)


def test_must_answer_after_max_crops(toy_dataset):
    policy = small_policy(max_crops=1)
    envs = [GroundedVQAEnv(toy_dataset, **BUDGET) for _ in range(4)]
    trajs = collect_groups(envs, policy, ["toy-0", "toy-1"], 8, seed=0)
    assert all(len(t.turns) <= 2 and t.correct is not None for t in trajs)
    assert all(t.turns[-1].info["action_kind"] == "answer" for t in trajs)


def test_logprob_recompute_matches_act(toy_dataset):
    policy = small_policy(max_crops=2)
    envs = [GroundedVQAEnv(toy_dataset, **BUDGET) for _ in range(3)]
    trajs = collect_groups(envs, policy, ["toy-0", "toy-3", "toy-4"], 4, seed=1)
    logp, mask = policy.trajectory_logprobs(trajs)
    assert logp.shape == mask.shape == (12, max(t.num_policy_tokens for t in trajs))
    assert int(mask.sum()) == sum(t.num_policy_tokens for t in trajs)
    assert logp.requires_grad
    old = batch_old_logprobs(trajs, mask)
    assert float((logp.detach() - old).abs().max()) < 1e-5
    assert float(logp.detach()[mask == 0].abs().sum()) == 0.0
    # the crop tokens' log-probs are exact too when the recompute batch is split differently
    half, _ = policy.trajectory_logprobs(trajs[:5])
    torch.testing.assert_close(half.detach(), logp.detach()[:5, : half.shape[1]], atol=1e-5, rtol=0)


def test_sampling_follows_the_torch_seed_and_greedy_is_deterministic(toy_dataset):
    policy = small_policy()
    env = GroundedVQAEnv(toy_dataset, **BUDGET)
    obs, info = env.reset(options={"sample_id": "toy-1"})
    torch.manual_seed(3)
    a = [g.text for g in policy.act([obs] * 16, [info] * 16)]
    torch.manual_seed(3)
    b = [g.text for g in policy.act([obs] * 16, [info] * 16)]
    assert a == b and len(set(a)) > 1
    greedy = {g.text for g in policy.act([obs] * 4, [info] * 4, greedy=True)}
    assert len(greedy) == 1


def test_one_step_moves_every_parameter_and_lowers_the_loss(toy_dataset):
    import dataclasses

    policy = small_policy()
    named = [dataclasses.replace(s, question="What fills the red rectangle?") for s in toy_dataset]
    envs = [GroundedVQAEnv(named, **BUDGET) for _ in range(4)]
    trajs = collect_groups(envs, policy, ["toy-0", "toy-1", "toy-2", "toy-5"], 8, seed=0)
    kinds = {turn.info["action_kind"] for t in trajs for turn in t.turns}
    assert kinds == {"crop", "answer"}  # the batch exercises both heads
    arrays = rollout_arrays(trajs)
    adv = get_advantage_estimator("grpo")(arrays["rewards"], arrays["group_ids"])
    assert float(adv.abs().sum()) > 0
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-4)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}

    def loss_now() -> torch.Tensor:
        logp, mask = policy.trajectory_logprobs(trajs)
        return compute_loss(logp, batch_old_logprobs(trajs, mask), None, adv, mask, LossConfig())[0]

    loss0 = loss_now()
    optimizer.zero_grad()
    loss0.backward()
    optimizer.step()
    for name, param in policy.named_parameters():
        assert param.grad is not None, f"Parameter {name} has no gradient."
        assert not torch.equal(param, before[name]), f"Parameter {name} has not changed."
    assert float(loss_now()) < float(loss0)
