"""SB3-ready wrappers: fixed-size observations, discrete crop/answer actions, env checkers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from PIL import Image

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import FRAMES, Box, coverage, iou
from grounding_gym.wrappers import (
    DiscreteCropAnswer,
    FixedSizeObservation,
    encode_options,
    grid_tiles,
    resize_view,
)
from tests.conftest import toy_samples

BUDGET = {"min_pixels": 28 * 28, "max_pixels": 336 * 252}


def toy_env(**kwargs) -> GroundedVQAEnv:
    return GroundedVQAEnv(toy_samples(4), **{**BUDGET, **kwargs})


def test_fixed_size_observation_box_and_pixels():
    env = FixedSizeObservation(toy_env(), (48, 40))
    assert env.observation_space == gym.spaces.Box(0, 255, (48, 40, 3), np.uint8)
    obs, info = env.reset(seed=0, options={"sample_id": 1})
    assert obs.shape == (48, 40, 3) and obs.dtype == np.uint8 and obs in env.observation_space
    raw = env.unwrapped._current_view
    expected = np.asarray(Image.fromarray(raw).resize((40, 48), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_array_equal(resize_view(expected, (48, 40)), expected)


def test_fixed_size_observation_with_options():
    env = FixedSizeObservation(toy_env(), (36, 36), include_options=True)
    assert env.option_vocab == ("blue", "green", "red", "yellow")
    obs, _ = env.reset(seed=0)
    rows = obs["options"].reshape(4, 5)
    # toy options are (red, green, blue, yellow): one-hot columns 2, 1, 0, 3 of the sorted vocab
    assert rows.argmax(axis=1).tolist() == [2, 1, 0, 3] and rows.sum() == 4
    assert obs in env.observation_space
    assert encode_options(["x"], ["a"], max_options=2).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_grid_tiles_cover_the_view():
    tiles = grid_tiles([2, 3])
    assert len(tiles) == 13
    assert sum(t.area for t in tiles[:4]) == pytest.approx(1.0)
    assert sum(t.area for t in tiles[4:]) == pytest.approx(1.0)


@pytest.mark.parametrize("frame", FRAMES)
def test_discrete_crop_cuts_the_tile_in_every_frame(frame):
    env = DiscreteCropAnswer(toy_env(coord_frame=frame), grids=(2, 3))
    _, info = env.reset(seed=0, options={"sample_id": 0})
    assert env.action_space == gym.spaces.Discrete(17) and len(env.action_meanings()) == 17
    width, height = info["image_size"]
    # action 3: bottom-right tile of the 2x2 grid
    _, _, terminated, truncated, info = env.step(3)
    assert not (terminated or truncated) and info["action_error"] is None
    expected = Box(width / 2, height / 2, width, height)
    crop = Box(*info["crop_box"])
    assert coverage(expected, crop) == pytest.approx(1.0) and iou(expected, crop) > 0.98
    # action 4 + 4 = 3x3 grid centre tile of that view: a crop of a crop composes
    _, _, _, _, info = env.step(8)
    inner = Box(
        expected.x1 + expected.width / 3,
        expected.y1 + expected.height / 3,
        expected.x1 + 2 * expected.width / 3,
        expected.y1 + 2 * expected.height / 3,
    )
    assert iou(inner, Box(*info["crop_box"])) > 0.95


def test_discrete_answer_actions():
    env = DiscreteCropAnswer(toy_env(), grids=(2,), letters="ABCD")
    env.reset(seed=0, options={"sample_id": "toy-1"})  # answer B
    _, reward, terminated, _, info = env.step(4 + 1)
    assert terminated and info["correct"] is True and info["answer"] == "B"
    with pytest.raises(ValueError, match="outside Discrete"):
        env.text_for(99, Box(0, 0, 10, 10), (10, 10), "view")


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_gymnasium_check_env_on_wrapped_env():
    env = DiscreteCropAnswer(FixedSizeObservation(toy_env(), (36, 36), include_options=True))
    gym_check_env(env, skip_render_check=True)


def test_stable_baselines3_check_env_passes_on_wrapped_env():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    import grounding_gym.data.synthetic  # noqa: F401  (registers synthetic-hr)

    env = gym.make(
        "GroundedVQA-HR-v0",
        dataset_kwargs={"num_samples": 8, "image_size": 192},
        max_pixels=96 * 96,
        min_pixels=28 * 28,
    )
    for include_options in (False, True):
        wrapped = DiscreteCropAnswer(
            FixedSizeObservation(env, (40, 40), include_options=include_options)
        )
        sb3_checker.check_env(wrapped, warn=True)
