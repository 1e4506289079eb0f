"""Benchmark boxes: `parse_box` is the single place a benchmark's box becomes an original-px xyxy
`Box`; `BoxFitter` clips boxes to their image.

Boxes outside the image (only checked when the image size is known):
a box partly outside is clipped to the image, with one `UserWarning` per dataset counting the
boxes that stuck out by more than `CLIP_TOLERANCE_PX`; a box with nothing inside the image is a
`DatasetFormatError` (it is almost always a wrong box format or a wrong image).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from grounding_gym.data.formats.records import format_error, json_field, suggest
from grounding_gym.geometry import Box, clip_box

BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "norm1", "norm1000")
"""Box formats a file may declare: original px corners, original px corner + size, 0..1 corners,
0..1000 corners (Qwen2-VL). Normalised formats are fractions of the whole original image."""


CLIP_TOLERANCE_PX = 1.0
"""Boxes sticking out of the image by at most this many px are clipped without a warning."""


def check_box_format(box_format: Any, where: str) -> str:
    if box_format not in BOX_FORMATS:
        raise format_error(
            where,
            f"box_format {box_format!r} is not one of "
            f"{BOX_FORMATS}.{suggest(str(box_format), BOX_FORMATS)}",
            '"xyxy"/"xywh" are original px; "norm1" is 0..1 and "norm1000" 0..1000 of the image.',
        )
    return box_format


def _box_numbers(value: Any, box_format: str, where: str) -> tuple[float, float, float, float]:
    shape = "[x, y, w, h]" if box_format == "xywh" else "[x1, y1, x2, y2]"
    if isinstance(value, str) and value.strip().startswith("["):
        value = json_field(value, where, "box")
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise format_error(
            where, f"box {value!r} is not a list of 4 numbers {shape} ({box_format})"
        )
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise format_error(where, f"box {value!r} has a non-numeric coordinate {v!r}")
        if not math.isfinite(v):
            raise format_error(where, f"box {value!r} has a non-finite coordinate {v!r}")
    a, b, c, d = (float(v) for v in value)
    return a, b, c, d


def parse_box(
    value: Any, box_format: str, where: str, image_size: tuple[int, int] | None = None
) -> Box:
    """A file's box as an original-px xyxy `Box` (the one conversion every loader uses).

    Args:
        value: 4 numbers in `box_format`.
        box_format: one of `BOX_FORMATS`.
        where: location for error messages.
        image_size: `(w, h)` of the original; required for "norm1" / "norm1000".

    Raises:
        DatasetFormatError: not 4 finite numbers, non-positive size, or normalised coordinates
            out of range (usually a wrong `box_format`).
    """
    a, b, c, d = _box_numbers(value, box_format, where)
    if box_format == "xywh":
        if c <= 0 or d <= 0:
            raise format_error(
                where, f"box {list(value)} (xywh) has a non-positive size w={c}, h={d}"
            )
        return Box(a, b, a + c, b + d)
    if not (a < c and b < d):
        fix = 'if it is [x, y, w, h], declare box_format "xywh".' if c > 0 and d > 0 else ""
        raise format_error(
            where,
            f"box {list(value)} ({box_format}) needs x1 < x2 and y1 < y2 (non-positive size)",
            fix,
        )
    if box_format == "xyxy":
        return Box(a, b, c, d)
    top = 1.0 if box_format == "norm1" else 1000.0
    if min(a, b) < -0.01 * top or max(c, d) > 1.01 * top:
        raise format_error(
            where,
            f"box {list(value)} is declared {box_format} but its coordinates leave 0..{top:g}",
            "check box_format: pixel boxes are 'xyxy' or 'xywh'.",
        )
    if image_size is None:
        raise format_error(where, f"box_format {box_format!r} needs the image size")
    sx, sy = image_size[0] / top, image_size[1] / top
    return Box(a * sx, b * sy, c * sx, d * sy)


class BoxFitter:
    """Clips boxes to their image; counts the ones that stuck out, and warns once (`warn()`)."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.clipped = 0
        self._first = ""

    def fit(self, box: Box, image_size: tuple[int, int] | None, where: str) -> Box:
        if image_size is None:
            return box
        width, height = image_size
        inside = clip_box(box, Box.from_size(width, height))
        if inside is None:
            raise format_error(
                where,
                f"box {box.as_list()} (original px xyxy) lies entirely outside the "
                f"{width}x{height} image",
                "check the box format and that the box belongs to this image.",
            )
        overhang = max(-box.x1, -box.y1, box.x2 - width, box.y2 - height)
        if overhang > CLIP_TOLERANCE_PX:
            self.clipped += 1
            if not self._first:
                self._first = f"{where}: {box.as_list()} -> {inside.as_list()}"
        return inside

    def warn(self) -> None:
        if self.clipped:
            warnings.warn(
                f"{self.dataset}: clipped {self.clipped} ground-truth box(es) that extended more "
                f"than {CLIP_TOLERANCE_PX:g} px outside their image (first: {self._first})",
                UserWarning,
                stacklevel=3,
            )
