"""`grounding-gym` command line: one sub-command per job, each implemented in its module.

Sub-commands are imported only when run, so `grounding-gym list` needs no torch.

A user error (a `ValueError`, e.g. a bad name, kwarg or file; a missing file or extra) prints
one line, `grounding-gym: error: ...`, and exits 2; `--debug` anywhere on the command line
(or GROUNDING_GYM_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from gymnasium.error import Error as _GymError  # e.g. an unknown env id or version

COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("grounding_gym.catalog:main", "list envs, datasets, algorithms and agents"),
    "demo": ("agents.demo:main", "the main job: train the tiny policy with SRPO, then report"),
    "train": ("agents.trainer:main", "train a policy from a YAML config (--config)"),
    "sft-data": ("agents.sft:sft_data_main", "an eval run's episodes as a TRL SFT dataset"),
    "sft": ("agents.sft:main", "cold-start SFT of a trainer config's policy on sft-data"),
    "eval": ("grounding_gym.eval.cli:eval_main", "evaluate an agent, per scale bin"),
    "check-dataset": (
        "grounding_gym.data.check:main",
        "list every bad row and image of a dataset (exit 1 if any)",
    ),
    "compare": ("grounding_gym.eval.cli:compare_main", "compare result folders side by side"),
    "render": ("grounding_gym.eval.cli:render_main", "draw an episode as PNG"),
    "serve": ("grounding_gym.remote:serve_main", "serve an env over OpenEnv (extra `serve`)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GROUNDING_GYM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = argparse.ArgumentParser(
        prog="grounding-gym",
        description="Environments and agents for grounded visual reasoning.",
        epilog="Run `grounding-gym COMMAND --help` for a command's options. --debug: show "
        "tracebacks of errors.",
    )
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        metavar="COMMAND",
        help="; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()),
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args = parser.parse_args(argv[:1])
    module_name, func_name = COMMANDS[args.command][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    if debug:
        return int(func(argv[1:]) or 0)
    try:
        return int(func(argv[1:]) or 0)
    except (ValueError, OSError, ImportError, _GymError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"grounding-gym: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
