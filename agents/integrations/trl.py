"""TRL adapter: train on grounding-gym envs with `trl.GRPOTrainer` (tested with TRL 1.16).

Two ways, both built from one `TRLEnvAdapter`:

1. **Single turn, TRL generates** (no `rollout_func`). Each dataset row is an env's first
   observation (system prompt, first user prompt, first view as `image`); TRL samples the first
   action and the reward functions REPLAY it in the env (`env.reset(sample_id)`, `env.step(text)`):
   an answer earns the answer/format terms, a crop its grounding term (IoU with the ground truth,
   computed by the env's one view -> original conversion). Good for grounding-first training.

2. **Multi-turn episodes, `rollout_func`** (`adapter.rollout_func`). For every prompt the
   adapter plays a WHOLE episode with the trainer's current model (`HFPolicy` on
   `trainer.model`: the first action, then crops fed back as new images, until an answer or
   `max_turns`), and returns the FIRST assistant turn as TRL's completion with the episode's
   outcome as its reward (fields `episode_*`, read by the reward functions below). This is the
   credit assignment of SRPO's grounding rollouts: the zoom decision is trained by the outcome
   of the episode it leads to.

   Why only the first turn: in TRL 1.16 a `rollout_func` cannot hand images back for the
   training forward pass (`_generate` returns `images=None`; TRL re-processes only the dataset's
   images), so tokens of later turns, which follow env-inserted crop images, cannot be scored
   by TRL this way. To train every turn with its crop images in TRL, use `environment_factory`
   with `agents.integrations.trl_environment.GroundingToolEnv` (the env as tools); outside TRL,
   `agents.trainer` + `agents.policies.hf.HFPolicy` do it with an exact multi-turn mask.

Reward functions have TRL's signature `f(completions, **kwargs) -> list[float | None]` and a
`__name__` (TRL logs `rewards/<name>/mean`): `env_reward` (episode return, or the replayed
step's reward), `answer_reward`, `format_reward`, `grounding_reward` (the env's reward terms),
and `srpo_reward`.

SRPO with TRL. TRL computes `A = (r - group mean) / group std` itself; there is no estimator
hook. `srpo_reward` instead returns the SRPO advantage (Ground-R1: intra-bin standardisation
plus the inter-bin bonus, `agents.algos.srpo`) of each completion, computed over TRL's own
group (position // `num_generations`; set `adapter.num_generations`). An SRPO advantage has zero
mean over its group, so with `GRPOConfig(scale_rewards="none")` TRL's advantage `r - mean(r)`
equals it exactly. Use it as the ONLY reward function (or give the others weight 0), and keep
every group on one process (`per_device_train_batch_size * steps_per_generation` a multiple of
`num_generations`, TRL's default layout). With `rollout_func` a completion's scale is its
episode's first crop (`episode_rel_area`); without it, the replayed crop's relative area.

    adapter = TRLEnvAdapter("GroundedVQA-HR-v0", env_kwargs={"max_turns": 3})
    trainer = GRPOTrainer(
        model=model, processing_class=processor,  # processor.tokenizer.padding_side = "left"
        reward_funcs=[adapter.env_reward],          # or [adapter.srpo_reward], with
                                                    # scale_rewards="none" (and
                                                    # adapter.num_generations = 8)
        rollout_func=adapter.rollout_func,          # omit for single-turn training
        train_dataset=adapter.dataset(range(256)),
        args=GRPOConfig(num_generations=8, max_completion_length=256, ...),
    )

See examples/trl_grpo.py for a runnable script.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding_gym.rewards import sum_reward_terms

__all__ = [
    "TRLEnvAdapter",
    "TRLRunSetup",
    "completion_text",
    "first_observation_row",
    "srpo_by_group",
    "trl_group_ids",
    "trl_run_setup",
]

RewardFunc = Callable[..., list]


def completion_text(completion: Any) -> str:
    """The assistant text of a TRL completion (a string, or a conversational message list).

    >>> completion_text([{"role": "assistant", "content": "<answer>B</answer>"}])
    '<answer>B</answer>'
    >>> completion_text("<crop>[1, 2, 3, 4]</crop>")
    '<crop>[1, 2, 3, 4]</crop>'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    texts = []
    for message in completion or []:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                part.get("text", "") for part in content if part.get("type", "text") == "text"
            ]
    return "".join(texts)


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _prompt_key(prompt: Sequence[dict[str, Any]], image: Any) -> str:
    """Identity of a first observation: its user text and first image's pixels."""
    digest = hashlib.sha1()
    for message in prompt:
        digest.update(message.get("role", "").encode())
        digest.update(_message_text(message).encode())
        content = message.get("content")
        if image is None and isinstance(content, list):
            image = next(
                (
                    p.get("image")
                    for p in content
                    if p.get("type") == "image" and p.get("image") is not None
                ),
                None,
            )
    if image is not None:
        array = np.asarray(
            image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8
        )
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def first_observation_row(env: Any, sample_id: Any) -> dict[str, Any]:
    """A TRL row for one sample: `env` reset to it, its first observation as the env shows it.

    Args:
        env: an unwrapped env with the GroundedVQA API (`reset(options={"sample_id"})`).
        sample_id: the sample's id or dataset index.

    Returns:
        `prompt` (the env's system + first user messages, text only; TRL inserts `image` before
        the user text, as the env does), `image` (PIL, the first view, uint8 RGB), `sample_id`
        (str).
    """
    from PIL import Image

    sample_id = int(sample_id) if isinstance(sample_id, (int, np.integer)) else sample_id
    obs, info = env.reset(options={"sample_id": sample_id})
    prompt = [{"role": m["role"], "content": _message_text(m)} for m in info["messages"]]
    return {
        "prompt": prompt,
        "image": Image.fromarray(obs["image"]),
        "sample_id": info["sample_id"],
    }


def trl_group_ids(sample_ids: Sequence[Any], num_generations: int) -> list[int]:
    """TRL's group of each of one process's completions: position // `num_generations`.

    TRL's sampler puts a prompt's `num_generations` completions next to each other and its
    advantage uses `rewards.view(-1, num_generations)`, so a group is a position block, not a
    sample id (a sample drawn twice in one generation batch is two groups).

    Raises:
        ValueError: the completions do not split into whole groups (a group would span
            processes), or a block mixes samples (`num_generations` is not the trainer's).
    """
    n, g = len(sample_ids), int(num_generations)
    if g < 1 or n % g:
        raise ValueError(
            f"{n} completions on this process are not whole TRL groups of num_generations={g}; "
            "make per_device_train_batch_size * steps_per_generation a multiple of "
            "num_generations, so that no group spans processes"
        )
    for start in range(0, n, g):
        block = set(map(str, sample_ids[start : start + g]))
        if len(block) != 1:
            raise ValueError(
                f"completions {start}..{start + g - 1} answer samples {sorted(block)}: "
                f"num_generations={g} is not the trainer's GRPOConfig.num_generations"
            )
    return [i // g for i in range(n)]


def srpo_by_group(
    rewards: Sequence[float],
    sample_ids: Sequence[Any],
    rel_areas: Sequence[float],
    num_generations: int,
    **options: Any,
) -> list[float]:
    """SRPO advantages (`agents.algos.srpo`) over TRL's groups (`trl_group_ids`), as TRL rewards.

    Args:
        rewards: (B,) outcome rewards of one process's completions, in TRL's order.
        sample_ids: (B,) the sample each completion answers (checks the grouping).
        rel_areas: (B,) each completion's crop area / original image area; NaN = no crop.
        num_generations: the trainer's `GRPOConfig.num_generations`.
        options: further kwargs of `agents.algos.srpo` (bin edges, `no_box`, ...).

    Returns:
        (B,) advantages; zero mean per group, so TRL's `r - mean(r)` (`scale_rewards="none"`)
        equals them.
    """
    from agents.algos import srpo

    groups = trl_group_ids(sample_ids, num_generations)
    advantages = srpo(list(rewards), groups, rel_areas=list(rel_areas), **options)
    return [float(a) for a in advantages]


@dataclass(frozen=True)
class TRLRunSetup:
    """What a `GRPOTrainer` run on a grounding-gym env needs besides the trainer's config.

    Attributes:
        model: the policy (`AutoModelForImageTextToText`).
        processor: its processor, padding on the left (TRL left-pads prompts).
        env_kwargs: kwargs of `gym.make` (synthetic-hr data; the tiny model's pixel budget).
        peft_config: a `peft.LoraConfig` on `DEFAULT_LORA_TARGETS`, or None (full fine-tuning).
        tiny: whether the model is the tiny in-code Qwen2.5-VL.
    """

    model: Any
    processor: Any
    env_kwargs: dict[str, Any]
    peft_config: Any
    tiny: bool


def trl_run_setup(
    model_path: str | None,
    *,
    max_turns: int,
    num_samples: int,
    image_size: tuple[int, int] | None = None,
    bf16: bool = False,
    lora_r: int = 0,
) -> TRLRunSetup:
    """Model, processor, env kwargs and LoRA config of the TRL examples.

    Args:
        model_path: a checkpoint, or None for the tiny in-code Qwen2.5-VL (CPU smoke runs); the
            tiny model gets `tiny_env_kwargs` (views inside its processor's pixel budget) and
            256-512 px synthetic images unless `image_size` is given.
        max_turns: env turns per episode.
        num_samples: synthetic-hr questions.
        image_size: (min, max) side of the synthetic images, px; None: the generator's default.
        bf16: load the weights in bfloat16 (else float32).
        lora_r: LoRA rank (alpha = 2 r); 0 trains every weight.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    from agents.policies.hf import DEFAULT_LORA_TARGETS, load_processor
    from agents.policies.tiny_qwen import tiny_env_kwargs, tiny_qwen25vl_path

    tiny = model_path is None
    path = tiny_qwen25vl_path() if tiny else model_path
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=torch.bfloat16 if bf16 else torch.float32
    )
    processor = load_processor(path)
    processor.tokenizer.padding_side = "left"
    dataset_kwargs: dict[str, Any] = {"num_samples": num_samples}
    if image_size or tiny:
        dataset_kwargs["image_size"] = tuple(image_size or (256, 512))
    env_kwargs = {"max_turns": max_turns, "dataset_kwargs": dataset_kwargs}
    if tiny:
        env_kwargs = tiny_env_kwargs(**env_kwargs)
    peft_config = None
    if lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=lora_r, lora_alpha=2 * lora_r, target_modules=DEFAULT_LORA_TARGETS
        )
    return TRLRunSetup(model, processor, env_kwargs, peft_config, tiny)


class TRLEnvAdapter:
    """Dataset, reward functions and rollout function for `trl.GRPOTrainer` on one env id.

    Args:
        env_id: a Gymnasium id with the GroundedVQA API (`reset(options={"sample_id"})`).
        env_kwargs: kwargs of `gym.make(env_id, ...)`; match the processor's pixel budget
            (`HFPolicy.env_pixel_kwargs()`), so the processor never resizes a view.
        policy_kwargs: extra `HFPolicy` kwargs for the rollout function (e.g.
            `image_min_pixels`); sampling settings come from the trainer's `GRPOConfig`.
        policy_cls: the `HFPolicy` (sub)class the rollout function acts with.
        replay_cache_size: replayed (sample, text) results kept for the reward functions.
    """

    def __init__(
        self,
        env_id: str = "GroundedVQA-HR-v0",
        env_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        policy_cls: type | None = None,
        replay_cache_size: int = 4096,
    ):
        import gymnasium as gym

        import grounding_gym  # noqa: F401  (registers the ids)

        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.policy_kwargs = dict(policy_kwargs or {})
        self.policy_cls = policy_cls
        self.num_generations: int | None = None
        """The trainer's `GRPOConfig.num_generations`; `srpo_reward` needs it (TRL's groups)."""
        self._gym = gym
        self._envs: list[Any] = [self._make_env()]
        self._sample_of_prompt: dict[str, Any] = {}
        self._replays: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._replay_cache_size = int(replay_cache_size)
        self._policies: dict[int, Any] = {}
        self.env_reward = self._term_reward("env_reward", "episode_reward", "reward")
        self.answer_reward = self._term_reward("answer_reward", "episode_answer", "answer")
        self.format_reward = self._term_reward("format_reward", "episode_format", "format")
        self.grounding_reward = self._term_reward(
            "grounding_reward", "episode_grounding", "grounding"
        )

    def _make_env(self) -> Any:
        return self._gym.make(self.env_id, **copy.deepcopy(self.env_kwargs)).unwrapped

    def _pool(self, size: int) -> list[Any]:
        while len(self._envs) < size:
            self._envs.append(self._make_env())
        return self._envs[:size]

    # ------------------------------------------------------------------ dataset
    def rows(self, sample_ids: Iterable[Any]) -> list[dict[str, Any]]:
        """One TRL row per sample: the env's first observation, exactly as the env shows it.

        Keys: `prompt` (system + user messages, text only; TRL inserts `image` before the user
        text, as the env does), `image` (PIL, the first view), `sample_id` (str).
        """
        rows = [first_observation_row(self._envs[0], sid) for sid in sample_ids]
        for row in rows:
            self._sample_of_prompt[_prompt_key(row["prompt"], row["image"])] = row["sample_id"]
        return rows

    def dataset(self, sample_ids: Iterable[Any]) -> Any:
        """`datasets.Dataset` of `rows(sample_ids)` (TRL's `train_dataset`)."""
        from datasets import Dataset

        return Dataset.from_list(self.rows(sample_ids))

    def sample_of(self, prompt: Sequence[dict[str, Any]]) -> Any:
        """The sample id of a TRL prompt (with the image TRL inserted), built by `rows`."""
        key = _prompt_key(prompt, None)
        if key not in self._sample_of_prompt:
            raise KeyError(
                "unknown prompt: build the train dataset with this adapter's dataset()/rows() so "
                "the rollout function can map prompts back to env samples"
            )
        return self._sample_of_prompt[key]

    # ------------------------------------------------------------------ replay (single turn)
    def replay(self, sample_id: Any, text: str) -> dict[str, Any]:
        """Reset to `sample_id`, step `text` once; the step's reward, terms and crop area."""
        key = (str(sample_id), text)
        if key in self._replays:
            self._replays.move_to_end(key)
            return self._replays[key]
        env = self._envs[0]
        env.reset(options={"sample_id": sample_id})
        _, reward, terminated, truncated, info = env.step(text)
        terms = info.get("reward_terms", {})
        fmt = float(terms.get("format", 0.0))
        if not (terminated or truncated):  # the env pays format when the episode ends: the
            # one turn replayed is the whole episode here, so its own format is the mean
            fmt = float(info.get("action_kind") == "crop" and info.get("action_error") is None)
            reward += env.unwrapped.reward_weights.get("format", 0.0) * fmt
        result = {
            "reward": float(reward),
            "answer": float(terms.get("answer", 0.0)),
            "format": fmt,
            "grounding": float(info.get("crop_iou") or 0.0)
            if info.get("action_kind") == "crop"
            else float(terms.get("grounding", 0.0)),
            "rel_area": math.nan
            if info.get("crop_rel_area") is None
            else float(info["crop_rel_area"]),
        }
        self._replays[key] = result
        while len(self._replays) > self._replay_cache_size:
            self._replays.popitem(last=False)
        return result

    # ------------------------------------------------------------------ reward functions
    def _term_reward(self, name: str, episode_key: str, replay_key: str) -> RewardFunc:
        def reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            if kwargs.get(episode_key) is not None:
                return [float(v) for v in kwargs[episode_key]]
            sample_ids = kwargs.get("sample_id")
            if sample_ids is None:
                raise ValueError(
                    f"{name} needs the dataset column 'sample_id' (use TRLEnvAdapter.dataset)"
                )
            return [
                self.replay(s, completion_text(c))[replay_key]
                for s, c in zip(sample_ids, completions, strict=True)
            ]

        reward.__name__ = reward.__qualname__ = name
        reward.__doc__ = (
            f"TRL reward: the episode's `{replay_key}` ({episode_key} from the rollout function), "
            "or the env's value for the completion replayed as the first action."
        )
        return reward

    def srpo_reward(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        """SRPO advantages as rewards (use with `scale_rewards="none"`; see the module docstring).

        Groups are TRL's (`trl_group_ids`): set `self.num_generations` to the trainer's
        `GRPOConfig.num_generations`; options of `agents.algos.srpo` go in `self.srpo_options`.

        Raises:
            ValueError: `self.num_generations` unset, or the completions are not whole groups.
        """
        if self.num_generations is None:
            raise ValueError(
                "TRLEnvAdapter.srpo_reward groups completions as TRL does: set "
                "adapter.num_generations = GRPOConfig.num_generations first"
            )
        rewards = self.env_reward(completions, **kwargs)
        if kwargs.get("episode_rel_area") is not None:
            areas = [float(a) for a in kwargs["episode_rel_area"]]
        else:
            areas = [
                self.replay(s, completion_text(c))["rel_area"]
                for s, c in zip(kwargs["sample_id"], completions, strict=True)
            ]
        return srpo_by_group(
            rewards,
            kwargs["sample_id"],
            areas,
            self.num_generations,
            **getattr(self, "srpo_options", {}),
        )

    def reward_funcs(self, *names: str) -> list[RewardFunc]:
        """Reward functions by name (default: `env_reward`)."""
        names = names or ("env_reward",)
        return [getattr(self, n) for n in names]

    # ------------------------------------------------------------------ rollout function
    def _policy(self, trainer: Any) -> Any:
        from agents.policies.hf import HFPolicy

        model = trainer.accelerator.unwrap_model(trainer.model)
        policy = self._policies.get(id(model))
        if policy is None:
            kwargs = dict(self.policy_kwargs)
            kwargs.setdefault("temperature", float(getattr(trainer, "temperature", 1.0) or 1.0))
            kwargs.setdefault("top_p", float(getattr(trainer, "top_p", 1.0) or 1.0))
            kwargs.setdefault("top_k", int(getattr(trainer, "top_k", 0) or 0))
            kwargs.setdefault(
                "max_new_tokens", int(getattr(trainer, "max_completion_length", 256) or 256)
            )
            policy = (self.policy_cls or HFPolicy).from_model(
                model, trainer.processing_class, **kwargs
            )
            self._policies = {id(model): policy}
        return policy

    def rollout_func(
        self, prompts: Sequence[Sequence[dict[str, Any]]], trainer: Any
    ) -> dict[str, list]:
        """TRL `rollout_func`: one whole episode per prompt with the trainer's current model.

        Returns:
            `prompt_ids` (the first prompt's tokens, image pads expanded, as TRL's processor
            tokenizes it), `completion_ids` and `logprobs` (the FIRST assistant turn), and per
            completion the extra fields `episode_reward`, `episode_answer`, `episode_format`,
            `episode_grounding` (sums over the episode's turns), `episode_rel_area` (first
            crop's relative area, NaN without a crop), `episode_turns`, `episode_correct`.
        """
        from agents.rollout import RolloutJob, run_jobs

        policy = self._policy(trainer)
        jobs = [RolloutJob(self.sample_of(p), group_id=i) for i, p in enumerate(prompts)]
        trajectories = run_jobs(self._pool(len(jobs)), policy, jobs)
        out: dict[str, list] = {
            k: []
            for k in (
                "prompt_ids",
                "completion_ids",
                "logprobs",
                "episode_reward",
                "episode_answer",
                "episode_format",
                "episode_grounding",
                "episode_rel_area",
                "episode_turns",
                "episode_correct",
            )
        }
        for traj in trajectories:
            first = traj.turns[0].generation
            out["prompt_ids"].append(policy.prompt_token_ids(traj.messages[:2]))
            out["completion_ids"].append(list(first.token_ids))
            out["logprobs"].append(list(first.logprobs))
            sums = sum_reward_terms(turn.reward_terms for turn in traj.turns)
            out["episode_reward"].append(traj.total_reward)
            out["episode_answer"].append(sums["answer"])
            out["episode_format"].append(sums["format"])
            out["episode_grounding"].append(sums["grounding"])
            out["episode_rel_area"].append(traj.first_crop_rel_area)
            out["episode_turns"].append(len(traj.turns))
            out["episode_correct"].append(bool(traj.correct))
        return out
