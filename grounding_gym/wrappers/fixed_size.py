"""`FixedSizeObservation`: the variable-size view as a fixed `Box(0, 255, (H, W, 3), uint8)`.

Standard RL libraries (Stable-Baselines3, cleanrl) need fixed-shape observations. This wrapper
resizes each view to `(height, width)` (bilinear, aspect not kept: the view's coordinates are
relative anyway, see `DiscreteCropAnswer`) and drops the dialogue. With `include_options=True`
the observation becomes a `Dict` that also holds the question's options as one-hot rows, so a
policy can tell which letter names what it sees (the letters are shuffled per question).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from PIL import Image

__all__ = ["FixedSizeObservation", "encode_options", "option_vocabulary", "resize_view"]


def resize_view(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 (h, w, 3) view to `size` = (height, width); uint8 (H, W, 3)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image, dtype=np.uint8)
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.uint8)


def option_vocabulary(dataset: Sequence[Any], scan: int = 256) -> tuple[str, ...]:
    """Sorted distinct option texts of the first `scan` samples of `dataset`."""
    texts: set[str] = set()
    for i in range(min(scan, len(dataset))):
        texts.update(dataset[i].options or ())
    return tuple(sorted(texts))


def encode_options(
    options: Sequence[str] | None, vocab: Sequence[str], max_options: int = 4
) -> np.ndarray:
    """Flattened one-hot rows of `options` over `vocab` (+ an "unknown" column),
    float32 (max_options * (len(vocab) + 1),); rows past the options are zero.

    >>> encode_options(["b", "z"], ["a", "b"], max_options=2).tolist()
    [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    """
    table = np.zeros((max_options, len(vocab) + 1), np.float32)
    index = {text: j for j, text in enumerate(vocab)}
    for k, text in enumerate((options or ())[:max_options]):
        table[k, index.get(text, len(vocab))] = 1.0
    return table.reshape(-1)


class FixedSizeObservation(gym.ObservationWrapper):
    """Resize the view to a fixed shape (and optionally encode the options).

    ## Observation Space
    `Box(0, 255, (height, width, 3), uint8)`; with `include_options`, `Dict(image=that,
    options=Box(0, 1, (max_options * (len(vocab) + 1),), float32))`: the flattened one-hot rows
    of the options, row k for option k (letter A + k) over `vocab`, its last column meaning "not
    in the vocabulary"; rows past the sample's options are zero.

    ## Arguments
    `size=(64, 64)` as (height, width); `include_options=False`; `option_vocab` (default: the
    option texts of the first 256 samples of `env.unwrapped.dataset`); `max_options=4`.
    """

    def __init__(
        self,
        env: gym.Env,
        size: tuple[int, int] = (64, 64),
        *,
        include_options: bool = False,
        option_vocab: Sequence[str] | None = None,
        max_options: int = 4,
    ):
        super().__init__(env)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width) with positive sides, got {size}")
        self.size = (int(size[0]), int(size[1]))
        self.include_options = include_options
        image_space = gym.spaces.Box(0, 255, (*self.size, 3), np.uint8)
        if include_options:
            vocab = (
                option_vocab
                if option_vocab is not None
                else option_vocabulary(cast(Any, env.unwrapped).dataset)
            )
            self.option_vocab = tuple(vocab)
            self.max_options = int(max_options)
            width = self.max_options * (len(self.option_vocab) + 1)
            options_space = gym.spaces.Box(0.0, 1.0, (width,), np.float32)
            self.observation_space = gym.spaces.Dict(
                {"image": image_space, "options": options_space}
            )
        else:
            self.option_vocab, self.max_options = (), int(max_options)
            self.observation_space = image_space

    def encode_options(self, options: Sequence[str] | None) -> np.ndarray:
        """`encode_options` with this wrapper's vocabulary."""
        return encode_options(options, self.option_vocab, self.max_options)

    def observation(self, observation: dict[str, Any]) -> np.ndarray | dict[str, np.ndarray]:
        image = resize_view(observation["image"], self.size)
        if not self.include_options:
            return image
        sample = getattr(self.env.unwrapped, "sample", None)
        return {"image": image, "options": self.encode_options(getattr(sample, "options", None))}
