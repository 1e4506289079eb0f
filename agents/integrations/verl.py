"""verl adapter: grounding-gym envs as a verl agent loop, SRPO in verl's estimator registry
(tested with verl 0.9.1).

Importing this module registers, in verl's own registries:

* the agent loop ``"grounding_gym"`` (`GroundingGymAgentLoop`): one whole env episode per
  dataset row, multi-turn, token-in/token-out;
* the advantage estimators ``"srpo"`` and ``"srpo_target"``: thin wrappers that reshape verl's
  ``(bs, response_length)`` tensors into `agents.algos.srpo` / `agents.algos.srpo_target` inputs.

**Agent loop.** verl instantiates the loop per trajectory (``hydra.utils.instantiate`` on its
registry entry) and calls ``run(sampling_params, **row)``, ``row`` being the dataset row; the
env sample comes from ``row["extra_info"]["sample_id"]``. The env's ``info["messages"]`` dialogue
is rendered by verl's Continuous Token builder (the processor's chat template and image
processor, image pads expanded): the first prompt once, then only each NEW env turn, appended
with ``response_mask`` 0. verl's server manager generates each assistant turn; its token ids
(and log-probs) are appended exactly as generated with mask 1, and decoded only to hand the text
to ``env.step``: nothing is re-tokenised. ``multi_modal_data["images"]`` is the first view
followed by every crop view, in dialogue order (the same PIL objects the env put in its
messages). The episode's return is the ``reward_score`` (verl's ``rm_scores`` at the last
token, so no reward function is needed) and ``extra_fields["reward_extra_info"]`` carries the
summed reward terms and the scale metadata (`EPISODE_FIELDS`), which verl puts in
``non_tensor_batch`` and its reward metrics.

**Estimators.** verl calls an estimator with ``token_level_rewards, response_mask, index (uid),
config``. The wrapper sums the token rewards per row (the episode return), uses ``uid`` as the
group id and ``response_mask.sum(-1)`` as ``lengths``, and reads the other `ROLLOUT_FIELDS` it
needs (``rel_areas``, ``target_rel_areas``) from ``non_tensor_batch``, where the agent loop's
``reward_extra_info`` puts them. Options come from ``algorithm.<name>_kwargs`` (e.g.
``+algorithm.srpo_kwargs.no_box=exclude``) and are checked against `estimator_options`.
verl 0.9.1's ``compute_advantage`` hands ``non_tensor_batch`` only to its own "gdpo";
`install_advantage_hook` makes it hand it to these estimators too (the recipe runs it in every
Ray worker through Ray's ``worker_process_setup_hook``; see examples/verl/README.md).

Agent-loop config entry (``actor_rollout_ref.rollout.agent.agent_loop_config_path``)::

    - name: grounding_gym
      _target_: agents.integrations.verl.GroundingGymAgentLoop
      env_id: GroundedVQA-HR-v0
      env_kwargs: {max_turns: 4}
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

import numpy as np
import torch

try:
    from omegaconf import DictConfig, OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
    from verl.trainer.ppo import core_algos
    from verl.utils.profiler import simple_timer
except ImportError as exc:  # pragma: no cover - exercised only without the verl extra
    raise ImportError(
        f"agents.integrations.verl needs verl ({exc}); install it with "
        "`pip install 'grounding-gym[verl]'`."
    ) from exc

from agents.algos import advantages as ours
from agents.policies.base import Generation, Trajectory, Turn
from agents.rollout import MAX_EPISODE_STEPS, rollout_arrays, strip_info
from grounding_gym.envs.grounded_vqa import message_images
from grounding_gym.rewards import REWARD_TERMS, sum_reward_terms

__all__ = [
    "AGENT_LOOP_NAME",
    "EPISODE_FIELDS",
    "VERL_ESTIMATORS",
    "GroundingGymAgentLoop",
    "episode_fields",
    "install_advantage_hook",
    "setup_ray_worker",
]

AGENT_LOOP_NAME = "grounding_gym"
"""Name of the agent loop in verl's registry (a dataset row's ``agent_name``, or
``actor_rollout_ref.rollout.agent.default_agent_loop``)."""

EPISODE_FIELDS = (
    "answer",
    "format",
    "grounding",
    "correct",
    "num_crops",
    "rel_areas",
    "target_rel_areas",
)
"""Keys of ``reward_extra_info``, one float per episode: the env's reward terms summed over the
episode, ``correct`` in {0, 1}, the number of accepted crops, the first crop's area / image area
(NaN without a crop: SRPO's scale) and the target's area / image area (NaN without a target)."""

VERL_ESTIMATORS = (ours.AdvantageEstimator.SRPO.value, ours.AdvantageEstimator.SRPO_TARGET.value)
"""Our estimators registered in verl's advantage-estimator registry, under the same names."""


def _plain(value: Any) -> Any:
    """A DictConfig/ListConfig (what hydra hands over) as plain Python containers."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


# --------------------------------------------------------------------------------------------
# envs
# --------------------------------------------------------------------------------------------


class _EnvPool:
    """Free envs per (env id, kwargs); one env per running episode, reused afterwards.

    verl builds a new agent loop per trajectory and runs many of them concurrently on one
    event loop, so envs are lent out, never shared between live episodes.
    """

    def __init__(self) -> None:
        self._free: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def take(self, env_id: str, env_kwargs: Mapping[str, Any]) -> tuple[str, Any]:
        key = json.dumps([env_id, env_kwargs], sort_keys=True, default=repr)
        with self._lock:
            free = self._free.setdefault(key, [])
            if free:
                return key, free.pop()
        import gymnasium as gym

        import grounding_gym  # noqa: F401  (registers the ids)

        return key, gym.make(env_id, **copy.deepcopy(dict(env_kwargs))).unwrapped

    def give_back(self, key: str, env: Any) -> None:
        with self._lock:
            self._free[key].append(env)


_ENVS = _EnvPool()


def episode_fields(trajectory: Trajectory) -> dict[str, float]:
    """`EPISODE_FIELDS` of one finished (or cut) episode, floats (NaN where undefined)."""
    terms = sum_reward_terms(turn.reward_terms for turn in trajectory.turns)
    sums = {key: terms[key] for key in REWARD_TERMS}
    arrays = rollout_arrays([trajectory])
    return {
        **sums,
        "correct": float(arrays["correct"][0]),
        "num_crops": float(len(trajectory.crop_boxes)),
        "rel_areas": float(arrays["rel_areas"][0]),
        "target_rel_areas": float(arrays["target_rel_areas"][0]),
    }


# --------------------------------------------------------------------------------------------
# agent loop
# --------------------------------------------------------------------------------------------


@register(AGENT_LOOP_NAME)
class GroundingGymAgentLoop(AgentLoopBase):
    """Multi-turn rollouts of a grounding-gym env for verl (Ray workers, vLLM/SGLang servers).

    Args:
        env_id: a Gymnasium id with the GroundedVQA API (`reset(options={"sample_id"})`,
            `info["messages"]`); a row's ``extra_info["env_id"]`` overrides it.
        env_kwargs: kwargs of ``gym.make(env_id, ...)``; give the env the processor's pixel
            budget (``min_pixels``, ``max_pixels``, ``patch_size=28``) so that the processor
            never resizes a view. A row's ``extra_info["env_kwargs"]`` updates them.
        *args, **kwargs: `AgentLoopBase`'s (trainer config, server manager, tokenizer,
            processor, ...), as verl's ``AgentLoopWorker`` passes them.

    The episode ends when the env terminates or truncates (``max_turns``), or when the response
    reaches ``rollout.response_length`` tokens (then it is cut there, reward so far).
    """

    def __init__(
        self,
        *args: Any,
        env_id: str = "GroundedVQA-HR-v0",
        env_kwargs: Mapping[str, Any] | DictConfig | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.env_id = env_id
        self.env_kwargs = dict(_plain(env_kwargs) or {})
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """One episode of ``extra_info["sample_id"]``; see the module docstring."""
        extra_info = _plain(kwargs.get("extra_info")) or {}
        if "sample_id" not in extra_info:
            raise ValueError(
                "grounding_gym agent loop: the dataset row needs extra_info['sample_id'] (the env "
                f"sample to reset to); got extra_info keys {sorted(extra_info)}. Build rows with "
                "examples/verl/prepare_data.py."
            )
        env_id = extra_info.get("env_id", self.env_id)
        env_kwargs = {**self.env_kwargs, **(extra_info.get("env_kwargs") or {})}
        key, env = _ENVS.take(env_id, env_kwargs)
        try:
            return await self._episode(env, extra_info["sample_id"], sampling_params)
        finally:
            _ENVS.give_back(key, env)

    async def _episode(
        self, env: Any, sample_id: Any, sampling_params: dict[str, Any]
    ) -> AgentLoopOutput:
        obs, info = env.reset(options={"sample_id": sample_id})
        messages = info["messages"]
        images = message_images(messages)
        self._assert_mm_supported(bool(images))
        prompt_ids = await self.ct_build_initial_tokens(messages, images=images)
        trajectory = Trajectory(
            sample_id=info["sample_id"], group_id=0, reset_info=strip_info(info)
        )
        tokens, mask, logprobs = list(prompt_ids), [], []
        metrics: dict[str, Any] = {}
        request_id = uuid4().hex
        for _ in range(MAX_EPISODE_STEPS):
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id,
                    prompt_ids=tokens,
                    sampling_params=sampling_params,
                    image_data=images,
                )
            merged, mask, logprobs = await self.ct_merge_assistant_token(
                tokens,
                output.token_ids,
                mask,
                logprobs if output.log_probs else None,
                assistant_logprobs=output.log_probs or None,
            )
            tokens, logprobs = merged.token_ids, logprobs or []
            text = self.tokenizer.decode(
                output.token_ids, skip_special_tokens=True
            )  # for env.step only
            with simple_timer("tool_calls", metrics):
                step = await self.loop.run_in_executor(None, env.step, text)
            next_obs, reward, terminated, truncated, info = step
            generation = Generation(text, tuple(output.token_ids), tuple(output.log_probs or ()))
            trajectory.turns.append(
                Turn(obs, generation, float(reward), dict(info["reward_terms"]), strip_info(info))
            )
            # env messages now: the old ones, this assistant turn, then the env's new turn(s)
            before, messages, obs = (
                info["messages"][: len(messages) + 1],
                info["messages"],
                next_obs,
            )
            if terminated or truncated or len(mask) >= self.response_length:
                break
            merged, mask, logprobs = await self.ct_merge_context_msg(
                before, messages, tokens, mask, logprobs or None
            )
            tokens, logprobs = merged.token_ids, logprobs or []
            images = images + message_images(messages[len(before) :])
            if len(mask) >= self.response_length:
                break
        else:
            raise RuntimeError(
                f"{env!r} ran {MAX_EPISODE_STEPS} steps without ending; give it max_turns"
            )
        trajectory.messages = messages
        return self._output(tokens, mask, logprobs, images, trajectory, metrics)

    def _output(
        self,
        tokens: list[int],
        mask: list[int],
        logprobs: list[float],
        images: list[Any],
        trajectory: Trajectory,
        metrics: dict[str, Any],
    ) -> AgentLoopOutput:
        prompt_length = len(tokens) - len(mask)
        keep = self.response_length
        return AgentLoopOutput(
            prompt_ids=tokens[:prompt_length],
            response_ids=tokens[prompt_length:][:keep],
            response_mask=mask[:keep],
            response_logprobs=logprobs[:keep] if logprobs else None,
            multi_modal_data={"images": images},
            mm_processor_kwargs=self._get_mm_processor_kwargs(),
            reward_score=trajectory.total_reward,
            num_turns=1 + 2 * len(trajectory.turns),  # system+user prompt, then assistant/env pairs
            metrics=metrics,
            extra_fields={"reward_extra_info": episode_fields(trajectory)},
        )


# --------------------------------------------------------------------------------------------
# advantage estimators
# --------------------------------------------------------------------------------------------


def _rollout_field(non_tensor_batch: Mapping[str, Any] | None, name: str, size: int) -> np.ndarray:
    """(bs,) float64 per-rollout input ``name`` from verl's ``non_tensor_batch`` (None -> NaN)."""
    if non_tensor_batch is None or name not in non_tensor_batch:
        have = sorted(non_tensor_batch or {})
        raise ValueError(
            f"verl estimator needs `{name}` in non_tensor_batch (the grounding_gym agent loop's "
            f"reward_extra_info puts it there; verl 0.9.1 passes non_tensor_batch to estimators "
            f"only after agents.integrations.verl.install_advantage_hook()). Present keys: {have}."
        )
    values = [
        math.nan if v is None else float(v) for v in np.asarray(non_tensor_batch[name]).tolist()
    ]
    if len(values) != size:
        raise ValueError(
            f"non_tensor_batch[{name!r}] has {len(values)} rows, the batch has {size}."
        )
    return np.asarray(values, dtype=np.float64)


def _options(name: str, config: Any) -> dict[str, Any]:
    """Estimator options from ``config["<name>_kwargs"]`` (verl's ``algorithm`` config)."""
    options = dict(_plain(config.get(f"{name}_kwargs", None) or {})) if config is not None else {}
    allowed = ours.estimator_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"algorithm.{name}_kwargs: unknown option(s) {unknown}; {name!r} takes "
            f"{sorted(allowed)}."
        )
    return options


def _verl_estimator(name: str):
    """verl-convention wrapper of our estimator ``name`` (one function per name)."""

    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: np.ndarray,
        config: Any = None,
        non_tensor_batch: Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rewards = token_level_rewards.sum(dim=-1)
        inputs: dict[str, Any] = {}
        for field in ours.estimator_inputs(name):
            if field == "lengths":
                inputs[field] = response_mask.sum(dim=-1)
            elif field in ours.estimator_needs(name) or (
                non_tensor_batch and field in non_tensor_batch
            ):
                inputs[field] = _rollout_field(non_tensor_batch, field, rewards.shape[0])
        fn = ours.get_advantage_estimator(name)
        adv = fn(rewards, [str(i) for i in index], **inputs, **_options(name, config))
        scores = (
            adv.to(token_level_rewards.device, token_level_rewards.dtype).unsqueeze(-1)
            * response_mask
        )
        return scores, scores

    estimator.__name__ = estimator.__qualname__ = f"verl_{name}"
    estimator.__doc__ = (
        f"`agents.algos.{name}` in verl's estimator convention.\n\n"
        "Args: token_level_rewards (bs, T) (summed per row: the episode return), response_mask\n"
        "(bs, T) 1 on generated tokens, index (bs,) group ids (verl's uid), config (verl's\n"
        f"`algorithm`; options in `{name}_kwargs`), non_tensor_batch (per-rollout inputs such as\n"
        "`rel_areas`); other trainer kwargs are unused.\n\n"
        "Returns: (advantages, returns), both (bs, T) = A (bs,) broadcast over response_mask."
    )
    return estimator


for _name in VERL_ESTIMATORS:
    core_algos.register_adv_est(_name)(_verl_estimator(_name))


def install_advantage_hook() -> None:
    """Make verl's trainer pass ``non_tensor_batch`` to the `VERL_ESTIMATORS`.

    verl 0.9.1's ``ray_trainer.compute_advantage`` calls registered estimators with the
    token rewards, mask, uid and config only (``non_tensor_batch`` goes to its "gdpo" alone),
    so SRPO's per-rollout scales could not arrive. This wraps that function: for our estimators
    it calls the registered estimator with ``non_tensor_batch`` as well; every other estimator
    goes to verl's function unchanged. Idempotent. It serves the trainer that calls
    ``verl.trainer.ppo.ray_trainer.compute_advantage`` on a batch that keeps the agent loop's
    ``non_tensor_batch`` (``trainer.use_v1=false``).
    """
    from verl.trainer.ppo import ray_trainer

    original = ray_trainer.compute_advantage
    if getattr(original, "grounding_gym_hook", False):
        return

    def compute_advantage(
        data: Any, adv_estimator: Any, *args: Any, config: Any = None, **kwargs: Any
    ) -> Any:
        name = getattr(adv_estimator, "value", adv_estimator)
        if name not in VERL_ESTIMATORS:
            return original(data, adv_estimator, *args, config=config, **kwargs)
        advantages, returns = core_algos.get_adv_estimator_fn(name)(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"],
            index=data.non_tensor_batch["uid"],
            config=config,
            non_tensor_batch=data.non_tensor_batch,
        )
        data.batch["advantages"], data.batch["returns"] = advantages, returns
        return data

    compute_advantage.grounding_gym_hook = True  # type: ignore[attr-defined]
    compute_advantage.__doc__ = original.__doc__
    ray_trainer.compute_advantage = compute_advantage


def setup_ray_worker() -> None:
    """Ray ``worker_process_setup_hook``: registers the agent loop and estimators (importing
    this module) and installs `install_advantage_hook` in every Ray worker process."""
    install_advantage_hook()
