"""Every registered id (`ENV_SPECS`): check_env, vector envs, same-seed determinism, render.

Gymnasium's tests/envs/test_envs.py pattern. A new id whose default dataset is not in
`FAST_DATASET_KWARGS` fails here until small, fast arguments for that dataset are added.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.envs import ENV_SPECS

SMALL = {"num_samples": 16, "image_size": (512, 1024)}
FAST_DATASET_KWARGS: dict[str, dict] = {
    "synthetic-hr": SMALL,
    "synthetic": SMALL,
    "synthetic-ref": SMALL,
}
"""Per default dataset: small images and few samples, so every id runs in well under a second."""

ACTIONS = [
    "<crop>[0, 0, 300, 200]</crop>",
    "<answer>A</answer>",
    "no action here",
    "<box>[10, 10, 90, 70]</box>",
]
"""One text action per vector copy: a crop, an answer, invalid text, a box."""

ENV_IDS = sorted(ENV_SPECS)


def make_kwargs(env_id: str) -> dict:
    dataset = ENV_SPECS[env_id].get("kwargs", {}).get("dataset")
    if dataset not in FAST_DATASET_KWARGS:
        pytest.fail(
            f"{env_id}: add fast dataset_kwargs for its default dataset {dataset!r} to "
            "FAST_DATASET_KWARGS"
        )
    return {"dataset_kwargs": FAST_DATASET_KWARGS[dataset]}


def test_every_design_id_is_registered():
    expected = {"GroundedVQA-HR-v0", "GroundedVQA-v0", "RefGrounding-v0", "EvidenceDescription-v0"}
    assert expected <= set(ENV_SPECS) and all(env_id in gym.registry for env_id in ENV_SPECS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **make_kwargs(env_id))
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("vector_cls", ["sync", "async"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_envs_reset_and_step_with_text(env_id, vector_cls):
    kwargs = make_kwargs(env_id)
    fns = [lambda: gym.make(env_id, **kwargs) for _ in range(4)]
    venv = (
        gym.vector.SyncVectorEnv(fns)
        if vector_cls == "sync"
        else gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    )
    try:
        obs, infos = venv.reset(seed=0)
        assert len(obs["image"]) == 4 and all(
            img.dtype == np.uint8 and img.ndim == 3 for img in obs["image"]
        )
        assert len(obs["dialogue"]) == 4 and all(isinstance(d, str) and d for d in obs["dialogue"])
        obs, rewards, terminated, truncated, infos = venv.step(ACTIONS)
        assert rewards.shape == (4,) and np.isfinite(rewards).all()
        assert terminated.shape == truncated.shape == (4,)
        assert len(infos["action_kind"]) == 4 and "reward_terms" in infos
    finally:
        venv.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_async_with_default_arguments(env_id):
    """`gym.make_vec(id, 2, vectorization_mode="async")` (shared memory on, the default) gives
    the same observations as a sync vector env, step after step, views of varying size and
    non-ASCII dialogue included."""
    kwargs = make_kwargs(env_id)
    envs = {
        mode: gym.make_vec(env_id, 2, vectorization_mode=mode, **kwargs)
        for mode in ("sync", "async")
    }
    try:
        results = {mode: [venv.reset(seed=3)[0]] for mode, venv in envs.items()}
        for actions in (ACTIONS[:2], ACTIONS[2:], ACTIONS[:2]):
            for mode, venv in envs.items():
                obs, rewards, *_ = venv.step(actions)
                results[mode].append(obs)
        for sync_obs, async_obs in zip(results["sync"], results["async"], strict=True):
            assert list(async_obs["dialogue"]) == list(sync_obs["dialogue"])
            for a, b in zip(async_obs["image"], sync_obs["image"], strict=True):
                assert a.shape == b.shape and np.array_equal(a, b)
        shapes = {image.shape for obs in results["async"] for image in obs["image"]}
        assert len(shapes) > 1  # views of several sizes passed through the same buffers
    finally:
        for venv in envs.values():
            venv.close()


def test_unicode_dialogue_round_trips_through_shared_memory():
    from gymnasium.vector.utils import (
        create_shared_memory,
        read_from_shared_memory,
        write_to_shared_memory,
    )

    from grounding_gym.spaces import ImageSpace, UnicodeText

    text_space, image_space = UnicodeText(8), ImageSpace(max_pixels=12)
    texts, images = (create_shared_memory(s, n=2) for s in (text_space, image_space))
    live_texts = read_from_shared_memory(text_space, texts, n=2)
    live_images = read_from_shared_memory(image_space, images, n=2)
    write_to_shared_memory(text_space, 1, "Größe 大", texts)
    write_to_shared_memory(image_space, 0, np.full((3, 4, 3), 7, np.uint8), images)
    assert tuple(live_texts) == ("", "Größe 大")  # 8 characters, 12 UTF-8 bytes
    assert live_images[0].shape == (3, 4, 3) and (live_images[0] == 7).all()
    with pytest.raises(ValueError, match="does not contain"):
        write_to_shared_memory(image_space, 1, np.zeros((4, 4, 3), np.uint8), images)


def rollout(env_id: str, seed: int) -> list:
    env = gym.make(env_id, **make_kwargs(env_id))
    obs, info = env.reset(seed=seed)
    record = [obs["image"].tobytes(), obs["image"].shape, obs["dialogue"], info]
    for action in ("<crop>[0, 0, 300, 200]</crop>", "<answer>A</answer>"):
        obs, reward, terminated, truncated, info = env.step(action)
        record += [
            obs["image"].tobytes(),
            obs["image"].shape,
            obs["dialogue"],
            reward,
            terminated,
            truncated,
            info,
        ]
        if terminated or truncated:
            break
    env.close()
    return record


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout(env_id):
    first, second = rollout(env_id, seed=7), rollout(env_id, seed=7)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a == b  # infos too: PIL images in `messages` compare by pixels


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_returns_rgb_array(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **make_kwargs(env_id))
    env.reset(seed=0)
    env.step("<crop>[0, 0, 300, 200]</crop>")
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3 and max(frame.shape[:2]) <= 1024
    env.close()
