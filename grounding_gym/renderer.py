"""The env's view path: `ViewRenderer` picks the source of each view (reduced decode, pyramid
level or original), resamples it with PIL or OpenCV (`views`), and shares first views across
a pool of envs through a `FirstViewCache`; `RenderedView` is one result.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from grounding_gym.geometry import Box
from grounding_gym.image_store import ImageStore
from grounding_gym.views import (
    OPENCV_MAX_SHRINK,
    ImageHandle,
    fit_to_budget,
    reduction_factor,
    render_view_image,
    render_view_opencv,
    resolve_resize_backend,
    source_shrink,
)


@dataclass(frozen=True)
class RenderedView:
    """One rendered view.

    Attributes:
        box: the region of the original shown, original px.
        size: `(w, h)` of the view, px.
        array: uint8 (h, w, 3), C-contiguous.
        image: the PIL image `array` was taken from when PIL rendered it (the env keeps it in
            the chat messages without a copy); None for OpenCV or a first-view cache hit.
    """

    box: Box
    size: tuple[int, int]
    array: np.ndarray
    image: Image.Image | None


class FirstViewCache:
    """First views shared across renderers (e.g. a pool of envs with the same data).

    Every rollout resets, and a reset resizes the WHOLE original into the pixel budget (~30 ms
    for a 2048 px image on one CPU core), although all rollouts of a question see the same first
    view. A `ViewRenderer` given this cache renders a sample's first view once and hands out
    copies afterwards (views never share memory). Crops are untouched. Renderers stepped by
    threads that reset on one question at once render its first view once: the others wait for
    it (`grounding_gym.image_store.ImageStore` keeps the views).

    Args:
        max_bytes: bytes of first views kept (LRU), keyed by (sample key, image size); the
            default holds about 27 views of 448 x 448 px, or 5 of the default 1 Mpx budget.
    """

    def __init__(self, max_bytes: int = 16 * 2**20):
        self._views = ImageStore(max_bytes)

    def view(self, key: Hashable, box: Box, render: Callable[[], RenderedView]) -> RenderedView:
        """The first view of `box` (original px) kept under `key`, as a copy; `render()` makes
        it on a miss (its result is returned as it is, and a copy is kept)."""
        rendered: list[RenderedView] = []

        def make() -> np.ndarray:
            rendered.append(render())
            return rendered[0].array.copy()  # the kept copy is never handed out

        kept = self._views.get(key, make)
        if rendered:  # rendered here: return it whole (with its PIL image)
            return rendered[0]
        view = kept.copy()
        return RenderedView(box, (view.shape[1], view.shape[0]), view, None)


class ViewRenderer:
    """The env's view path: cut a region of the original, resize it into the pixel budget.

    The first view of a JPEG comes from a reduced decode when `reduced_decode` is on (full
    decoding waits for the first crop); other first views come from the decoded original.
    Crops come from the decoded original, or with `fast_resize` from its pyramid level
    (`ImageHandle.reduced`) when they shrink their region 2x or more. `resize_backend`
    resamples the view from that source ("opencv": when it shrinks the source less than
    `OPENCV_MAX_SHRINK`, else PIL).

    Args:
        min_pixels, max_pixels, patch_size: the pixel budget (`fit_to_budget`).
        reduced_decode: first views of JPEGs from a 1/2, 1/4 or 1/8 scale decode.
        upsample_first_view: allow that decode for images less than twice the view.
        fast_resize: crops from the pyramid level of the original (`reduction_factor`).
        resize_backend: "auto" | "pil" | "opencv" (`resolve_resize_backend`).
        first_view_cache: share first views with other renderers; None renders each.
    """

    def __init__(
        self,
        min_pixels: int,
        max_pixels: int,
        patch_size: int | None,
        *,
        reduced_decode: bool = True,
        upsample_first_view: bool = False,
        fast_resize: bool = True,
        resize_backend: str = "auto",
        first_view_cache: FirstViewCache | None = None,
    ) -> None:
        fit_to_budget(1, 1, min_pixels, max_pixels, patch_size)  # validates the budget
        self.min_pixels, self.max_pixels, self.patch_size = min_pixels, max_pixels, patch_size
        self.reduced_decode = reduced_decode
        self.upsample_first_view = upsample_first_view
        self.fast_resize = fast_resize
        self.resize_backend = resolve_resize_backend(resize_backend)
        self.first_view_cache = first_view_cache

    def view_size(self, box_orig: Box) -> tuple[int, int]:
        """`(w, h)` of the view of `box_orig` (original px) in the pixel budget."""
        return fit_to_budget(
            box_orig.width, box_orig.height, self.min_pixels, self.max_pixels, self.patch_size
        )

    def render(
        self, handle: ImageHandle, box_orig: Box, *, first_view: bool = False, key: Any = None
    ) -> RenderedView:
        """The view of `box_orig` (original px) of `handle`'s image.

        Args:
            handle: the original image.
            box_orig: the region to show, original px.
            first_view: the episode's first view (reduced decode, first-view cache).
            key: the sample's key in `first_view_cache` (its id); None skips the cache.
        """
        size = self.view_size(box_orig)
        cache = self.first_view_cache
        if not first_view or key is None or cache is None:
            return self._render(handle, box_orig, size, first_view)
        return cache.view(
            (key, tuple(handle.size)),
            box_orig,
            lambda: self._render(handle, box_orig, size, first_view),
        )

    def _render(
        self, handle: ImageHandle, box_orig: Box, size: tuple[int, int], first_view: bool
    ) -> RenderedView:
        if first_view and self.reduced_decode:
            source = handle.preview(size, upsample=self.upsample_first_view)
        elif first_view:
            source = handle.image()
        else:
            factor = reduction_factor(box_orig, size) if self.fast_resize else 1
            source = handle.reduced(factor)
        if self.resize_backend == "opencv" and (
            source_shrink(source, box_orig, size, handle.size) < OPENCV_MAX_SHRINK
        ):
            array = render_view_opencv(source, box_orig, size, handle.size)
            return RenderedView(box_orig, size, array, None)
        image = render_view_image(source, box_orig, size, original_size=handle.size)
        return RenderedView(box_orig, size, np.asarray(image, dtype=np.uint8), image)
