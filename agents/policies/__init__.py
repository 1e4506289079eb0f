"""Policies by name: `make_policy("tiny", **kwargs)`, imported lazily.

Entries are `"module:attribute"` strings, so `import agents.policies` costs nothing and a policy
whose dependencies are missing (transformers, vLLM) fails only when it is built, with the import
error. Register your own with `register_policy("mine", "my_pkg.policy:MyPolicy")` or a callable.
Every policy implements `agents.policies.base.Policy`; trainers also need it to be a
`torch.nn.Module` (parameters, `state_dict`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from agents.policies.base import Generation, Policy, Trajectory, Turn

__all__ = [
    "Generation",
    "Policy",
    "Trajectory",
    "Turn",
    "list_policies",
    "make_policy",
    "register_policy",
]

_POLICIES: dict[str, str | Callable[..., Any]] = {
    "tiny": "agents.policies.tiny:TinyPolicy",
    "hf": "agents.policies.hf:HFPolicy",
}


def register_policy(name: str, target: str | Callable[..., Any]) -> None:
    """Register a policy factory under `name` ("module:attribute" string or a callable).

    Raises:
        ValueError: `name` is taken by a different target.
    """
    old = _POLICIES.get(name)
    if old is not None and old != target:
        raise ValueError(f"Policy {name!r} is already registered to {old!r}; pick another name")
    _POLICIES[name] = target


def list_policies() -> list[str]:
    """Registered policy names."""
    return sorted(_POLICIES)


def make_policy(name: str, **kwargs: Any) -> Any:
    """Build the policy registered as `name` with `kwargs`.

    Raises:
        ValueError: unknown name (with the registered names and a close match).
        ImportError: the policy's module (or one of its dependencies) cannot be imported.
    """
    if name not in _POLICIES:
        close = difflib.get_close_matches(str(name), list(_POLICIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown policy {name!r}.{hint} Registered: {list_policies()}.")
    target = _POLICIES[name]
    if isinstance(target, str):
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(
                f"policy {name!r} needs {module_name!r}, which failed to import: {err}"
            ) from err
        target = getattr(module, attr)
    return target(**kwargs)
