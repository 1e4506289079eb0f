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
needs (``rel_areas``, ``target_rel_areas``) from the rollouts' ``reward_extra_info``. Options
come from ``algorithm.<name>_kwargs`` (e.g. ``+algorithm.srpo_kwargs.no_box=exclude``) and are
checked against `estimator_options`. verl 0.9's v1 trainer (its default; the legacy one is
deprecated) does not hand per-rollout fields to registered estimators, so this module
registers, in verl's trainer registry, ``grounding_gym_sync`` / ``grounding_gym_colocate_async``
/ ``grounding_gym_separate_async``: verl's three v1 trainers plus `RolloutFieldsTrainer`, which
reads the rows' ``reward_extra_info`` from verl's TransferQueue for our estimators (select with
``trainer.v1.trainer_mode``; the recipe does). Ray's ``worker_process_setup_hook`` =
`setup_ray_worker` imports this module in every Ray process so that verl finds all of them.

Agent-loop config entry (``actor_rollout_ref.rollout.agent.agent_loop_config_path``)::

    - name: grounding_gym
      _target_: agents.integrations.verl.GroundingGymAgentLoop
      env_id: GroundedVQA-HR-v0
      env_kwargs: {max_turns: 4}
"""

from __future__ import annotations

import contextvars
import copy
import functools
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
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
    "RolloutFieldsTrainer",
    "TRAINER_MODES",
    "rollout_fields_of",
    "setup_ray_worker",
]

logger = logging.getLogger(__name__)

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
    "cut",
)
"""Keys of ``reward_extra_info``, one float per episode: the env's reward terms summed over the
episode, ``correct`` in {0, 1}, the number of accepted crops, the first crop's area / image area
(NaN without a crop: SRPO's scale), the target's area / image area (NaN without a target) and
``cut`` = 1 when the episode ended at ``rollout.response_length`` before the env ended it."""

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
    event loop, so envs are lent out, never shared between live episodes. `take` builds an env
    with ``gym.make`` when none is free: call it off the event loop.
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


_NOTED_URLS: set[str] = set()
"""Servers whose unsent env_kwargs were logged (once per URL and process)."""


def _remote_env(env_url: str, env_id: str, env_kwargs: Mapping[str, Any]) -> Any:
    """A `RemoteEnv` session of ``env_url``, checked to serve ``env_id``.

    The server was started with its own ``--env-kwargs``; ``env_kwargs`` are not sent (a
    session cannot change them), so they must equal the server's.
    """
    from grounding_gym.remote import RemoteEnv

    if env_kwargs and env_url not in _NOTED_URLS:
        _NOTED_URLS.add(env_url)
        logger.info(
            "grounding_gym agent loop: env_kwargs %s are not sent to %s; the server's "
            "--env-kwargs apply (start it with the same ones)",
            sorted(env_kwargs),
            env_url,
        )
    return RemoteEnv(env_url, env_id=env_id)


_ENVS = _EnvPool()


def episode_fields(trajectory: Trajectory, cut: bool = False) -> dict[str, float]:
    """`EPISODE_FIELDS` of one finished (or, ``cut``, length-cut) episode, floats (NaN where
    undefined)."""
    terms = sum_reward_terms(turn.reward_terms for turn in trajectory.turns)
    sums = {key: terms[key] for key in REWARD_TERMS}
    arrays = rollout_arrays([trajectory])
    return {
        **sums,
        "correct": float(arrays["correct"][0]),
        "num_crops": float(len(trajectory.crop_boxes)),
        "rel_areas": float(arrays["rel_areas"][0]),
        "target_rel_areas": float(arrays["target_rel_areas"][0]),
        "cut": float(cut),
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
        env_url: a `grounding-gym serve` URL (e.g. ``http://10.0.0.5:8000``): episodes run in
            `grounding_gym.remote.RemoteEnv` sessions of that server instead of in this
            worker's process, one session per episode (give the server ``--max-sessions`` >=
            the episodes all workers run at once). The server's ``--env`` must be ``env_id``
            and its ``--env-kwargs`` apply (``env_kwargs`` are not sent).
        *args, **kwargs: `AgentLoopBase`'s (trainer config, server manager, tokenizer,
            processor, ...), as verl's ``AgentLoopWorker`` passes them.

    The episode ends when the env terminates or truncates (``max_turns``), or at
    ``rollout.response_length`` tokens. Each turn asks the server for at most the tokens left
    (``max_tokens``); an env turn that would not fit is dropped whole (text, image pads and
    image), as verl's ``ToolAgentLoop`` does, and the episode ends there with the reward so far
    (``reward_extra_info["cut"]`` = 1).
    """

    def __init__(
        self,
        *args: Any,
        env_id: str = "GroundedVQA-HR-v0",
        env_kwargs: Mapping[str, Any] | DictConfig | None = None,
        env_url: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.env_id = env_id
        self.env_kwargs = dict(_plain(env_kwargs) or {})
        self.env_url = env_url
        self.response_length = int(self.rollout_config.response_length)

    async def run(
        self, sampling_params: dict[str, Any], priority: int = 0, **kwargs: Any
    ) -> AgentLoopOutput:
        """One episode of ``extra_info["sample_id"]``; see the module docstring.

        ``priority`` is verl's per-row scheduling priority (the worker passes it from
        ``non_tensor_batch``); it goes to vLLM with every request, as in verl's own loops.
        """
        extra_info = _plain(kwargs.get("extra_info")) or {}
        if "sample_id" not in extra_info:
            raise ValueError(
                "grounding_gym agent loop: the dataset row needs extra_info['sample_id'] (the env "
                f"sample to reset to); got extra_info keys {sorted(extra_info)}. Build rows with "
                "examples/verl/prepare_data.py."
            )
        env_id = extra_info.get("env_id", self.env_id)
        env_kwargs = {**self.env_kwargs, **(extra_info.get("env_kwargs") or {})}
        # gym.make and reset render images (~0.5 s on 4K sources): never on the event loop,
        # which runs every other episode of this worker
        sample_id = extra_info["sample_id"]
        if (
            self.env_url is not None
        ):  # a session per episode: an idle one would expire between steps
            env = await self.loop.run_in_executor(
                None, _remote_env, self.env_url, env_id, env_kwargs
            )
            try:
                return await self._episode(env, sample_id, sampling_params, int(priority))
            finally:
                await self.loop.run_in_executor(None, env.close)
        key, env = await self.loop.run_in_executor(None, _ENVS.take, env_id, env_kwargs)
        try:
            return await self._episode(env, sample_id, sampling_params, int(priority))
        finally:
            _ENVS.give_back(key, env)

    async def _episode(
        self, env: Any, sample_id: Any, sampling_params: dict[str, Any], priority: int
    ) -> AgentLoopOutput:
        obs, info = await self.loop.run_in_executor(
            None, functools.partial(env.reset, options={"sample_id": sample_id})
        )
        messages = info["messages"]
        images = message_images(messages)
        self._assert_mm_supported(bool(images))
        prompt_ids = await self.ct_build_initial_tokens(messages, images=images)
        trajectory = Trajectory(
            sample_id=info["sample_id"], group_id=0, reset_info=strip_info(info)
        )
        tokens, mask, logprobs = list(prompt_ids), [], []
        metrics: dict[str, Any] = {}
        full_determinism = bool(self.rollout_config.get("full_determinism", False))
        request_id = f"det-{priority}" if full_determinism else uuid4().hex
        mm_processor_kwargs = self._get_mm_processor_kwargs()
        cut = False
        for _ in range(MAX_EPISODE_STEPS):
            budget = self.response_length - len(mask)  # tokens this turn may still generate
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id,
                    prompt_ids=tokens,
                    sampling_params={
                        **sampling_params,
                        "max_tokens": min(budget, sampling_params.get("max_tokens", budget)),
                    },
                    image_data=images,
                    mm_processor_kwargs=mm_processor_kwargs,
                    priority=priority,
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
                cut = not (terminated or truncated)
                break
            turn, turn_mask, turn_logprobs = await self.ct_merge_context_msg(
                before, messages, tokens, mask, logprobs or None
            )
            if len(turn_mask) >= self.response_length:
                # as verl's ToolAgentLoop does: an env turn that does not fit is dropped whole
                # (its text, image pads and image), so the kept tokens and images stay aligned;
                # a cut inside a crop's pads would fail the model's forward
                cut = True
                break
            tokens, mask, logprobs = turn.token_ids, turn_mask, turn_logprobs or []
            images = images + message_images(messages[len(before) :])
        else:
            raise RuntimeError(
                f"{env!r} ran {MAX_EPISODE_STEPS} steps without ending; give it max_turns"
            )
        trajectory.messages = messages
        return self._output(tokens, mask, logprobs, images, trajectory, metrics, cut)

    def _output(
        self,
        tokens: list[int],
        mask: list[int],
        logprobs: list[float],
        images: list[Any],
        trajectory: Trajectory,
        metrics: dict[str, Any],
        cut: bool,
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
            extra_fields={"reward_extra_info": episode_fields(trajectory, cut)},
        )


# --------------------------------------------------------------------------------------------
# advantage estimators
# --------------------------------------------------------------------------------------------


def _rollout_field(non_tensor_batch: Mapping[str, Any] | None, name: str, size: int) -> np.ndarray:
    """(bs,) float64 per-rollout input ``name`` from verl's ``non_tensor_batch`` (None -> NaN)."""
    if non_tensor_batch is None or name not in non_tensor_batch:
        have = sorted(non_tensor_batch or {})
        raise ValueError(
            f"verl estimator needs `{name}` per rollout (the grounding_gym agent loop's "
            "reward_extra_info carries it; verl's v1 trainer hands it to the estimator only as "
            "trainer.v1.trainer_mode=grounding_gym_<mode>, see agents.integrations.verl."
            f"RolloutFieldsTrainer). Present keys: {have}."
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
        if non_tensor_batch is None:  # verl's v1 trainer: RolloutFieldsTrainer lends them
            non_tensor_batch = _ROLLOUT_FIELDS.get()
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


# --------------------------------------------------------------------------------------------
# v1 trainer: the rollouts' fields reach the estimators
# --------------------------------------------------------------------------------------------

_ROLLOUT_FIELDS: contextvars.ContextVar[dict[str, np.ndarray] | None] = contextvars.ContextVar(
    "grounding_gym_rollout_fields", default=None
)
"""`EPISODE_FIELDS` of the batch whose advantages the trainer is computing, row-aligned, while
`RolloutFieldsTrainer._compute_advantage` runs (verl's estimator call has no slot for them)."""

TRAINER_MODES = ("sync", "colocate_async", "separate_async")
"""verl 0.9's v1 trainer modes; each gets a grounding-gym variant named ``grounding_gym_<mode>``
in verl's trainer registry (``trainer.v1.trainer_mode``)."""


def rollout_fields_of(extra_fields: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """(bs,) object arrays of `EPISODE_FIELDS` from the rows' ``extra_fields`` (the agent loop's
    ``reward_extra_info``; None where a row lacks one), as verl's ``non_tensor_batch`` holds
    them."""
    infos = [dict(row or {}).get("reward_extra_info") or {} for row in extra_fields]
    return {
        key: np.array([info.get(key) for info in infos], dtype=object) for key in EPISODE_FIELDS
    }


class RolloutFieldsTrainer:
    """Mixin for verl's v1 ``PPOTrainer``: the `VERL_ESTIMATORS` get the agent loop's
    per-rollout fields (``rel_areas``, ``target_rel_areas``, ...).

    verl 0.9's v1 trainer reads a fixed set of fields from its TransferQueue to compute
    advantages (uid, response_mask, rm_scores, log-probs, values) and calls a registered
    estimator with token rewards, mask, uid and config only. For our estimators this reads the
    same rows' ``extra_fields`` (where the v1 agent-loop worker stored ``reward_extra_info``),
    in the same key order, and lends them to the estimator for the duration of verl's own
    ``_compute_advantage``; every other estimator runs verl's path untouched.
    """

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        estimator = self.config.algorithm.adv_estimator
        name = getattr(estimator, "value", estimator)
        if name not in VERL_ESTIMATORS:
            return super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        import transfer_queue as tq

        rows = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"]
        )
        token = _ROLLOUT_FIELDS.set(rollout_fields_of(list(rows["extra_fields"])))
        try:
            return super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        finally:
            _ROLLOUT_FIELDS.reset(token)


def _register_trainers() -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls, register_trainer

    for mode in TRAINER_MODES:
        base = get_trainer_cls(mode)
        name = f"grounding_gym_{mode}"
        cls = type(
            f"GroundingGym{base.__name__}",
            (RolloutFieldsTrainer, base),
            {
                "__module__": __name__,
                "__doc__": f"verl's {base.__name__} + `RolloutFieldsTrainer`.",
            },
        )
        globals()[cls.__name__] = cls  # importable by name (Ray pickles classes by reference)
        register_trainer(name)(cls)


_register_trainers()


def setup_ray_worker() -> None:
    """Ray ``worker_process_setup_hook``: imports this module in every Ray worker process, so
    the agent loop, the estimators and the ``grounding_gym_<mode>`` trainers are registered
    wherever verl looks them up (the trainer's TaskRunner included)."""
