"""Environments as a service over OpenEnv (the `serve` extra).

* `grounding-gym serve --env ID --port P` (`grounding_gym.remote.server`): serves any
  Gymnasium env, one env per websocket session, built on `openenv-core`.
* `grounding_gym.remote.RemoteEnv(base_url)` (`grounding_gym.remote.client`): a Gymnasium
  env backed by one server session, equal step by step to the local env.
* `grounding_gym.remote.codec`: the lossless JSON form of observations, infos and spaces
  (needs no extra).

Importing this package needs no extra; `RemoteEnv` and the server import `openenv-core`
when first used and say which extra to install when it is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

_LAZY = {
    "RemoteEnv": "grounding_gym.remote.client",
    "RemoteEnvError": "grounding_gym.remote.client",
    "create_server_app": "grounding_gym.remote.server",
    "serve_in_thread": "grounding_gym.remote.server",
    "serve_subprocess": "grounding_gym.remote.server",
}

__all__ = [*_LAZY, "serve_main"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'grounding_gym.remote' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


def serve_main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym serve`; without the `serve` extra it says so and exits 2."""
    try:
        from grounding_gym.remote.server import main
    except ImportError as err:
        print(f"grounding-gym serve: {err}", file=sys.stderr)
        return 2
    return main(argv)
