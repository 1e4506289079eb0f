"""Policies by name: `make_policy("tiny", **kwargs)`, imported lazily.

Entries are `"module:attribute"` strings, so `import agents.policies` costs nothing and a policy
whose dependencies are missing (transformers, vLLM) fails only when it is built, with the import
error. Register your own with `register_policy("mine", "my_pkg.policy:MyPolicy")` or a callable.
Every policy implements `agents.policies.base.Policy`; trainers also need it to be a
`torch.nn.Module` (parameters, `state_dict`). A factory may carry a pre-build check,
`factory.check_env(env, **kwargs)`, that refuses an env it cannot serve before anything loads
(`check_policy_env`; the trainer calls it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.policies.base import Generation, Policy, ScaleBehaviour, Trajectory, Turn
from grounding_gym.registry import Registry

__all__ = [
    "POLICIES",
    "Generation",
    "Policy",
    "ScaleBehaviour",
    "Trajectory",
    "Turn",
    "check_policy_env",
    "list_policies",
    "make_policy",
    "register_policy",
]

POLICIES: Registry[Callable[..., Any]] = Registry("policy")
"""Every policy factory by name (`"module:attr"` or a callable)."""
POLICIES.register("tiny", "agents.policies.tiny:TinyPolicy")
POLICIES.register("hf", "agents.policies.hf:HFPolicy", requires="transformers")
POLICIES.register("vllm", "agents.policies.vllm_engine:make_vllm_policy", requires="vllm")


def register_policy(name: str, target: str | Callable[..., Any]) -> None:
    """Register a policy factory under `name` ("module:attribute" string or a callable).

    Raises:
        ValueError: `name` is taken by a different target.
    """
    POLICIES.register(name, target)


def list_policies() -> list[str]:
    """Registered policy names."""
    return POLICIES.names()


def check_policy_env(name: str, env: Any, **kwargs: Any) -> None:
    """Run the pre-build check of the policy registered as `name` (its factory's `check_env`)
    on `env` with the policy's `kwargs`; a factory without one accepts every env.

    Raises:
        ValueError: the policy, built with `kwargs`, could not serve `env` (the check says why).
    """
    check = getattr(POLICIES.get(name), "check_env", None)
    if check is not None:
        check(env, **kwargs)


def make_policy(name: str, **kwargs: Any) -> Any:
    """Build the policy registered as `name` with `kwargs`.

    Raises:
        ValueError: unknown name (with the registered names and a close match).
        ImportError: the policy's module (or one of its dependencies) cannot be imported.
    """
    return POLICIES.get(name)(**kwargs)
