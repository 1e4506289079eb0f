"""Boxes, coordinate frames and the one view <-> original conversion path.

A `Box` is `(x1, y1, x2, y2)` in continuous pixel edges: the pixel with integer index
`i` covers `[i, i + 1)`, so a whole W x H image is `Box(0, 0, W, H)`.

Frames (DESIGN.md section 3):

| frame      | unit                               | range of the current view |
|------------|------------------------------------|---------------------------|
| `original` | pixels of the full-resolution image | `view_box`                |
| `view`     | pixels of the observed (resized) view | `0..view_w, 0..view_h`  |
| `norm1000` | thousandths of the current view    | `0..1000`                 |
| `norm1`    | fractions of the current view      | `0..1`                    |

`view_box` (original px) and `view_size` (w, h) define an affine map; every conversion in the
package goes through `to_original` / `from_original` below, so a crop of a crop composes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from grounding_gym.validation import check_choice

Frame = Literal["original", "view", "norm1000", "norm1"]
FRAMES: tuple[str, ...] = get_args(Frame)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box `(x1, y1, x2, y2)`, floats, with `x1 < x2` and `y1 < y2`.

    The frame is not stored: name variables after it (`box_view`, `box_orig`).

    Raises:
        ValueError: a coordinate is not finite, or the box is empty or inverted.
    """

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        coords = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(c) for c in coords):
            raise ValueError(f"Box coordinates must be finite, got {coords}")
        if not (self.x1 < self.x2 and self.y1 < self.y2):
            raise ValueError(f"Box needs x1 < x2 and y1 < y2, got {coords}")
        for name, value in zip(("x1", "y1", "x2", "y2"), coords, strict=True):
            object.__setattr__(self, name, float(value))

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """Box from top-left corner and size (COCO / V* / RefCOCO convention)."""
        return cls(x, y, x + w, y + h)

    @classmethod
    def from_size(cls, width: float, height: float) -> Box:
        """The whole image of `width` x `height` pixels."""
        return cls(0.0, 0.0, width, height)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    @property
    def aspect(self) -> float:
        """Long side over short side, >= 1."""
        return max(self.width, self.height) / min(self.width, self.height)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


def intersection_area(a: Box, b: Box) -> float:
    """Area of `a & b` (0 when they do not overlap); both boxes in the same frame."""
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    return max(w, 0.0) * max(h, 0.0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union in [0, 1].

    >>> iou(Box(0, 0, 2, 2), Box(1, 0, 3, 2))
    0.3333333333333333
    """
    inter = intersection_area(a, b)
    return inter / (a.area + b.area - inter)


def coverage(target: Box, crop: Box) -> float:
    """Fraction of `target`'s area that lies inside `crop`, in [0, 1].

    >>> coverage(Box(0, 0, 2, 2), Box(1, 0, 10, 10))
    0.5
    """
    return intersection_area(target, crop) / target.area


def union_box(boxes: list[Box]) -> Box:
    """Smallest box containing every box of a non-empty list."""
    if not boxes:
        raise ValueError("union_box needs at least one box")
    return Box(
        min(b.x1 for b in boxes),
        min(b.y1 for b in boxes),
        max(b.x2 for b in boxes),
        max(b.y2 for b in boxes),
    )


def clip_box(box: Box, bounds: Box) -> Box | None:
    """`box & bounds`, or None when nothing of positive area is left."""
    x1, y1 = max(box.x1, bounds.x1), max(box.y1, bounds.y1)
    x2, y2 = min(box.x2, bounds.x2), min(box.y2, bounds.y2)
    if x1 < x2 and y1 < y2:
        return Box(x1, y1, x2, y2)
    return None


def _grow_interval(
    lo: float, hi: float, length: float, min_lo: float, max_hi: float
) -> tuple[float, float]:
    """Widen `[lo, hi]` about its centre to `length`, then slide it inside `[min_lo, max_hi]`."""
    if hi - lo >= length:
        return lo, hi
    length = min(length, max_hi - min_lo)
    centre = (lo + hi) / 2.0
    new_lo = min(max(centre - length / 2.0, min_lo), max_hi - length)
    return new_lo, new_lo + length


def grow_to_min(box: Box, min_size: float, bounds: Box, max_aspect: float = math.inf) -> Box:
    """Grow `box` about its centre so each side is >= `min_size` and aspect <= `max_aspect`.

    The result stays inside `bounds` (sides are capped at the bounds' sides). All in one frame.
    """
    min_w = max(min_size, box.height / max_aspect)
    min_h = max(min_size, box.width / max_aspect)
    x1, x2 = _grow_interval(box.x1, box.x2, min_w, bounds.x1, bounds.x2)
    y1, y2 = _grow_interval(box.y1, box.y2, min_h, bounds.y1, bounds.y2)
    return Box(x1, y1, x2, y2)


def to_original(box: Box, frame: Frame, view_box: Box, view_size: tuple[int, int]) -> Box:
    """Map `box` from `frame` of the current view to original px.

    Args:
        box: coordinates in `frame`.
        frame: one of `FRAMES`.
        view_box: region of the original shown by the current view, original px.
        view_size: `(w, h)` of the current view image, view px.
    """
    return Box(*coords_to_original(box.as_tuple(), frame, view_box, view_size))


def coords_to_original(
    coords: tuple[float, float, float, float], frame: str, view_box: Box, view_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """`to_original` for raw `(x1, y1, x2, y2)` that need not form a valid `Box` yet.

    The map is increasing in x and y, so inverted or empty boxes stay inverted or empty.
    """
    if frame == "original":
        return tuple(float(c) for c in coords)  # type: ignore[return-value]
    sx, sy = _frame_scale(frame, view_box, view_size)
    x1, y1, x2, y2 = coords
    return (
        view_box.x1 + x1 * sx,
        view_box.y1 + y1 * sy,
        view_box.x1 + x2 * sx,
        view_box.y1 + y2 * sy,
    )


def from_original(box_orig: Box, frame: Frame, view_box: Box, view_size: tuple[int, int]) -> Box:
    """Inverse of `to_original`: original px -> `frame` of the current view."""
    if frame == "original":
        return box_orig
    sx, sy = _frame_scale(frame, view_box, view_size)
    return Box(
        (box_orig.x1 - view_box.x1) / sx,
        (box_orig.y1 - view_box.y1) / sy,
        (box_orig.x2 - view_box.x1) / sx,
        (box_orig.y2 - view_box.y1) / sy,
    )


def view_to_original(box_view: Box, view_box: Box, view_size: tuple[int, int]) -> Box:
    """View px -> original px (the map Qwen2.5-VL style coordinates need)."""
    return to_original(box_view, "view", view_box, view_size)


def _frame_scale(frame: str, view_box: Box, view_size: tuple[int, int]) -> tuple[float, float]:
    """Original px per unit of `frame`, along x and y."""
    view_w, view_h = view_size
    if frame == "view":
        return view_box.width / view_w, view_box.height / view_h
    if frame == "norm1000":
        return view_box.width / 1000.0, view_box.height / 1000.0
    if frame == "norm1":
        return view_box.width, view_box.height
    raise ValueError(f"Unknown coordinate frame {frame!r}; expected one of {FRAMES}")


def check_frame(frame: str) -> Frame:
    """Validate a frame name, suggesting the closest valid one."""
    return check_choice("coord_frame", frame, FRAMES)


def round_outward(box: Box, decimals: int = 0) -> Box:
    """Round each edge away from the box's inside to `decimals` places, so the rounded box
    still contains `box` (what an agent writing integers must do to keep full coverage).

    >>> round_outward(Box(1.2, 1.7, 3.2, 3.7)).as_tuple()
    (1.0, 1.0, 4.0, 4.0)
    """
    unit = 10.0**decimals
    margin = 1e-9  # float noise of the frame conversions must not round inwards
    return Box(
        math.floor(box.x1 * unit - margin) / unit,
        math.floor(box.y1 * unit - margin) / unit,
        math.ceil(box.x2 * unit + margin) / unit,
        math.ceil(box.y2 * unit + margin) / unit,
    )


def crop_box_text(box: Box) -> str:
    """`[x1, y1, x2, y2]` rounded to whole px, for prompts and logs."""
    return "[" + ", ".join(str(round(c)) for c in box.as_tuple()) + "]"


INVALID_BOX_MODES = ("clip", "reject")


def resolve_crop(
    coords: tuple[float, float, float, float],
    frame: str,
    view_box: Box,
    view_size: tuple[int, int],
    *,
    min_crop: float = 28.0,
    max_aspect: float = 100.0,
    invalid_box: str = "clip",
) -> tuple[Box | None, str | None, bool]:
    """Turn a crop written by the model into a valid crop of the original (DESIGN section 3).

    Args:
        coords: `(x1, y1, x2, y2)` as written, in `frame` of the current view.
        frame, view_box, view_size: the current view (see `to_original`).
        min_crop: smallest crop side, original px.
        max_aspect: largest long/short side ratio.
        invalid_box: "clip" repairs what it can (sort inverted corners, clip to the view, grow
            to `min_crop` and `max_aspect` about the centre); "reject" refuses any such box.

    Returns:
        `(crop_orig, error, adjusted)`: the crop in original px or None, an error message
        when refused, and whether "clip" changed the box. Never raises on numbers.
    """
    if not all(math.isfinite(c) for c in coords):
        return None, f"box {list(coords)} has a non-finite coordinate", False
    x1, y1, x2, y2 = coords_to_original(coords, frame, view_box, view_size)
    reject = invalid_box == "reject"
    if x1 > x2 or y1 > y2:
        if reject:
            return None, f"box {list(coords)} is inverted: need x1 < x2 and y1 < y2", False
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    cx1, cy1 = max(x1, view_box.x1), max(y1, view_box.y1)
    cx2, cy2 = min(x2, view_box.x2), min(y2, view_box.y2)
    if cx1 > cx2 or cy1 > cy2:
        return None, f"box {list(coords)} lies outside the current view", False
    if reject and (x1 == x2 or y1 == y2):
        return None, f"box {list(coords)} has zero width or height", False
    adjusted = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    if reject and adjusted:
        return None, f"box {list(coords)} extends outside the current view", False
    too_small = min(cx2 - cx1, cy2 - cy1) < min_crop
    too_long = max(cx2 - cx1, cy2 - cy1) > max_aspect * min(cx2 - cx1, cy2 - cy1)
    if reject and too_small:
        return None, f"box {list(coords)} is smaller than {min_crop:g} original px", False
    if reject and too_long:
        return None, f"box {list(coords)} has an aspect ratio above {max_aspect:g}", False
    if too_small or too_long:
        centre = Box(*_grow_seed(cx1, cy1, cx2, cy2))
        return grow_to_min(centre, min_crop, view_box, max_aspect), None, True
    return Box(cx1, cy1, cx2, cy2), None, adjusted


def _grow_seed(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    """A box of positive size at the same place (a point or line becomes 1e-6 px thick)."""
    tiny = 1e-6
    return (x1, y1, max(x2, x1 + tiny), max(y2, y1 + tiny))


def frame_bounds(frame: str, view_box: Box, view_size: tuple[int, int]) -> Box:
    """The current view's extent in `frame`: `(0, 0, w, h)` view px, `(0, 0, 1000, 1000)`,
    `(0, 0, 1, 1)`, or `view_box` for "original"."""
    if frame == "view":
        return Box(0.0, 0.0, float(view_size[0]), float(view_size[1]))
    if frame == "norm1000":
        return Box(0.0, 0.0, 1000.0, 1000.0)
    if frame == "norm1":
        return Box(0.0, 0.0, 1.0, 1.0)
    return view_box
