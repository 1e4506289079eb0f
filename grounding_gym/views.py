"""Image loading and view rendering: crops are cut from the original, then resized.

* `ImageHandle` opens an `ImageSource` lazily: `.size` reads only the header; `.image()`
  decodes once (EXIF rotation applied, converted to RGB) and keeps the result, in the
  process's byte-bounded `image_store.ImageStore` when given one (as the envs do: every env
  of the process then shares one decode), else with the handle;
  `.preview(min_size)` decodes a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling), enough
  for a downsampled first view, so full decoding waits until a crop needs it;
  `.reduced(factor)` is the decoded image box-filtered by 2, 4, 8, ... per side
  (`Image.reduce`), built lazily once and kept with the handle (a pyramid for views that
  shrink their region 2x or more: `reduction_factor`).
* `fit_to_budget` chooses the view size for a region: keep the aspect, fit
  `min_pixels <= w * h <= max_pixels`, round each side to a multiple of `patch_size`
  (Qwen2-VL's `smart_resize` rule, so the view is exactly what such a processor would see).
* `render_view` is the reference crop + resize: `PIL.Image.resize(view_size, box=box_orig)`,
  which samples the continuous box with no integer rounding of its edges. Given a reduced
  source (a preview or a pyramid level) it resamples the same box from that source instead:
  faster, within the PSNR tolerance documented in docs/benchmarks.md.
* `render_view_opencv` computes the same view with OpenCV (the optional `fast` extra), about
  2x faster for views that shrink their source less than 2x, within the PSNR tolerance
  documented in docs/benchmarks.md; `resolve_resize_backend` picks between the two
  (`resize_backend` of the envs).

`grounding_gym.renderer.ViewRenderer` puts these together into the env's view path.
"""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from grounding_gym.geometry import Box
from grounding_gym.image_store import ImageStore, source_key
from grounding_gym.lru import LRU
from grounding_gym.validation import check_choice

ImageSource = str | os.PathLike | bytes | Image.Image | Callable[[], Image.Image]
"""Where a sample's pixels come from: a file path, encoded bytes, a PIL image, or a
zero-argument callable that renders one (the synthetic generator). Decoding is deferred
to `ImageHandle`, so building a dataset never decodes an image."""


DEFAULT_MAX_IMAGE_PIXELS = 16384 * 16384
"""Refuse to decode images with more pixels than this (decompression-bomb guard)."""


DCT_SCALED_FORMATS = ("JPEG", "MPO")
"""Formats Pillow can decode at 1/2, 1/4 or 1/8 scale (`Image.draft`); MPO is multi-picture JPEG."""


RESAMPLE = Image.Resampling.BICUBIC
"""Resampling filter of every view (the reference the fast paths are checked against)."""


RESIZE_BACKENDS = ("auto", "pil", "opencv")
"""`resize_backend` choices: "pil" renders views with `render_view` (the reference), "opencv"
with `render_view_opencv` (needs OpenCV) where that pays (`OPENCV_MAX_SHRINK`), "auto" is
"opencv" when OpenCV imports, else "pil"."""


OPENCV_MAX_SHRINK = 2.0
"""The "opencv" backend renders views that shrink their source less than this (source px per
view px, on each side); a larger shrink makes its prefilter read more pixels than PIL's resize
(slower: 83 against 68 ms for a 3.3x shrink), so those views stay with PIL."""


HALF_SCALE_MIN_RATIO = 1.25
"""`preview(..., upsample=True)` decodes a JPEG at 1/2 scale (then upsampled to the view) only
when it is at least this many times the view per side (so the upsampling is at most 1.6x)."""


class ImageLoadError(ValueError):
    """An image source could not be read: missing, empty, truncated or not an image."""


class ImageTooLargeError(ImageLoadError):
    """An image has more pixels than the `max_image_pixels` limit; it was not decoded."""


def describe_source(source: ImageSource) -> str:
    """Short human-readable name of an image source for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return f"file {os.fspath(source)!r}"
    if isinstance(source, bytes):
        return f"{len(source)} bytes of encoded image"
    if isinstance(source, Image.Image):
        return f"in-memory {source.mode} image {source.size}"
    if callable(getattr(source, "read_bytes", None)):
        return f"encoded image of {getattr(source, 'where', repr(source))}"
    return f"image callable {getattr(source, '__qualname__', repr(source))}"


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Alpha (RGBA, LA, P with transparency) is composited onto white; 16/32-bit grey
    ("I;16", "I") is rescaled from its own bit depth to 0..255; CMYK, L, P convert as PIL does.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class ImageHandle:
    """Lazy access to one image source.

    Args:
        source: path, encoded bytes, PIL image, or a zero-argument callable returning one.
        max_image_pixels: refuse (`ImageTooLargeError`) images with more pixels, before decoding.
        store: where decodes, previews and pyramid levels are kept
            (`grounding_gym.image_store.ImageStore`, shared by every handle of the same source
            that uses it; the handle itself then keeps only the header). None: the handle
            keeps them itself, until it is dropped.

    Raises (from `.size` / `.image()`):
        ImageLoadError: the source cannot be read or is not an image (names the source).
        ImageTooLargeError: more than `max_image_pixels` pixels.
    """

    def __init__(
        self,
        source: ImageSource,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        store: ImageStore | None = None,
    ):
        self.source = source
        self.max_image_pixels = max_image_pixels
        self.store = store
        self._size: tuple[int, int] | None = None
        self._parts: dict[tuple, Any] = {}  # without a store: ("image",), ...
        self._key: Hashable | None = None
        self._format: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """`(w, h)` of the upright (EXIF-rotated) image in px; reads the header only."""
        if self._size is None:
            if not self._is_encoded():
                self._size = self.image().size
            else:
                with self._open() as raw:
                    self._size, self._format = _upright_size(raw), raw.format
        return self._size

    @property
    def is_decoded(self) -> bool:
        """Whether the full decode is held (by the handle, or by its store)."""
        if self.store is None:
            return ("image",) in self._parts
        return (self.key, "image") in self.store

    @property
    def key(self) -> Hashable:
        """`image_store.source_key` of the source (computed once)."""
        if self._key is None:
            self._key = source_key(self.source)
        return self._key

    def image(self) -> Image.Image:
        """The decoded upright RGB image (decoded once, then kept by the handle or its store)."""
        image = self._kept(("image",), self._decode_in_slot)
        if self.store is not None:  # decoded by a handle of another env: check our own limit
            self._check_pixels(image.size, describe_source(self.source))
        self._size = image.size
        return image

    def preview(self, min_size: tuple[int, int], upsample: bool = False) -> Image.Image:
        """The upright RGB image decoded at reduced size, each side >= `min_size` (w, h).

        Only JPEG files and bytes at least twice `min_size` decode reduced; anything else
        returns `.image()` (then the first crop reuses that decode). With `upsample`, a JPEG
        between `HALF_SCALE_MIN_RATIO` and 2 times `min_size` decodes at 1/2 scale, smaller than
        `min_size` (the view is then upsampled from it). The result depends only on the source,
        `min_size` and `upsample` (not on what was decoded before), so views rendered from it
        are reproducible. Previews are kept per decoded scale.
        """
        (w, h), (min_w, min_h) = self.size, min_size
        if w >= 2 * min_w and h >= 2 * min_h:
            request = min_size  # libjpeg picks the smallest 1/2-1/8 scale still >= min_size
        elif upsample and w >= HALF_SCALE_MIN_RATIO * min_w and h >= HALF_SCALE_MIN_RATIO * min_h:
            request = (w // 2, h // 2)  # exactly the 1/2 scale (w // (w // 2) is 2 or 3)
        else:
            return self.image()  # no 1/2-scale decode would be large enough: decode once, fully
        if not self._is_encoded() or self._format not in (None, *DCT_SCALED_FORMATS):
            return self.image()
        preview = self._kept(("preview", request), lambda: self._decode_reduced(request))
        return self.image() if preview is None else preview

    def _decode_reduced(self, request: tuple[int, int]) -> Image.Image | None:
        """The JPEG decoded at the smallest DCT scale >= `request`; None if not a JPEG."""
        with self._open() as raw:
            self._format = raw.format
            if raw.format not in DCT_SCALED_FORMATS:
                return None
            swap = self.size != raw.size  # EXIF rotation by 90 or 270 degrees
            raw.draft("RGB", (request[1], request[0]) if swap else request)
            return _load_upright_rgb(raw, describe_source(self.source))

    def reduced(self, factor: int) -> Image.Image:
        """`.image()` box-filtered by `factor` (1, 2, 4, 8, ...) per side (`Image.reduce`).

        Pixel `(i, j)` averages original pixels `[factor*i, factor*(i+1))` x
        `[factor*j, factor*(j+1))` (clipped at the right and bottom edges), so the size is
        `ceil(w / factor), ceil(h / factor)`. Each level is built once, from the next finer one,
        and kept with the decode (by the handle, or by its store): all levels together add at
        most 1/3 of `.image()`'s memory. `factor=1` is `.image()` itself.
        """
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two >= 1, got {factor}")
        if factor == 1:
            return self.image()
        return self._kept(("reduced", factor), lambda: self.reduced(factor // 2).reduce(2))

    @property
    def levels(self) -> tuple[int, ...]:
        """Factors (2, 4, ...) of the pyramid levels held now, by the handle or its store."""
        if self.store is None:
            return tuple(sorted(part[1] for part in self._parts if part[0] == "reduced"))
        longest, factor, held = max(self._size or (0, 0)), 2, []
        while factor <= longest:
            if (self.key, "reduced", factor) in self.store:
                held.append(factor)
            factor *= 2
        return tuple(held)

    def _kept(self, part: tuple, make: Callable[[], Any]) -> Any:
        """`make()`'s value for `part` of the image, kept by the store or else by the handle."""
        if self.store is not None:
            return self.store.get((self.key, *part), make)
        if part not in self._parts:
            self._parts[part] = make()
        return self._parts[part]

    def _is_encoded(self) -> bool:
        """Files, bytes and lazy byte references (`read_bytes()`) hold an encoded image whose
        header can be read alone; in-memory and rendered images do not."""
        return isinstance(self.source, (str, bytes, os.PathLike)) or callable(
            getattr(self.source, "read_bytes", None)
        )

    def _decode_in_slot(self) -> Image.Image:
        """`_decode`, within the store's `decode_slot` (bounded decode concurrency)."""
        if self.store is None:
            return self._decode()
        with self.store.decode_slot:
            return self._decode()

    def _decode(self) -> Image.Image:
        name = describe_source(self.source)
        if isinstance(self.source, Image.Image):
            image = self.source
        elif callable(self.source) and not self._is_encoded():
            image = self.source()
            if not isinstance(image, Image.Image):
                raise ImageLoadError(f"{name} returned {type(image).__name__}, not a PIL image")
        else:
            with self._open() as raw:
                return _load_upright_rgb(raw, name)
        self._check_pixels(image.size, name)
        return to_rgb(image)

    def _open(self) -> Image.Image:
        name = describe_source(self.source)
        try:
            stream = self._stream()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                raw = Image.open(stream)
        except FileNotFoundError as err:
            raise ImageLoadError(f"Image not found: {name}") from err
        except Image.DecompressionBombError as err:
            raise ImageTooLargeError(
                f"{name} exceeds PIL's decompression-bomb limit ({err}); raise "
                "PIL.Image.MAX_IMAGE_PIXELS and max_image_pixels together to load it"
            ) from err
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ImageLoadError(f"Cannot read {name}: {err}") from err
        self._check_pixels(raw.size, name)
        return raw

    def _stream(self) -> str | os.PathLike | io.BytesIO:
        if isinstance(self.source, bytes):
            return io.BytesIO(self.source)
        if isinstance(self.source, (str, os.PathLike)):
            return self.source
        reference: Any = self.source  # a lazy reference into a larger file (`read_bytes()`)
        return io.BytesIO(reference.read_bytes())

    def _check_pixels(self, size: tuple[int, int], name: str) -> None:
        if size[0] * size[1] > self.max_image_pixels:
            raise ImageTooLargeError(
                f"{name} has {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over "
                f"max_image_pixels={self.max_image_pixels:,}; pass a larger max_image_pixels "
                "to the env if the image is trusted"
            )


def _load_upright_rgb(raw: Image.Image, name: str) -> Image.Image:
    """Decode an opened image, apply its EXIF orientation in place, convert to RGB."""
    try:
        raw.load()
        ImageOps.exif_transpose(raw, in_place=True)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"Cannot decode {name}: {err}") from err
    return to_rgb(raw)


EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "WEBP")
"""Formats whose orientation tag is read without decoding (Pillow decodes PNG to find EXIF)."""


def _upright_size(raw: Image.Image) -> tuple[int, int]:
    """Size after EXIF orientation (tags 5-8 swap width and height)."""
    if raw.format not in EXIF_FORMATS:
        return raw.size
    try:
        orientation = raw.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):  # unreadable EXIF: treat as upright
        orientation = 1
    w, h = raw.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def fit_to_budget(
    width: float, height: float, min_pixels: int, max_pixels: int, patch_size: int | None = 28
) -> tuple[int, int]:
    """View size `(w, h)` for a region of `width` x `height` original px.

    Keeps the aspect (up to rounding), scales so `min_pixels <= w * h <= max_pixels`, and rounds
    each side to a multiple of `patch_size` (None or 1: no rounding). Regions already inside the
    budget keep their size. Matches Qwen2-VL's `smart_resize` for `patch_size=28`, except for
    extreme aspects (where `smart_resize` refuses ratios over 200): when the short side is
    already one patch, the long side is cut so that `w * h <= max_pixels` always holds (the
    aspect is then squeezed).

    >>> fit_to_budget(4000, 3000, min_pixels=3136, max_pixels=1003520)
    (1148, 840)
    >>> fit_to_budget(1, 100000, min_pixels=3136, max_pixels=1003520)  # 1 x 100000 px image
    (28, 35840)
    """
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must be <= max_pixels ({max_pixels})")
    factor = patch_size or 1
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels ({max_pixels}) is below one patch ({factor}x{factor})")
    w_bar = max(factor, round(width / factor) * factor)
    h_bar = max(factor, round(height / factor) * factor)
    if w_bar * h_bar > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
    elif w_bar * h_bar < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w_bar = math.ceil(width * beta / factor) * factor
        h_bar = math.ceil(height * beta / factor) * factor
    if w_bar * h_bar > max_pixels:  # a side clamped up to one patch: cut the other one
        if w_bar >= h_bar:
            w_bar = max(factor, max_pixels // (h_bar * factor) * factor)
        else:
            h_bar = max(factor, max_pixels // (w_bar * factor) * factor)
    return int(w_bar), int(h_bar)


def reduction_factor(box: Box, view_size: tuple[int, int]) -> int:
    """Pyramid level for a view: the largest power of two <= the view's shrink per side.

    1 when the view upsamples its region or shrinks it less than 2x on either side (the view
    is then resampled from the original). A view of `box` resampled from
    `ImageHandle.reduced(factor)` still reads at least one source pixel per view pixel.

    >>> reduction_factor(Box(0, 0, 4000, 3000), (1148, 840))
    2
    >>> reduction_factor(Box(0, 0, 900, 600), (644, 420))
    1
    """
    shrink = min(box.width / view_size[0], box.height / view_size[1])
    factor = 1
    while factor * 2 <= shrink:
        factor *= 2
    return factor


def render_view(
    image: Image.Image,
    box_orig: Box,
    view_size: tuple[int, int],
    original_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Cut `box_orig` (original px) from `image` and resize it to `view_size` (w, h).

    Args:
        image: the decoded original, or a reduced copy of it (`ImageHandle.preview`,
            `ImageHandle.reduced`).
        box_orig: region to show, original px.
        view_size: `(w, h)` of the result.
        original_size: `(w, h)` of the original when `image` is a reduced copy; the box is
            scaled into `image`'s pixels. None: `image` is the original.

    Returns:
        uint8 array (h, w, 3), C-contiguous.
    """
    return np.asarray(render_view_image(image, box_orig, view_size, original_size), dtype=np.uint8)


def render_view_image(
    image: Image.Image,
    box_orig: Box,
    view_size: tuple[int, int],
    original_size: tuple[int, int] | None = None,
) -> Image.Image:
    """`render_view` as a PIL image (the env keeps it in the chat messages without a copy)."""
    return image.resize(view_size, RESAMPLE, box=_box_in_source(image, box_orig, original_size))


def render_view_opencv(
    image: Image.Image,
    box_orig: Box,
    view_size: tuple[int, int],
    original_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """`render_view` computed with OpenCV: same arguments and result type, pixels within the
    PSNR tolerance of docs/benchmarks.md, about 2x faster.

    PIL weighs the source pixels around each view pixel's centre with the bicubic kernel,
    stretched by the shrink. Here the source pixels under the box (plus the kernel's reach) are
    filtered by `linear_prefilter` (`cv2.sepFilter2D`; the filter of the shrink rounded to
    0.001), then `cv2.warpAffine` interpolates them bilinearly at the same continuous centres,
    so the box keeps its sub-pixel edges. At the image's border OpenCV replicates the edge
    pixels where PIL renormalises the kernel. Meant for shrinks below `OPENCV_MAX_SHRINK`
    (larger ones stay within the tolerance, but are slower than PIL).

    Raises:
        ImportError: OpenCV is not installed.
    """
    import cv2

    box = x1, y1, x2, y2 = _box_in_source(image, box_orig, original_size)
    if all(float(v).is_integer() for v in box) and (x2 - x1, y2 - y1) == tuple(view_size):
        return np.array(
            image.crop(box)
        )  # whole pixels at native size: PIL's resize copies them too
    scale_x, scale_y = (x2 - x1) / view_size[0], (y2 - y1) / view_size[1]  # source px per view px
    kernel_x, kernel_y = (linear_prefilter(max(1.0, round(v, 3))) for v in (scale_x, scale_y))
    reach_x, reach_y = kernel_x.size // 2 + 1, kernel_y.size // 2 + 1  # filter + interpolation
    left, top = max(0, math.floor(x1) - reach_x), max(0, math.floor(y1) - reach_y)
    right = min(image.width, math.ceil(x2) + reach_x)
    bottom = min(image.height, math.ceil(y2) + reach_y)
    region = np.asarray(image.crop((left, top, right, bottom)))
    filtered = cv2.sepFilter2D(region, -1, kernel_x, kernel_y, borderType=cv2.BORDER_REPLICATE)
    # view pixel (i, j) <- source point (x1 + (i + 0.5) * scale_x, ...) in PIL's edge coordinates,
    # minus 0.5 for OpenCV's (pixel centres at integers), minus the region's corner
    view_to_region = np.array(
        [
            [scale_x, 0.0, x1 - left + 0.5 * scale_x - 0.5],
            [0.0, scale_y, y1 - top + 0.5 * scale_y - 0.5],
        ]
    )
    return cv2.warpAffine(
        filtered,
        view_to_region,
        view_size,
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
    )


@functools.lru_cache(maxsize=1024)
def linear_prefilter(scale: float) -> np.ndarray:
    """The separable filter `h` of `render_view_opencv` for `scale` source px per view px.

    PIL's bicubic resize weighs source pixel `k` of a view pixel centred at source position
    `q` (pixel centres at integers) by `bicubic((k - q) / s)`, `s = max(scale, 1)`, normalised.
    Filtering by `h`, then interpolating linearly at `q = j + t`, weighs it by
    `(1 - t) * h[j - k] + t * h[j + 1 - k]`. `h` fits these weights to PIL's over the 32
    sub-pixel phases `t` that `cv2.warpAffine` distinguishes, by least squares reweighted 5
    times towards the worst phases (a view at 1:1 scale has one phase everywhere; plain least
    squares leaves phase 0 about 2 dB worse on sharp text). Symmetric, odd length
    `2 * ceil(2 * s) + 3`, sums to 1 (flat regions stay exact), float32, read-only.
    """
    s = max(scale, 1.0)
    radius = math.ceil(2 * s) + 1
    taps = np.arange(-radius, radius + 1)  # h[o], o = j - k
    phases = np.arange(32) / 32  # t
    offsets = np.arange(-radius - 1, radius + 2)  # k - j
    target = _bicubic((offsets[None, :] - phases[:, None]) / s)
    target /= target.sum(axis=1, keepdims=True)
    design = (1 - phases)[:, None, None] * (taps == -offsets[:, None]) + phases[:, None, None] * (
        taps == 1 - offsets[:, None]
    )
    weights = np.ones(phases.size)
    for _ in range(6):
        root = np.sqrt(weights)[:, None]
        kernel = np.linalg.lstsq(
            (design * root[..., None]).reshape(-1, taps.size),
            (target * root).reshape(-1),
            rcond=None,
        )[0]
        errors = ((design @ kernel - target) ** 2).sum(axis=1)  # per phase
        weights *= errors / errors.mean()
    kernel = (kernel / kernel.sum()).astype(np.float32)
    kernel.flags.writeable = False
    return kernel


def _bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (a = -0.5) at distances `x` (px)."""
    x = np.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1
    far = ((-0.5 * x + 2.5) * x - 4) * x + 2
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def resolve_resize_backend(name: str) -> str:
    """The backend a `resize_backend` choice (`RESIZE_BACKENDS`) renders with: "pil" or "opencv".

    Raises:
        ValueError: `name` is not a choice.
        ImportError: "opencv" was asked for and OpenCV does not import (the `fast` extra).
    """
    check_choice("resize_backend", name, RESIZE_BACKENDS)
    if name == "pil":
        return "pil"
    try:
        import cv2  # noqa: F401
    except ImportError as err:
        if name == "opencv":
            raise ImportError(
                "resize_backend='opencv' needs OpenCV: pip install 'grounding-gym[fast]' "
                "(or opencv-python-headless); resize_backend='pil' needs nothing"
            ) from err
        return "pil"
    return "opencv"


def source_shrink(
    image: Image.Image,
    box_orig: Box,
    view_size: tuple[int, int],
    original_size: tuple[int, int] | None = None,
) -> float:
    """Source px of `image` per view px, on the view's more shrunk side (< 1: upscaled).
    Arguments as for `render_view`."""
    x1, y1, x2, y2 = _box_in_source(image, box_orig, original_size)
    return max((x2 - x1) / view_size[0], (y2 - y1) / view_size[1])


def _box_in_source(
    image: Image.Image, box_orig: Box, original_size: tuple[int, int] | None
) -> tuple[float, float, float, float]:
    """`box_orig` (original px) in the pixels of `image`, a reduced copy when `original_size`
    (the original's `(w, h)`) differs from its size (`source_scale`)."""
    box = box_orig.as_tuple()
    if original_size is None or original_size == image.size:
        return box
    sx, sy = source_scale(image.size, original_size)
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def source_scale(
    reduced_size: tuple[int, int], original_size: tuple[int, int]
) -> tuple[float, float]:
    """Pixels of a reduced copy per original pixel, per axis.

    A DCT-scaled decode or an `Image.reduce` by an integer `k` is `ceil(w / k)` wide and its
    pixel `i` covers original `[k*i, k*(i+1))`, so the scale is exactly `1/k` (the last column
    is partial); any other copy scales by the ratio of the sizes.
    """
    (w, h), (orig_w, orig_h) = reduced_size, original_size
    k = max(1, round(orig_w / w))
    if -(-orig_w // k) == w and -(-orig_h // k) == h:
        return 1 / k, 1 / k
    return w / orig_w, h / orig_h


class ImageCache(LRU):
    """A small LRU of `ImageHandle`s keyed by sample id.

    Handles made with a store (as the envs make them) hold only a name and a header, so this
    bounds header reads; the pixels are bounded by the store's bytes (`image_cache_bytes`).
    Handles without a store keep their decode and pyramid, which go when they are dropped.

    Args:
        max_items: handles kept; the least recently used is dropped first. 0 disables caching.
    """

    def __init__(self, max_items: int = 4):
        super().__init__(max_items, name="image_cache_size")
