"""Observation and action spaces for text-and-image environments.

* `ImageSpace`: uint8 RGB images of any size within a pixel budget (views vary in size,
  which `gymnasium.spaces.Box` cannot express). Vector envs batch it as a tuple of arrays.
* `UnicodeText`: a `Text` space that accepts any string up to `max_length` (dialogue holds
  benchmark questions in any script); it samples from printable ASCII.

Both register Gymnasium's shared-memory functions, so `AsyncVectorEnv` works with its default
`shared_memory=True`: each env slot owns a fixed buffer of the largest value (`max_pixels * 3`
bytes for an image, `4 * max_length` UTF-8 bytes for a text) plus the value's actual shape or
length; reads return copies (a tuple of arrays / of strings, as without shared memory).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

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


# ---------------------------------------------------------------- shared memory (AsyncVectorEnv)


@create_shared_memory.register(ImageSpace)
def _create_image_shared_memory(space: ImageSpace, n: int = 1, ctx: Any = None) -> tuple:
    ctx = ctx or _mp()
    return ctx.Array("B", n * space.max_pixels * 3), ctx.Array("q", n * 2)


@write_to_shared_memory.register(ImageSpace)
def _write_image_shared_memory(
    space: ImageSpace, index: int, value: np.ndarray, shared_memory: tuple
) -> None:
    if not space.contains(value):
        raise ValueError(f"{space} does not contain an array of shape {np.shape(value)}")
    pixels, shapes = _buffers(shared_memory)
    size = space.max_pixels * 3
    pixels[index * size : index * size + value.size] = value.reshape(-1)
    shapes[2 * index : 2 * index + 2] = value.shape[:2]


@read_from_shared_memory.register(ImageSpace)
def _read_image_shared_memory(space: ImageSpace, shared_memory: tuple, n: int = 1) -> SharedBatch:
    pixels, shapes = _buffers(shared_memory)
    size = space.max_pixels * 3

    def read(i: int) -> np.ndarray:
        h, w = (int(v) for v in shapes[2 * i : 2 * i + 2])
        return pixels[i * size : i * size + h * w * 3].reshape(h, w, 3).copy()

    return SharedBatch(read, n)


@create_shared_memory.register(UnicodeText)
def _create_unicode_shared_memory(space: UnicodeText, n: int = 1, ctx: Any = None) -> tuple:
    ctx = ctx or _mp()
    return ctx.Array("B", n * 4 * space.max_length), ctx.Array("q", n)


@write_to_shared_memory.register(UnicodeText)
def _write_unicode_shared_memory(
    space: UnicodeText, index: int, value: str, shared_memory: tuple
) -> None:
    data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    buffer, lengths = _buffers(shared_memory)
    size = 4 * space.max_length  # a str of max_length characters is at most this many bytes
    buffer[index * size : index * size + data.size] = data
    lengths[index] = data.size


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_shared_memory(
    space: UnicodeText, shared_memory: tuple, n: int = 1
) -> SharedBatch:
    buffer, lengths = _buffers(shared_memory)
    size = 4 * space.max_length

    def read(i: int) -> str:
        return buffer[i * size : i * size + int(lengths[i])].tobytes().decode("utf-8")

    return SharedBatch(read, n)


class SharedBatch(Sequence):
    """A live, read-only view of `n` variable-size values in shared memory.

    `AsyncVectorEnv` reads its observation buffer once and hands out `deepcopy(observations)`
    after every step (`copy=True`, the default): a deep copy is a plain tuple of the current
    values (arrays / strings, as without shared memory). Indexing reads the buffer anew.
    """

    def __init__(self, read: Callable[[int], Any], n: int):
        self._read, self._n = read, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return self._read(index % self._n)

    def __deepcopy__(self, memo: dict) -> tuple:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedBatch({tuple(self)!r})"


def _buffers(shared_memory: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The (uint8 data, int64 shapes or lengths) arrays over a shared-memory pair."""
    data, sizes = shared_memory
    return np.frombuffer(data.get_obj(), dtype=np.uint8), np.frombuffer(sizes.get_obj(), np.int64)


def _mp() -> Any:
    import multiprocessing

    return multiprocessing
