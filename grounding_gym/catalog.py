"""`grounding-gym list`: what is registered — env ids, datasets, eval agents, and the sections
plugins add (`grounding_gym.plugins`; the training package adds "algorithms").

A section whose lister does not import (an extra not installed) prints why instead of its items.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from grounding_gym.plugins import load_plugins
from grounding_gym.registry import Registry
from grounding_gym.validation import did_you_mean

SectionLister = Callable[[], Sequence[Any]]
SECTIONS: Registry[SectionLister] = Registry("section")
"""Section name -> `lister() -> [{"name": ...}, ...]` (or a list of names)."""


def list_envs() -> list[dict[str, Any]]:
    """The grounding-gym env ids with their entry point and default kwargs."""
    import gymnasium as gym

    from grounding_gym.envs import ENV_SPECS, register_envs

    register_envs()
    out = []
    for env_id in sorted(ENV_SPECS):
        spec = gym.spec(env_id)
        out.append(
            {"name": env_id, "entry_point": str(spec.entry_point), "kwargs": dict(spec.kwargs)}
        )
    return out


def list_dataset_names() -> list[dict[str, Any]]:
    """Registered dataset names (built-in modules imported first)."""
    from grounding_gym.data import list_datasets

    return [{"name": name} for name in list_datasets()]


def list_agent_specs() -> list[dict[str, Any]]:
    """Registered eval agents: name, description, extra import needed and whether it imports."""
    from grounding_gym.eval.agents import get_agent_spec, list_agents

    out = []
    for name in list_agents():
        spec = get_agent_spec(name)
        available = True
        if spec.requires:
            available = importlib.util.find_spec(spec.requires) is not None
        out.append(
            {
                "name": name,
                "description": spec.description,
                "requires": spec.requires,
                "available": available,
            }
        )
    return out


SECTIONS.register("envs", list_envs, description="env ids")
SECTIONS.register("datasets", list_dataset_names, description="dataset names")
SECTIONS.register("agents", list_agent_specs, description="eval agents")


def section_items(name: str) -> list[dict[str, Any]] | str:
    """The items of section `name` as dicts with a "name", or why its lister does not import."""
    try:
        lister = SECTIONS.get(name)
    except ImportError as exc:
        return f"(not importable: {exc})"
    return [{"name": item} if isinstance(item, str) else dict(item) for item in lister()]


def main(argv: Sequence[str] | None = None) -> int:
    load_plugins()
    order = ["envs", "datasets", *(n for n in SECTIONS.names() if n not in _CORE), "agents"]
    parser = argparse.ArgumentParser(
        prog="grounding-gym list",
        description="List registered envs, datasets, eval agents and what plugins add "
        "(algorithms, with the training extra).",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"any of {', '.join(order)} (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    sections = args.sections or order
    for name in sections:
        if name not in SECTIONS:
            parser.error(
                f"unknown section {name!r}; choose from {tuple(order)}"
                + did_you_mean(name, order, " (did you mean {!r}?)")
            )
    result = {name: section_items(name) for name in sections}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    for name in sections:
        items = result[name]
        print(f"{name}:")
        if isinstance(items, str):
            print(f"  {items}")
            continue
        for item in items:
            print(_line(name, item))
    return 0


_CORE = ("envs", "datasets", "agents")


def _line(section: str, item: dict[str, Any]) -> str:
    """One printed line of `grounding-gym list` for `item` of `section`."""
    line = f"  {item['name']}"
    if section == "envs":
        line += f"  (dataset={item['kwargs'].get('dataset')!r})"
    if section == "agents":
        line += f"  - {item['description']}"
        if item["requires"]:
            missing = "" if item["available"] else ", not installed"
            line += f" [needs {item['requires']}{missing}]"
    return line


if __name__ == "__main__":  # run the imported module, whose registry plugins fill
    from grounding_gym import catalog

    sys.exit(catalog.main())
