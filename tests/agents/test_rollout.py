"""agents/rollout.py: group shapes and ids, batched stepping, SRPO replay, metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from agents.policies.base import Generation, Policy
from agents.policies.tiny import TinyPolicy
from agents.rollout import (
    SharedImageDataset,
    collect_groups,
    collect_srpo_groups,
    rollout_arrays,
    rollout_metrics,
)
from grounding_gym.actions import format_answer, format_crop
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import Box

BUDGET = {"min_pixels": 28 * 28, "max_pixels": 224 * 168}

EDGES = (0.01, 0.05)
"""Target scale-bin edges of the metrics checks (toy targets cover ~1e-2 of the image)."""


class ScriptedRandomPolicy:
    """Crops a random box on turn 0 with probability 0.7, else answers a random letter.

    Seeded numpy RNG, so two identical runs act identically; records batch widths."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.batch_sizes: list[int] = []

    def act(self, observations, infos, *, greedy: bool = False) -> list[Generation]:
        self.batch_sizes.append(len(observations))
        out = []
        for _obs, info in zip(observations, infos, strict=True):
            w, h = info["view_size"]
            if info["turn"] == 0 and self.rng.random() < 0.7:
                x1, y1 = self.rng.uniform(0, w / 2), self.rng.uniform(0, h / 2)
                text = format_crop((x1, y1, x1 + w / 3, y1 + h / 3))
                out.append(Generation(text, (1, 2), (-0.5, -1.5)))
            else:
                letter = "ABCD"[int(self.rng.integers(4))]
                out.append(Generation(format_answer(letter), (0, 3), (-0.1, -1.2)))
        return out

    def trajectory_logprobs(self, trajectories):  # pragma: no cover - not used here
        raise NotImplementedError


def make_pool(dataset, n: int, **kwargs: Any) -> list[GroundedVQAEnv]:
    return [GroundedVQAEnv(dataset, **{**BUDGET, **kwargs}) for _ in range(n)]


def test_scripted_policy_satisfies_protocol():
    assert isinstance(ScriptedRandomPolicy(), Policy)
    assert isinstance(TinyPolicy(grid=8), Policy)


def test_collect_groups_shapes_ids_and_records(toy_dataset):
    policy = ScriptedRandomPolicy()
    ids = ["toy-0", "toy-3", "toy-5"]
    trajs = collect_groups(make_pool(toy_dataset, 4), policy, ids, 4, seed=0)
    assert len(trajs) == 12
    assert [t.group_id for t in trajs] == [q for q in range(3) for _ in range(4)]
    assert [t.sample_id for t in trajs] == [s for s in ids for _ in range(4)]
    assert max(policy.batch_sizes) == 4  # live envs are stepped together
    for t in trajs:
        assert 1 <= len(t.turns) <= 5
        last = t.turns[-1].info
        assert last["action_kind"] == "answer" or last["turn"] == 5
        assert all("messages" not in turn.info for turn in t.turns)
        assert "messages" not in t.reset_info and t.reset_info["turn"] == 0
        answered = last["action_kind"] == "answer"
        assert t.messages[0]["role"] == "system"
        assert len(t.messages) == 1 + 2 * len(t.turns) + (0 if answered else 1)
        for k, turn in enumerate(t.turns):
            assert turn.reward_terms == turn.info["reward_terms"]
            assert set(turn.observation) == {"image", "dialogue"}
            assert t.info_before_turn(k)["turn"] == k
            assert turn.info["target_scale_bin"] is not None
        assert t.num_policy_tokens == 2 * len(t.turns)
        expected = [lp for tr in t.turns for lp in tr.generation.logprobs]
        np.testing.assert_allclose(t.old_logprobs(), expected, rtol=1e-6)


def test_single_env_and_threads_give_the_same_rollouts(toy_dataset):
    ids = ["toy-1", "toy-2"]
    one = collect_groups(
        GroundedVQAEnv(toy_dataset, **BUDGET), ScriptedRandomPolicy(3), ids, 3, seed=5
    )
    with ThreadPoolExecutor(2) as executor:
        pooled = collect_groups(
            make_pool(toy_dataset, 1), ScriptedRandomPolicy(3), ids, 3, seed=5, executor=executor
        )
    assert [[t.generation.text for t in tr.turns] for tr in one] == [
        [t.generation.text for t in tr.turns] for tr in pooled
    ]
    assert [tr.total_reward for tr in one] == [tr.total_reward for tr in pooled]


def test_srpo_replay_gives_identical_first_turns(toy_dataset):
    g1, g2 = 3, 2
    policy = ScriptedRandomPolicy(1)
    trajs = collect_srpo_groups(
        make_pool(toy_dataset, 4), policy, ["toy-2", "toy-4"], g1, g2, seed=0
    )
    assert len(trajs) == 2 * g1 * g2
    assert [t.group_id for t in trajs] == [0] * 6 + [1] * 6
    for q in range(2):
        for b in range(g1):
            branch = trajs[q * g1 * g2 + b * g2 : q * g1 * g2 + (b + 1) * g2]
            first = [t.turns[0] for t in branch]
            assert all(f.generation is first[0].generation for f in first)
            for f in first[1:]:  # the replayed step reproduces the env's response exactly
                assert f.info["crop_box"] == first[0].info["crop_box"]
                assert f.reward == first[0].reward and f.reward_terms == first[0].reward_terms
                np.testing.assert_array_equal(f.observation["image"], first[0].observation["image"])
            if len(branch[0].turns) > 1:  # the view after the replayed crop is identical too
                for t in branch[1:]:
                    np.testing.assert_array_equal(
                        t.turns[1].observation["image"], branch[0].turns[1].observation["image"]
                    )


def test_srpo_with_the_tiny_policy_shares_first_tokens(toy_dataset):
    torch.manual_seed(0)
    policy = TinyPolicy(grid=8)
    trajs = collect_srpo_groups(make_pool(toy_dataset, 3), policy, ["toy-0"], 2, 3, seed=0)
    for b in range(2):
        branch = trajs[3 * b : 3 * (b + 1)]
        assert len({t.turns[0].generation.token_ids for t in branch}) == 1
        assert len({t.turns[0].generation.logprobs for t in branch}) == 1


def test_rollout_arrays_and_metrics(toy_dataset):
    trajs = collect_groups(
        make_pool(toy_dataset, 2), ScriptedRandomPolicy(2), ["toy-0", "toy-1"], 4, seed=0
    )
    arrays = rollout_arrays(trajs)
    assert {k: v.shape for k, v in arrays.items()} == {k: (8,) for k in arrays}
    np.testing.assert_array_equal(arrays["group_ids"], [0, 0, 0, 0, 1, 1, 1, 1])
    cropped = [bool(t.crop_boxes) for t in trajs]
    assert list(np.isfinite(arrays["rel_areas"])) == cropped
    metrics = rollout_metrics(trajs, bin_edges=EDGES)
    assert metrics["rollout/acc"] == pytest.approx(np.mean([bool(t.correct) for t in trajs]))
    assert metrics["rollout/reward"] == pytest.approx(arrays["rewards"].mean())
    assert metrics["rollout/crop_rate"] == pytest.approx(np.mean(cropped))
    assert metrics["rollout/crop_rel_area"] == pytest.approx(np.nanmean(arrays["rel_areas"]))
    assert {"rollout/reward_answer", "rollout/reward_grounding", "rollout/miou"} <= set(metrics)
    assert any(k.startswith("rollout/acc_") for k in metrics)
    with pytest.raises(ValueError, match="bin names"):
        rollout_metrics(trajs, bin_edges=(0.1,), bin_names=("a", "b", "c"))


def test_pool_envs_share_one_decode_and_the_shared_dataset_builds_each_sample_once(toy_dataset):
    shared = SharedImageDataset(toy_dataset, max_samples=4)
    envs = make_pool(shared, 3)
    for env in envs:
        env.reset(options={"sample_id": "toy-1"})
    images = {id(env.image_handle.image()) for env in envs}
    assert len(images) == 1 and len(shared) == len(toy_dataset)
    assert shared[1] is shared[1] and shared[1].id == "toy-1"
    assert shared[-1].id == toy_dataset[-1].id


def test_first_view_cache_gives_identical_observations(toy_dataset):
    from grounding_gym.renderer import FirstViewCache

    cache = FirstViewCache(max_bytes=2**20)
    cached = make_pool(toy_dataset, 2)
    for env in cached:
        env.renderer.first_view_cache = cache
    plain = make_pool(toy_dataset, 2)
    a = collect_groups(cached, ScriptedRandomPolicy(4), ["toy-1", "toy-2"], 3, seed=0)
    b = collect_groups(plain, ScriptedRandomPolicy(4), ["toy-1", "toy-2"], 3, seed=0)
    for ta, tb in zip(a, b, strict=True):
        assert [t.info for t in ta.turns] == [t.info for t in tb.turns]
        for ua, ub in zip(ta.turns, tb.turns, strict=True):
            np.testing.assert_array_equal(ua.observation["image"], ub.observation["image"])
    first = [t.turns[0].observation["image"] for t in a[:3]]
    assert first[0] is not first[1]  # copies: observations never share memory
    for sample in toy_dataset[1:3]:  # each question's first view was kept: not rendered again
        kept = cache.view(
            (sample.id, sample.image_size),
            Box.from_size(*sample.image_size),
            lambda: pytest.fail("a kept first view was rendered again"),
        )
        assert kept.image is None and kept.array.ndim == 3


def test_keep_views_false_drops_only_the_images(toy_dataset):
    ids = ["toy-1", "toy-2", "toy-3"]
    kept = collect_groups(make_pool(toy_dataset, 2), ScriptedRandomPolicy(4), ids, 2, seed=0)
    light = collect_groups(
        make_pool(toy_dataset, 2), ScriptedRandomPolicy(4), ids, 2, seed=0, keep_views=False
    )
    assert rollout_metrics(light, EDGES) == rollout_metrics(kept, EDGES)
    for a, b in zip(light, kept, strict=True):
        assert a.messages == [] and b.messages
        assert [t.info for t in a.turns] == [t.info for t in b.turns]
        assert [t.generation for t in a.turns] == [t.generation for t in b.turns]
        assert all("image" not in t.observation and "dialogue" in t.observation for t in a.turns)
        assert all("image" in t.observation for t in b.turns)
