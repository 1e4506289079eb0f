"""DeepEyes-compatible preset of GroundedVQA: one `image_zoom_in_tool`, Qwen tool-call format.

DeepEyes (Zheng et al. 2025, arXiv 2505.14362; verl-based) gives a Qwen2.5-VL model one tool,
`image_zoom_in_tool(bbox_2d=[x1, y1, x2, y2], label=...)`, declared in the system prompt as a
Qwen `<tools>` function spec and called as `<tool_call>{"name": ..., "arguments":
{...}}</tool_call>`
inside the assistant turn. The crop comes back in a new *user* turn (Qwen2.5-VL's chat template
has no `tool` role): `<tool_response>`, the image, `</tool_response>`, then the instruction for
the next turn. Every call crops the ORIGINAL image (never the previous crop), with `bbox_2d`
read as original pixels, although the model saw a resized view of it: the known DeepEyes
mismatch, measured in docs/coordinates.md. `DeepEyesEnv` reproduces that reading by default
(`coord_frame="original"`) and offers the view frame the model saw (`coord_frame="view"`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image

from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import (
    GroundedVQAEnv,
    question_lines,
    turns_left_text,
    zoom_sentence,
)
from grounding_gym.geometry import Box
from grounding_gym.validation import check_choice

__all__ = ["DEEPEYES_FRAMES", "DEEPEYES_SYSTEM_PROMPT", "IMAGE_ZOOM_IN_TOOL", "DeepEyesEnv"]

IMAGE_ZOOM_IN_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "image_zoom_in_tool",
        "description": "Zoom in on a region of the image: the region is cut from the "
        "full-resolution "
        "image and returned as a new image. The label is optional.",
        "parameters": {
            "type": "object",
            "properties": {
                "bbox_2d": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "description": "The region as [x1, y1, x2, y2]: (x1, y1) is its top-left and "
                    "(x2, y2) its bottom-right corner.",
                },
                "label": {"type": "string", "description": "Optional: what the region contains."},
            },
            "required": ["bbox_2d"],
        },
    },
}
"""The tool's OpenAI/Qwen function schema: DeepEyes' parameters (`bbox_2d`, optional `label`);
`required` names `bbox_2d` (DeepEyes' prompt lists a `bbox` key that its schema does not have)."""

DEEPEYES_SYSTEM_PROMPT = (
    "You answer questions about an image, and you can zoom in on it with a tool.\n\n"
    "# Tools\n\n"
    "The function you may call is described inside <tools></tools> XML tags:\n"
    f"<tools>\n{json.dumps(IMAGE_ZOOM_IN_TOOL)}\n</tools>\n\n"
    "To call it, put a JSON object with the function's name and arguments inside "
    "<tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "Example:\n"
    '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [120, 40, 380, 300], '
    '"label": "the sign above the door"}}\n</tool_call>\n\n'
    "The zoomed-in image comes back inside <tool_response></tool_response>. Think inside "
    "<think>...</think> first; when you can answer, reply <answer>...</answer>."
)
"""System prompt: the `<tools>` spec of `IMAGE_ZOOM_IN_TOOL` and the `<tool_call>` format."""

DEEPEYES_FRAMES: tuple[str, ...] = ("original", "view")
"""Frames of `bbox_2d`: "original" px (what DeepEyes crops with) or px of the first view."""

_FRAME_SENTENCES = {
    "original": "bbox_2d is in pixels of the original image ({W}x{H}), origin at its top-left "
    "corner, x to the right, y down.",
    "view": "bbox_2d is in pixels of this image as shown ({w}x{h}), origin at its top-left "
    "corner, x to the right, y down.",
}
_SAME_FRAME = (
    "Every call crops the original image, whatever you were shown last; bbox_2d stays "
    "in that frame."
)


class DeepEyesEnv(GroundedVQAEnv):
    """
    ## Description
    `GroundedVQAEnv` speaking DeepEyes' protocol: the system prompt declares one tool,
    `image_zoom_in_tool` (`IMAGE_ZOOM_IN_TOOL`: `bbox_2d` [x1, y1, x2, y2], optional `label`),
    the agent calls it in Qwen tool-call format, and each crop comes back as a user turn
    `<tool_response>` + image + `</tool_response>` + instruction. As in DeepEyes, every call
    is a crop of the original image (not of the last crop), so `bbox_2d` always refers to the
    first view's frame, whatever was shown last. Registered as `GroundedVQA-HR-DeepEyes-v0`
    (data `synthetic-hr`); any `GroundedVQAEnv` dataset works.

    ## Action Space
    `Text(max_action_chars, charset=ACTION_CHARSET)`, parsed by `grounding_gym.actions`:
    `<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2],
    "label": "..."}}</tool_call>` (label optional, closing tag optional; `<crop>`, MGPO JSON also
    parse; the first of several calls is used, as DeepEyes executes only the first) or
    `<answer>...</answer>`. `bbox_2d` is in `coord_frame`:

    | `coord_frame` | `bbox_2d` unit | as in |
    |---|---|---|
    | `"original"` (default) | original px | DeepEyes' crops (the model saw a resized view) |
    | `"view"` | px of the first view (the whole image, resized) | the frame the model saw |

    A malformed call never raises and the episode goes on: JSON that `parse_action` reads
    leniently (trailing comma, single quotes) still crops, with format 0; no `bbox_2d`, not 4
    numbers or a tool whose name lacks "zoom"/"crop" is invalid (format 0, the view unchanged,
    the reason in `info["action_error"]` and in the next user turn).

    ## Observation Space
    As in `GroundedVQAEnv`: `image` (the new view, uint8 (h, w, 3), resized into the pixel
    budget) and `dialogue` (the text of the new user turn; for a crop, the text after
    `</tool_response>`).

    ## Rewards
    As in `GroundedVQAEnv` (`reward_weights`, defaults answer 1.0, format 0.1, grounding 0.5).

    ## Starting State
    As in `GroundedVQAEnv`; the first prompt states question, options, the frame of `bbox_2d`
    and the sizes of the view and the original.

    ## Episode End
    1. Termination: an `<answer>` action. 2. Truncation: `max_turns` (default 5).

    ## Info
    `GroundedVQAEnv`'s keys (`view_box`, `view_size` describe the current observation; the
    frame of `bbox_2d` is reset's `view_box`/`view_size`, the whole image).

    ## Arguments
    `GroundedVQAEnv`'s, with `coord_frame="original"` (one of `DEEPEYES_FRAMES`) and
    `system_prompt` defaulting to `DEEPEYES_SYSTEM_PROMPT`.

    ## Version History
    * v0: Initial release. Changed in place (pre-1.0): `format` is the mean over turns, paid on
      the last step (`GroundedVQAEnv`'s change); a refused crop's `action_kind` is "invalid";
      a free-form answer that is one number word scores as its digits ("eight" = "8").
    """

    tools: ClassVar[list[dict[str, Any]]] = [IMAGE_ZOOM_IN_TOOL]
    """The env's tools as OpenAI function schemas (the `openai` eval agent sends them)."""

    def __init__(
        self,
        dataset: str | Sequence[Sample] = "synthetic-hr",
        *,
        coord_frame: str = "original",
        system_prompt: str | None = None,
        **kwargs: Any,
    ):
        check_choice("coord_frame", coord_frame, DEEPEYES_FRAMES)
        super().__init__(
            dataset,
            coord_frame=coord_frame,
            system_prompt=DEEPEYES_SYSTEM_PROMPT if system_prompt is None else system_prompt,
            **kwargs,
        )

    # ------------------------------------------------------------------ hooks
    def action_reference(self) -> tuple[Box, tuple[int, int]]:
        """The first view: the whole image at the size `reset` showed it. DeepEyes reads every
        `bbox_2d` in it, whatever crop is shown now."""
        whole = Box.from_size(*self._handle.size)
        return whole, self.renderer.view_size(whole)

    def crop_message(self, view: Image.Image, dialogue: str) -> dict[str, Any]:
        """DeepEyes' tool-response turn: a user turn `<tool_response>`, image, `</tool_response>`,
        then `dialogue`."""
        return {
            "role": "user",
            "content": [
                {"type": "text", "text": "<tool_response>"},
                {"type": "image", "image": view},
                {"type": "text", "text": f"</tool_response>\n{dialogue}"},
            ],
        }

    def first_prompt(self, sample: Sample) -> str:
        """Question, options, the frame of `bbox_2d`, sizes and how to reply."""
        image_w, image_h = self._handle.size
        view_w, view_h = self.view_size
        frame = _FRAME_SENTENCES[self.coord_frame].format(w=view_w, h=view_h, W=image_w, H=image_h)
        answer_hint = "the option's letter" if sample.options else "a short answer"
        lines = question_lines(sample) + [
            f"The image is shown at {view_w}x{view_h} px (original {image_w}x{image_h} px). "
            f"{frame} {_SAME_FRAME}",
            "Think first, then call image_zoom_in_tool if needed, or answer with "
            "<answer>...</answer> "
            f"({answer_hint}). You have {self.max_turns} turns.",
        ]
        return "\n".join(lines)

    def crop_prompt(self, crop_orig: Box) -> str:
        """The text after `</tool_response>`: what the crop shows and what to do next."""
        left = turns_left_text(self.max_turns - self.turn)
        return (
            f"{zoom_sentence(crop_orig, self.view_size)}. {left} Think first, then call "
            "image_zoom_in_tool again (bbox_2d in the same frame as before) or answer with "
            "<answer>...</answer>."
        )

    def error_prompt(self, error: str) -> str:
        """The user turn after an invalid or refused action."""
        return (
            f"Your reply was not a valid action ({error}). Call image_zoom_in_tool inside "
            "<tool_call></tool_call> or answer with <answer>...</answer>. "
            f"{turns_left_text(self.max_turns - self.turn)}"
        )
