"""The `openai` eval agent: any model behind an OpenAI-compatible chat endpoint.

vLLM (`vllm serve`), SGLang, `transformers serve`, hosted APIs: each turn sends the episode's
whole conversation (`info["messages"]`, the env's chat-template form) to
`/v1/chat/completions`, every view as an image content part (a base64 data URL), and steps the
env with the reply. Tool envs (an env with a `tools` attribute, e.g. the DeepEyes preset) get
their tool schema as `tools`; a reply's `tool_calls` become the Qwen text form the env parses
(`<tool_call>{"name": ..., "arguments": ...}</tool_call>`).

    grounding-gym eval --agent openai --num-envs 8 \\
        --agent-kwargs '{"base_url": "http://localhost:8000/v1",
                         "model": "Qwen/Qwen2.5-VL-7B-Instruct"}'

Requests of one batch (`--num-envs` episodes in flight) run in threads. The `openai` client
retries 408/409/429/5xx replies, timeouts and connection errors with exponential backoff
(`max_retries`, `timeout`); when they are spent on an unreachable or overloaded server the agent
raises `AgentUnavailableError`, which stops the run with the finished episodes written: run the
same command again to resume. Any other API error (e.g. 400, a prompt over the context length)
fails that batch's episodes (`--on-error`).

Every request (messages with each image replaced by `{"image": "WxH", "sha1": ...}`, and the
sampling parameters) and every response (`ChatCompletion.model_dump()`) is kept in the episode's
record under `agent_log`. Needs the `openai` extra (`pip install 'grounding-gym[openai]'`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from grounding_gym.eval.agents import AgentUnavailableError
from grounding_gym.validation import check_choice

__all__ = ["ACTION_FORMATS", "OpenAIAgent", "to_openai_messages"]

ACTION_FORMATS = ("auto", "tags", "tools")
"""`tags`: the model replies in text (`<crop>`/`<answer>`); `tools`: the env's tool schema is
sent as `tools`; `auto`: `tools` for an env with a `tools` attribute, else `tags`."""


class OpenAIAgent:
    """An eval `Agent` backed by an OpenAI-compatible chat completions endpoint.

    Args:
        env: the (unwrapped) env; its `tools`, if any, are offered in `tools` mode.
        model: the model name the server expects (`transformers serve`: the checkpoint path).
        base_url: e.g. "http://localhost:8000/v1"; default $OPENAI_BASE_URL, else OpenAI's.
        api_key: default $OPENAI_API_KEY, else "EMPTY" (local servers ignore it).
        max_tokens: cap on each reply's tokens.
        temperature, top_p, seed: sampling parameters (None: the server's default);
            temperature 0 (the default) is greedy.
        extra_body: extra JSON fields of each request (server-specific options).
        action_format: one of `ACTION_FORMATS`.
        concurrency: most requests in flight (threads); the harness's `num_envs` bounds it too.
        max_retries: the client's retries per request (backoff between them).
        timeout: seconds per request attempt.
        image_format: "png" (lossless, default) or "jpeg" (smaller; quality 95).

    Raises:
        ImportError: the `openai` package is missing (install the `openai` extra).
        ValueError: a bad `action_format`, `image_format` or `concurrency`.
    """

    def __init__(
        self,
        env: Any,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 512,
        temperature: float | None = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        action_format: str = "auto",
        concurrency: int = 8,
        max_retries: int = 4,
        timeout: float = 120.0,
        image_format: str = "png",
    ):
        try:
            import openai
        except ImportError as exc:
            raise ImportError(
                "the 'openai' agent needs the openai package: pip install 'grounding-gym[openai]'"
            ) from exc
        check_choice("action_format", action_format, ACTION_FORMATS)
        check_choice("image_format", image_format, ("png", "jpeg"))
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            max_retries=max_retries,
            timeout=timeout,
        )
        self.model = model
        tools = list(getattr(env, "tools", None) or [])
        if action_format == "tools" and not tools:
            raise ValueError(
                f"action_format='tools' needs a tool env; {type(env).__name__} has none"
            )
        self.tools = tools if action_format in ("auto", "tools") else []
        params = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        params["seed"] = seed
        self.params = {k: v for k, v in params.items() if v is not None}
        self.extra_body = dict(extra_body or {})
        self.image_format = image_format
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")
        self._logs: dict[int, list[dict[str, Any]]] = {}
        self._urls: dict[int, dict[int, tuple[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def act(
        self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        """One reply per env, the requests sent concurrently."""
        return list(self._pool.map(self._reply, infos))

    def episode_log(self, episode: int) -> list[dict[str, Any]]:
        """The requests and responses of `episode` (removed from memory): the harness stores
        them in the episode's record as `agent_log`."""
        with self._lock:
            self._urls.pop(episode, None)
            return self._logs.pop(episode, [])

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()

    # ---------------------------------------------------------------- one request
    def _reply(self, info: Mapping[str, Any]) -> str:
        episode = int(info.get("episode", -1))
        with self._lock:
            cache = self._urls.setdefault(episode, {})
        messages, logged = to_openai_messages(info["messages"], self._encoder(cache))
        request: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
        if self.tools:
            request["tools"] = self.tools
        started = time.perf_counter()
        errors = self._openai
        try:
            response = self.client.chat.completions.create(
                **request, extra_body=self.extra_body or None
            )
        except (
            errors.APIConnectionError,  # includes APITimeoutError
            errors.RateLimitError,
            errors.InternalServerError,
        ) as exc:
            raise AgentUnavailableError(
                f"{self.client.base_url} did not answer after {self.client.max_retries} retries "
                f"({type(exc).__name__}: {exc}); start the server and run the same command "
                "again to resume"
            ) from exc
        entry = {
            "turn": int(info.get("turn", 0)),
            "request": {**request, "messages": logged, "extra_body": self.extra_body},
            "response": response.model_dump(mode="json"),
            "elapsed_s": round(time.perf_counter() - started, 4),
        }
        with self._lock:
            self._logs.setdefault(episode, []).append(entry)
        return reply_text(response)

    def _encoder(self, cache: dict[int, tuple[str, dict[str, Any]]]) -> Any:
        def encode(image: Image.Image) -> tuple[str, dict[str, Any]]:
            key = id(image)  # the env's message images live as long as the episode
            if key not in cache:
                cache[key] = encode_image(image, self.image_format)
            return cache[key]

        return encode


def encode_image(image: Image.Image, fmt: str = "png") -> tuple[str, dict[str, Any]]:
    """`(data URL, what the log keeps instead)` of a PIL image: the log keeps its size and the
    SHA-1 (16 hex digits) of the encoded bytes."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    data = buffer.getvalue()
    url = f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"
    return url, {
        "image": f"{image.width}x{image.height}",
        "sha1": hashlib.sha1(data).hexdigest()[:16],
    }


def to_openai_messages(
    messages: Sequence[Mapping[str, Any]], encode: Any = encode_image
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(request messages, their log form)` of an env's chat messages (`info["messages"]`).

    Text-only content becomes a string (some servers accept only strings for system and
    assistant turns); a turn with images becomes a list of `text` and `image_url` parts, each
    image a data URL from `encode(image) -> (url, log entry)`.
    """
    sent, logged = [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            sent.append({"role": message["role"], "content": content})
            logged.append(sent[-1])
            continue
        parts = list(content or [])
        if all(part.get("type") == "text" for part in parts):
            text = "".join(str(part.get("text", "")) for part in parts)
            sent.append({"role": message["role"], "content": text})
            logged.append(sent[-1])
            continue
        out, log = [], []
        for part in parts:
            if part.get("type") == "image":
                url, entry = encode(part["image"])
                out.append({"type": "image_url", "image_url": {"url": url}})
                log.append({"type": "image_url", **entry})
            else:
                out.append({"type": "text", "text": str(part.get("text", ""))})
                log.append(out[-1])
        sent.append({"role": message["role"], "content": out})
        logged.append({"role": message["role"], "content": log})
    return sent, logged


def reply_text(response: Any) -> str:
    """The action text of a chat completion: its content, then each tool call in Qwen's
    `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` form (the env parses it)."""
    if not response.choices:
        return ""
    message = response.choices[0].message
    text = message.content or ""
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        try:
            arguments = json.loads(function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = function.arguments  # the env reports the malformed call
        payload = json.dumps({"name": function.name, "arguments": arguments})
        text += f"<tool_call>{payload}</tool_call>"
    return text
