"""FastAPI app of the grounding-gym OpenEnv environment, and `main()`.

The env is `$GG_ENV_ID` (default GroundedVQA-HR-v0) built with the JSON kwargs `$GG_ENV_KWARGS`
(default none), served by `grounding_gym.remote.server` (one env per websocket session, its
limits and defaults):

    uv run --project grounding_gym_env server --port 8000
    python -m grounding_gym_env.server.app                     # or this
    uvicorn grounding_gym_env.server.app:app                   # the module-level `app`
    export GG_ENV_ID=GroundedVQA-v0 GG_ENV_KWARGS='{"max_turns": 3}'
    uv run --project grounding_gym_env server

`main` is `grounding-gym serve` (same options: `--host`, `--max-sessions`, ...) with the env
taken from the environment variables.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from grounding_gym.remote.server import create_server_app
from grounding_gym.remote.server import main as serve_main

ENV_ID = os.environ.get("GG_ENV_ID", "GroundedVQA-HR-v0")
ENV_KWARGS = os.environ.get("GG_ENV_KWARGS", "{}")

app = create_server_app(ENV_ID, json.loads(ENV_KWARGS))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve `$GG_ENV_ID` until interrupted; `argv` as `grounding-gym serve` (no `--env`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return serve_main(["--env", ENV_ID, "--env-kwargs", ENV_KWARGS, *args])


if __name__ == "__main__":
    raise SystemExit(main())
