"""The vLLM pre-run check: max_turns against the engine's per-prompt image limit (no vLLM needed:
the check runs before vLLM is imported)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.eval import evaluate

pytest.importorskip("torch")  # agents.policies needs the agents extra
from agents.policies.vllm_engine import DEFAULT_IMAGE_LIMIT, check_image_limit  # noqa: E402

SMALL = {"dataset_kwargs": {"num_samples": 4, "image_size": 512}}


def _env(max_turns: int) -> gym.Env:
    return gym.make("GroundedVQA-HR-v0", max_turns=max_turns, disable_env_checker=True, **SMALL)


def test_max_turns_over_the_image_limit_is_refused_naming_both_numbers():
    with pytest.raises(ValueError, match=r"max_turns=20 .* allows 12 image") as info:
        check_image_limit(_env(20), {"image": 12})
    assert "limit_mm_per_prompt={'image': 20}" in str(info.value)
    with pytest.raises(ValueError, match=f"allows {DEFAULT_IMAGE_LIMIT} image"):
        check_image_limit(_env(DEFAULT_IMAGE_LIMIT + 1))  # the engine's default limit
    check_image_limit(_env(12), {"image": 12})  # the last prompt holds 12 images: fits
    check_image_limit(_env(DEFAULT_IMAGE_LIMIT))


def test_the_vllm_agent_refuses_before_loading_anything():
    with pytest.raises(ValueError, match=r"max_turns=8 .* allows 4 image"):
        evaluate(
            "vllm",
            env_kwargs={"max_turns": 8},
            agent_kwargs={"model": "never-loaded", "limit_mm_per_prompt": {"image": 4}},
            n=1,
            progress=False,
            **SMALL,
        )
