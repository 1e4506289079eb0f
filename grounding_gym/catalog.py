"""`grounding-gym list`: what is registered — env ids, datasets, algorithms, agents.

Algorithms live in the optional `agents` package (torch); they are listed only when it imports.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any

SECTIONS = ("envs", "datasets", "algorithms", "agents")


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
    from grounding_gym.eval.harness import ensure_datasets

    ensure_datasets()
    return [{"name": name} for name in list_datasets()]


def list_algorithms() -> list[dict[str, Any]] | str:
    """Advantage estimators of `agents.algos`, or a message when `agents` does not import."""
    try:
        algos = importlib.import_module("agents.algos")
    except ImportError as exc:
        return f"(agents not importable: {exc}; pip install -e '.[agents]')"
    names: list[str] = []
    for attr in ("list_advantage_estimators", "list_algorithms"):
        fn = getattr(algos, attr, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                names = list(fn())
                break
    return [{"name": name} for name in names]


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grounding-gym list",
        description="List registered envs, datasets, algorithms (needs the agents extra) and eval agents.",
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    sections = args.sections or list(SECTIONS)
    for name in sections:
        if name not in SECTIONS:
            hint = difflib.get_close_matches(name, SECTIONS, n=1)
            parser.error(
                f"unknown section {name!r}; choose from {SECTIONS}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
    makers = {
        "envs": list_envs,
        "datasets": list_dataset_names,
        "algorithms": list_algorithms,
        "agents": list_agent_specs,
    }
    result = {name: makers[name]() for name in sections}
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
            line = f"  {item['name']}"
            if name == "envs":
                line += f"  (dataset={item['kwargs'].get('dataset')!r})"
            if name == "agents":
                line += f"  - {item['description']}"
                if item["requires"]:
                    line += f" [needs {item['requires']}{'' if item['available'] else ', not installed'}]"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
