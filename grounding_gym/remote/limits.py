"""The limits `grounding-gym serve` holds on every route OpenEnv registers.

Network clients are untrusted (docs/reliability.md, "Threat model"). Each limit is one piece
here, composed by `grounding_gym.remote.server.create_server_app`; none depends on the action
or observation models, so typed models can replace `GymAction` / `GymObservation` freely.

| piece | what it bounds |
|---|---|
| `BoundedEnvServer` | OpenEnv's `HTTPEnvServer` whose sessions exist only while a websocket (`/ws`, `/mcp`) is open: `openenv/session/create` over HTTP `POST /mcp` is refused (such a session holds a slot with no connection); stateless HTTP requests that build an env (`/reset`, `/step`, `POST /mcp`) take a session slot while they run, so `max_sessions` bounds envs alive on every route |
| `IdleWebSocketClose` | a websocket idle for `session_timeout_s` is closed (code 1001, reason "session expired ..."), so the session, its env and its codec caches are freed with the socket |
| `BearerAuth` | with a token, every route but `/health` needs `Authorization: Bearer <token>` (HTTP 401, websocket closed with 1008 before it opens) |
| `HeaderTimeoutH11Protocol` | a connection that has not sent a complete request head within `header_timeout_s` is closed (half-open sockets, slowloris) |
| `check_bind` | a non-loopback `--host` is refused unless a token or `--allow-remote` is given |
"""  # noqa: E501 (table rows)

from __future__ import annotations

import asyncio
import contextvars
import hmac
import ipaddress
import time
from typing import Any

from fastapi.responses import JSONResponse
from openenv.core.env_server.exceptions import SessionCapacityError
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.interfaces import Environment
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "ENV_BUILDING_ROUTES",
    "BearerAuth",
    "BoundedEnvServer",
    "HeaderTimeoutH11Protocol",
    "IdleWebSocketClose",
    "StatelessSlots",
    "check_bind",
]

ENV_BUILDING_ROUTES = frozenset({"/reset", "/step", "/mcp"})
"""HTTP routes where OpenEnv builds a fresh env for the request."""
PUBLIC_ROUTES = frozenset({"/health"})
"""Routes served without the bearer token (liveness probes)."""

_OVER_HTTP: contextvars.ContextVar[bool] = contextvars.ContextVar("_OVER_HTTP", default=False)
"""True while an HTTP request (not a websocket) is being handled."""


class BoundedEnvServer(HTTPEnvServer):
    """`HTTPEnvServer` whose `max_concurrent_envs` counts envs on every route.

    Sessions are created only by websockets (they end with the socket); an HTTP request that
    builds a throw-away env holds one slot while it runs (`StatelessSlots`).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stateless_in_flight = 0

    def has_free_slot(self) -> bool:
        """Whether one more env (session or stateless request) fits under `max_sessions`."""
        return len(self._sessions) + self.stateless_in_flight < self._max_concurrent_envs

    async def _create_session(self) -> tuple[str, Environment]:
        if _OVER_HTTP.get():
            raise SessionCapacityError(
                len(self._sessions),
                self._max_concurrent_envs,
                "sessions over HTTP are refused (one would hold a slot without a connection): "
                "open a websocket to /ws (or /mcp) for a session; it ends when the socket closes",
            )
        async with self._session_lock:
            if len(self._sessions) + self.stateless_in_flight >= self._max_concurrent_envs:
                raise SessionCapacityError(
                    len(self._sessions) + self.stateless_in_flight, self._max_concurrent_envs
                )
        return await super()._create_session()


class StatelessSlots:
    """ASGI middleware: HTTP requests to `ENV_BUILDING_ROUTES` take one of `server`'s slots
    while they run (503 when none is free), and mark their context as HTTP (so
    `BoundedEnvServer` refuses sessions created from them)."""

    def __init__(self, app: Any, server: BoundedEnvServer):
        self.app, self.server = app, server

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _OVER_HTTP.set(True)
        try:
            if scope["path"] not in ENV_BUILDING_ROUTES:
                await self.app(scope, receive, send)
                return
            if not self.server.has_free_slot():
                detail = (
                    f"server at capacity: {self.server.max_concurrent_envs} envs in use "
                    "(websocket sessions and HTTP requests together, grounding-gym serve "
                    "--max-sessions); retry later"
                )
                await JSONResponse({"detail": detail}, status_code=503)(scope, receive, send)
                return
            self.server.stateless_in_flight += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.server.stateless_in_flight -= 1
        finally:
            _OVER_HTTP.reset(token)


class IdleWebSocketClose:
    """ASGI middleware: close a websocket after `timeout_s` without a client message.

    The idle clock runs only while the app waits for the client (time spent computing a reply
    does not count). On expiry the client gets a close frame (1001, "session expired (idle for
    more than T s) ...") and the app sees a disconnect, so OpenEnv destroys the session and its
    env at once.
    """

    CLOSE_CODE = 1001

    def __init__(self, app: Any, timeout_s: float | None):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or self.timeout_s is None:
            await self.app(scope, receive, send)
            return
        timeout_s = self.timeout_s
        last = [time.monotonic()]
        closed = [False]
        pending: list[asyncio.Future | None] = [None]

        async def guarded_send(message: dict) -> None:
            if closed[0]:
                return  # the app's own close after ours
            last[0] = time.monotonic()
            await send(message)

        async def guarded_receive() -> dict:
            if closed[0]:
                return {"type": "websocket.disconnect", "code": self.CLOSE_CODE}
            task = pending[0]
            if task is None:
                task = pending[0] = asyncio.ensure_future(receive())
            remaining = last[0] + timeout_s - time.monotonic()
            done, _ = await asyncio.wait({task}, timeout=max(remaining, 0.0))
            if done:
                pending[0] = None
                last[0] = time.monotonic()
                return task.result()
            closed[0] = True
            reason = f"session expired (idle for more than {timeout_s:g} s); connect again"
            await send({"type": "websocket.close", "code": self.CLOSE_CODE, "reason": reason})
            return {"type": "websocket.disconnect", "code": self.CLOSE_CODE}

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            if pending[0] is not None:
                pending[0].cancel()


class BearerAuth:
    """ASGI middleware: every route but `PUBLIC_ROUTES` needs `Authorization: Bearer <token>`
    (compared in constant time). HTTP gets 401; a websocket is refused before it opens."""

    def __init__(self, app: Any, token: str):
        if not token:
            raise ValueError("the bearer token must be a non-empty string")
        self.app, self._expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_ROUTES:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or bad token"})
            return
        detail = (
            "missing or bad token: send 'Authorization: Bearer <token>' "
            "(grounding-gym serve --token)"
        )
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request head (request line and
    headers) has not fully arrived `header_timeout_s` after the connection opened or after its
    previous response (uvicorn itself waits forever for a slow head)."""

    header_timeout_s = 10.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        scope_then = self.scope
        self._header_timer = self.loop.call_later(
            self.header_timeout_s, self._header_timeout, scope_then
        )

    def _header_timeout(self, scope_then: Any) -> None:
        busy = self.cycle is not None and not self.cycle.response_complete
        if self.scope is scope_then and not busy and not self.transport.is_closing():
            self.transport.close()  # no new request head since the timer was armed


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    """`HeaderTimeoutH11Protocol` with its timeout set to `seconds`."""
    if seconds <= 0:
        raise ValueError(f"header_timeout_s must be > 0, got {seconds}")
    return type(
        "HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": seconds}
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") binds only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, allow_remote: bool) -> None:
    """Refuse to serve a non-loopback `host` without a token or an explicit opt-in.

    Raises:
        ValueError: `host` is reachable from other machines and neither `token` nor
            `allow_remote` is given.
    """
    if is_loopback(host) or token or allow_remote:
        return
    raise ValueError(
        f"refusing to bind {host!r} without authentication: anyone who can reach it could run "
        "episodes and use its memory and CPU. Pass --token SECRET (or set GROUNDING_GYM_TOKEN; "
        "clients send 'Authorization: Bearer SECRET', RemoteEnv(url, token=...)), or "
        "--allow-remote if the network itself is trusted"
    )
