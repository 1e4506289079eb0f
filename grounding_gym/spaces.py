"""Observation and action spaces for text-and-image environments.

* `ImageSpace`: uint8 RGB images of any size within a pixel budget (views vary in size,
  which `gymnasium.spaces.Box` cannot express). Vector envs batch it as a tuple of arrays.
* `UnicodeText`: a `Text` space that accepts any string up to `max_length` (dialogue holds
  benchmark questions in any script); it samples from printable ASCII.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

PRINTABLE = string.printable
"""Printable ASCII plus whitespace: the charset of the action space and of samples."""


class ImageSpace(spaces.Space[np.ndarray]):
    """uint8 arrays `(h, w, 3)` with `h * w <= max_pixels` and both sides >= `min_side`.

    Args:
        max_pixels: largest `h * w` of a view.
        min_side: smallest side in px.
    """

    def __init__(
        self, max_pixels: int, min_side: int = 1, seed: int | np.random.Generator | None = None
    ):
        if max_pixels < min_side * min_side:
            raise ValueError(f"max_pixels ({max_pixels}) < min_side**2 ({min_side**2})")
        self.max_pixels = int(max_pixels)
        self.min_side = int(min_side)
        super().__init__(shape=None, dtype=np.uint8, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """A random image of a random valid size (uniform noise)."""
        side = int(np.sqrt(self.max_pixels))
        h = int(self.np_random.integers(self.min_side, max(side, self.min_side) + 1))
        w = int(
            self.np_random.integers(self.min_side, max(self.max_pixels // h, self.min_side) + 1)
        )
        return self.np_random.integers(0, 256, size=(h, w, 3), dtype=np.uint8)

    def contains(self, x: Any) -> bool:
        return (
            isinstance(x, np.ndarray)
            and x.dtype == np.uint8
            and x.ndim == 3
            and x.shape[2] == 3
            and min(x.shape[:2]) >= self.min_side
            and x.shape[0] * x.shape[1] <= self.max_pixels
        )

    def __repr__(self) -> str:
        return f"ImageSpace(max_pixels={self.max_pixels}, min_side={self.min_side})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ImageSpace)
            and other.max_pixels == self.max_pixels
            and other.min_side == self.min_side
        )


class UnicodeText(spaces.Text):
    """Any `str` of at most `max_length` characters; samples use printable ASCII."""

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"
