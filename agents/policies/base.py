"""The policy protocol every agent implements, and the records a rollout produces.

A policy acts on a batch of observations (one per env) and returns one `Generation` per
env: the action text, the policy's own token ids and their log-probs at sampling time.
For training it recomputes, with gradients, the log-probs of stored `Trajectory`s as a
padded `(B, T)` tensor whose columns are the policy tokens of all turns in order, and a
`(B, T)` mask that is 1 exactly on those tokens (MGPO: env-inserted tokens never count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Generation:
    """One action sampled by a policy.

    Attributes:
        text: the action text sent to `env.step`.
        token_ids: the policy's generated tokens, `(n,)` ints.
        logprobs: log-prob of each token under the policy pi at sampling time, `(n,)` floats
            (nats): the PPO ratio's denominator.
        behaviour_logprobs: log-prob of each token under the behaviour distribution mu that
            actually drew it (`ScaleBehaviour`), `(n,)` floats; None: drawn from pi itself.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    behaviour_logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(f"{len(self.token_ids)} token ids but {len(self.logprobs)} log-probs")
        if self.behaviour_logprobs is not None and len(self.behaviour_logprobs) != len(
            self.logprobs
        ):
            raise ValueError(
                f"{len(self.logprobs)} log-probs but {len(self.behaviour_logprobs)} behaviour "
                "log-probs"
            )


@dataclass(frozen=True)
class ScaleBehaviour:
    """A behaviour distribution for the crop scale of one `act` call (exploration).

    Policies with discrete crop scales (`TinyPolicy`) accept it as `act(...,
    scale_behaviour=...)`: the scale is then drawn from mu instead of pi (every other choice
    from pi), and each `Generation` records mu's log-probs in `behaviour_logprobs`, so a
    trainer can weight the scale token's policy gradient by pi / mu.

    Attributes:
        floor: eps in [0, 1): given "crop", the scale is drawn from
            ``(1 - eps) * pi(scale | crop) + eps / K`` (an exploration floor of eps / K per scale).
        forced: per env of the call, the scale index (0 = the policy's first scale) its action
            must crop at; the recorded behaviour probability is 1 / K, the marginal of a
            stratified design that gives each env a uniformly random scale
            (`agents.algos.exploration.forced_scales`). None: not forced.
    """

    floor: float = 0.0
    forced: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if self.floor and self.forced is not None:
            raise ValueError("a ScaleBehaviour has either a floor or forced scales, not both")

    def rows(self, start: int, stop: int) -> ScaleBehaviour:
        """The behaviour of envs `start:stop` of the call (a chunk of a larger batch)."""
        if self.forced is None:
            return self
        return ScaleBehaviour(self.floor, self.forced[start:stop])


@dataclass
class Turn:
    """One step of a trajectory: what the policy saw, what it did, what it got.

    Attributes:
        observation: the env observation the action answered (`image`, `dialogue`).
        generation: the policy's action.
        reward: the env reward of this step.
        reward_terms: `info["reward_terms"]` of this step.
        info: the step's info without `messages` (crop box, IoU, scale metadata, ...).
    """

    observation: dict[str, Any]
    generation: Generation
    reward: float
    reward_terms: dict[str, float]
    info: dict[str, Any]


@dataclass
class Trajectory:
    """A whole episode of one rollout.

    Attributes:
        sample_id: the env sample.
        group_id: rollouts of the same question share it (GRPO/SRPO groups).
        turns: the steps in order.
        messages: the final conversation (`info["messages"]` of the last step), images as PIL.
        reset_info: the info `reset` returned (first view, prompt, ground truth).
    """

    sample_id: str
    group_id: int
    turns: list[Turn] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    reset_info: dict[str, Any] = field(default_factory=dict)

    def info_before_turn(self, k: int) -> dict[str, Any]:
        """The info the policy saw when it produced turn `k` (`reset_info` for k = 0, else the
        info of turn k - 1), without `messages`. Policies use it to rebuild their inputs when
        recomputing log-probs."""
        return self.reset_info if k == 0 else self.turns[k - 1].info

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    @property
    def correct(self) -> bool | None:
        """Whether the answer was right; None when the episode ended without an answer."""
        last = self.turns[-1].info if self.turns else {}
        return last.get("correct")

    @property
    def crop_boxes(self) -> list[tuple[float, float, float, float]]:
        """Accepted crops, original px."""
        return [t.info["crop_box"] for t in self.turns if t.info.get("crop_box") is not None]

    @property
    def first_crop_rel_area(self) -> float:
        """Relative area of the first accepted crop; NaN when the rollout never cropped
        (SRPO's scale of a rollout)."""
        for turn in self.turns:
            if turn.info.get("crop_rel_area") is not None:
                return float(turn.info["crop_rel_area"])
        return math.nan

    @property
    def num_policy_tokens(self) -> int:
        return sum(len(t.generation.token_ids) for t in self.turns)

    def old_logprobs(self) -> np.ndarray:
        """Sampling-time log-probs of all policy tokens in order, `(T,)` float32."""
        values = [lp for t in self.turns for lp in t.generation.logprobs]
        return np.asarray(values, dtype=np.float32)

    def importance_weights(self) -> np.ndarray:
        """pi / mu of all policy tokens in order, `(T,)` float32, from each generation's
        `logprobs` (pi) and `behaviour_logprobs` (mu); 1 for tokens drawn from pi."""
        values = [
            math.exp(lp - blp)
            for t in self.turns
            for lp, blp in zip(
                t.generation.logprobs,
                t.generation.behaviour_logprobs or t.generation.logprobs,
                strict=True,
            )
        ]
        return np.asarray(values, dtype=np.float32)


@runtime_checkable
class Policy(Protocol):
    """What rollouts and trainers need from a policy.

    `act` samples (or, with `greedy=True`, picks the mode of) one action per env.
    `trajectory_logprobs` returns `(logp, mask)`, both `(B, T)` torch tensors, `logp` with
    gradients, for the policy tokens of each trajectory in order (T = longest trajectory).
    """

    def act(
        self,
        observations: Sequence[dict[str, Any]],
        infos: Sequence[dict[str, Any]],
        *,
        greedy: bool = False,
    ) -> list[Generation]: ...

    def trajectory_logprobs(self, trajectories: Sequence[Trajectory]) -> tuple[Any, Any]: ...
