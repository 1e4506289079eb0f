"""Typed models of the grounding-gym OpenEnv environment (what `/schema` describes).

They are defined once, beside the server, in `grounding_gym.remote.server`:

* `GymAction`: `action`, the env's action (a str for grounding-gym's text envs: `<crop>[x1, y1,
  x2, y2]</crop>` or `<answer>B</answer>`).
* `GymObservation`: OpenEnv's `reward`, `done`; plain fields `dialogue: str` (the new turn; on
  reset the question and options), `image: str` (the new view, base64 PNG, lossless) and
  `reward_terms: dict[str, float]`; `terminated`, `truncated`; and `observation` / `info` in the
  lossless wire form of `grounding_gym.remote.codec` (infos: `view_box`, `crop_iou`, ...).
* `GymState`: OpenEnv's `episode_id`, `step_count`, plus `env_id`, the spaces and the server's
  message limit.
"""

from grounding_gym.remote.server import GymAction, GymObservation, GymState

__all__ = ["GymAction", "GymObservation", "GymState"]
