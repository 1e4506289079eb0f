"""`RemoteEnv`: a Gymnasium env whose every call is served by `grounding-gym serve`.

It speaks OpenEnv's websocket protocol through `openenv-core`'s own client (`EnvClient`, used
through its `.sync()` wrapper), one server session per `RemoteEnv`, and decodes the lossless wire
form of `grounding_gym.remote.codec`: the same seed and actions give observations, rewards,
terminated/truncated and infos equal to those of the local `gym.make(env_id, **env_kwargs)`
(PIL images in infos come back as plain `PIL.Image.Image` without their `.info` metadata).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import gymnasium as gym

from grounding_gym.remote.codec import ImageCodec, space_from_json
from grounding_gym.remote.server import GymState
from grounding_gym.spaces import ImageSpace

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"grounding_gym.remote needs the `serve` extra ({err}): pip install 'grounding-gym[serve]'"
    ) from err


class RemoteEnvError(RuntimeError):
    """The server refused a request or the connection ended.

    Attributes:
        code: OpenEnv's error code (`EXECUTION_ERROR`, `VALIDATION_ERROR`, `CAPACITY_REACHED`, ...)
            or `CONNECTION_CLOSED`.
        details: the server's error payload (or the close code and reason).
    """

    def __init__(self, message: str, code: str, details: dict[str, Any]):
        super().__init__(f"{message} (code: {code})")
        self.code, self.details = code, details


class GymEnvClient(EnvClient[Any, dict, GymState]):
    """OpenEnv client of a `grounding-gym serve` session: payloads stay in wire form (decoding is
    `RemoteEnv`'s job); server errors and dropped connections raise `RemoteEnvError`."""

    token: str | None = None
    """bearer token sent when connecting (`grounding-gym serve --token`)"""

    async def connect(self) -> GymEnvClient:
        """OpenEnv's connect, plus `Authorization: Bearer <token>` when a token is set."""
        if self.token is None or getattr(self, "_ws", None) is not None:
            await super().connect()
            return self
        try:
            self._ws = await ws_connect(
                self._ws_url,
                open_timeout=self._connect_timeout,
                max_size=self._max_message_size,
                additional_headers={"Authorization": f"Bearer {self.token}"},
            )
        except Exception as err:
            raise ConnectionError(f"Failed to connect to {self._ws_url}: {err}") from err
        return self

    def _step_payload(self, action: Any) -> dict[str, Any]:
        return {"action": action}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[dict]:
        return StepResult(
            observation=payload["observation"],
            reward=payload.get("reward"),
            done=payload.get("done", False),
        )

    def _parse_state(self, payload: dict[str, Any]) -> GymState:
        return GymState(**payload)

    async def disconnect(self) -> None:
        """End the session: send OpenEnv's close message and wait for the server to close the
        websocket (closing it first races OpenEnv's own close, which then logs a traceback)."""
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await self._ws.send(json.dumps({"type": "close"}))
                await asyncio.wait_for(self._ws.wait_closed(), timeout=self._message_timeout)
        await super().disconnect()

    async def _send_and_receive(self, message: dict[str, Any]) -> dict[str, Any]:
        with contextlib.suppress(
            ConnectionClosed
        ):  # then a reply sent before closing is still read
            await self._send(message)
        try:
            response = await self._receive()
        except ConnectionClosed as err:
            close = err.rcvd or err.sent
            code, reason = (
                (close.code, close.reason) if close is not None else (None, "no close frame")
            )
            raise RemoteEnvError(
                f"the server closed the session (websocket close {code}: {reason!r}); "
                "its episode is gone: create a new RemoteEnv",
                "CONNECTION_CLOSED",
                {"close_code": code, "reason": reason},
            ) from err
        if response.get("type") == "error":
            data = response.get("data", {})
            raise RemoteEnvError(
                f"server error: {data.get('message', 'unknown error')}",
                str(data.get("code", "UNKNOWN")),
                data,
            )
        return response


def _with_image(wire: dict[str, Any]) -> Any:
    """The wire observation with its image back from the plain `image` field, where the server
    sent it there (see `GymObservation`)."""
    obs = wire["observation"]
    image = obs.get("image") if isinstance(obs, dict) else None
    if isinstance(image, dict) and image.get("png") is None and wire.get("image") is not None:
        return {**obs, "image": {**image, "png": wire["image"]}}
    return obs


class RemoteEnv(gym.Env[Any, Any]):
    """A Gymnasium env backed by one session of a `grounding-gym serve` server.

    Spaces, `env_id` and the server's request limit are fetched from the session's OpenEnv
    `state` on construction. `reset`/`step` forward to the server and return decoded results;
    `close` ends the session (the server closes its env). No `render` (render_mode None).

    Args:
        base_url: the server, e.g. "http://127.0.0.1:8000" (ws:// also accepted).
        connect_timeout_s: seconds to open the websocket.
        message_timeout_s: seconds to wait for each reply.
        max_response_mb: largest reply accepted, MiB (a 5-turn conversation with 1 MP views is
            about 10 MiB).
        image_cache_size: decoded images kept to skip decoding the conversation's repeats.
        token: the server's bearer token (`grounding-gym serve --token`), if it has one.
        env_id: the Gymnasium id the caller expects the server to serve (None: any); checked
            against the session's state on construction.

    Raises:
        RemoteEnvError: the server is full (`CAPACITY_REACHED`), or refuses a request.
        ConnectionError: no server answers at `base_url`.
        ValueError: the server serves another id than `env_id`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 10.0,
        message_timeout_s: float = 120.0,
        max_response_mb: float = 256.0,
        image_cache_size: int = 16,
        token: str | None = None,
        env_id: str | None = None,
    ):
        self.base_url = base_url
        self._codec = ImageCodec(image_cache_size)
        client = GymEnvClient(
            base_url,
            connect_timeout_s=connect_timeout_s,
            message_timeout_s=message_timeout_s,
            max_message_size_mb=max_response_mb,
        )
        client.token = token
        self._client = client.sync()
        try:
            self._client.connect()
            state = self._client.state()
        except BaseException:
            self._client.close()
            raise
        self.env_id: str = state.env_id
        if env_id is not None and env_id != self.env_id:
            self._client.close()
            raise ValueError(
                f"{base_url} serves {self.env_id!r}, not {env_id!r}: start "
                f"`grounding-gym serve --env {env_id}` or ask for {self.env_id!r}"
            )
        self.max_message_bytes: int = state.max_message_bytes
        self.observation_space = space_from_json(state.observation_space)
        self.action_space = space_from_json(state.action_space)
        space = self.observation_space
        parts = space.spaces.values() if isinstance(space, gym.spaces.Dict) else [space]
        views = [s.max_pixels for s in parts if isinstance(s, ImageSpace)]
        # replies carry views of up to the served env's budget: decode those, refuse larger
        self._codec.max_decode_pixels = max([self._codec.max_decode_pixels, *views])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict]:
        super().reset(seed=seed)
        result = self._client.reset(seed=seed, options=self._codec.to_json(options, "options"))
        wire = result.observation
        return self._codec.from_json(_with_image(wire)), self._codec.from_json(wire["info"])

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """One step on the server.

        Raises:
            ValueError: the encoded action exceeds the server's `max_message_bytes` (nothing is
                sent; the session goes on).
            RemoteEnvError: the server refused it, e.g. a step after the episode ended.
        """
        payload = self._codec.to_json(action, "action")
        size = len(json.dumps({"type": "step", "data": self._client._step_payload(payload)}))
        if size > self.max_message_bytes:
            raise ValueError(
                f"action of {size} bytes on the wire exceeds the server's limit of "
                f"{self.max_message_bytes} bytes (grounding-gym serve --max-message-bytes)"
            )
        result = self._client.step(payload)
        wire = result.observation
        return (
            self._codec.from_json(_with_image(wire)),
            result.reward,
            wire["terminated"],
            wire["truncated"],
            self._codec.from_json(wire["info"]),
        )

    def close(self) -> None:
        self._client.close()
        super().close()
