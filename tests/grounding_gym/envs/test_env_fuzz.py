"""Property tests: `env.step` with arbitrary text never raises and keeps its promises.

CI runs `FUZZ_EXAMPLES` episodes of up to 6 arbitrary actions, `FUZZ_EXAMPLES // 2` single
unicode actions of up to `UNICODE_MAX_CHARS` characters, and one action of `LONG_ACTION_CHARS`
characters (the figures docs/reliability.md quotes; tests/contract/test_reliability_doc.py checks
them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from tests.conftest import toy_samples

FUZZ_EXAMPLES = 300
UNICODE_MAX_CHARS = 2_000
LONG_ACTION_CHARS = 100_000
DATASET = toy_samples(4, size=(640, 480))
ENV_KWARGS = {
    "min_pixels": 28 * 28,
    "max_pixels": 224 * 168,
    "max_turns": 6,
    "max_action_chars": 512,
}

numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-0", "1e309", "", "  ", "--1", "1.2.3"]),
)
crop_like = st.builds(
    lambda tag, nums, close: f"<{tag}>[{', '.join(nums)}]" + (f"</{tag}>" if close else ""),
    st.sampled_from(["crop", "box", "CROP", "answer"]),
    st.lists(numbers, min_size=0, max_size=6),
    st.booleans(),
)
tool_like = st.builds(
    lambda name, nums: (
        '<tool_call>{"name": "' + name + '", "arguments": {"bbox_2d": [' + ", ".join(nums) + "]}}"
    ),
    st.sampled_from(["image_zoom_in_tool", "crop", "search", ""]),
    st.lists(numbers, max_size=5),
)
answer_like = st.builds(lambda a: f"<answer>{a}</answer>", st.text(max_size=40))
actions = st.one_of(st.text(max_size=600), crop_like, tool_like, answer_like)


def _check_step(env, obs, reward, terminated, truncated, info):
    assert env.observation_space.contains(obs), "observation outside the space"
    assert isinstance(reward, float) and math.isfinite(reward)
    assert info["action_kind"] in ("crop", "answer", "invalid")
    assert (info["action_error"] is None) or isinstance(info["action_error"], str)
    assert set(info["reward_terms"]) >= {"answer", "format", "grounding"}
    if info["crop_box"] is not None:
        x1, y1, x2, y2 = info["crop_box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
        assert min(x2 - x1, y2 - y1) >= 28 - 1e-6
    assert not (terminated and truncated)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(actions, min_size=1, max_size=6),
    seed=st.integers(0, 3),
    frame=st.sampled_from(["view", "norm1000", "norm1", "original"]),
    mode=st.sampled_from(["clip", "reject"]),
)
def test_arbitrary_text_never_breaks_the_env(steps, seed, frame, mode):
    env = GroundedVQAEnv(DATASET, coord_frame=frame, invalid_box=mode, **ENV_KWARGS)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    invalid = 0
    for text in steps:
        obs, reward, terminated, truncated, info = env.step(text)
        _check_step(env, obs, reward, terminated, truncated, info)
        invalid += info["action_kind"] == "invalid"
        if terminated or truncated:
            break
    assert info["turn"] <= ENV_KWARGS["max_turns"]
    assert len(info["crops"]) + invalid <= info["turn"]


@settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None)
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=UNICODE_MAX_CHARS)
)
def test_unicode_and_overlong_actions(text):
    env = GroundedVQAEnv(DATASET, **ENV_KWARGS)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(text)
    _check_step(env, obs, reward, terminated, truncated, info)
    assert info["messages"][-2]["content"][0]["text"] == text  # the dialogue keeps what was said


@pytest.mark.parametrize("crop_first", [True, False])
@pytest.mark.parametrize(
    "max_action_chars", [ENV_KWARGS["max_action_chars"], None]
)  # None: the default
def test_a_100k_character_action_is_cut_not_raised(max_action_chars, crop_first):
    """One action of `LONG_ACTION_CHARS` characters, a crop plus unicode noise: only the first
    `max_action_chars` are parsed (a crop at the end is cut away: invalid, and the error says
    so); the dialogue keeps the whole text and the episode goes on."""
    rng = np.random.default_rng(0)
    crop = "<crop>[10, 10, 200, 200]</crop>"
    noise = "".join(chr(c) for c in rng.integers(0x20, 0xD7FF, LONG_ACTION_CHARS - len(crop)))
    text = crop + noise if crop_first else noise + crop
    assert len(text) == LONG_ACTION_CHARS
    kwargs = {k: v for k, v in ENV_KWARGS.items() if k != "max_action_chars" or max_action_chars}
    env = GroundedVQAEnv(DATASET, **kwargs)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(text)
    _check_step(env, obs, reward, terminated, truncated, info)
    assert not (terminated or truncated) and info["messages"][-2]["content"][0]["text"] == text
    if crop_first:
        assert (
            info["action_kind"] == "crop"
            and info["action_error"] is None
            and info["crop_box"] is not None
        )
    else:
        assert (
            info["action_kind"] == "invalid"
            and "the text was cut to max_action_chars" in info["action_error"]
        )
    _, _, terminated, _, info = env.step("<answer>A</answer>")
    assert terminated and info["action_kind"] == "answer"


def test_non_string_actions_are_invalid_not_errors():
    env = GroundedVQAEnv(DATASET, **ENV_KWARGS)
    obs0, _ = env.reset(seed=0)
    for action in (None, 12, b"<answer>A</answer>", ["<answer>A</answer>"]):
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["action_kind"] == "invalid" and not terminated
        np.testing.assert_array_equal(obs["image"], obs0["image"])
        env.reset(seed=0)
