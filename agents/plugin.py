"""What `agents` adds to `grounding_gym`: eval agents, the `demo` and `train` commands, and the
"algorithms" section of `grounding-gym list`.

Declared as the `grounding_gym.plugins` entry point in pyproject.toml, so `grounding_gym` finds
this package without naming it. Imports no torch: every target is a lazy `"module:attr"`.
"""

from __future__ import annotations

from grounding_gym.catalog import SECTIONS
from grounding_gym.cli import COMMANDS
from grounding_gym.eval.agents import register_agent

_HEURISTIC = "agents.baselines.heuristic"
_DEMO = "the main job: train the tiny policy with SRPO, then report"
_SLIDING = (
    "coarse-to-fine tiling: crop the most salient tile of each view until native resolution, "
    "then answer"
)
_HF = (
    "a local Qwen2.5-VL-style checkpoint through transformers, greedy "
    "(agent kwargs model=DIR, dtype=, device=)"
)
_VLLM = (
    "a Qwen2.5-VL-style checkpoint through a vLLM engine, GPU only (agent kwargs model=DIR, ...)"
)


def register() -> None:
    """Register this package's commands, `list` section and eval agents (lazy targets)."""
    COMMANDS.register("demo", "agents.demo:main", description=_DEMO)
    COMMANDS.register(
        "train", "agents.trainer:main", description="train a policy from a YAML config (--config)"
    )
    COMMANDS.register(
        "sft-data",
        "agents.sft:sft_data_main",
        description="an eval run's episodes as a TRL SFT dataset",
    )
    COMMANDS.register(
        "sft",
        "agents.sft:main",
        description="cold-start SFT of a trainer config's policy on sft-data",
    )
    SECTIONS.register(
        "algorithms",
        "agents.algos:list_advantage_estimators",
        description="advantage estimators",
        requires="torch",
    )
    for name, attr, text in (
        ("no-crop", "NoCropAgent", "answer from the first view (no zoom)"),
        ("random-crop", "RandomCropAgent", "one random crop, then answer"),
        ("sliding-window", "SlidingWindowAgent", _SLIDING),
        ("oracle-crop", "OracleCropAgent", "crop the ground-truth box (coverage 1), then answer"),
        ("fixed-answer", "FixedAnswerAgent", "answer a fixed letter at once (chance level)"),
    ):
        register_agent(name, f"{_HEURISTIC}:{attr}", description=text)
    register_agent(
        "hf", "agents.baselines.lvlm:make_hf_agent", description=_HF, requires="transformers"
    )
    register_agent(
        "vllm", "agents.baselines.lvlm:make_vllm_agent", description=_VLLM, requires="vllm"
    )
    register_agent(
        "sb3-ppo",
        "agents.baselines.sb3_ppo:make_agent",
        description="a trained SB3 PPO model through the wrappers (agent kwarg path=model.zip)",
        requires="stable_baselines3",
    )
    register_agent(
        "policy-checkpoint",
        "agents.baselines.policy_checkpoint:make_agent",
        description="a trained policy from a trainer checkpoint (agent kwarg path=DIR)",
        requires="torch",
    )
