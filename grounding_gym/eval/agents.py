"""What the harness evaluates: the batched `Agent` protocol, a registry of agents by name, and
the adapter that turns any `agents` policy into an `Agent`.

An agent maps a batch of observations (one per env) to one action text per env::

    texts = agent.act(observations, infos)   # list[dict], list[dict] -> list[str]

The harness adds two keys to every info it hands to an agent: `episode` (the evaluation's
episode index, deterministic from the seed) and `sample_index` (the index of the episode's sample
in `env.dataset`). Scripted agents use them to seed themselves and to look up the `Sample`.

Agents are built by name: `make_agent(name, env, **kwargs)` calls the factory registered with
`register_agent(name, factory)`; a factory receives the *unwrapped* env first (so scripted agents
can read `env.dataset`, `env.max_turns`, `env.min_crop`). A factory may be a callable or a lazy
`"module:attr"` string, which is how the built-in agents of the `agents` package are registered
here without `grounding_gym` importing `agents` (or torch) at import time. A name of the form
`"module:attr"` that is not registered is imported directly.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from grounding_gym.actions import format_crop
from grounding_gym.geometry import Box, from_original, round_outward
from grounding_gym.validation import check_call_kwargs, did_you_mean

__all__ = [
    "Agent",
    "AgentUnavailableError",
    "AgentSpec",
    "PolicyAgent",
    "action_frame",
    "crop_action_text",
    "frame_bounds",
    "get_agent_spec",
    "import_entry_point",
    "list_agents",
    "make_agent",
    "register_agent",
]


@runtime_checkable
class Agent(Protocol):
    """A batched evaluation agent.

    `act` receives one observation (`image` uint8 (h, w, 3), `dialogue` str) and one info per
    env that is mid-episode, in the same order, and returns one action text per env. Infos carry
    the env's keys (`turn`, `view_box`, `view_size`, `coord_frame`, `crops`, ...) plus the
    harness's `episode` and `sample_index`. An agent must not rely on which env slot an episode
    runs in: with `num_envs > 1` slots are refilled as episodes end. None instead of a text ends
    that episode unanswered (the `replay` agent does so when a recording runs out).
    """

    def act(
        self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str | None]: ...


AgentFactory = Callable[..., Agent]


class AgentUnavailableError(ConnectionError):
    """The agent cannot act at all (e.g. its model server is unreachable after retries).

    The harness always stops on it, whatever `on_error`: the episodes in flight are not
    written, so running the same evaluation again resumes them.
    """


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent.

    Attributes:
        name: the registry key (`--agent NAME`).
        factory: a callable `factory(env, **kwargs) -> Agent` or a lazy `"module:attr"` string.
        description: one line for `grounding-gym list agents`.
        requires: the import the factory needs beyond `grounding_gym` ("" for none), shown by
            `list` so a missing extra is obvious before a run.
    """

    name: str
    factory: AgentFactory | str
    description: str = ""
    requires: str = ""

    def load(self) -> AgentFactory:
        """The factory callable, importing a lazy `"module:attr"` entry point."""
        if callable(self.factory):
            return self.factory
        return import_entry_point(self.factory, what=f"agent {self.name!r}")


_AGENTS: dict[str, AgentSpec] = {}


def register_agent(
    name: str, factory: AgentFactory | str, *, description: str = "", requires: str = ""
) -> None:
    """Register an agent factory under `name`.

    Args:
        name: registry key; re-registering the same factory is a no-op.
        factory: `factory(env, **kwargs) -> Agent` (env unwrapped) or a `"module:attr"` string
            imported on first use.
        description: one line shown by `grounding-gym list agents`.
        requires: module the factory imports (e.g. "stable_baselines3"), for `list`.

    Raises:
        ValueError: `name` is taken by a different factory, or `factory` is not callable and not
            a `"module:attr"` string.
    """
    if not callable(factory) and not (isinstance(factory, str) and ":" in factory):
        raise ValueError(
            f"factory for agent {name!r} must be callable or 'module:attr', got {factory!r}"
        )
    existing = _AGENTS.get(name)
    if existing is not None and existing.factory != factory:
        raise ValueError(
            f"Agent {name!r} is already registered to {existing.factory!r}; pick another name"
        )
    _AGENTS[name] = AgentSpec(name, factory, description, requires)


def list_agents() -> list[str]:
    """Registered agent names, sorted."""
    return sorted(_AGENTS)


def get_agent_spec(name: str) -> AgentSpec:
    """The `AgentSpec` registered as `name`.

    Raises:
        ValueError: unknown name (lists the registered ones, with the closest match).
    """
    if name in _AGENTS:
        return _AGENTS[name]
    raise ValueError(
        f"Unknown agent {name!r}; registered: {list_agents()}.{did_you_mean(name, _AGENTS)} "
        "A 'module:attr' factory path also works."
    )


def make_agent(name: str, env: gym.Env, **kwargs: Any) -> Agent:
    """Build the agent registered as `name` (or the factory at `"module:attr"`) for `env`.

    Args:
        name: a registered name, or `"package.module:factory"`.
        env: the environment it will act in; passed unwrapped to the factory.
        **kwargs: the factory's own options (e.g. `seed`, `path`).

    Raises:
        ValueError: unknown name, an unknown agent kwarg (with the closest one), or the built
            object has no `act` method.
    """
    if name in _AGENTS:
        factory = _AGENTS[name].load()
    elif ":" in name:
        factory = import_entry_point(name, what="agent factory")
    else:
        get_agent_spec(name)  # raises with the list of names
        raise AssertionError("unreachable")
    check_call_kwargs(f"agent {name!r} (agent kwargs)", factory, kwargs, positional=1)
    agent = factory(env.unwrapped, **kwargs)
    if not callable(getattr(agent, "act", None)):
        raise ValueError(f"agent {name!r} built {type(agent).__name__}, which has no act() method")
    return agent


def import_entry_point(path: str, what: str) -> Any:
    """The object at `"module:attr"`; an ImportError names the extra to install."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs module {module_name!r}, which failed to import ({exc}). "
            "Install the extra that provides it, e.g. `pip install -e '.[agents,sb3]'`."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ValueError(f"{what}: module {module_name!r} has no attribute {attr!r}") from exc


class PolicyAgent:
    """Adapter: an `agents.policies.base.Policy` (returns `Generation`s) as an eval `Agent`.

    Args:
        policy: anything with `act(observations, infos, *, greedy) -> list[Generation]`.
        greedy: pick the mode (True, the default for evaluation) or sample.
    """

    def __init__(self, policy: Any, greedy: bool = True):
        if not callable(getattr(policy, "act", None)):
            raise ValueError(f"{type(policy).__name__} has no act() method")
        self.policy = policy
        self.greedy = greedy

    def act(
        self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        generations = self.policy.act(observations, infos, greedy=self.greedy)
        return [g.text if hasattr(g, "text") else str(g) for g in generations]


# ---------------------------------------------------------------- helpers for scripted agents

_DEFAULT_DECIMALS = {"view": 0, "original": 0, "norm1000": 0, "norm1": 3}


def action_frame(info: Mapping[str, Any]) -> tuple[Box, tuple[int, int]]:
    """`(box, size)` the next action's coordinates refer to, from an env info:
    `action_frame_box` (original px) and `action_frame_size` (w, h); the current view
    (`view_box`, `view_size`) for infos without them. Pass it to `crop_action_text`."""
    box = info.get("action_frame_box", info["view_box"])
    size = info.get("action_frame_size", info["view_size"])
    return Box(*box), (int(size[0]), int(size[1]))


def frame_bounds(frame: str, view_box: Box, view_size: tuple[int, int]) -> Box:
    """The current view's extent in `frame`: `(0, 0, w, h)` view px, `(0, 0, 1000, 1000)`,
    `(0, 0, 1, 1)`, or `view_box` for "original"."""
    if frame == "view":
        return Box(0.0, 0.0, float(view_size[0]), float(view_size[1]))
    if frame == "norm1000":
        return Box(0.0, 0.0, 1000.0, 1000.0)
    if frame == "norm1":
        return Box(0.0, 0.0, 1.0, 1.0)
    return view_box


def crop_action_text(
    box_orig: Box,
    view_box: Box,
    view_size: tuple[int, int],
    frame: str,
    decimals: int | None = None,
) -> str:
    """The crop action that makes the env crop (at least) `box_orig`.

    Maps `box_orig` (original px) into `frame` of the current view with `from_original`, rounds
    each edge outward with `round_outward` (so the crop the env cuts still contains `box_orig`:
    coverage 1), clamps to the view's extent in that frame (outward rounding of an edge lying on
    the view's border would otherwise leave the view), and formats it with `format_crop`.

    Args:
        box_orig: region to crop, original px, inside `view_box`.
        view_box, view_size: what the action's coordinates refer to, `action_frame(info)` (the
            current view, except in presets such as DeepEyes that keep the first view's frame).
        frame: the env's `coord_frame`.
        decimals: digits written; default 0 for view/original/norm1000 px, 3 for norm1.

    >>> crop_action_text(Box(10.2, 20, 30, 40.5), Box(0, 0, 200, 100), (100, 50), "view")  # edges on
    ...     # whole units also move out by one (round_outward guards against float noise)
    '<crop>[5, 9, 16, 21]</crop>'
    """
    if decimals is None:
        decimals = _DEFAULT_DECIMALS.get(frame, 0)
    in_frame = round_outward(from_original(box_orig, frame, view_box, view_size), decimals)  # type: ignore[arg-type]
    bounds = frame_bounds(frame, view_box, view_size)
    clamped = (
        max(in_frame.x1, bounds.x1),
        max(in_frame.y1, bounds.y1),
        min(in_frame.x2, bounds.x2),
        min(in_frame.y2, bounds.y2),
    )
    if not (clamped[0] < clamped[2] and clamped[1] < clamped[3]) or not all(
        map(math.isfinite, clamped)
    ):
        raise ValueError(
            f"box {box_orig.as_tuple()} (original px) lies outside the view {view_box.as_tuple()}"
        )
    return format_crop(clamped, decimals)


# ---------------------------------------------------------------- built-in agents (lazy)

_HEURISTIC = "agents.baselines.heuristic"
for _name, _attr, _text in (
    ("no-crop", "NoCropAgent", "answer from the first view (no zoom)"),
    ("random-crop", "RandomCropAgent", "one random crop, then answer"),
    (
        "sliding-window",
        "SlidingWindowAgent",
        "coarse-to-fine tiling: crop the most salient tile of each view until native resolution, then answer",
    ),
    ("oracle-crop", "OracleCropAgent", "crop the ground-truth box (coverage 1), then answer"),
    ("fixed-answer", "FixedAnswerAgent", "answer a fixed letter at once (chance level)"),
):
    register_agent(_name, f"{_HEURISTIC}:{_attr}", description=_text)
register_agent(
    "hf",
    "agents.baselines.lvlm:make_hf_agent",
    description="a local Qwen2.5-VL-style checkpoint through transformers, greedy (agent kwargs model=DIR, dtype=, device=)",
    requires="transformers",
)
register_agent(
    "vllm",
    "agents.baselines.lvlm:make_vllm_agent",
    description="a Qwen2.5-VL-style checkpoint through a vLLM engine, GPU only (agent kwargs model=DIR, ...)",
    requires="vllm",
)
register_agent(
    "openai",
    "grounding_gym.eval.openai_agent:OpenAIAgent",
    description="any model behind an OpenAI-compatible chat endpoint: vLLM, SGLang, transformers "
    "serve, hosted APIs (agent kwargs base_url=, model=, max_tokens=, temperature=, ...)",
    requires="openai",
)
register_agent(
    "replay",
    "grounding_gym.eval.replay:ReplayAgent",
    description="replay recorded chat conversations from a JSONL file (agent kwargs path=, match=id|image+question)",
)
register_agent(
    "sb3-ppo",
    "agents.baselines.sb3_ppo:make_agent",
    description="a trained SB3 PPO model through the wrappers (agent kwarg path=model.zip)",
    requires="stable_baselines3",
)
register_agent(
    "policy-checkpoint",
    "agents.baselines.checkpoint:make_agent",
    description="a trained agents policy from a trainer checkpoint (agent kwarg path=DIR)",
    requires="torch",
)
