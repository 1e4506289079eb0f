"""Environment ids, registered with Gymnasium when `grounding_gym` is imported.

Entry points are strings, so importing the package stays cheap (Gymnasium's own pattern).
Gymnasium 1.x has no plugin entry points: `gym.make("grounding_gym:GroundedVQA-HR-v0")`
imports the package first.
"""

from __future__ import annotations

import gymnasium as gym

ORDINARY_MAX_PIXELS = 512 * 28 * 28  # 401,408: ordinary-resolution benchmarks

ENV_SPECS: dict[str, dict] = {
    "GroundedVQA-HR-v0": {
        "entry_point": "grounding_gym.envs.grounded_vqa:GroundedVQAEnv",
        "kwargs": {"dataset": "synthetic-hr"},
    },
    "GroundedVQA-v0": {
        "entry_point": "grounding_gym.envs.grounded_vqa:GroundedVQAEnv",
        "kwargs": {"dataset": "synthetic", "max_pixels": ORDINARY_MAX_PIXELS},
    },
    "GroundedVQA-HR-DeepEyes-v0": {
        "entry_point": "grounding_gym.envs.deepeyes:DeepEyesEnv",
        "kwargs": {"dataset": "synthetic-hr"},
    },
    "RefGrounding-v0": {
        "entry_point": "grounding_gym.envs.ref_grounding:RefGroundingEnv",
        "kwargs": {"dataset": "synthetic-ref", "max_turns": 1},
    },
    "EvidenceDescription-v0": {
        "entry_point": "grounding_gym.envs.evidence:EvidenceDescriptionEnv",
        "kwargs": {"dataset": "synthetic-hr"},
    },
}


def register_envs() -> None:
    """Register every id of `ENV_SPECS` (idempotent)."""
    for env_id, spec in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **spec)
