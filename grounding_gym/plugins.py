"""Plugins: packages that add eval agents, `grounding-gym` commands or `list` sections.

A distribution declares a zero-argument function in the entry-point group
`grounding_gym.plugins` (pyproject.toml)::

    [project.entry-points."grounding_gym.plugins"]
    mine = "my_pkg.plugin:register"

`load_plugins()` calls each once, on the first lookup that needs them (`make_agent`,
`list_agents`, the CLI), never at `import grounding_gym`. The function registers lazy
`"module:attr"` targets into `grounding_gym.eval.agents.AGENTS`, `grounding_gym.cli.COMMANDS`
or `grounding_gym.catalog.SECTIONS`, so loading a plugin imports no heavy dependency. A plugin
that fails to import is skipped with a warning that names it and the error.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

GROUP = "grounding_gym.plugins"
"""The entry-point group read by `load_plugins`."""

_loaded = False


def load_plugins() -> None:
    """Call every plugin's register function once per process (later calls do nothing)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry_point in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        try:
            register = entry_point.load()
        except ImportError as exc:
            warnings.warn(
                f"grounding-gym plugin {entry_point.name!r} ({entry_point.value}) did not import: "
                f"{exc}; what it registers is missing. Reinstall the distribution that "
                "declares it.",
                stacklevel=2,
            )
            continue
        register()
