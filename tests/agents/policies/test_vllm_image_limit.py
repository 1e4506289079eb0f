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


def _trainer_cfg(tmp_path, limit: int | None, max_turns: int = 8, **kwargs):
    from agents.config import TrainerConfig

    engine = {} if limit is None else {"limit_mm_per_prompt": {"image": limit}}
    return TrainerConfig(
        output_dir=str(tmp_path),
        env_kwargs={"max_turns": max_turns, **SMALL},
        train_samples=2,
        eval_samples=2,
        num_envs=1,
        policy="vllm",
        policy_kwargs={"model_name_or_path": "never-loaded", "engine_kwargs": engine},
        tensorboard=False,
        progress=False,
        **kwargs,
    )


def test_training_a_vllm_policy_is_refused_before_anything_loads(tmp_path):
    from agents.trainer import Trainer

    with pytest.raises(ValueError, match=r"max_turns=8 .* allows 4 image"):
        Trainer(_trainer_cfg(tmp_path, limit=4))
    held_out = _trainer_cfg(tmp_path, limit=8, eval_env_kwargs={"max_turns": 9})
    with pytest.raises(ValueError, match=r"max_turns=9 .* allows 8 image"):
        Trainer(held_out)  # the held-out envs are checked too
    with pytest.raises(ValueError, match=r"max_turns=17 .* allows 16 image"):
        Trainer(_trainer_cfg(tmp_path, limit=None, max_turns=17))  # the engine's default limit
    try:
        import vllm  # noqa: F401
    except ImportError:  # the check passed: building the policy is what fails here
        with pytest.raises(ImportError, match="VLLMPolicy needs vLLM"):
            Trainer(_trainer_cfg(tmp_path, limit=8))
