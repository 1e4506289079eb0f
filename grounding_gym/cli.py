"""`grounding-gym` command line: one sub-command per job, each implemented in its module.

Sub-commands are lazy `"module:attr"` targets of `COMMANDS`, imported only when run, so
`grounding-gym list` needs no torch. Plugins (`grounding_gym.plugins`) add commands, such as
the training demo, to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from grounding_gym.plugins import load_plugins
from grounding_gym.registry import Registry

COMMANDS: Registry[Callable[[list[str]], int | None]] = Registry("command")
"""Sub-command name -> `main(argv) -> exit code`; the description is its `--help` line."""

for _name, _target, _text in (
    ("list", "grounding_gym.catalog:main", "list envs, datasets, algorithms and agents"),
    ("eval", "grounding_gym.eval.cli:eval_main", "evaluate an agent, per scale bin"),
    ("compare", "grounding_gym.eval.cli:compare_main", "compare result folders side by side"),
    ("render", "grounding_gym.eval.cli:render_main", "draw an episode as PNG"),
    ("serve", "grounding_gym.remote:serve_main", "serve an env over OpenEnv (extra `serve`)"),
):
    COMMANDS.register(_name, _target, description=_text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    load_plugins()
    parser = argparse.ArgumentParser(
        prog="grounding-gym",
        description="Environments and agents for grounded visual reasoning.",
        epilog="Run `grounding-gym COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "command",
        choices=COMMANDS.names(),
        metavar="COMMAND",
        help="; ".join(f"{n}: {COMMANDS.entry(n).description}" for n in COMMANDS.names()),
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args = parser.parse_args(argv[:1])
    return int(COMMANDS.get(args.command)(argv[1:]) or 0)


if __name__ == "__main__":  # run the imported module, whose registry plugins fill
    from grounding_gym import cli

    sys.exit(cli.main())
