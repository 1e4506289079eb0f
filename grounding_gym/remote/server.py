"""Serve any Gymnasium env over OpenEnv: `grounding-gym serve --env ID --port P`.

Built on `openenv-core`: `GymnasiumEnvironment` is an OpenEnv `Environment` around one
`gym.make(env_id, **env_kwargs)`, and `create_server_app` hands it to OpenEnv's `create_app`,
which serves it over HTTP and websockets. Each websocket connection to `/ws` is one session with
its own env (OpenEnv's session model; `grounding_gym.remote.RemoteEnv` is such a client); HTTP
`POST /reset` and `/step` are stateless in OpenEnv (a fresh env per request), so episodes go
over `/ws`. Observations, infos and actions travel in the lossless wire form of
`grounding_gym.remote.codec` (images as PNG, base64).

Limits, each with a clear error while the server keeps serving everyone else (clients are
untrusted; the pieces live in `grounding_gym.remote.limits`):

* `max_sessions`: envs alive at once on every route: websocket sessions (`/ws`, `/mcp`) plus
  HTTP requests that build a throw-away env (`/reset`, `/step`, `POST /mcp`); one more gets
  OpenEnv's `CAPACITY_REACHED` (HTTP: 503). Sessions over HTTP (`openenv/session/create` on
  `POST /mcp`) are refused: a session lives exactly as long as its websocket.
* `session_timeout_s`: a websocket idle this long is closed (code 1001, reason "session
  expired ..."), freeing its env and caches; OpenEnv's reaper backs this up.
* `max_message_bytes`: the largest websocket message or HTTP body the server reads. A larger
  websocket message closes that connection with code 1009 (message too big); a larger HTTP
  body gets 413. `RemoteEnv` checks its actions against the limit before sending.
* `max_decode_pixels`: the largest image a request may carry, checked from the PNG header;
  only bool/int/uint/float arrays and scalars are decoded; a text action must be a JSON string.
* `header_timeout_s`, `limit_concurrency`: uvicorn closes connections that do not send a request
  head in time, and answers 503 beyond `limit_concurrency` connections.
* `token`: every route but `/health` needs `Authorization: Bearer <token>`; a non-loopback
  `--host` is refused without `--token` or `--allow-remote`. `/docs` and `/redoc` are not served;
  `/openapi.json` is (`openenv validate --url` reads it).
* `mode="production"`: OpenEnv's production mode, without HTTP `/reset`, `/step`, `/state`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium import spaces

import grounding_gym
from grounding_gym.remote.codec import TAG, ImageCodec, WireDecodeError, space_to_json

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import (
        Action,
        ConcurrencyConfig,
        EnvironmentMetadata,
        Observation,
        ServerMode,
        State,
    )
    from pydantic import Field

    from grounding_gym.remote.limits import (
        BearerAuth,
        BoundedEnvServer,
        IdleWebSocketClose,
        StatelessSlots,
        check_bind,
        header_timeout_protocol,
    )
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"grounding_gym.remote needs the `serve` extra ({err}): pip install 'grounding-gym[serve]'"
    ) from err

DEFAULT_MAX_SESSIONS = 16
DEFAULT_SESSION_TIMEOUT_S = 600.0
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a 4096-char action is about 4 KiB on the wire
DEFAULT_MAX_DECODE_PIXELS = 1 << 20
"""Largest image (pixels) a request may carry; the served envs take text actions."""
DEFAULT_REQUEST_CACHE_BYTES = 8 << 20
"""Per-session budget of decoded request images (bytes of pixels)."""
DEFAULT_HEADER_TIMEOUT_S = 10.0
TOKEN_ENV_VAR = "GROUNDING_GYM_TOKEN"
"""Environment variable read for `--token` (keeps the secret out of the process list)."""


class ServeRequestError(ValueError):
    """A request the session cannot carry out (no episode, expired session, malformed action).

    Over websockets OpenEnv returns its message as an `EXECUTION_ERROR`; over HTTP it is a 400.
    """


class GymAction(Action):
    """One action of the served env, in the wire form of `ImageCodec.to_json` (a str for text
    envs)."""

    action: Any = Field(description="the action, encoded by grounding_gym.remote.codec")


class GymObservation(Observation):
    """One `reset` or `step` result: `observation` and `info` in wire form; `reward` and `done`
    (= terminated or truncated) are OpenEnv's fields, `reward` None after reset.

    For grounding-gym's `{"image", "dialogue"}` observations the plain fields `dialogue`,
    `image` and `reward_terms` carry them for any OpenEnv client (a stock `GenericEnvClient`
    reads `observation["dialogue"]`); the image then travels once, in `image`, and
    `observation["image"]["png"]` is null (`RemoteEnv` puts it back).
    """

    observation: Any = Field(
        description="the env's observation, encoded by grounding_gym.remote.codec"
    )
    dialogue: str | None = Field(
        default=None, description="the observation's text: the new turn (on reset, the question)"
    )
    image: str | None = Field(
        default=None, description="the observation's image (the new view), base64 PNG, lossless"
    )
    reward_terms: dict[str, float] = Field(
        default_factory=dict, description="this step's reward terms (info['reward_terms'])"
    )
    info: Any = Field(description="the env's info dict, encoded by grounding_gym.remote.codec")
    terminated: bool = Field(default=False, description="Gymnasium's terminated")
    truncated: bool = Field(default=False, description="Gymnasium's truncated")


class GymState(State):
    """The session's state plus what a client needs to mirror the env: its spaces and limits."""

    env_id: str = Field(description="the served Gymnasium id")
    observation_space: dict = Field(
        description="grounding_gym.remote.codec.space_to_json of the env's space"
    )
    action_space: dict = Field(
        description="grounding_gym.remote.codec.space_to_json of the env's space"
    )
    max_message_bytes: int = Field(description="largest request the server reads, bytes")


class GymnasiumEnvironment(Environment[GymAction, GymObservation, GymState]):
    """One session's env: `gym.make(env_id, **env_kwargs)` behind OpenEnv's `Environment`.

    Args:
        env_id: a registered Gymnasium id (grounding-gym's ids need no prior import).
        env_kwargs: keyword arguments of `gym.make`.
        max_message_bytes: reported in `state` so clients can check their requests.
        session_timeout_s: named in the error after the reaper closed the session (None: none).
        max_decode_pixels: largest image a request (options, action) may carry.

    Raises:
        TypeError: the env's spaces have no wire description (see `space_to_json`).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        session_timeout_s: float | None = None,
        max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
    ):
        super().__init__()
        self.env_id = env_id
        self.env = gym.make(env_id, **dict(env_kwargs or {}))
        self.max_message_bytes = max_message_bytes
        self.session_timeout_s = session_timeout_s
        self.observation_space_json = space_to_json(self.env.observation_space, "observation_space")
        self.action_space_json = space_to_json(self.env.action_space, "action_space")
        self.codec = ImageCodec(
            max_decode_pixels=max_decode_pixels, cache_bytes=DEFAULT_REQUEST_CACHE_BYTES
        )
        self._episode_id: str | None = None
        self._step_count = 0
        self._closed = False

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        options: Any = None,
        **unknown: Any,
    ) -> GymObservation:
        self._check_open()
        if unknown:
            raise ServeRequestError(
                f"reset got unknown fields {sorted(unknown)}; it takes seed, episode_id, options"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ServeRequestError(f"reset seed must be an int or null, got {_quote(seed)}")
        if episode_id is not None and not (isinstance(episode_id, str) and len(episode_id) <= 256):
            raise ServeRequestError(
                f"reset episode_id must be a string of at most 256 chars or null, got "
                f"{_quote(episode_id)}"
            )
        try:
            decoded = self.codec.from_json(options)
        except WireDecodeError as err:
            raise ServeRequestError(f"malformed reset options: {err}") from err
        if decoded is not None and not isinstance(decoded, dict):
            raise ServeRequestError(
                f"reset options must be a JSON object or null, got {_quote(decoded)}"
            )
        try:
            obs, info = self.env.reset(seed=seed, options=decoded)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise ServeRequestError(
                f"reset refused its options {_quote(decoded)}: {_quote(str(message), 300)}"
            ) from err
        self._episode_id, self._step_count = episode_id or str(uuid.uuid4()), 0
        return self._observation(obs, info, None, False, False)

    def step(
        self, action: GymAction, timeout_s: float | None = None, **unknown: Any
    ) -> GymObservation:
        self._check_open()
        if timeout_s is not None or unknown:
            raise ServeRequestError(
                "step takes only an action (steps cannot be timed out or given options)"
            )
        if self._episode_id is None:
            raise ServeRequestError(
                "step before reset: this session has no episode. Send reset first. (HTTP POST "
                "/step is "
                "stateless in OpenEnv, a fresh env per request: run episodes over the /ws "
                "websocket, "
                "e.g. with grounding_gym.remote.RemoteEnv.)"
            )
        value = self._decode_action(action.action)
        obs, reward, terminated, truncated, info = self.env.step(value)
        self._step_count += 1
        return self._observation(obs, info, float(reward), bool(terminated), bool(truncated))

    @property
    def state(self) -> GymState:
        return GymState(
            episode_id=self._episode_id,
            step_count=self._step_count,
            env_id=self.env_id,
            observation_space=self.observation_space_json,
            action_space=self.action_space_json,
            max_message_bytes=self.max_message_bytes,
        )

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name=self.env_id,
            version=grounding_gym.__version__,
            description=f"Gymnasium env {self.env_id} served by grounding-gym over OpenEnv",
        )

    def close(self) -> None:
        self._closed = True
        self.codec.clear()
        self.env.close()

    def _check_open(self) -> None:
        if self._closed:
            idle = (
                f"idle for more than {self.session_timeout_s:g} s"
                if self.session_timeout_s
                else "closed"
            )
            raise ServeRequestError(
                f"session expired ({idle}; the server closed it and its episode is gone): "
                "connect again and reset"
            )

    def _decode_action(self, wire: Any) -> Any:
        space = self.env.action_space
        if isinstance(space, spaces.Text):
            # text envs take any str (over-long text is cut and flagged); nothing is decoded
            if not isinstance(wire, str):
                raise ServeRequestError(
                    f"malformed action: the {type(space).__name__} action space takes a str, "
                    f"got {type(wire).__name__} {_quote(wire)} (text actions travel as JSON "
                    "strings, never as tagged wire values)"
                )
            return wire
        try:
            value = self.codec.from_json(wire)
        except WireDecodeError as err:
            raise ServeRequestError(f"malformed action: {err}") from err
        if not space.contains(value):
            raise ServeRequestError(
                f"malformed action {_quote(value)}: not in the action space {space}"
            )
        return value

    def _observation(
        self, obs: Any, info: dict, reward: float | None, terminated: bool, truncated: bool
    ) -> GymObservation:
        wire = self.codec.to_json(obs, "observation")
        return GymObservation(
            observation=wire,
            info=self.codec.to_json(info, "info"),
            **plain_fields(wire, info),
            reward=reward,
            done=terminated or truncated,
            terminated=terminated,
            truncated=truncated,
        )


def _quote(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: errors never echo a whole request."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} chars)"


def plain_fields(wire: Any, info: Mapping[str, Any]) -> dict[str, Any]:
    """`GymObservation`'s plain fields of a wire observation (moves its PNG to `image`)."""
    fields: dict[str, Any] = {}
    if isinstance(wire, dict):
        if isinstance(wire.get("dialogue"), str):
            fields["dialogue"] = wire["dialogue"]
        image = wire.get("image")
        if isinstance(image, dict) and image.get(TAG) == "png":
            fields["image"], wire["image"] = image["png"], {**image, "png": None}
    terms = info.get("reward_terms")
    if isinstance(terms, Mapping):
        fields["reward_terms"] = {str(k): float(v) for k, v in terms.items()}
    return fields


class MaxBodySize:
    """ASGI middleware: an HTTP request whose body exceeds `max_bytes` gets 413 (a body of
    unknown length, chunked, gets 411); websocket messages are limited by uvicorn's
    `ws_max_size`."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            error = None
            if length is None and b"transfer-encoding" in headers:
                error = (411, "send a Content-Length: bodies of unknown length are refused")
            elif length is not None and int(length) > self.max_bytes:
                error = (
                    413,
                    f"request body of {int(length)} bytes exceeds the server's limit of "
                    f"{self.max_bytes} bytes (grounding-gym serve --max-message-bytes)",
                )
            if error is not None:
                await JSONResponse({"detail": error[1]}, status_code=error[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_server_app(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_timeout_s: float | None = DEFAULT_SESSION_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
    token: str | None = None,
    mode: str = "simulation",
) -> FastAPI:
    """The OpenEnv FastAPI app serving `gym.make(env_id, **env_kwargs)`, one env per session,
    with the limits of the module docstring on every route.

    One env is built here and closed, so a bad id, bad kwargs or an unsupported space fail at
    start-up, not at the first connection.

    Args:
        token: when given, every route but `/health` needs `Authorization: Bearer <token>`.
        mode: OpenEnv's "simulation" (HTTP `/reset`, `/step`, `/state` too) or "production"
            (websockets, `/mcp` and the read-only routes only).

    Raises:
        gymnasium.error.Error, TypeError, ValueError: from `gym.make` or `space_to_json`, or a
            limit out of range.
    """
    if (
        max_sessions < 1
        or max_message_bytes < 1
        or max_decode_pixels < 1
        or (session_timeout_s is not None and session_timeout_s <= 0)
    ):
        raise ValueError(
            f"need max_sessions >= 1 ({max_sessions}), max_message_bytes >= 1 "
            f"({max_message_bytes}), max_decode_pixels >= 1 ({max_decode_pixels}) and "
            f"session_timeout_s > 0 or None ({session_timeout_s})"
        )
    modes = [m.value for m in ServerMode]
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    factory = functools.partial(
        GymnasiumEnvironment,
        env_id,
        dict(env_kwargs or {}),
        max_message_bytes,
        session_timeout_s,
        max_decode_pixels,
    )
    factory().close()
    app = FastAPI(
        title=f"grounding-gym serve: {env_id}",
        version=grounding_gym.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    server = BoundedEnvServer(
        factory,
        GymAction,
        GymObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=session_timeout_s
        ),
    )
    server.register_routes(app, mode=mode)

    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)  # a ServeRequestError

    app.add_exception_handler(ServeRequestError, request_error)
    # the last added runs first: token, then body size, then slots and idle close
    app.add_middleware(IdleWebSocketClose, timeout_s=session_timeout_s)
    app.add_middleware(StatelessSlots, server=server)
    app.add_middleware(MaxBodySize, max_bytes=max_message_bytes)
    if token is not None:
        app.add_middleware(BearerAuth, token=token)
    app.state.env_server = server
    return app


def uvicorn_config(
    app: FastAPI,
    host: str,
    port: int,
    max_message_bytes: int,
    log_level: str = "warning",
    *,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    limit_concurrency: int | None = None,
) -> uvicorn.Config:
    """uvicorn's settings for `app`: websocket messages up to `max_message_bytes`, no
    per-message compression (base64 PNG barely compresses; deflate would cost CPU per step),
    connections closed when their request head takes over `header_timeout_s`, and 503 beyond
    `limit_concurrency` open connections (default: 4 x max_sessions + 64)."""
    if limit_concurrency is None:
        server = getattr(app.state, "env_server", None)
        sessions = server.max_concurrent_envs if server is not None else DEFAULT_MAX_SESSIONS
        limit_concurrency = 4 * sessions + 64
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_timeout_protocol(header_timeout_s),
        ws_max_size=max_message_bytes,
        ws_per_message_deflate=False,
        limit_concurrency=limit_concurrency,
        log_level=log_level,
    )


@contextlib.contextmanager
def serve_in_thread(
    app: FastAPI,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 30.0,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
) -> Iterator[str]:
    """Run `app` on a free port of `host` in a daemon thread; yields its base URL
    (`http://host:port`) and stops the server on exit (tests, benchmarks, notebooks)."""
    server = uvicorn.Server(
        uvicorn_config(app, host, 0, max_message_bytes, header_timeout_s=header_timeout_s)
    )
    thread = threading.Thread(target=server.run, name="grounding-gym-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {startup_timeout_s} s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_subprocess(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    startup_timeout_s: float = 120.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """`grounding-gym serve` in a child process on a free loopback port (tests, benchmarks,
    notebooks): yields its base URL once `/health` answers; SIGTERM on exit. `extra_args` are
    more `grounding-gym serve` options (e.g. `["--session-timeout", "1"]`).

    Raises:
        RuntimeError: the server exited or did not answer within `startup_timeout_s`, or did
            not stop cleanly (exit 0, or -SIGTERM: uvicorn re-raises the signal after a clean stop).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "grounding_gym.cli",
        "serve",
        "--env",
        env_id,
        "--env-kwargs",
        json.dumps(dict(env_kwargs or {})),
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
        "--log-level",
        "warning",
        *extra_args,
    ]
    server = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"`{' '.join(command)}` did not start (exit code {server.poll()})"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    if code not in (0, -signal.SIGTERM):
        raise RuntimeError(f"`{' '.join(command)}` did not stop cleanly (exit code {code})")


def main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym serve`: serve one env id over OpenEnv until interrupted."""
    parser = argparse.ArgumentParser(
        prog="grounding-gym serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", required=True, help="Gymnasium id, e.g. GroundedVQA-HR-v0")
    parser.add_argument(
        "--env-kwargs", default="{}", help="JSON object of gym.make keyword arguments"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default loopback only)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        help="concurrent websocket sessions (one env each)",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=DEFAULT_SESSION_TIMEOUT_S,
        help="seconds a session may stay idle before the server closes it (0: never)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest websocket message or HTTP body the server reads",
    )
    parser.add_argument(
        "--max-decode-pixels",
        type=int,
        default=DEFAULT_MAX_DECODE_PIXELS,
        help="largest image a request may carry, pixels (checked from the PNG header)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV_VAR) or None,
        help=f"require 'Authorization: Bearer TOKEN' on every route but /health "
        f"(default: ${TOKEN_ENV_VAR}, which keeps it out of the process list)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve a non-loopback --host without --token (only on a trusted network)",
    )
    parser.add_argument(
        "--mode",
        default="simulation",
        choices=["simulation", "production"],
        help="OpenEnv mode; production serves no HTTP /reset, /step, /state",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_S,
        help="seconds a connection may take to send its request head",
    )
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="open connections before 503 (default 4 x max-sessions + 64)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    try:
        check_bind(args.host, args.token, args.allow_remote)
        env_kwargs = json.loads(args.env_kwargs)
        if not isinstance(env_kwargs, dict):
            raise ValueError(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
        app = create_server_app(
            args.env,
            env_kwargs,
            max_sessions=args.max_sessions,
            session_timeout_s=args.session_timeout or None,
            max_message_bytes=args.max_message_bytes,
            max_decode_pixels=args.max_decode_pixels,
            token=args.token,
            mode=args.mode,
        )
        config = uvicorn_config(
            app,
            args.host,
            args.port,
            args.max_message_bytes,
            args.log_level,
            header_timeout_s=args.header_timeout,
            limit_concurrency=args.limit_concurrency,
        )
    except (gym.error.Error, TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        print(f"grounding-gym serve: {err}", file=sys.stderr)
        return 2
    uvicorn.Server(config).run()
    return 0
