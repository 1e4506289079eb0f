"""What the harness evaluates: the batched `Agent` protocol, a registry of agents by name, and
the adapter that turns a policy (anything that returns `Generation`s) into an `Agent`.

An agent maps a batch of observations (one per env) to one action text per env::

    texts = agent.act(observations, infos)   # list[dict], list[dict] -> list[str]

The harness adds two keys to every info it hands to an agent: `episode` (the evaluation's
episode index, deterministic from the seed) and `sample_index` (the index of the episode's sample
in `env.dataset`). Scripted agents use them to seed themselves and to look up the `Sample`.

Agents are built by name: `make_agent(name, env, **kwargs)` calls the factory registered with
`register_agent(name, factory)`; a factory receives the *unwrapped* env first (so scripted agents
can read `env.dataset`, `env.max_turns`, `env.min_crop`). A factory may be a callable or a lazy
`"module:attr"` string. Other packages add theirs through a plugin entry point
(`grounding_gym.plugins`), loaded on the first lookup, so importing this module imports no
torch. A name of the form `"module:attr"` that is not registered is imported directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from grounding_gym.plugins import load_plugins
from grounding_gym.registry import Entry, Registry, import_entry_point
from grounding_gym.validation import check_call_kwargs

__all__ = [
    "Agent",
    "AGENTS",
    "AgentUnavailableError",
    "PolicyAgent",
    "get_agent_spec",
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


AGENTS: Registry[AgentFactory] = Registry(
    "agent", how_to_add="A 'module:attr' factory path also works."
)
"""Every eval agent factory by name; `register_agent` adds one."""


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
    if not callable(factory) and not isinstance(factory, str):
        raise ValueError(
            f"factory for agent {name!r} must be callable or 'module:attr', got {factory!r}"
        )
    AGENTS.register(name, factory, description=description, requires=requires)


def list_agents() -> list[str]:
    """Registered agent names (plugins' included), sorted."""
    load_plugins()
    return AGENTS.names()


def get_agent_spec(name: str) -> Entry[AgentFactory]:
    """The registry `Entry` of the agent `name` (`target`, `description`, `requires`).

    Raises:
        ValueError: unknown name (lists the registered ones, with the closest match).
    """
    load_plugins()
    return AGENTS.entry(name)


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
    load_plugins()
    if name not in AGENTS and ":" in name:
        factory = import_entry_point(name, what="agent factory")
    else:
        factory = AGENTS.get(name)
    check_call_kwargs(f"agent {name!r} (agent kwargs)", factory, kwargs, positional=1)
    agent = factory(env.unwrapped, **kwargs)
    if not callable(getattr(agent, "act", None)):
        raise ValueError(f"agent {name!r} built {type(agent).__name__}, which has no act() method")
    return agent


class PolicyAgent:
    """Adapter: a policy (its `act` returns `Generation`s with a `.text`) as an eval `Agent`.

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
    description="replay recorded chat conversations from a JSONL file (agent kwargs path=, "
    "match=id|image+question)",
)
