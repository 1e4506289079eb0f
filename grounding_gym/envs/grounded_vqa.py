"""GroundedVQA: answer a question about an image, zooming in with crops first."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw

from grounding_gym.actions import (
    ACTION_CHARSET,
    MAX_ACTION_CHARS_LIMIT,
    MULTI_BOX_MODES,
    ParsedAction,
    parse_action,
)
from grounding_gym.data import Sample, make_dataset
from grounding_gym.data.registry import dataset_bin_edges
from grounding_gym.geometry import (
    INVALID_BOX_MODES,
    Box,
    check_frame,
    crop_box_text,
    resolve_crop,
    union_box,
)
from grounding_gym.image_store import shared_store
from grounding_gym.judge import make_answer_judge
from grounding_gym.renderer import FirstViewCache, ViewRenderer
from grounding_gym.rewards import (
    GROUNDING_AGGREGATIONS,
    GROUNDING_METRICS,
    answer_reward,
    check_reward_weights,
    combine_rewards,
    crop_score,
    episode_format_reward,
    format_reward,
    grounding_reward,
)
from grounding_gym.scale import DEFAULT_BIN_EDGES, check_bin_edges, relative_area, scale_bin_name
from grounding_gym.spaces import ImageSpace, UnicodeText
from grounding_gym.validation import check_choice
from grounding_gym.views import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageCache,
    ImageHandle,
)

QWEN_PATCH = 28
DEFAULT_MIN_PIXELS = 4 * QWEN_PATCH * QWEN_PATCH  # 3,136
DEFAULT_MAX_PIXELS = 1280 * QWEN_PATCH * QWEN_PATCH  # 1,003,520
MAX_DIALOGUE_CHARS = 65536
HANDLES_KEPT = 8
"""Image handles (a name and a header each, no pixels) an env keeps by sample id."""


def fit_dialogue(text: str) -> str:
    """`text` if it fits the dialogue space, else its head plus a note saying how much was cut
    (a hand-built sample with a huge question must not leave the observation space).

    >>> len(fit_dialogue("x" * 100_000)) == MAX_DIALOGUE_CHARS
    True
    """
    if len(text) <= MAX_DIALOGUE_CHARS:
        return text
    note = f"\n[... {len(text):,} chars cut to {MAX_DIALOGUE_CHARS:,}: the dialogue limit]"
    return text[: MAX_DIALOGUE_CHARS - len(note)] + note


DEFAULT_SYSTEM_PROMPT = (
    "You answer questions about an image. You may zoom in first: reply "
    "<crop>[x1, y1, x2, y2]</crop> to see that region at higher resolution, or reply "
    "<answer>...</answer> to answer. You may think first inside <think>...</think>."
)

FRAME_SENTENCES = {
    "view": "Crop coordinates are pixels of the image you are shown ({w}x{h}), "
    "origin at its top-left corner, x to the right, y down.",
    "norm1000": "Crop coordinates are thousandths (0-1000) of the width and height of the "
    "image you are shown, origin at its top-left corner.",
    "norm1": "Crop coordinates are fractions (0-1) of the width and height of the image you "
    "are shown, origin at its top-left corner.",
    "original": "Crop coordinates are pixels of the full-resolution original ({W}x{H}), "
    "origin at its top-left corner, whatever region you are shown.",
}


class GroundedVQAEnv(gym.Env[dict, str]):
    """
    ## Description
    Answer a question about a (high-resolution) image by zooming in. Each crop is cut from
    the original image and resized into the pixel budget, so detail lost in the first,
    downsampled view can be recovered. Default data: the procedural `synthetic-hr`
    generator (2K-8K images, small targets whose content is legible only when zoomed).

    ## Action Space
    `Text(max_action_chars, charset=ACTION_CHARSET)` (printable ASCII, tab, newline); any `str` is
    accepted by `step`:
    `<crop>[x1, y1, x2, y2]</crop>` (in `coord_frame` of the current view; Qwen tool calls,
    MGPO JSON and `<box>` also parse) or `<answer>B</answer>` (`\\boxed{B}` also parses).
    Anything else is invalid: the episode goes on and the dialogue says what was wrong.

    ## Observation Space
    `Dict`:

    | Key | Type | Meaning |
    |-----|------|---------|
    | `image` | uint8 (h, w, 3), `min_pixels <= h*w <= max_pixels` | the new view, resized |
    | `dialogue` | str | text of the new user turn |

    `info["messages"]` holds the whole conversation in chat-template form (images as PIL).

    ## Rewards
    Weighted sum (`reward_weights`, defaults answer 1.0, format 0.1, grounding 0.5) of
    `info["reward_terms"]`, all paid on the last step (0 on earlier ones): `format` in [0, 1] =
    the share of the episode's actions that were well-formed and accepted (a mean over turns,
    so padding never pays: an immediate correct answer earns 1.1, as does one after four
    useless crops); `answer` in {0, 1} on the answer step; `grounding` in [0, 1] =
    `grounding_agg` ("max") of the crops' `grounding_metric` ("iou") with the ground truth
    (0 with no crops or no ground truth). docs/env.md has a worked example.

    ## Starting State
    A sample drawn with `self.np_random` (or `options={"sample_id": ...}`); the whole image
    resized into the pixel budget; the prompt states the question, options, coordinate frame
    and view size.

    ## Episode End
    1. Termination: an `<answer>` action (scored even when its format is off).
    2. Truncation: `max_turns` actions without an answer (answer reward 0).

    ## Info
    `sample_id, turn, view_box` (original px), `view_size` (w, h), `image_size` (w, h),
    `coord_frame`, `action_frame_box` (original px) and `action_frame_size` (w, h): what the next
    action's coordinates refer to (`action_reference()`: the current view, so `view_box` and
    `view_size`, except in presets that keep the first view's frame, e.g. DeepEyes),
    `action_kind` ("crop" | "answer" | "invalid" | None at reset; a crop the env refused is
    "invalid"), `action_error` (why the
    action was refused, or the format note of an accepted one whose format is off; else None),
    `crop_box` (original px or None), `crop_adjusted`, `crops` (all crops so far), `gt_boxes`,
    `crop_iou, crop_coverage, crop_rel_area` (None without a crop or ground truth),
    `target_rel_area, target_scale_bin, crop_scale_bin`, `reward_terms`, `messages`;
    `correct` and `answer` on the answer step (and `judge`, the verdict, with `answer_judge`).

    ## Arguments
    `dataset="synthetic-hr"` (a registered name or a sequence of `Sample`), `dataset_kwargs`,
    `data_dir`, `coord_frame="view"`, `max_turns=5`, `min_pixels=3136`, `max_pixels=1003520`,
    `patch_size=28`, `invalid_box="clip"`, `min_crop=28`, `max_aspect=100`,
    `multi_box="first"`, `max_action_chars=4096`, `reward_weights`, `grounding_metric="iou"`,
    `grounding_agg="max"`, `scale_bin_edges=None` (the dataset's declared edges, e.g. (1e-3, 1e-2)
    for V*, HR-Bench, MME-RealWorld, TreeBench and synthetic-hr; else (0.1, 0.3);
    `env.scale_bin_edges_source`
    says which), `image_cache_bytes=None` (the byte budget of the process-wide store of decoded
    images, previews and pyramid levels that every env of the process shares,
    `grounding_gym.image_store.shared_store`; None: `GROUNDING_GYM_IMAGE_CACHE_BYTES` if set,
    else 512 MiB; 0 keeps nothing, so every view decodes its image again; envs with the same
    budget share one store, `env.image_store`), `max_image_pixels`, `reduced_decode=True`
    (first view of a JPEG from a 1/2-1/8 scale decode, PSNR >= 30 dB against the full decode,
    see docs/benchmarks.md),
    `upsample_first_view=False` (with `reduced_decode`, also a JPEG 1.25-2x the view per side
    decodes at 1/2 scale and its first view is upsampled from that; PSNR >= 30 dB on photos,
    but it blurs small text, hence off), `fast_resize=True` (a crop that shrinks its region
    2x or more per side is resampled from a cached 1/2, 1/4, ... box-filtered copy of the
    original, `ImageHandle.reduced`, instead of from the original: about 2.5x faster, PSNR
    >= 30 dB against the view resampled from the original; crops shrunk less than 2x or
    upscaled are resampled from the original either way, first views never from the pyramid;
    False: every crop is resampled from the original), `resize_backend="auto"` (what resamples
    the views: "pil" is the reference, `PIL.Image.resize(view_size, BICUBIC, box=crop)`, byte
    for byte as in earlier releases; "opencv" is `render_view_opencv` for views that shrink
    their source less than 2x per side (larger shrinks stay with PIL): about 2x faster, PSNR
    >= 40 dB against "pil" on photos and >= 27 dB on dense small text, see docs/benchmarks.md;
    needs the `fast` extra; "auto" is "opencv" when OpenCV imports, else "pil";
    `env.resize_backend` holds the one in use. Exact reference views:
    `resize_backend="pil", fast_resize=False, reduced_decode=False`),
    `first_view_cache=None` (a `grounding_gym.renderer.FirstViewCache` shared by a pool of envs:
    each sample's first view is rendered once; observations are identical),
    `system_prompt`, `render_mode=None | "rgb_array"`, `answer_judge=None` (free-form answers:
    a `grounding_gym.judge.JudgeConfig` as a dict, e.g. `{"model": ..., "base_url": ...}`;
    exact / numeric match first, then a pinned, cached judge model; the verdict in
    `info["judge"]`). `env.renderer` renders the views.

    ## Version History
    * v0: Initial release. Changed in place (pre-1.0): `format` is paid once, on the last step,
      as the mean over turns (it was 1 on every accepted step, so padding paid); a refused
      crop reports `action_kind` "invalid" (it said "crop"); a free-form answer that is one
      number word scores as its digits ("eight" = "8" = "8.0"; it scored 0).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(
        self,
        dataset: str | Sequence[Sample] = "synthetic-hr",
        *,
        dataset_kwargs: Mapping[str, Any] | None = None,
        data_dir: str | None = None,
        coord_frame: str = "view",
        max_turns: int = 5,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        patch_size: int | None = QWEN_PATCH,
        invalid_box: str = "clip",
        min_crop: float = 28.0,
        max_aspect: float = 100.0,
        multi_box: str = "first",
        max_action_chars: int = 4096,
        reward_weights: Mapping[str, float] | None = None,
        grounding_metric: str = "iou",
        grounding_agg: str = "max",
        scale_bin_edges: Sequence[float] | None = None,
        image_cache_bytes: int | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        reduced_decode: bool = True,
        upsample_first_view: bool = False,
        fast_resize: bool = True,
        resize_backend: str = "auto",
        first_view_cache: FirstViewCache | None = None,
        system_prompt: str | None = None,
        render_mode: str | None = None,
        answer_judge: Mapping[str, Any] | None = None,
    ):
        check_choice("invalid_box", invalid_box, INVALID_BOX_MODES)
        check_choice("grounding_metric", grounding_metric, GROUNDING_METRICS)
        check_choice("grounding_agg", grounding_agg, GROUNDING_AGGREGATIONS)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        check_choice("multi_box", multi_box, MULTI_BOX_MODES)
        if not isinstance(max_action_chars, int) or not 1 <= max_action_chars <= (
            MAX_ACTION_CHARS_LIMIT
        ):
            raise ValueError(
                f"max_action_chars must be an int in 1..{MAX_ACTION_CHARS_LIMIT} (the action "
                f"parser's tested bound), got {max_action_chars!r}"
            )
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if min_crop <= 0 or max_aspect < 1:
            raise ValueError(f"need min_crop > 0 and max_aspect >= 1, got {min_crop}, {max_aspect}")
        self.coord_frame = check_frame(coord_frame)
        self.dataset = _build_dataset(dataset, dataset_kwargs, data_dir)
        self.max_turns = max_turns
        self.min_pixels, self.max_pixels, self.patch_size = min_pixels, max_pixels, patch_size
        self.invalid_box, self.min_crop, self.max_aspect = (
            invalid_box,
            float(min_crop),
            float(max_aspect),
        )
        self.multi_box, self.max_action_chars = multi_box, max_action_chars
        self.reward_weights = check_reward_weights(reward_weights, terms=tuple(self._zero_terms()))
        self.grounding_metric, self.grounding_agg = grounding_metric, grounding_agg
        self.scale_bin_edges, self.scale_bin_edges_source = _resolve_bin_edges(
            scale_bin_edges, dataset
        )
        self.max_image_pixels = max_image_pixels
        self.renderer = ViewRenderer(
            min_pixels,
            max_pixels,
            patch_size,
            reduced_decode=reduced_decode,
            upsample_first_view=upsample_first_view,
            fast_resize=fast_resize,
            resize_backend=resize_backend,
            first_view_cache=first_view_cache,
        )
        """Renders every view (`renderer.ViewRenderer`); its options are the kwargs above."""
        self.resize_backend = self.renderer.resize_backend
        self.system_prompt = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.render_mode = render_mode
        self.answer_judge = make_answer_judge(answer_judge)
        self.image_store = shared_store(image_cache_bytes)
        self._image_cache = ImageCache(HANDLES_KEPT)  # headers only: pixels are in the store
        self._index_of_id: dict[str, int] | None = None

        self.observation_space = gym.spaces.Dict(
            {
                "image": ImageSpace(max_pixels=max_pixels, min_side=1),
                "dialogue": UnicodeText(MAX_DIALOGUE_CHARS),
            }
        )
        self.action_space = gym.spaces.Text(max_action_chars, min_length=0, charset=ACTION_CHARSET)

        # The episode's sample, image and view: None until the first `reset` (which step,
        # render and the hooks require), typed as after it.
        self.sample: Sample = None  # type: ignore[assignment]
        self._handle: ImageHandle = None  # type: ignore[assignment]
        self.view_box: Box = None  # type: ignore[assignment]
        self.view_size: tuple[int, int] = (0, 0)
        self.turn = 0
        self.crops: list[Box] = []
        self.messages: list[dict[str, Any]] = []
        self._done = True
        self._rendered: tuple[np.ndarray, Image.Image] | None = None  # (view, its PIL image)

    # ------------------------------------------------------------------ episode
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.sample = self.dataset[self._select_index(options or {})]
        self._handle = self._image_cache.get(
            self.sample.id,
            lambda: ImageHandle(self.sample.image, self.max_image_pixels, self.image_store),
        )
        self.turn, self.crops, self._done = 0, [], False
        self._step_formats: list[float] = []
        image_w, image_h = self._handle.size
        view = self._show(Box.from_size(image_w, image_h), first_view=True)
        dialogue = fit_dialogue(self.first_prompt(self.sample))
        self.messages = [
            {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
            _user_turn(self._message_image(view), dialogue),
        ]
        info = self._info(action_kind=None, reward_terms=self._zero_terms())
        return {"image": view, "dialogue": dialogue}, info

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self._done or self.sample is None:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        parsed = parse_action(
            action, multi_box=self.multi_box, max_action_chars=self.max_action_chars
        )
        text = action if isinstance(action, str) else repr(action)  # non-str actions are invalid
        self.turn += 1
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})

        if parsed.kind == "answer":
            view = self._current_view.copy()  # observations never share memory
            terms, extra = self.score_answer(parsed, self.sample)
            terms["format"] = self._format_term(format_reward(parsed.format_ok), done=True)
            terms["grounding"] = self._episode_grounding()
            self._done = True
            info = self._info("answer", parsed.error, reward_terms=terms, **extra)
            return self._finish(view, "", terms, True, False, info)

        crop, error, adjusted = (None, parsed.error, False)
        if parsed.kind == "crop":
            frame_box, frame_size = self.action_reference()
            crop, refusal, adjusted = resolve_crop(
                parsed.boxes[0],
                self.coord_frame,
                frame_box,
                frame_size,
                min_crop=self.min_crop,
                max_aspect=self.max_aspect,
                invalid_box=self.invalid_box,
            )
            error = refusal or parsed.error  # an accepted crop keeps the parser's format note
        terms = self._zero_terms()
        truncated = self.turn >= self.max_turns
        step_format = format_reward(parsed.format_ok, accepted=crop is not None)
        terms["format"] = self._format_term(step_format, done=truncated)
        if crop is not None:
            self.crops.append(crop)
            view = self._show(crop)
            dialogue = self.crop_prompt(crop)
            self.messages.append(self.crop_message(self._message_image(view), dialogue))
        else:
            view = self._current_view.copy()  # observations never share memory
            dialogue = self.error_prompt(error or "invalid action")
            self.messages.append(_user_turn(None, dialogue))
        if truncated:
            terms["grounding"] = self._episode_grounding()
            self._done = True
        kind = parsed.kind if crop is not None or parsed.kind != "crop" else "invalid"  # refused
        info = self._info(kind, error, crop=crop, adjusted=adjusted, reward_terms=terms)
        return self._finish(view, dialogue, terms, False, truncated, info)

    def _finish(
        self,
        view: np.ndarray,
        dialogue: str,
        terms: dict,
        terminated: bool,
        truncated: bool,
        info: dict,
    ) -> tuple[dict, float, bool, bool, dict]:
        reward = combine_rewards(terms, self.reward_weights)
        dialogue = fit_dialogue(dialogue)
        return {"image": view, "dialogue": dialogue}, reward, terminated, truncated, info

    # ------------------------------------------------------------------ hooks for subclasses
    def action_reference(self) -> tuple[Box, tuple[int, int]]:
        """`(view_box, view_size)` that action coordinates in `coord_frame` refer to: the
        current view (original px, and its (w, h) in view px)."""
        return self.view_box, self.view_size

    def crop_message(self, view: Image.Image, dialogue: str) -> dict[str, Any]:
        """The chat message that returns a crop: a user turn with the new view, then `dialogue`."""
        return _user_turn(view, dialogue)

    def first_prompt(self, sample: Sample) -> str:
        """Text of the first user turn: question, options, frame and budget of turns."""
        lines = question_lines(sample)
        image_w, image_h = self._handle.size
        lines.append(
            f"The image is shown at {self.view_size[0]}x{self.view_size[1]} px "
            f"(original {image_w}x{image_h} px). "
            + FRAME_SENTENCES[self.coord_frame].format(
                w=self.view_size[0], h=self.view_size[1], W=image_w, H=image_h
            )
        )
        answer_hint = "the option's letter" if sample.options else "a short answer"
        lines.append(
            f"Reply <crop>[x1, y1, x2, y2]</crop> to zoom in, or <answer>...</answer> with "
            f"{answer_hint}. You have {self.max_turns} turns."
        )
        return "\n".join(lines)

    def crop_prompt(self, crop_orig: Box) -> str:
        """Text of the user turn that returns a crop."""
        left = turns_left_text(self.max_turns - self.turn)
        return (
            f"{zoom_sentence(crop_orig, self.view_size)}; coordinates now refer to this view. "
            f"{left}"
        )

    def error_prompt(self, error: str) -> str:
        """Text of the user turn after an invalid or refused action."""
        return (
            f"Your reply was not a valid action ({error}). Reply <crop>[x1, y1, x2, y2]</crop> "
            f"or <answer>...</answer>. {turns_left_text(self.max_turns - self.turn)}"
        )

    def score_answer(self, parsed: ParsedAction, sample: Sample) -> tuple[dict[str, float], dict]:
        """Reward terms of an answer step (without format and grounding) and extra info."""
        if self.answer_judge is not None and not sample.options:  # free form: the pinned judge
            verdict = self.answer_judge(sample.question, sample.answer, parsed.answer or "")
            extra = {"correct": bool(verdict.correct), "answer": parsed.answer}
            return {"answer": float(bool(verdict.correct))}, {**extra, "judge": verdict.record()}
        correct = answer_reward(parsed.answer or "", sample.answer, sample.options)
        return {"answer": correct}, {"correct": bool(correct), "answer": parsed.answer}

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        """rgb_array of the original (longest side <= 1024 px) with boxes drawn:
        ground truth green, crops orange (numbered), current view blue."""
        if self.render_mode is None or self._handle is None:
            return None
        return draw_episode(self._handle.image(), self.sample.gt_boxes, self.crops, self.view_box)

    # ------------------------------------------------------------------ internals
    def _select_index(self, options: Mapping[str, Any]) -> int:
        if "sample_id" in options:
            key = options["sample_id"]
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, str)):
                raise ValueError(
                    f"sample_id must be a sample's id (str) or index (int), got "
                    f"{type(key).__name__} {str(key)[:40]!r}"
                )
            if isinstance(key, (int, np.integer)):
                if not -len(self.dataset) <= key < len(self.dataset):
                    raise ValueError(
                        f"sample_id index {key} out of range for {len(self.dataset)} samples"
                    )
                return int(key)
            index = self._index_of(str(key))
            if index is None:
                raise ValueError(f"Unknown sample_id {key!r}; ids look like {self.dataset[0].id!r}")
            return index
        return int(self.np_random.integers(len(self.dataset)))

    def _index_of(self, sample_id: str) -> int | None:
        """The dataset's own `index_of(id)` when it has one (lazy synthetic datasets parse the
        id), else a dict over every sample's id, built on first use."""
        if hasattr(self.dataset, "index_of"):
            return self.dataset.index_of(sample_id)
        if self._index_of_id is None:
            self._index_of_id = {s.id: i for i, s in enumerate(self.dataset)}
        return self._index_of_id.get(sample_id)

    def _show(self, box_orig: Box, first_view: bool = False) -> np.ndarray:
        """Render `box_orig` (original px) with `renderer` and make it the current view."""
        view = self.renderer.render(
            self._handle, box_orig, first_view=first_view, key=self.sample.id
        )
        self.view_box, self.view_size = view.box, view.size
        self._current_view = view.array
        self._rendered = None if view.image is None else (view.array, view.image)
        return view.array

    @property
    def image_handle(self) -> ImageHandle:
        """The current sample's original image (size from its header; decoded on demand);
        None before the first `reset`."""
        return self._handle

    def _message_image(self, view: np.ndarray) -> Image.Image:
        """The chat message's PIL copy of `view`: the PIL resize result itself when `view` is what
        `_show` just rendered with it (no second copy), else a copy of `view`."""
        if self._rendered is not None and self._rendered[0] is view:
            return self._rendered[1]
        return Image.fromarray(view)

    def _zero_terms(self) -> dict[str, float]:
        return {"answer": 0.0, "format": 0.0, "grounding": 0.0}

    def _format_term(self, step_format: float, done: bool) -> float:
        """The `format` term of this step: 0 until the episode ends, then the mean of every
        step's `format_reward` (`rewards.episode_format_reward`: padding never pays)."""
        self._step_formats.append(step_format)
        return episode_format_reward(self._step_formats) if done else 0.0

    def _episode_grounding(self) -> float:
        return grounding_reward(
            self.crops, self.sample.gt_boxes, self.grounding_metric, self.grounding_agg
        )

    def _info(
        self,
        action_kind: str | None,
        error: str | None = None,
        *,
        crop: Box | None = None,
        adjusted: bool = False,
        reward_terms: dict[str, float],
        **extra: Any,
    ) -> dict[str, Any]:
        sample, image_size = self.sample, self._handle.size
        gt = sample.gt_boxes
        target_area = relative_area(union_box(list(gt)), image_size) if gt else math.nan
        crop_area = relative_area(crop, image_size) if crop is not None else math.nan
        frame_box, frame_size = self.action_reference()
        info = {
            "sample_id": sample.id,
            "turn": self.turn,
            "view_box": self.view_box.as_tuple(),
            "view_size": self.view_size,
            "image_size": image_size,
            "coord_frame": self.coord_frame,
            "action_frame_box": frame_box.as_tuple(),
            "action_frame_size": frame_size,
            "action_kind": action_kind,
            "action_error": error,
            "crop_box": crop.as_tuple() if crop is not None else None,
            "crop_adjusted": adjusted,
            "crops": [c.as_tuple() for c in self.crops],
            "gt_boxes": [b.as_tuple() for b in gt],
            "crop_iou": _or_none(crop_score(crop, gt, "iou")) if crop is not None else None,
            "crop_coverage": _or_none(crop_score(crop, gt, "coverage"))
            if crop is not None
            else None,
            "crop_rel_area": _or_none(crop_area),
            "target_rel_area": _or_none(target_area),
            "target_scale_bin": scale_bin_name(target_area, self.scale_bin_edges),
            "crop_scale_bin": scale_bin_name(crop_area, self.scale_bin_edges),
            "category": sample.category,
            "reward_terms": reward_terms,
            "messages": list(self.messages),
        }
        info.update(extra)
        return info


def draw_episode(
    image: Image.Image,
    gt_boxes: Sequence[Box],
    crops: Sequence[Box],
    view_box: Box | None,
    max_side: int = 1024,
) -> np.ndarray:
    """The original downscaled to `max_side`, with the current view (blue), crops (orange,
    numbered in order) and ground truth (green, on top) drawn; uint8 (h, w, 3)."""
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = image.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(size) / 300))

    def scaled(box: Box) -> list[float]:
        return [c * scale for c in box.as_tuple()]

    if view_box is not None:
        draw.rectangle(scaled(view_box), outline=(30, 90, 255), width=width)
    for index, box in enumerate(crops, start=1):
        draw.rectangle(scaled(box), outline=(255, 140, 0), width=width)
        draw.text(
            (box.x1 * scale + width + 1, box.y1 * scale + width), str(index), fill=(255, 140, 0)
        )
    for box in gt_boxes:
        draw.rectangle(scaled(box), outline=(0, 200, 0), width=width)
    return np.asarray(canvas, dtype=np.uint8)


def question_lines(sample: Sample) -> list[str]:
    """`Question: ...`, then `Options:` and one `(A) text` line per option, if any."""
    lines = [f"Question: {sample.question}"]
    if sample.options:
        lines.append("Options:")
        lines += [
            f"({letter}) {text}"
            for letter, text in zip(sample.option_letters, sample.options, strict=True)
        ]
    return lines


def zoom_sentence(crop_orig: Box, view_size: tuple[int, int]) -> str:
    """`"Zoomed in on [x1, y1, x2, y2] of the original, shown at WxH px"` (no full stop)."""
    return (
        f"Zoomed in on {crop_box_text(crop_orig)} of the original, shown at "
        f"{view_size[0]}x{view_size[1]} px"
    )


def turns_left_text(left: int) -> str:
    """`"3 turns left."` / `"1 turn left."`, for the prompts."""
    return f"{left} turn{'s' if left != 1 else ''} left."


def _user_turn(view: Image.Image | None, text: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if view is not None:
        content.append({"type": "image", "image": view})
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def message_images(messages: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The images of chat messages (`info["messages"]`), in order: the first view, then each
    crop's view."""
    return [
        part["image"]
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image"
    ]


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _resolve_bin_edges(
    edges: Sequence[float] | None, dataset: Any
) -> tuple[tuple[float, ...], str]:
    """`(edges, why)`: the given edges, else the dataset's declared ones, else the library
    default."""
    if edges is not None:
        return check_bin_edges(edges), "scale_bin_edges given"
    declared = dataset_bin_edges(dataset)
    if declared is not None:
        return declared[0], f"dataset {dataset!r} default: {declared[1]}"
    return DEFAULT_BIN_EDGES, "library default (the dataset declares none)"


def _build_dataset(
    dataset: str | Sequence[Sample], dataset_kwargs: Mapping[str, Any] | None, data_dir: str | None
) -> Sequence[Sample]:
    kwargs = dict(dataset_kwargs or {})
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if isinstance(dataset, str):
        built = make_dataset(dataset, **kwargs)
    else:
        if kwargs:
            raise ValueError("dataset_kwargs/data_dir only apply when dataset is a registered name")
        built = dataset
    if len(built) == 0:
        raise ValueError(f"dataset {dataset!r} has no samples")
    return built
