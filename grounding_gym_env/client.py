"""`GroundingGymEnv`: OpenEnv's `EnvClient` for a grounding-gym server, typed observations.

    from grounding_gym_env import GroundingGymEnv, GymAction

    with GroundingGymEnv(base_url="http://127.0.0.1:8000").sync() as env:
        result = env.reset(options={"sample_id": 3})
        print(result.observation.dialogue)              # the question, a plain str
        result = env.step(GymAction(action="<answer>B</answer>"))
        print(result.reward, result.observation.reward_terms)

Only the three methods OpenEnv's `EnvClient` asks a subclass for are defined here. A stock
`openenv.core.GenericEnvClient` reads the same server as dicts (`observation["dialogue"]`).
"""

from __future__ import annotations

from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient

from grounding_gym_env.models import GymAction, GymObservation, GymState


class GroundingGymEnv(EnvClient[GymAction, GymObservation, GymState]):
    """One websocket session of a grounding-gym OpenEnv server (one env per session)."""

    def _step_payload(self, action: GymAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"})

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[GymObservation]:
        observation = GymObservation(
            **payload.get("observation", {}),
            reward=payload.get("reward"),
            done=payload.get("done", False),
        )
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> GymState:
        return GymState(**payload)
