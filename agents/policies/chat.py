"""`ChatEncoder`: an env conversation -> token ids, with the policy's own generated ids spliced in.

Shared by `HFPolicy` (image pads expanded to each image's token count: `generate` and the
log-prob recompute) and the vLLM engine (`engine_prompt`: one pad per image, vLLM expands them).

Token bookkeeping (the part peers get wrong)
---------------------------------------------
A conversation is rendered with the chat template after replacing every assistant message's
text by a placeholder; the template text between placeholders is tokenized (each
`<|image_pad|>` expanded to the image's token count), and the placeholders are filled with the
assistant's *generated token ids*, never with a re-tokenization of its text (BPE can tokenize a
decoded string differently from the ids that produced it). `act` does the same for earlier
turns of an episode, using the ids it generated for them (kept in a text -> ids cache), so the
context the model saw while sampling and the context of the recompute are the same ids. When a
generation ends with an end-of-turn token (`<|im_end|>`) the template's own copy is dropped, so
the sequence reads exactly as the model produced it. Mask = the generated ids of every turn
(including the final `<|im_end|>` the model chose to emit); system/user text, image pads and
the template's role headers are 0.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from agents.policies.base import Trajectory

__all__ = ["ChatEncoder", "message_text", "to_pil"]

_PLACEHOLDER = "\ue000GG{}\ue001"  # private-use code points: never in env or model text
_PLACEHOLDER_RE = re.compile("\ue000GG(\\d+)\ue001")


class ChatEncoder:
    """Token ids of env conversations for one tokenizer, image processor and chat template.

    Args:
        tokenizer, image_processor: the processor's parts (Qwen2/2.5/3-VL API).
        chat_template: the Jinja chat template.
        image_token: the image placeholder text (`<|image_pad|>`) and `image_token_id` its id.
        eos_token_ids: end-of-turn ids (`<|im_end|>` first among the model's own).
        patch_factor: vision patch x spatial merge (28 for Qwen2/2.5-VL), for the resize check.
        min_pixels, max_pixels: the processor's pixel budget per image (None: unbounded).
        token_cache_size: how many generated texts keep their ids for later turns' contexts.
    """

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        chat_template: str,
        image_token: str,
        image_token_id: int,
        eos_token_ids: Sequence[int],
        patch_factor: int,
        min_pixels: int | None,
        max_pixels: int | None,
        token_cache_size: int = 65536,
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template
        self.image_token = image_token
        self.image_token_id = int(image_token_id)
        self.eos_token_ids = tuple(int(i) for i in eos_token_ids)
        self.merge_size = int(image_processor.merge_size)
        self.patch_factor = int(patch_factor)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.token_cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self.token_cache_size = int(token_cache_size)
        self.warned_resize = False

    # ------------------------------------------------------------------ images
    def check_view_size(self, image: Image.Image) -> None:
        """Warn once when the processor would resize a view (the prompt's size would be wrong)."""
        if self.warned_resize:
            return
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        w, h = image.size
        lo, hi = self.min_pixels or 0, self.max_pixels or math.inf
        target_h, target_w = smart_resize(
            h, w, factor=self.patch_factor, min_pixels=lo, max_pixels=hi
        )
        if (target_w, target_h) != (w, h):
            self.warned_resize = True
            warnings.warn(
                f"The processor resizes a {w}x{h} view to {target_w}x{target_h} (budget "
                f"{lo}..{hi} px, factor {self.patch_factor}): the model sees another size than "
                "the env's prompt states, so 'view'-frame coordinates will be off. Give the env "
                f"min_pixels/max_pixels inside the processor's and patch_size={self.patch_factor}, "
                "or set image_min_pixels/image_max_pixels to the env's budget.",
                stacklevel=4,
            )

    def encode_images(self, images: Sequence[Any]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """`(pixel_values / image_grid_thw inputs, token count per image)`; `({}, [])` for none."""
        if not images:
            return {}, []
        images = [to_pil(image) for image in images]
        for image in images:
            self.check_view_size(image)
        out = self.image_processor(images=list(images), return_tensors="pt")
        grid = out["image_grid_thw"]
        counts = (grid.prod(-1) // (self.merge_size**2)).tolist()
        return {"pixel_values": out["pixel_values"], "image_grid_thw": grid}, [
            int(c) for c in counts
        ]

    # ------------------------------------------------------------------ text
    def render(
        self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool
    ) -> tuple[list[str], list[Image.Image]]:
        """Chat-template text split at the assistant placeholders, and the images in order."""
        rendered_messages, images, k = [], [], 0
        for message in messages:
            content = message.get("content")
            if message.get("role") == "assistant":
                rendered_messages.append(
                    {
                        "role": "assistant",
                        "content": [{"type": "text", "text": _PLACEHOLDER.format(k)}],
                    }
                )
                k += 1
                continue
            if isinstance(content, str):
                rendered_messages.append({"role": message["role"], "content": content})
                continue
            items = []
            for item in content or []:
                if item.get("type") == "image" or "image" in item:
                    if item.get("image") is None:
                        raise ValueError("an image item of info['messages'] has no 'image' payload")
                    images.append(to_pil(item["image"]))
                    items.append({"type": "image"})
                else:
                    items.append(item)
            rendered_messages.append({"role": message["role"], "content": items})
        text = self.tokenizer.apply_chat_template(
            rendered_messages,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )
        parts = _PLACEHOLDER_RE.split(text)
        segments = parts[0::2]
        order = [int(i) for i in parts[1::2]]
        if order != list(range(k)):
            raise ValueError(
                f"the chat template reordered or dropped assistant turns: {order} vs {k}"
            )
        if text.count(self.image_token) != len(images):
            raise ValueError(
                f"the chat template rendered {text.count(self.image_token)} image placeholders for "
                f"{len(images)} images"
            )
        return segments, images

    def tokenize_segment(self, text: str, counts: Iterator[int]) -> list[int]:
        """Ids of template text, each image placeholder expanded to `next(counts)` pads."""
        ids: list[int] = []
        pieces = text.split(self.image_token)
        for j, piece in enumerate(pieces):
            if j > 0:
                ids += [self.image_token_id] * next(counts)
            if piece:
                ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"]
        return ids

    def splice(
        self,
        segments: Sequence[str],
        assistant_ids: Sequence[Sequence[int]],
        counts: Iterator[int],
    ) -> tuple[list[int], list[int]]:
        """Template segments and assistant ids interleaved: `(ids, positions of assistant ids)`.

        A segment's leading end-of-turn token is dropped when the assistant ids before it
        already end with it (the model emitted the template's `<|im_end|>` itself).
        """
        ids: list[int] = []
        positions: list[int] = []
        previous: Sequence[int] = ()
        for j, segment in enumerate(segments):
            seg_ids = self.tokenize_segment(segment, counts)
            if (
                previous
                and seg_ids
                and previous[-1] in self.eos_token_ids
                and seg_ids[0] == previous[-1]
            ):
                seg_ids = seg_ids[1:]  # the model already emitted the template's end-of-turn token
            ids += seg_ids
            if j < len(assistant_ids):
                previous = [int(t) for t in assistant_ids[j]]
                positions += range(len(ids), len(ids) + len(previous))
                ids += previous
        return ids, positions

    def encode(
        self,
        messages: Sequence[dict[str, Any]],
        assistant_ids: Sequence[Sequence[int]],
        add_generation_prompt: bool,
    ) -> tuple[list[int], list[int], list[Image.Image], dict[str, torch.Tensor]]:
        """Token ids of a conversation with assistant turns spliced in as ids.

        Returns:
            `(ids, policy_positions, images, image_inputs)`: policy_positions are the indices
            of the spliced assistant ids, in order.
        """
        segments, images = self.render(messages, add_generation_prompt)
        if len(assistant_ids) != len(segments) - 1:
            raise ValueError(
                f"{len(segments) - 1} assistant turns but {len(assistant_ids)} id lists"
            )
        image_inputs, counts = self.encode_images(images)
        ids, positions = self.splice(segments, assistant_ids, iter(counts))
        return ids, positions, images, image_inputs

    # ------------------------------------------------------------------ generated ids
    def cached_ids(self, text: str) -> tuple[int, ...]:
        """The ids generated for `text` (remembered by `remember`), else its tokenization."""
        ids = self.token_cache.get(text)
        if ids is not None:
            self.token_cache.move_to_end(text)
            return ids
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def remember(self, text: str, ids: Sequence[int]) -> None:
        """Keep the ids generated for `text` (LRU, `token_cache_size` texts)."""
        self.token_cache[text] = tuple(int(i) for i in ids)
        self.token_cache.move_to_end(text)
        while len(self.token_cache) > self.token_cache_size:
            self.token_cache.popitem(last=False)

    def history_ids(self, messages: Sequence[dict[str, Any]]) -> list[tuple[int, ...]]:
        """The ids of every assistant message of `messages`, from the cache."""
        return [self.cached_ids(message_text(m)) for m in messages if m.get("role") == "assistant"]

    # ------------------------------------------------------------------ whole prompts
    def prompt_token_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Token ids `act` would feed for `messages` (generation prompt appended, image pads
        expanded): e.g. TRL's `prompt_ids` of a first observation."""
        return self.encode(messages, self.history_ids(messages), add_generation_prompt=True)[0]

    def engine_prompt(
        self, messages: Sequence[dict[str, Any]]
    ) -> tuple[list[int], list[Image.Image]]:
        """`(token ids, images)` for an inference engine that expands image placeholders itself
        (vLLM): like `prompt_token_ids` but ONE `<|image_pad|>` per image, earlier assistant
        turns spliced from the token cache."""
        segments, images = self.render(messages, add_generation_prompt=True)
        ids, _ = self.splice(segments, self.history_ids(messages), iter([1] * len(images)))
        return ids, images

    def trajectory_ids(self, trajectory: Trajectory) -> tuple[list[int], list[int]]:
        """`(ids, policy positions)` of a stored episode, its turns' generated ids spliced in."""
        messages = list(trajectory.messages)
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
        assistant = [t.generation.token_ids for t in trajectory.turns]
        ids, positions, _, _ = self.encode(
            messages[: last + 1], assistant, add_generation_prompt=False
        )
        return ids, positions


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message: its string content, or its text items joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(
        item.get("text", "") for item in content or [] if item.get("type", "text") == "text"
    )


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from a PIL image or a uint8 (H, W, 3) array."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"images must be PIL or uint8 (H, W, 3) arrays, got {array.dtype} {array.shape}"
        )
    return Image.fromarray(array)
