"""TRL `environment_factory`: a grounding-gym env as named tools for `trl.GRPOTrainer` (TRL 1.16).

`GroundingToolEnv` wraps one env (any id with the GroundedVQA API, any env kwargs). TRL builds
one instance per rollout, calls `reset(**row)` with the dataset row, and exposes the public
methods as tools, their schema read from the type hints and docstrings:

* `crop(x1, y1, x2, y2)` steps the env with that crop and returns the new view as an image
  content block (plus the env's text for the turn). TRL appends it to the conversation as a
  tool message, generates the next turn with it, and puts the image in the TRAINING forward
  pass as well (each episode's `pixel_values`: its first view, then its crops), so all turns
  are trained with the images they followed, the tool-result tokens masked out of the loss.
* `answer(choice)` steps the env with the answer; the episode ends.

A bad argument (not a number, a call after the episode ended) returns an error text to the
model; a bad box follows the env's `invalid_box` rule (clipped, or refused with the env's
message). Nothing raises into TRL's loop.

Rewards. The reward functions here read TRL's `environments` kwarg (one `GroundingToolEnv` per
completion): `env_reward` (the episode return), `answer_reward`, `format_reward`,
`grounding_reward` (the env's own reward terms, summed over the episode's steps; the env pays
grounding on the last step, so an episode the model leaves without calling `answer` earns its
format terms only), the scale metadata `crop_rel_area` (the first crop's area / image area,
`None` without a crop) and `target_rel_area`, and `srpo_reward` (SRPO advantages within each
of TRL's groups of `num_generations` completions, as `TRLEnvAdapter.srpo_reward`;
`make_srpo_reward(num_generations, **options)` for SRPO options; use it alone with
`GRPOConfig(scale_rewards="none")`). The env defines no `get_reward`: TRL would add it with a
fixed weight 1, which breaks `srpo_reward`'s equality with TRL's advantage.

Completion budget. TRL runs a tool before it checks the budget: a result that would overflow
`max_completion_length` is dropped from the conversation (the episode stops there), but the env
has taken the step and its terms count. The reward functions warn when that happened
(`dropped_tool_results`); `tool_completion_budget(env_kwargs)` is a budget that holds
`max_turns` turns, image tokens included (4,480 tokens for 4 turns at the env's default 1280
image tokens per view).

Processor. TRL needs a chat template that renders tool calls and tool messages. Qwen2.5-VL's
processor template does not (TRL 1.16 says so too); `tool_calling_processor(processor)` swaps
it for Qwen3-VL's, which TRL ships and parses: the same image tokens and the same Hermes-style
`<tool_call>{"name": ..., "arguments": ...}</tool_call>` / `<tool_response>` turns the Qwen2.5
language models were tuned on. It also makes the image processor return tensors, without
which TRL 1.16's tool loop crashes on a batch whose first tool results carry no image.

    env_kwargs = {"max_turns": 4}
    trainer = GRPOTrainer(
        model=model, processing_class=tool_calling_processor(processor),  # padding_side="left"
        reward_funcs=tool_reward_funcs("env_reward", "grounding_reward"),
        environment_factory=partial(GroundingToolEnv, "GroundedVQA-HR-v0", env_kwargs),
        train_dataset=tool_dataset(GroundingToolEnv("GroundedVQA-HR-v0", env_kwargs), range(256)),
        args=GRPOConfig(num_generations=8, max_completion_length=512, max_tool_calling_iterations=4,
        ...),
    )

See examples/trl_environment_factory.py for a runnable script.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agents.integrations.trl import first_observation_row, srpo_by_group
from grounding_gym.actions import format_answer, format_crop
from grounding_gym.envs.grounded_vqa import message_images
from grounding_gym.rewards import sum_reward_terms

__all__ = [
    "TOOL_REWARDS",
    "TOOL_SYSTEM_PROMPT",
    "GroundingToolEnv",
    "make_srpo_reward",
    "dropped_tool_results",
    "tool_completion_budget",
    "tool_dataset",
    "tool_env_kwargs",
    "tool_reward_funcs",
    "tool_calling_processor",
]

TOOL_SYSTEM_PROMPT = (
    "You answer questions about an image. Call the tool `crop` to see a region at higher "
    "resolution, as often as you need, then call the tool `answer` with your answer. The tools "
    "replace the <crop>...</crop> and <answer>...</answer> replies the user's text mentions."
)
"""System prompt of the tool envs (the env kwarg `system_prompt` overrides it)."""

CROP_DECIMALS = 4
"""Digits kept of a non-integer crop coordinate when it is written as the env's crop action."""


class GroundingToolEnv:
    """One grounding-gym env as a TRL `environment_factory` environment.

    Public methods are TRL tools (`crop`, `answer`); the episode's state is read through
    properties (TRL exposes functions only), by the reward functions of this module.

    Args:
        env_id: a Gymnasium id with the GroundedVQA API (`reset(options={"sample_id"})`,
            crop/answer text actions, `info["reward_terms"]`), e.g. "GroundedVQA-HR-v0".
        env_kwargs: kwargs of `gym.make(env_id, ...)` (`tool_env_kwargs` adds the tool system
            prompt). Match the processor's pixel budget (`min_pixels`, `max_pixels`,
            `patch_size`) so that the processor never resizes a view.
        env_url: a `grounding-gym serve` URL: the episode runs in a
            `grounding_gym.remote.RemoteEnv` session of that server instead of in the trainer's
            process, a new session per episode (`reset`). The server must serve `env_id` with
            `tool_env_kwargs(...)` as its `--env-kwargs` (then `env_kwargs` is not given here),
            and allow one session per environment TRL builds (`--max-sessions` >=
            `generation_batch_size`, on every process).

    Raises:
        ValueError: both `env_kwargs` and `env_url`, or the server serves another id.
    """

    def __init__(
        self,
        env_id: str = "GroundedVQA-HR-v0",
        env_kwargs: dict[str, Any] | None = None,
        env_url: str | None = None,
    ):
        if env_url is not None:
            if env_kwargs:
                raise ValueError(
                    f"GroundingToolEnv: env_kwargs {sorted(env_kwargs)} cannot reach the server "
                    f"at {env_url}; start it with `grounding-gym serve --env {env_id} "
                    "--env-kwargs JSON` of tool_env_kwargs(your kwargs) and pass env_url only"
                )
            from grounding_gym.remote import RemoteEnv

            self._env: Any = RemoteEnv(env_url, env_id=env_id)
        else:
            import gymnasium as gym

            import grounding_gym  # noqa: F401  (registers the ids)

            self._env = gym.make(env_id, **tool_env_kwargs(env_kwargs)).unwrapped
        self._reset_info: dict[str, Any] | None = None
        self._step_infos: list[dict[str, Any]] = []
        self._rewards: list[float] = []
        self._done = True
        self._tool_calls = 0
        self._dropped_warned = False
        self._env_id, self._env_url = env_id, env_url

    # ------------------------------------------------------------------ TRL's environment API
    def reset(self, sample_id: Any = None, **row: Any) -> str:
        """Start the episode of the row's sample; return the first user text (TRL appends it
        to the row's last user message; the row's `image` is the same first view)."""
        if sample_id is None:
            raise ValueError(
                "GroundingToolEnv.reset needs the dataset column 'sample_id' (build the train "
                f"dataset with tool_dataset); the row has {sorted(row)}"
            )
        if self._env_url is not None:  # a fresh session: TRL reuses its envs across training
            # steps, and a session left idle that long may have expired on the server
            from grounding_gym.remote import RemoteEnv

            self._env.close()
            self._env = RemoteEnv(self._env_url, env_id=self._env_id)
        obs, self._reset_info = self._env.reset(options={"sample_id": sample_id})
        self._step_infos, self._rewards, self._done = [], [], False
        self._tool_calls, self._dropped_warned = 0, False
        return obs["dialogue"]

    def crop(self, x1: float, y1: float, x2: float, y2: float) -> list[dict[str, Any]] | str:
        """Zoom in: see the region (x1, y1)-(x2, y2) of the image you were shown last, at higher
        resolution.

        Coordinates are in the frame the question states (by default pixels of the image you
        were shown last, origin at its top-left corner, x to the right, y down); x1 < x2, y1 < y2.

        Args:
            x1: left edge of the region.
            y1: top edge of the region.
            x2: right edge of the region.
            y2: bottom edge of the region.

        Returns:
            The zoomed view (an image) and a text saying which region of the original it shows.
        """
        self._tool_calls += 1
        if self._done:
            return self._over_message()
        try:
            action = _crop_action((x1, y1, x2, y2))
        except (TypeError, ValueError):
            return (
                f"Error: crop needs four numbers x1, y1, x2, y2; got {x1!r}, {y1!r}, {x2!r}, "
                f"{y2!r}."
            )
        obs, info = self._step(action)
        if (
            info["crop_box"] is None
        ):  # refused (invalid_box="reject"): the env's message, no new view
            return obs["dialogue"]
        view = self.views[
            -1
        ]  # the env's own PIL copy of the new view (in its messages), not a second one
        return [{"type": "image", "image": view}, {"type": "text", "text": obs["dialogue"]}]

    def answer(self, choice: str) -> str:
        """Give your final answer; the episode ends.

        Args:
            choice: the option's letter (e.g. "B") for multiple-choice questions, else a short
            answer.

        Returns:
            A confirmation, or what was wrong with the answer.
        """
        self._tool_calls += 1
        if self._done:
            return self._over_message()
        obs, info = self._step(format_answer(str(choice)))
        if info["action_kind"] != "answer":
            return obs["dialogue"]
        return f"Answer {info['answer']!r} recorded; the episode is over."

    # ------------------------------------------------------------------ episode state (read-only)
    @property
    def env(self) -> Any:
        """The wrapped grounding-gym env (unwrapped), or its `RemoteEnv`."""
        return self._env

    @property
    def sample_id(self) -> str:
        """Id of the episode's sample."""
        return self._info_or_raise()["sample_id"]

    @property
    def done(self) -> bool:
        """Whether the episode ended (answered, or out of turns)."""
        return self._done

    @property
    def step_infos(self) -> list[dict[str, Any]]:
        """The env's `info` of each step this episode (a new list; the dicts are the env's)."""
        return list(self._step_infos)

    @property
    def tool_calls(self) -> int:
        """Tool calls this episode (each gets a result, unless TRL drops it for length)."""
        return self._tool_calls

    @property
    def episode_return(self) -> float:
        """Sum of the env's rewards over the episode's steps so far."""
        return float(sum(self._rewards))

    @property
    def reward_terms(self) -> dict[str, float]:
        """The env's reward terms (answer, format, grounding, ...) summed over the steps so far."""
        self._info_or_raise()
        return sum_reward_terms(info["reward_terms"] for info in self._step_infos)

    @property
    def crop_rel_area(self) -> float:
        """First crop's area / original image area; NaN without a crop."""
        self._info_or_raise()
        areas = (info["crop_rel_area"] for info in self._step_infos if info["crop_box"] is not None)
        return next(areas, math.nan)

    @property
    def target_rel_area(self) -> float:
        """Ground-truth box (union) area / original image area; NaN without ground truth."""
        area = self._info_or_raise()["target_rel_area"]
        return math.nan if area is None else float(area)

    @property
    def views(self) -> list[Any]:
        """The PIL images the env showed this episode: the first view, then each crop's view."""
        latest = self._step_infos[-1] if self._step_infos else self._info_or_raise()
        return message_images(latest["messages"])

    # ------------------------------------------------------------------ internals
    def _step(self, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._step_infos.append(info)
        self._rewards.append(float(reward))
        self._done = terminated or truncated
        return obs, info

    def _info_or_raise(self) -> dict[str, Any]:
        if self._reset_info is None:
            raise RuntimeError(
                "GroundingToolEnv has no episode yet: call reset(sample_id=...) first"
            )
        return self._reset_info

    def _over_message(self) -> str:
        answered = bool(self._step_infos) and self._step_infos[-1]["action_kind"] == "answer"
        ended = "an answer was given" if answered else "no turns are left"
        return f"Error: the episode is over ({ended}); no further tool calls are taken."


def tool_completion_budget(
    env_kwargs: dict[str, Any] | None = None, max_turns: int | None = None, turn_tokens: int = 160
) -> int:
    """`GRPOConfig.max_completion_length` that holds a whole tool episode, tokens.

    (max_turns - 1) crop results of at most `max_pixels / 28^2` image tokens each plus
    `turn_tokens` of text around each (the tool call, the tool message's text and chat
    markup), and `turn_tokens` for the final answer call. With the env's default budget
    (1280 image tokens per view) and `max_turns=4` this is 4,480.

    Args:
        env_kwargs: the env's kwargs (`max_pixels`, `patch_size`, `max_turns`).
        max_turns: overrides `env_kwargs["max_turns"]` (the env's default, 5, without either).
        turn_tokens: text tokens per turn, generated and tool text together.
    """
    from grounding_gym.envs.grounded_vqa import DEFAULT_MAX_PIXELS

    kwargs = env_kwargs or {}
    turns = int(max_turns or kwargs.get("max_turns", 5))
    patch = int(kwargs.get("patch_size") or 28)
    image_tokens = int(kwargs.get("max_pixels", DEFAULT_MAX_PIXELS)) // (patch * patch)
    return (turns - 1) * (image_tokens + turn_tokens) + turn_tokens


def tool_env_kwargs(env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """`env_kwargs` with `TOOL_SYSTEM_PROMPT` as the default `system_prompt`: the kwargs of a
    tool env, in process or as `grounding-gym serve --env-kwargs` for `env_url`."""
    return {"system_prompt": TOOL_SYSTEM_PROMPT, **(env_kwargs or {})}


def _crop_action(box: Sequence[Any]) -> str:
    """The env's crop action text for tool arguments (numbers, or strings of numbers)."""
    values = [float(v) for v in box]
    decimals = 0 if all(v.is_integer() for v in values) else CROP_DECIMALS
    return format_crop(values, decimals=decimals)


def tool_dataset(env: GroundingToolEnv, sample_ids: Iterable[Any]) -> Any:
    """`datasets.Dataset` for `GRPOTrainer(train_dataset=...)`, one row per sample.

    Columns: `prompt` (the env's system message and an EMPTY user message, which TRL fills with
    `reset`'s text), `image` (PIL, the first view; TRL puts it before the user text, as the env
    does), `sample_id` (str, read by `reset`).
    """
    from datasets import Dataset

    rows = []
    for sid in sample_ids:
        row = first_observation_row(env.env, sid)
        system = next(m for m in row["prompt"] if m["role"] == "system")
        rows.append({**row, "prompt": [system, {"role": "user", "content": ""}]})
    return Dataset.from_list(rows)


def tool_calling_processor(processor: Any) -> Any:
    """Make a VLM processor ready for TRL 1.16's tool loop; return it (changed in place).

    1. Chat template: one that renders tool calls is kept (TRL's `supports_tool_calling`).
       Qwen2.5-VL's (and Qwen2-VL's) processor template is replaced by Qwen3-VL's as TRL ships
       it: identical image tokens, plus Qwen's Hermes-style tool turns, which TRL parses.
    2. Image tensors: the image processor's default `return_tensors` becomes "pt". TRL tokenizes
       `environment_factory` prompts one by one and concatenates their image fields only when
       they are tensors; left as numpy (the PIL backend's default), its tool loop crashes at the
       first iteration where no tool result of the batch carries an image, e.g. when every
       rollout calls `answer` first (`'list' object has no attribute 'prod'` in
       `split_pixel_values_by_grid`).

    Raises:
        ValueError: a chat template without tool support that is not Qwen2/2.5-VL's.
    """
    from trl.chat_template_utils import (
        qwen2_5_vl_chat_template,
        qwen3_vl_chat_template,
        supports_tool_calling,
    )

    if not supports_tool_calling(processor):
        if processor.chat_template != qwen2_5_vl_chat_template:
            raise ValueError(
                "the processor's chat template cannot render tool calls, which TRL's "
                "environment_factory "
                "needs; set processor.chat_template to one that can (see trl.chat_template_utils)"
            )
        processor.chat_template = qwen3_vl_chat_template
    processor.image_processor.return_tensors = "pt"
    return processor


# ---------------------------------------------------------------------- reward functions
def _environments(kwargs: dict[str, Any], completions: Sequence[Any]) -> list[GroundingToolEnv]:
    """TRL's `environments` kwarg; warns (once per episode) about dropped tool results."""
    environments = kwargs.get("environments")
    if environments is None:
        raise ValueError(
            "this reward reads TRL's `environments` kwarg: train with "
            "environment_factory=GroundingToolEnv"
        )
    _warn_dropped_tool_results(completions, environments)
    return environments


def dropped_tool_results(completion: Any, env: GroundingToolEnv) -> int:
    """Tool calls of `env`'s episode whose result is missing from TRL's `completion` (its
    message list): TRL runs a tool, then drops the result if it would overflow
    `max_completion_length` (or the model's context). The env took those steps."""
    if not isinstance(completion, list):
        return 0
    shown = sum(1 for m in completion if isinstance(m, dict) and m.get("role") == "tool")
    return max(env.tool_calls - shown, 0)


def _warn_dropped_tool_results(completions: Sequence[Any], environments: Sequence[Any]) -> None:
    dropped = [
        dropped_tool_results(c, env)
        for c, env in zip(completions, environments, strict=False)
        if not env._dropped_warned
    ]
    for env in environments:
        env._dropped_warned = True
    episodes = sum(1 for d in dropped if d)
    if episodes:
        warnings.warn(
            f"{episodes} of {len(dropped)} episodes lost {sum(dropped)} tool result(s): TRL "
            "dropped them for the completion budget after the env had taken the step (the "
            "episode stops there; its reward terms count). Raise GRPOConfig.max_completion_length "
            "to tool_completion_budget(env_kwargs) or lower max_turns / max_pixels.",
            stacklevel=3,
        )


def _env_reward_func(
    name: str, value: Callable[[GroundingToolEnv], float | None], doc: str
) -> Callable[..., list]:
    def reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return [value(env) for env in _environments(kwargs, completions)]

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"TRL reward: {doc}"
    return reward


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def make_srpo_reward(num_generations: int, **options: Any) -> Callable[..., list]:
    """TRL reward `srpo_reward`: each episode's SRPO advantage (its return, its first crop's
    scale) within its TRL group (`agents.integrations.trl.trl_group_ids`); use it alone with
    `scale_rewards="none"` (see the module docstring).

    Args:
        num_generations: the trainer's `GRPOConfig.num_generations`.
        options: kwargs of `agents.algos.srpo` (`bin_edges`, `no_box`, ...).
    """

    def srpo_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        environments = _environments(kwargs, completions)
        rewards = [env.episode_return for env in environments]
        areas = [env.crop_rel_area for env in environments]
        ids = [env.sample_id for env in environments]
        return srpo_by_group(rewards, ids, areas, num_generations, **options)

    return srpo_reward


TOOL_REWARDS: dict[str, Callable[..., list]] = {
    "env_reward": _env_reward_func("env_reward", lambda e: e.episode_return, "the episode return."),
    "answer_reward": _env_reward_func(
        "answer_reward", lambda e: e.reward_terms["answer"], "the answer term (1 = correct)."
    ),
    "format_reward": _env_reward_func(
        "format_reward",
        lambda e: e.reward_terms["format"],
        "the episode's format term (the mean over its turns).",
    ),
    "grounding_reward": _env_reward_func(
        "grounding_reward",
        lambda e: e.reward_terms["grounding"],
        "the grounding term (IoU of the crops, last step).",
    ),
    "crop_rel_area": _env_reward_func(
        "crop_rel_area",
        lambda e: _or_none(e.crop_rel_area),
        "first crop's area / image area (None: no crop).",
    ),
    "target_rel_area": _env_reward_func(
        "target_rel_area",
        lambda e: _or_none(e.target_rel_area),
        "target area / image area (None: no ground truth).",
    ),
}
"""Reward functions by name; scale metadata (`*_rel_area`) is for logging with weight 0.
`srpo_reward` needs the trainer's `num_generations`: `tool_reward_funcs` or `make_srpo_reward`."""


def tool_reward_funcs(*names: str, num_generations: int | None = None) -> list[Callable[..., list]]:
    """Reward functions of `TOOL_REWARDS` (or `srpo_reward`) by name (default: `env_reward`).

    Args:
        names: reward names.
        num_generations: the trainer's `GRPOConfig.num_generations`; needed by `srpo_reward`.

    Raises:
        ValueError: an unknown name (the known ones are listed), or `srpo_reward` without
            `num_generations`.
    """
    names = names or ("env_reward",)
    unknown = [n for n in names if n not in TOOL_REWARDS and n != "srpo_reward"]
    if unknown:
        known = sorted([*TOOL_REWARDS, "srpo_reward"])
        raise ValueError(f"unknown reward {unknown}; choose from {known}")
    if "srpo_reward" in names and num_generations is None:
        raise ValueError(
            "srpo_reward groups completions as TRL does: pass "
            "num_generations=GRPOConfig.num_generations"
        )
    return [
        make_srpo_reward(num_generations) if n == "srpo_reward" else TOOL_REWARDS[n]  # type: ignore[arg-type]
        for n in names
    ]
