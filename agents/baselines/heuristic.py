"""Scripted baselines for `grounding-gym eval` (numpy + pillow only: no torch).

| name | crops | then |
|------|-------|------|
| `no-crop` | none | answers from the first view |
| `random-crop` | one box of random size (1/8 to 1/2 of each side, log-uniform) and position | answers |
| `sliding-window` | coarse-to-fine tiling: splits the view into overlapping tiles, crops the most salient one, repeats until the view is at native resolution | answers |
| `oracle-crop` | the ground-truth box (grown to `min_crop`), rounded outward in the env's frame: coverage 1 | answers |
| `fixed-answer` | none | answers `guess` at once (chance level, a sanity floor) |

How they answer. The agents differ in *where they look*, not in how they read: every agent reads
with the same perception module, applied to the view it is looking at when it answers.

* Synthetic samples (`synthetic-hr`, `synthetic`): `grounding_gym.data.synthetic.read_content` on
  the current view at the target's location in that view (`gt_boxes[0]` mapped into the view).
  A target drawn too small in the view is illegible there, so the reader fails and the agent
  falls back to `guess`: this is what makes `no-crop` fail on small targets. A target whose
  centre is outside the current view (a crop that missed it) is not read at all.
* Other data (real benchmarks: no reader): the fixed letter `guess` ("A" by default), or the text
  "unknown" for free-form questions; these agents then measure only grounding (IoU, coverage).

Why `sliding-window` descends instead of visiting tiles side by side: in GroundedVQA every crop is
cut from the current view (a crop of a crop composes; there is no zoom-out), so an agent cannot
look at tile 1 and then at tile 2. It picks the best-looking tile of each view from the pixels it
sees (saturated-colour saliency, restricted to the colour named in the question when it names
one) and crops it, until a view pixel is at least one original pixel (`native_zoom`) or one turn
is left for the answer. It never uses the ground truth to choose a crop.

Every agent is stateless across calls: it decides from the observation and the info (`turn`,
`view_box`, `view_size`, `coord_frame`, the harness's `episode` and `sample_index`).
"""  # noqa: E501 (table rows)

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from grounding_gym.actions import action_frame, crop_action_text, format_answer
from grounding_gym.data import Sample
from grounding_gym.data.synthetic import PALETTE
from grounding_gym.geometry import Box, from_original, grow_to_min, to_original, union_box

__all__ = [
    "FixedAnswerAgent",
    "NoCropAgent",
    "OracleCropAgent",
    "RandomCropAgent",
    "ScriptedAgent",
    "SlidingWindowAgent",
    "saliency_map",
]


class ScriptedAgent:
    """Base of the scripted agents: sample lookup, reading, and the batched `act`.

    Args:
        env: the unwrapped `GroundedVQAEnv` (its `dataset`, `max_turns`, `min_crop`).
        guess: the answer when the content cannot be read (or there is no reader).
        seed: seeds random choices (with the episode index, so runs are reproducible).
        min_score: the reader's confidence threshold (`read_content(..., min_score=)`).
    """

    def __init__(self, env: Any, *, guess: str = "A", seed: int = 0, min_score: float = 0.2):
        self.env = env
        self.dataset = env.dataset
        self.max_turns = int(getattr(env, "max_turns", 5))
        self.min_crop = float(getattr(env, "min_crop", 28.0))
        self.max_aspect = float(getattr(env, "max_aspect", 100.0))
        self.guess = guess
        self.seed = int(seed)
        self.min_score = min_score
        self._index_of_id: dict[str, int] | None = None

    # ---------------------------------------------------------------- Agent protocol
    def act(
        self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]
    ) -> list[str]:
        return [self.act_one(o, i) for o, i in zip(observations, infos, strict=True)]

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    def sample(self, info: dict[str, Any]) -> Sample:
        """The episode's `Sample`: by the harness's `sample_index`, else by `sample_id`."""
        index = info.get("sample_index")
        if index is not None:
            return self.dataset[int(index)]
        if self._index_of_id is None:
            self._index_of_id = {s.id: i for i, s in enumerate(self.dataset)}
        return self.dataset[self._index_of_id[info["sample_id"]]]

    def answer(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """The answer action read from the current view (see the module docstring)."""
        sample = self.sample(info)
        letter = read_view(observation["image"], info, sample, self.min_score)
        if letter is None:
            letter = self.guess if sample.options else "unknown"
        return format_answer(letter)

    def crop(self, box_orig: Box, info: dict[str, Any], decimals: int | None = None) -> str:
        """The crop action for `box_orig` (original px) in the env's frame (outward-rounded)."""
        return crop_action_text(box_orig, *action_frame(info), info["coord_frame"], decimals)

    def rng(self, info: dict[str, Any]) -> np.random.Generator:
        """A generator that depends only on (seed, episode, turn)."""
        episode = info.get("episode")
        if episode is None:
            episode = sum(
                ord(c) * 131**k for k, c in enumerate(str(info.get("sample_id", ""))[:16])
            )
        return np.random.default_rng([self.seed, int(episode), int(info.get("turn", 0))])


def read_view(
    view: np.ndarray, info: dict[str, Any], sample: Sample, min_score: float = 0.2
) -> str | None:
    """Read a synthetic sample's answer letter from `view` at the target's place, or None.

    None when the sample has no reader (not synthetic), the target's centre lies outside the
    current view, or the reader finds the content illegible.
    """
    meta = sample.metadata or {}
    if not sample.gt_boxes or not sample.options or meta.get("content_kind") is None:
        return None
    try:
        from grounding_gym.data.synthetic import read_content
    except ImportError:  # pragma: no cover - the synthetic module ships with grounding_gym
        return None
    view_box = Box(*info["view_box"])
    target = sample.gt_boxes[0]
    cx, cy = target.center
    if not (view_box.x1 <= cx <= view_box.x2 and view_box.y1 <= cy <= view_box.y2):
        return None
    box_view = from_original(target, "view", view_box, tuple(info["view_size"]))
    return read_content(view, box_view, sample, min_score=min_score)


class FixedAnswerAgent(ScriptedAgent):
    """Answers `guess` at turn 0 without looking (the chance-level floor)."""

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        return format_answer(self.guess)


class NoCropAgent(ScriptedAgent):
    """Answers from the first view, reading the target there."""

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        return self.answer(observation, info)


class OracleCropAgent(ScriptedAgent):
    """Crops the ground truth (union of `gt_boxes`), then answers from the crop.

    The box is grown about its centre to `min_crop` original px (the env's smallest crop) and
    mapped to the env's `coord_frame` with `from_original`, then rounded outward with
    `round_outward` to `decimals` (default 2: the crop is exact to ~0.01 px of the frame), so the
    env crops a box that contains the target: coverage is exactly 1, and IoU is below 1 only
    where the target is smaller than `min_crop` (or by the rounding). Samples without boxes are
    answered from the first view.

    Args:
        decimals: digits of the written coordinates (0 writes integers, as a model would).
    """

    def __init__(self, env: Any, *, decimals: int = 2, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.decimals = decimals

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        sample = self.sample(info)
        if info["turn"] > 0 or not sample.gt_boxes:
            return self.answer(observation, info)
        view_box = Box(*info["view_box"])
        target = grow_to_min(
            union_box(list(sample.gt_boxes)), self.min_crop, view_box, self.max_aspect
        )
        frame = info["coord_frame"]
        decimals = self.decimals + (3 if frame == "norm1" else 0)
        return self.crop(target, info, decimals)


class RandomCropAgent(ScriptedAgent):
    """One crop of random size and position, then answers from it.

    Args:
        scales: `(min, max)` fraction of the view's sides, drawn log-uniformly (aspect kept).
    """

    def __init__(self, env: Any, *, scales: tuple[float, float] = (0.125, 0.5), **kwargs: Any):
        super().__init__(env, **kwargs)
        lo, hi = scales
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scales must satisfy 0 < min <= max <= 1, got {scales}")
        self.scales = (float(lo), float(hi))

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        if info["turn"] > 0:
            return self.answer(observation, info)
        rng = self.rng(info)
        view_box = Box(*info["view_box"])
        frac = math.exp(rng.uniform(math.log(self.scales[0]), math.log(self.scales[1])))
        w = max(self.min_crop, frac * view_box.width)
        h = max(self.min_crop, frac * view_box.height)
        x1 = view_box.x1 + rng.uniform(0.0, max(0.0, view_box.width - w))
        y1 = view_box.y1 + rng.uniform(0.0, max(0.0, view_box.height - h))
        return self.crop(Box(x1, y1, min(x1 + w, view_box.x2), min(y1 + h, view_box.y2)), info)


# ---------------------------------------------------------------- saliency for sliding-window

_COLOR_WORDS: dict[str, tuple[int, int, int]] = PALETTE
"""Colour words the sliding-window agent looks for in a question (the synthetic palette)."""


def _question_hue(question: str) -> float | None:
    """Hue (0..1) of the first colour word of the question, or None."""
    for word in re.findall(r"[a-z]+", question.lower()):
        if word in _COLOR_WORDS:
            r, g, b = _COLOR_WORDS[word]
            return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0]
    return None


def saliency_map(view: np.ndarray, hue: float | None = None, hue_tol: float = 0.06) -> np.ndarray:
    """Per-pixel saliency of a view in [0, 1], float32 (h, w).

    Strongly saturated, not-dark pixels (HSV S >= 0.6, V >= 0.3) are salient; with `hue`, only
    those within `hue_tol` (fraction of the colour circle) of it.
    """
    hsv = np.asarray(Image.fromarray(view).convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    mask = (s >= 0.6) & (v >= 0.3)
    if hue is not None:
        distance = np.abs(h - hue)
        mask &= np.minimum(distance, 1.0 - distance) <= hue_tol
    return mask.astype(np.float32)


class SlidingWindowAgent(ScriptedAgent):
    """Coarse-to-fine tiling: crop the most salient tile of each view, then answer.

    Each view is covered by `grid` x `grid` tiles of side `tile` (a fraction of the view's sides;
    tiles overlap when `grid * tile > 1`). A tile's score is the sum of `saliency_map` over it
    (the colour named in the question, when there is one); the best tile is cropped. The agent
    stops cropping and answers once the view is at about native resolution (view px per original
    px >= `native_zoom`; 0.9 allows for the rounding of view sides to 28 px), once the best tile is
    already densely salient (>= `big_fraction` of its pixels, and >= `legible_px` view px: a large
    target, shown large enough to read, which a further crop would cut), or when one turn is left.

    Args:
        grid: tiles per side.
        tile: tile side as a fraction of the view's side.
        native_zoom: stop when view px per original px >= this.
        big_fraction: stop when the best tile's salient share is at least this ...
        legible_px: ... and it holds at least this many salient view px (a ring outline of
            ~3000 px is ~95 px across: its content is legible).
    """

    def __init__(
        self,
        env: Any,
        *,
        grid: int = 3,
        tile: float = 0.5,
        native_zoom: float = 0.9,
        big_fraction: float = 0.05,
        legible_px: float = 3000.0,
        **kwargs: Any,
    ):
        super().__init__(env, **kwargs)
        if grid < 1 or not 0 < tile <= 1:
            raise ValueError(f"need grid >= 1 and 0 < tile <= 1, got grid={grid}, tile={tile}")
        self.grid, self.tile, self.native_zoom = int(grid), float(tile), float(native_zoom)
        self.big_fraction, self.legible_px = float(big_fraction), float(legible_px)

    def tiles(self, view_w: int, view_h: int) -> list[Box]:
        """The tiles of a `view_w` x `view_h` view, view px, row-major."""
        tw, th = self.tile * view_w, self.tile * view_h
        steps = [k / (self.grid - 1) if self.grid > 1 else 0.5 for k in range(self.grid)]
        return [
            Box(
                fx * (view_w - tw),
                fy * (view_h - th),
                fx * (view_w - tw) + tw,
                fy * (view_h - th) + th,
            )
            for fy in steps
            for fx in steps
        ]

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        view_box = Box(*info["view_box"])
        view_w, view_h = info["view_size"]
        zoom = view_w / view_box.width
        if info["turn"] >= self.max_turns - 1 or zoom >= self.native_zoom:
            return self.answer(observation, info)
        hue = _question_hue(self.sample(info).question)
        saliency = saliency_map(observation["image"], hue)
        integral = np.pad(saliency, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        best, best_score = None, -1.0
        centre = (view_w / 2.0, view_h / 2.0)
        for box in self.tiles(view_w, view_h):
            x1, y1, x2, y2 = (round(c) for c in box.as_tuple())
            score = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
            score -= 1e-9 * math.dist(box.center, centre)  # ties: the most central tile
            if score > best_score:
                best, best_score = box, score
        assert best is not None
        if best_score >= max(self.big_fraction * best.area, self.legible_px):  # already big here
            return self.answer(observation, info)
        return self.crop(to_original(best, "view", view_box, (view_w, view_h)), info)
