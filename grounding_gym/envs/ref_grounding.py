"""RefGrounding: a referring expression in, one box out; reward IoU, metric Acc@0.5.

Default data: `synthetic-ref` (`grounding_gym.data.synthetic.SyntheticRef`), `synthetic-hr`
scenes whose target ring is named by its referring expression ("the red ring filled with
dots", "the ring labelled K7"), so the env runs with no files. Real data: the `refcoco` loader
(`grounding_gym.data.loaders`),
or any samples with a ground-truth box and `metadata["referring_expression"]` (else the
question is the expression).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from grounding_gym.actions import ParsedAction, parse_action
from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import FRAME_SENTENCES, GroundedVQAEnv
from grounding_gym.geometry import Box, coords_to_original
from grounding_gym.rewards import check_reward_weights, crop_score, format_reward
from grounding_gym.scale import relative_area, scale_bin_name

__all__ = ["ACC_IOU_THRESHOLD", "REF_REWARD_WEIGHTS", "RefGroundingEnv"]

REF_REWARD_WEIGHTS: dict[str, float] = {"grounding": 1.0, "format": 0.1, "answer": 0.0}
"""Default weights: reward = IoU of the predicted box + 0.1 * format (Acc@0.5 reported only)."""

ACC_IOU_THRESHOLD = 0.5
"""A prediction counts as correct (`acc50`, the `answer` term) when its IoU is >= this."""

PREDICTION_COLOR = (230, 0, 230)
"""`render()` draws the predicted box in magenta (ground truth green, crops orange)."""

DEFAULT_REF_SYSTEM_PROMPT = (
    "You locate the region of an image that a referring expression describes and reply with "
    "its bounding box, <box>[x1, y1, x2, y2]</box>. When you have several turns you may zoom in "
    "first with <crop>[x1, y1, x2, y2]</crop> and give the box with <answer>[x1, y1, x2, y2]"
    "</answer>. You may think first inside <think>...</think>."
)


class RefGroundingEnv(GroundedVQAEnv):
    """
    ## Description
    Referring-expression grounding: the prompt names one region ("the ring labelled K7"); the
    agent replies with its bounding box, scored by IoU with the ground truth (Acc@0.5 reported).
    With `max_turns > 1` the agent may first zoom, exactly as in `GroundedVQAEnv`. Default data:
    `synthetic-ref`; `dataset="refcoco"` (with `data_dir`) for RefCOCO/+/g.

    ## Action Space
    `Text(max_action_chars, charset=ACTION_CHARSET)`; a box is any crop action `parse_action`
    reads (`<box>[x1, y1, x2, y2]</box>`, `<crop>...</crop>`, a Qwen zoom tool call, MGPO JSON),
    in `coord_frame` of the current view (default "view" px):

    * the last turn (the only one with the default `max_turns=1`) is the prediction: its box
      is scored; any other reply there is a failed prediction (IoU 0, format 0);
    * on an earlier turn, a box zooms in (a new view, as in `GroundedVQAEnv`), and
      `<answer>[x1, y1, x2, y2]</answer>` (any box syntax inside) predicts at once; anything
      else is invalid and the episode goes on.

    A prediction is converted to original px by `geometry.coords_to_original` (the one path),
    then, with `invalid_box="clip"`, its corners are sorted and it is clipped to the image
    (never grown to `min_crop`: a small prediction is scored as written); with "reject" an
    inverted box or one reaching outside the image is refused. A refused or unreadable
    prediction scores IoU 0 and format 0.

    ## Observation Space
    `Dict`, as in `GroundedVQAEnv`:

    | Key | Type | Meaning |
    |-----|------|---------|
    | `image` | uint8 (h, w, 3), `min_pixels <= h*w <= max_pixels` | the new view, resized |
    | `dialogue` | str | text of the new user turn (the first states expression, frame, view size) |

    ## Rewards
    Weighted sum of `info["reward_terms"]` (`reward_weights` override `REF_REWARD_WEIGHTS`):

    | term | range | weight | meaning |
    |------|-------|--------|---------|
    | `grounding` | [0, 1] | 1.0 | last step: IoU of the prediction with the target (0 if refused) |
    | `format` | [0, 1] | 0.1 | last step: share of the episode's actions well-formed and accepted |
    | `answer` | {0, 1} | 0.0 | last step: IoU >= 0.5 (Acc@0.5) |

    Several ground-truth boxes are scored as their union (`rewards.crop_score`).

    ## Starting State
    A sample drawn with `self.np_random` (or `options={"sample_id": ...}`); the whole image
    resized into the pixel budget.

    ## Episode End
    1. Termination: a prediction, i.e. an `<answer>` or any reply on turn `max_turns` (default 1;
       the prompt states it, so the turn limit is part of the task, not a truncation).
    2. Truncation: never.

    ## Info
    `GroundedVQAEnv`'s keys (`crop_box` etc. describe zoom crops only), plus on every step
    `pred_box` (original px or None), `iou` and `acc50` (None before the last step; on the
    last step a float and a bool, 0.0 and False when the prediction failed), `pred_rel_area`,
    `pred_scale_bin`; on the last step `correct` (= `acc50`) and `pred_adjusted` (clipped).

    ## Arguments
    `GroundedVQAEnv`'s, with `dataset="synthetic-ref"`, `max_turns=1`, `reward_weights`
    defaulting to `REF_REWARD_WEIGHTS`. Every sample needs a ground-truth box.

    ## Version History
    * v0: Initial release. Changed in place (pre-1.0): `format` is the mean over turns, paid on
      the last step (was paid on every step).
    """

    def __init__(
        self,
        dataset: str | Sequence[Sample] = "synthetic-ref",
        *,
        max_turns: int = 1,
        reward_weights: Mapping[str, float] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ):
        weights = check_reward_weights({**REF_REWARD_WEIGHTS, **(reward_weights or {})})
        super().__init__(
            dataset,
            max_turns=max_turns,
            reward_weights=weights,
            system_prompt=DEFAULT_REF_SYSTEM_PROMPT if system_prompt is None else system_prompt,
            **kwargs,
        )
        self.pred_box: Box | None = None

    # ------------------------------------------------------------------ episode
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        self.pred_box = None
        obs, info = super().reset(seed=seed, options=options)
        if not self.sample.gt_boxes:
            raise ValueError(
                f"RefGrounding needs a ground-truth box; sample {self.sample.id!r} has none "
                "(use a grounding dataset such as 'synthetic-ref' or 'refcoco')"
            )
        info.update(self._prediction_info(final=False))
        return obs, info

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        if self._done or self.sample is None:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        text = action if isinstance(action, str) else str(action)
        parsed = parse_action(
            text, multi_box=self.multi_box, max_action_chars=self.max_action_chars
        )
        last_turn = self.turn + 1 >= self.max_turns
        if parsed.kind == "answer" or last_turn:
            return self._predict(text, parsed)
        obs, reward, terminated, truncated, info = super().step(text)  # a zoom, or invalid
        info.update(self._prediction_info(final=False))
        return obs, reward, terminated, truncated, info

    def _predict(self, text: str, parsed: ParsedAction) -> tuple[dict, float, bool, bool, dict]:
        self.turn += 1
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        coords, error, format_ok = self._prediction_coords(parsed)
        pred, adjusted = None, False
        if coords is not None:
            pred, refused, adjusted = self._resolve_prediction(coords)
            error = refused or error
        self.pred_box = pred
        terms = self._zero_terms()
        terms["format"] = self._format_term(
            format_reward(format_ok, accepted=pred is not None), done=True
        )
        pred_info = self._prediction_info(final=True)
        terms["grounding"] = pred_info["iou"]
        terms["answer"] = float(pred_info["acc50"])
        self._done = True
        info = self._info(
            parsed.kind, error, reward_terms=terms, pred_adjusted=adjusted, **pred_info
        )
        view = self._current_view.copy()  # observations never share memory
        return self._finish(view, "", terms, True, False, info)

    # ------------------------------------------------------------------ prompts
    def first_prompt(self, sample: Sample) -> str:
        """The expression, the frame and view size, and how to reply."""
        expression = str(sample.metadata.get("referring_expression") or sample.question)
        image_w, image_h = self._handle.size
        frame = FRAME_SENTENCES[self.coord_frame].replace("Crop coordinates", "Box coordinates")
        lines = [
            f"Find: {expression}",
            f"The image is shown at {self.view_size[0]}x{self.view_size[1]} px "
            f"(original {image_w}x{image_h} px). "
            + frame.format(w=self.view_size[0], h=self.view_size[1], W=image_w, H=image_h),
        ]
        if self.max_turns == 1:
            lines.append("Reply <box>[x1, y1, x2, y2]</box> with the box of that region.")
        else:
            lines.append(
                "Reply <crop>[x1, y1, x2, y2]</crop> to zoom in, or <answer>[x1, y1, x2, "
                "y2]</answer> "
                f"with the box of that region. You have {self.max_turns} turns; a box on your last "
                "turn is your answer."
            )
        return "\n".join(lines)

    def crop_prompt(self, crop_orig: Box) -> str:
        """The zoom turn's text: what is shown, and what the next box means."""
        return super().crop_prompt(crop_orig) + " " + self._next_box_hint()

    def error_prompt(self, error: str) -> str:
        """The text after an invalid action."""
        return f"Your reply was not a valid action ({error}). " + self._next_box_hint()

    def _next_box_hint(self) -> str:
        left = self.max_turns - self.turn
        if left <= 1:
            return "Your next reply is your answer: reply <box>[x1, y1, x2, y2]</box>."
        return (
            f"{left} turns left: reply <crop>[x1, y1, x2, y2]</crop> to zoom again or "
            "<answer>[x1, y1, x2, y2]</answer> to answer; a box on your last turn is your answer."
        )

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        """`GroundedVQAEnv.render` plus the predicted box in magenta (on top)."""
        frame = super().render()
        if frame is None or self.pred_box is None:
            return frame
        scale = frame.shape[1] / self._handle.size[0]
        canvas = Image.fromarray(frame)
        width = max(2, round(max(frame.shape[:2]) / 300))
        ImageDraw.Draw(canvas).rectangle(
            [c * scale for c in self.pred_box.as_tuple()], outline=PREDICTION_COLOR, width=width
        )
        return np.asarray(canvas, dtype=np.uint8)

    # ------------------------------------------------------------------ internals
    def _prediction_coords(
        self, parsed: ParsedAction
    ) -> tuple[tuple[float, float, float, float] | None, str | None, bool]:
        """(the box as written in the current view's frame, or None; an error; format ok)."""
        if parsed.kind == "crop":
            return parsed.boxes[0], parsed.error, parsed.format_ok
        if parsed.kind == "invalid":
            return None, parsed.error, False
        content = parsed.answer or ""
        for candidate in (content, f"<box>{content}</box>"):  # a box action, or bare numbers
            inner = parse_action(
                candidate, multi_box=self.multi_box, max_action_chars=self.max_action_chars
            )
            if inner.kind == "crop":
                error = "; ".join(e for e in (parsed.error, inner.error) if e) or None
                return inner.boxes[0], error, parsed.format_ok and inner.format_ok
        shown = content if len(content) <= 40 else content[:40] + "..."
        error = (
            f"<answer> must hold one box [x1, y1, x2, y2] ({self.coord_frame} frame), got {shown!r}"
        )
        return None, error, False

    def _resolve_prediction(
        self, coords: tuple[float, float, float, float]
    ) -> tuple[Box | None, str | None, bool]:
        """Predicted box in original px (see the class docstring), an error, and whether clipped."""
        written = list(coords)
        if not all(math.isfinite(c) for c in coords):
            return None, f"box {written} has a non-finite coordinate", False
        x1, y1, x2, y2 = coords_to_original(coords, self.coord_frame, self.view_box, self.view_size)
        reject = self.invalid_box == "reject"
        if x1 > x2 or y1 > y2:
            if reject:
                return None, f"box {written} is inverted: need x1 < x2 and y1 < y2", False
            x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        image_w, image_h = self._handle.size
        cx1, cy1, cx2, cy2 = (
            max(x1, 0.0),
            max(y1, 0.0),
            min(x2, float(image_w)),
            min(y2, float(image_h)),
        )
        if not (cx1 < cx2 and cy1 < cy2):
            return None, f"box {written} has no area inside the image", False
        adjusted = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
        if reject and adjusted:
            return None, f"box {written} extends outside the image", False
        return Box(cx1, cy1, cx2, cy2), None, adjusted

    def _prediction_info(self, *, final: bool) -> dict[str, Any]:
        pred = self.pred_box
        if pred is None:
            iou_value = 0.0 if final else None
            area = math.nan
        else:
            iou_value = float(crop_score(pred, self.sample.gt_boxes, "iou"))
            area = relative_area(pred, self._handle.size)
        info: dict[str, Any] = {
            "pred_box": pred.as_tuple() if pred is not None else None,
            "iou": iou_value,
            "acc50": None if iou_value is None else bool(iou_value >= ACC_IOU_THRESHOLD),
            "pred_rel_area": None if math.isnan(area) else float(area),
            "pred_scale_bin": scale_bin_name(area, self.scale_bin_edges),
        }
        if final:
            info["correct"] = info["acc50"]
        return info
