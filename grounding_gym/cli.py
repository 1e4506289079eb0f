"""`grounding-gym` command line: one sub-command per job, each implemented in its module.

Sub-commands are lazy `"module:attr"` targets of `COMMANDS`, imported only when run, so
`grounding-gym list` needs no torch. Plugins (`grounding_gym.plugins`) add commands, such as
the training demo, to `COMMANDS`.

A user error (a `ValueError`, e.g. a bad name, kwarg or file; a missing file or extra) prints
one line, `grounding-gym: error: ...`, and exits 2; `--debug` anywhere on the command line
(or GROUNDING_GYM_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from gymnasium.error import Error as _GymError  # e.g. an unknown env id or version

from grounding_gym.plugins import load_plugins
from grounding_gym.registry import Registry

COMMANDS: Registry[Callable[[list[str]], int | None]] = Registry("command")
"""Sub-command name -> `main(argv) -> exit code`; the description is its `--help` line."""

for _name, _target, _text in (
    ("list", "grounding_gym.catalog:main", "list envs, datasets, algorithms and agents"),
    ("eval", "grounding_gym.eval.cli:eval_main", "evaluate an agent, per scale bin"),
    (
        "check-dataset",
        "grounding_gym.data.check:main",
        "list every bad row and image of a dataset (exit 1 if any)",
    ),
    (
        "compare",
        "grounding_gym.eval.compare_cli:compare_main",
        "compare result folders side by side",
    ),
    ("render", "grounding_gym.eval.cli:render_main", "draw an episode as PNG"),
    ("serve", "grounding_gym.remote:serve_main", "serve an env over OpenEnv (extra `serve`)"),
):
    COMMANDS.register(_name, _target, description=_text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GROUNDING_GYM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    load_plugins()
    parser = argparse.ArgumentParser(
        prog="grounding-gym",
        description="Environments and agents for grounded visual reasoning.",
        epilog="Run `grounding-gym COMMAND --help` for a command's options. --debug: show "
        "tracebacks of errors.",
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
    func = COMMANDS.get(args.command)
    if debug:
        return int(func(argv[1:]) or 0)
    try:
        return int(func(argv[1:]) or 0)
    except (ValueError, OSError, ImportError, _GymError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"grounding-gym: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # run the imported module, whose registry plugins fill
    from grounding_gym import cli

    sys.exit(cli.main())
