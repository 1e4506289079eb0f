"""`Sample`: one question about one image, with ground truth in original pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grounding_gym.geometry import Box
from grounding_gym.views import ImageSource


@dataclass(frozen=True)
class Sample:
    """One benchmark item.

    Attributes:
        id: unique within its dataset; `env.reset(options={"sample_id": id})` selects it.
        image: an `ImageSource`; decoded lazily.
        question: the question text, without the options.
        answer: the correct option letter ("A".."E") for multiple choice, else the answer text.
        options: option texts in letter order (A, B, ...), or None for free-form answers.
        gt_boxes: ground-truth boxes of the evidence, original px xyxy (may be empty).
        category: benchmark category (per-category accuracy in reports).
        image_size: `(w, h)` of the original in px when known without decoding, else None.
        metadata: anything else the loader keeps (e.g. `cycle_id` for HR-Bench rotations).
    """

    id: str
    image: ImageSource
    question: str
    answer: str
    options: tuple[str, ...] | None = None
    gt_boxes: tuple[Box, ...] = ()
    category: str = ""
    image_size: tuple[int, int] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Sample.id must be a non-empty str, got {self.id!r}")
        if self.options is not None:
            object.__setattr__(self, "options", tuple(str(o) for o in self.options))
            if not 2 <= len(self.options) <= 26:
                raise ValueError(f"Sample {self.id}: needs 2..26 options, got {len(self.options)}")
        boxes = tuple(self.gt_boxes)
        if not all(isinstance(b, Box) for b in boxes):
            raise ValueError(f"Sample {self.id}: gt_boxes must be Box instances (original px xyxy)")
        object.__setattr__(self, "gt_boxes", boxes)

    @property
    def option_letters(self) -> tuple[str, ...]:
        """("A", "B", ...) for the options, () for free-form questions."""
        return tuple(chr(ord("A") + i) for i in range(len(self.options or ())))
