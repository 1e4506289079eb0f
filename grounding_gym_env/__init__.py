"""grounding-gym's envs as an OpenEnv environment package (OpenEnv's folder layout).

* `models`: the typed action, observation and state (`dialogue: str`, `image: str` as base64
  PNG, `reward_terms: dict[str, float]`, plus the lossless wire form `RemoteEnv` decodes);
* `client.GroundingGymEnv`: an OpenEnv `EnvClient` returning those typed observations;
* `server/app.py`: the FastAPI app (`app`) and `main()`; `server/Dockerfile`.

For Gymnasium users `grounding_gym.remote.RemoteEnv` is the client of the same server.
"""

from grounding_gym_env.client import GroundingGymEnv
from grounding_gym_env.models import GymAction, GymObservation, GymState

__all__ = ["GroundingGymEnv", "GymAction", "GymObservation", "GymState"]
