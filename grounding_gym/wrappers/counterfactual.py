"""Counterfactual views: does the agent's answer depend on what its crops show?

Three Gymnasium wrappers change what a crop returns and nothing else, so any eval agent runs
unchanged under them (`grounding-gym eval --counterfactual NAME`), and `compare` splits the
accuracy of the real run into gain (right only with real crops) and harm (right only without).

| name | a crop returns | an agent that reads its crops |
|------|----------------|-------------------------------|
| `blank` | a uniform image of the crop's size, in the mean colour of the episode's first view | falls to chance where the first view is illegible |
| `shuffle` | the crop of the same relative box from another sample (seeded per sample and turn) | reads the wrong content |
| `no-tool` | nothing: the crop is refused with a message; the view stays the first one | answers from the first view |

Both the observation and the chat history in `info["messages"]` (which model agents read) carry
the substituted image; `info["counterfactual"]` names the wrapper. The mean colour of `blank` is
the first view's, not the crop's, so no pixel of the crop leaks into it. `no-tool` passes the
env an empty action in place of the crop (the env refuses it, keeps the first view and counts the
turn), then puts the agent's own text and the refusal in the history; the record counts the turn
as an invalid action (`invalid_actions`), as any refused crop.
"""  # noqa: E501 (table rows)

from __future__ import annotations

import zlib
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from PIL import Image

from grounding_gym.actions import parse_action
from grounding_gym.geometry import Box
from grounding_gym.validation import check_choice
from grounding_gym.views import ImageHandle, render_view_image

__all__ = [
    "COUNTERFACTUALS",
    "BlankCrops",
    "CounterfactualWrapper",
    "NoTool",
    "ShuffleCrops",
    "make_counterfactual",
]

NO_TOOL_MESSAGE = (
    "Zooming is disabled in this evaluation (counterfactual no-tool): the crop was not made. "
    "Answer from the image you have with <answer>...</answer>."
)


class CounterfactualWrapper(gym.Wrapper):
    """Base: keeps the substituted chat messages of the episode and names the counterfactual.

    `info["messages"]` lists the env's own message dicts; a substituted message is a new dict kept
    here (keyed by the identity of the env's dict, which lives for the whole episode) and put in
    its place in every later info, so the history a model sees stays consistent.
    """

    name: ClassVar[str] = ""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._swaps: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self._swaps = {}
        obs, info = self.env.reset(seed=seed, options=options)
        self._on_reset(obs, info)
        return obs, self._patched(info)

    def _on_reset(self, obs: Any, info: dict[str, Any]) -> None:
        """Hook: remember what the episode's first observation shows."""

    def _swap(self, message: dict[str, Any], replacement: dict[str, Any]) -> None:
        self._swaps[id(message)] = (message, replacement)

    def _patched(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        if "messages" in info:
            info["messages"] = [
                self._swaps[id(m)][1] if id(m) in self._swaps else m for m in info["messages"]
            ]
        info["counterfactual"] = self.name
        return info

    def _swap_last_image(self, info: dict[str, Any], image: np.ndarray) -> None:
        """Put `image` in place of the image of the last message that has one (the crop's)."""
        for message in reversed(info.get("messages") or []):
            content = message.get("content")
            if isinstance(content, list) and any(p.get("type") == "image" for p in content):
                pil = Image.fromarray(image)
                parts = [{**p, "image": pil} if p.get("type") == "image" else p for p in content]
                self._swap(message, {**message, "content": parts})
                return


class _CropSubstitution(CounterfactualWrapper):
    """Base of `blank` and `shuffle`: every accepted crop's view is replaced by `substitute`."""

    def step(self, action: str) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("crop_box") is not None:  # the env made a crop: a new view
            image = self.substitute(obs["image"], info)
            obs = {**obs, "image": image}
            self._swap_last_image(info, image)
        return obs, reward, terminated, truncated, self._patched(info)

    def substitute(self, view: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The image shown instead of `view` (uint8 (h, w, 3), same shape)."""
        raise NotImplementedError


class BlankCrops(_CropSubstitution):
    """`blank`: each crop comes back as a uniform image of its size in the mean colour (per
    channel, rounded) of the episode's first view."""

    name = "blank"

    def _on_reset(self, obs: Any, info: dict[str, Any]) -> None:
        first = np.asarray(obs["image"], dtype=np.float64).reshape(-1, 3)
        self._colour = np.round(first.mean(axis=0)).astype(np.uint8)

    def substitute(self, view: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.broadcast_to(self._colour, view.shape).copy()


class ShuffleCrops(_CropSubstitution):
    """`shuffle`: each crop comes back as the same relative box (fractions of the image) cut from
    another sample's original, resized to the crop's view size.

    The other sample is drawn from `(seed, sample id, turn)` alone, so reruns show the same
    substitutes. Needs an env with a `dataset` of >= 2 samples (`env.unwrapped.dataset`).

    Args:
        seed: seeds the choice of the other sample.
    """

    name = "shuffle"

    def __init__(self, env: gym.Env, seed: int = 0):
        super().__init__(env)
        dataset = getattr(env.unwrapped, "dataset", None)
        if dataset is None or len(dataset) < 2:
            raise ValueError(
                "counterfactual 'shuffle' needs an env whose `dataset` has at least 2 samples "
                f"(got {'none' if dataset is None else len(dataset)}); use 'blank' instead"
            )
        self.dataset = dataset
        self.seed = int(seed)
        self.max_image_pixels = getattr(env.unwrapped, "max_image_pixels", None)
        self._index_of_id: dict[str, int] | None = None

    def other_index(self, sample_id: str, turn: int) -> int:
        """Index of the sample whose pixels replace the crop of `sample_id` at `turn` (never the
        sample itself)."""
        key = zlib.crc32(str(sample_id).encode("utf-8"))
        rng = np.random.default_rng([self.seed, key, int(turn)])
        index = int(rng.integers(len(self.dataset) - 1))
        own = self._own_index(sample_id)
        return index + 1 if own is not None and index >= own else index

    def _own_index(self, sample_id: str) -> int | None:
        """The dataset's `index_of(id)` (lazy synthetic datasets), else a dict built once."""
        index_of = getattr(self.dataset, "index_of", None)
        if callable(index_of):
            return index_of(sample_id)
        if self._index_of_id is None:
            self._index_of_id = {s.id: i for i, s in enumerate(self.dataset)}
        return self._index_of_id.get(sample_id)

    def substitute(self, view: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        other = self.dataset[self.other_index(info["sample_id"], info["turn"])]
        kwargs = (
            {} if self.max_image_pixels is None else {"max_image_pixels": self.max_image_pixels}
        )
        handle = ImageHandle(other.image, **kwargs)
        crop = Box(*info["crop_box"])
        (w, h), (ow, oh) = info["image_size"], handle.size
        box = Box(crop.x1 * ow / w, crop.y1 * oh / h, crop.x2 * ow / w, crop.y2 * oh / h)
        size = (view.shape[1], view.shape[0])
        image = render_view_image(handle.image(), box, size, original_size=(ow, oh))
        return np.asarray(image, dtype=np.uint8)


class NoTool(CounterfactualWrapper):
    """`no-tool`: crop actions are refused with `NO_TOOL_MESSAGE`; the view stays the first one.

    The env is stepped with an empty action (it refuses it, keeps its view and counts the turn);
    the history then holds the agent's text and the refusal in place of the env's error prompt,
    `info["action_error"]` is the refusal and `action_kind` the env's ("invalid", as for any
    refused crop). Answers and invalid actions pass through unchanged.
    """

    name = "no-tool"

    def step(self, action: str) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        base = self.env.unwrapped
        parsed = parse_action(
            action,
            multi_box=getattr(base, "multi_box", "first"),
            max_action_chars=getattr(base, "max_action_chars", 4096),
        )
        if parsed.kind != "crop":
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, self._patched(info)
        obs, reward, terminated, truncated, info = self.env.step("")
        messages = info.get("messages") or []
        if len(messages) >= 2:  # the env's assistant turn ("") and its error prompt
            sent, prompt = messages[-2], messages[-1]
            self._swap(sent, {**sent, "content": [{"type": "text", "text": action}]})
            self._swap(prompt, {**prompt, "content": [{"type": "text", "text": NO_TOOL_MESSAGE}]})
        obs = {**obs, "dialogue": NO_TOOL_MESSAGE} if isinstance(obs, dict) else obs
        info = {**info, "action_error": NO_TOOL_MESSAGE}  # action_kind: the env's ("invalid")
        return obs, reward, terminated, truncated, self._patched(info)


COUNTERFACTUALS: dict[str, type[CounterfactualWrapper]] = {
    w.name: w for w in (BlankCrops, ShuffleCrops, NoTool)
}


def make_counterfactual(env: gym.Env, name: str, seed: int = 0) -> CounterfactualWrapper:
    """Wrap `env` in the counterfactual `name` ("blank", "shuffle", "no-tool").

    Raises:
        ValueError: unknown name (lists the names, with the closest match).
    """
    check_choice("counterfactual", name, sorted(COUNTERFACTUALS))
    if name == "shuffle":
        return ShuffleCrops(env, seed=seed)
    return COUNTERFACTUALS[name](env)
