"""Drawing the synthetic scenes: palette, ring and label geometry, the fine content textures
(`render_content`), and `SyntheticImage`, the picklable callable that draws one image.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from grounding_gym.geometry import Box

Family = Literal["read", "search"]


ContentKind = Literal["pattern", "digit"]


FAMILIES: tuple[str, ...] = ("read", "search")


CONTENT_KINDS: tuple[str, ...] = ("pattern", "digit")


PATTERNS: tuple[str, ...] = ("horizontal stripes", "vertical stripes", "checkerboard", "dots")


DIGITS: tuple[str, ...] = tuple("0123456789")


PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (225, 25, 30),
    "green": (20, 175, 45),
    "blue": (25, 65, 235),
    "yellow": (245, 220, 10),
    "magenta": (235, 30, 205),
    "cyan": (15, 215, 225),
    "orange": (255, 130, 0),
    "purple": (115, 30, 170),
}
"""Ring colours, saturated (HSV saturation >= 0.8); clutter stays below `CLUTTER_MAX_SAT`."""


CLUTTER_MAX_SAT = 0.45
"""Largest HSV saturation of background and clutter colours, so palette rings stand out."""


HUE_EXCLUSION = 25.0 / 360.0
"""In `read`, clutter hues within this distance of the target colour's hue are not used."""


RING_THICKNESS = 0.12
"""Ring outline width as a fraction of its diameter (at least 2 px)."""


MIN_PERIOD_PX = 4
"""Finest content period in original px (finer cannot be drawn cleanly)."""


MIN_RING_PX = 12
"""Smallest ring diameter in original px; tiny images with tiny requested areas are clamped."""


FIT_FRACTION = 0.85
"""A ring's diameter is at most this fraction of the image's short side (the long side is
shortened when a large relative area would not fit otherwise)."""


DIGIT_SEGMENTS: dict[str, str] = {
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}
"""Seven-segment encoding: a top, b upper right, c lower right, d bottom, e lower left,
f upper left, g middle."""


# Stroke glyphs for labels: polylines in a unit box (x right, y down).
_SEG_LINES: dict[str, tuple[tuple[float, float], ...]] = {
    "a": ((0, 0), (1, 0)),
    "b": ((1, 0), (1, 0.5)),
    "c": ((1, 0.5), (1, 1)),
    "d": ((0, 1), (1, 1)),
    "e": ((0, 0.5), (0, 1)),
    "f": ((0, 0), (0, 0.5)),
    "g": ((0, 0.5), (1, 0.5)),
}


GLYPHS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "A": (((0, 1), (0, 0), (1, 0), (1, 1)), ((0, 0.5), (1, 0.5))),
    "C": (((1, 0), (0, 0), (0, 1), (1, 1)),),
    "E": (((1, 0), (0, 0), (0, 1), (1, 1)), ((0, 0.5), (0.7, 0.5))),
    "F": (((1, 0), (0, 0), (0, 1)), ((0, 0.5), (0.7, 0.5))),
    "H": (((0, 0), (0, 1)), ((1, 0), (1, 1)), ((0, 0.5), (1, 0.5))),
    "J": (((1, 0), (1, 1), (0, 1), (0, 0.6)),),
    "K": (((0, 0), (0, 1)), ((1, 0), (0, 0.5), (1, 1))),
    "L": (((0, 0), (0, 1), (1, 1)),),
    "N": (((0, 1), (0, 0), (1, 1), (1, 0)),),
    "P": (((0, 1), (0, 0), (1, 0), (1, 0.5), (0, 0.5)),),
    "T": (((0, 0), (1, 0)), ((0.5, 0), (0.5, 1))),
    "U": (((0, 0), (0, 1), (1, 1), (1, 0)),),
    "V": (((0, 0), (0.5, 1), (1, 0)),),
    "X": (((0, 0), (1, 1)), ((1, 0), (0, 1))),
    "Y": (((0, 0), (0.5, 0.5), (1, 0)), ((0.5, 0.5), (0.5, 1))),
    "Z": (((0, 0), (1, 0), (0, 1), (1, 1)),),
    **{d: tuple(_SEG_LINES[s] for s in segs) for d, segs in DIGIT_SEGMENTS.items()},
}


LABEL_LETTERS = "ACEFHJKLNPTUVXYZ"
"""Label = one of these letters + one digit ("K7"); labels in one image are distinct."""


_LABEL_INK = (20, 20, 20)


_LABEL_PLATE = (238, 238, 232)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def ring_thickness(diameter: int) -> int:
    """Ring outline width in px for a ring of `diameter` px."""
    return max(2, round(RING_THICKNESS * diameter))


def content_canvas(diameter: int) -> int:
    """Side in px of the square holding a ring's content (its inside plus 1 px under the ring)."""
    return diameter - 2 * ring_thickness(diameter) + 2


_DOT_RADIUS = 0.3


_DOT_GROUND = (0.5 - math.pi * _DOT_RADIUS**2) / (1.0 - math.pi * _DOT_RADIUS**2)
"""Dots: discs of `_DOT_RADIUS` periods at 1 on `_DOT_GROUND`, so their mean is 0.5."""


_DIGIT_H, _DIGIT_W, _DIGIT_STROKE = 0.70, 0.42, 0.11
"""Digit box height, width and segment width, as fractions of the content canvas."""


def content_period(kind: str, diameter: int, difficulty: float, cycles: float | None = None) -> int:
    """Period in original px (an integer) of the content of a ring of `diameter` original px.

    Patterns: about `24 + 8 * difficulty` cycles across the content canvas (or `cycles`, for
    coarse content: see `SyntheticHR(coarse_content=...)`), at least `MIN_PERIOD_PX`. Digits: the
    checkerboard texture's period `2 * cell`, with an even `cell`
    >= 2 px such that at least `3.5 + difficulty` cells span a segment's width. Periods are never
    2 mod 4 from 12 px on, so drawing them needs no supersampling (see `render_content`).
    """
    canvas = content_canvas(diameter)
    if kind == "pattern":
        across = _lerp(24.0, 32.0, difficulty) if cycles is None else cycles
        period = max(MIN_PERIOD_PX, round(canvas / across))
        return period + 1 if period >= 12 and period % 4 == 2 else period
    cells = _DIGIT_STROKE * canvas / _lerp(3.5, 4.5, difficulty)
    return 4 * max(1, math.floor(cells / 2.0))


def content_contrast(difficulty: float) -> float:
    """Peak-to-peak grey-level contrast of ring content."""
    return _lerp(200.0, 110.0, difficulty)


def _digit_polygons(digit: str, size: float) -> list[list[tuple[float, float]]]:
    """Seven-segment polygons (bevelled bars) of `digit` on a `size` x `size` canvas, px."""
    h, w, st = _DIGIT_H * size, _DIGIT_W * size, _DIGIT_STROKE * size
    left, top = (size - w) / 2.0, (size - h) / 2.0
    right, bottom, mid = left + w, top + h, size / 2.0
    xl, xr = left + st / 2.0, right - st / 2.0
    yt, yb = top + st / 2.0, bottom - st / 2.0
    ends = {
        "a": ((xl, yt), (xr, yt)),
        "g": ((xl, mid), (xr, mid)),
        "d": ((xl, yb), (xr, yb)),
        "f": ((xl, yt), (xl, mid)),
        "b": ((xr, yt), (xr, mid)),
        "e": ((xl, mid), (xl, yb)),
        "c": ((xr, mid), (xr, yb)),
    }
    half, gap = st / 2.0, 0.12 * st
    polygons = []
    for seg in DIGIT_SEGMENTS[digit]:
        (x0, y0), (x1, y1) = ends[seg]
        if y0 == y1:  # horizontal bar
            x0, x1 = x0 + gap, x1 - gap
            polygons.append(
                [
                    (x0, y0),
                    (x0 + half, y0 - half),
                    (x1 - half, y0 - half),
                    (x1, y0),
                    (x1 - half, y0 + half),
                    (x0 + half, y0 + half),
                ]
            )
        else:  # vertical bar
            y0, y1 = y0 + gap, y1 - gap
            polygons.append(
                [
                    (x0, y0),
                    (x0 + half, y0 + half),
                    (x0 + half, y1 - half),
                    (x0, y1),
                    (x0 - half, y1 - half),
                    (x0 - half, y0 + half),
                ]
            )
    return polygons


def _digit_blocks(digit: str, canvas: float, block: float) -> np.ndarray:
    """Segments of `digit` as whole `block` x `block` cells: bool (nb, nb), nb cells a side.

    Cell `(i, j)` spans `[j * block, (j + 1) * block)` along x of the canvas (i along y); a cell
    is on when the segments cover at least half of it.
    """
    nb = max(1, math.ceil(canvas / block))
    ss = 4
    img = Image.new("L", (nb * ss, nb * ss), 0)
    draw = ImageDraw.Draw(img)
    for polygon in _digit_polygons(digit, canvas * ss / block):
        draw.polygon(polygon, fill=255)
    cover = np.asarray(img, dtype=np.float32).reshape(nb, ss, nb, ss).mean(axis=(1, 3))
    return cover >= 127.5


def _disk_envelope(coords: np.ndarray, canvas: float, ramp: float) -> np.ndarray:
    """1 inside, a raised-cosine ramp `ramp` px wide, 0 from the visible edge (`canvas / 2 - 1`)."""
    r_out = canvas / 2.0 - 1.0
    ramp = min(ramp, 0.6 * r_out)
    c = (coords - canvas / 2.0).astype(np.float32)
    r = np.sqrt(c[None, :] ** 2 + c[:, None] ** 2)
    t = np.clip((r - np.float32(r_out - ramp)) * np.float32(1.0 / ramp), 0.0, 1.0)
    return np.float32(0.5) + np.float32(0.5) * np.cos(np.float32(np.pi) * t)


def render_content(
    kind: str,
    value: str,
    n: int,
    canvas: float,
    period: float,
    offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Area-sampled content of one ring, drawn at `n` x `n` px, values in [0, 1].

    The content lives on a `canvas` x `canvas` square (original px, see `content_canvas`) and can
    be drawn at any size: `n == canvas` when generating, the ring's size in a view in the reader.
    0.5 is the mean grey. Every period of the texture is symmetric with mean 0.5 (+ for a quarter
    period, - for a half, + for a quarter), so all classes look alike once a view's resampling
    removes the texture, and nothing of the region the texture fills is left either:

    * patterns: stripes, a checkerboard of half-period cells, or dots (discs of 0.3 period at 1
      on a darker ground), faded out towards the ring by a raised-cosine ramp two periods wide
      (its spectrum is zero at the texture's frequency, so the fade leaves no outline);
    * digits: a checkerboard of half-period cells inside the seven segments, which are snapped
      to whole period x period blocks (each averages to exactly 0.5), on flat 0.5.

    Args:
        kind: "pattern" or "digit".
        value: a `PATTERNS` entry or a digit "0".."9".
        n: output side, px.
        canvas: content square side, original px.
        period: texture period and block side, original px (`content_period`).
        offset: the texture (and its blocks) shifted by this many original px along (x, y).

    Returns:
        float32 (n, n).
    """
    if kind == "pattern" and value not in PATTERNS:
        raise ValueError(f"Unknown pattern {value!r}; expected one of {PATTERNS}")
    if kind == "digit" and value not in DIGIT_SEGMENTS:
        raise ValueError(f"Unknown digit {value!r}; expected one of {DIGITS}")
    if kind not in CONTENT_KINDS:
        raise ValueError(f"Unknown content kind {kind!r}; expected one of {CONTENT_KINDS}")
    step = canvas / n  # original px per output px
    ss = int(min(8, max(1, math.ceil(12.0 * step / period))))  # supersamples per output px
    if step == 1 and period == int(period) and (int(period) * ss) % 4 == 2:
        ss += 1  # keep samples off the quarter-period edges, so every period stays symmetric
    m = n * ss
    coords = (np.arange(m, dtype=np.float64) + 0.5) * (step / ss)  # original px
    fu = ((coords + offset[0]) / period) % 1.0  # position in the period, (m,)
    fv = ((coords + offset[1]) / period) % 1.0
    # One period: + for a quarter, - for a half, + for a quarter; symmetric, zero mean.
    hu = ((fu < 0.25) | (fu >= 0.75))[None, :]
    hv = ((fv < 0.25) | (fv >= 0.75))[:, None]
    if value == "horizontal stripes":
        texture = np.broadcast_to(hv, (m, m)).astype(np.float32)
    elif value == "vertical stripes":
        texture = np.broadcast_to(hu, (m, m)).astype(np.float32)
    elif value == "dots":  # bright discs of radius 0.3 period on a ground that keeps the mean 0.5
        disc = ((fu - 0.5) ** 2)[None, :] + ((fv - 0.5) ** 2)[:, None] < _DOT_RADIUS**2
        texture = np.where(disc, np.float32(1.0), np.float32(_DOT_GROUND))
    else:  # checkerboard, and the texture of digits
        texture = (hu == hv).astype(np.float32)
    if kind == "pattern":
        # Fade to flat over two periods before the ring: the ramp's spectrum vanishes at the
        # pattern's frequency, so the disk's edge leaves no trace once the pattern is gone.
        weight = _disk_envelope(coords, canvas, 2.0 * period)
        bias = float((weight * (texture - 0.5)).sum() / max(float(weight.sum()), 1e-6))
        values = 0.5 + weight * (texture - np.float32(0.5 + bias))  # exact mean 0.5
    else:
        # Segments snapped to whole periods (offset 0): each block averages to exactly 0.5 and
        # is symmetric, so the digit's outline cancels too.
        blocks = _digit_blocks(value, canvas, period)
        idx = np.minimum((coords // period).astype(np.int64), blocks.shape[0] - 1)
        values = np.where(blocks[np.ix_(idx, idx)], texture, np.float32(0.5))
    if ss > 1:
        values = values.reshape(n * ss, n, ss).mean(axis=2).reshape(n, ss, n).mean(axis=1)
    return np.ascontiguousarray(values, dtype=np.float32)


@dataclass(frozen=True)
class Ring:
    """One ring of a scene, original px.

    Attributes:
        x, y: top-left of the ring's bounding box; the ring covers `[x, x + diameter)`.
        diameter: outer diameter.
        color: a `PALETTE` name.
        kind, content: what is inside (see `render_content`).
        mean: mean grey of the content, 0..255.
        period: content period in original px (`content_period`).
        offset: content offset in whole px (see `render_content`).
        label: the label text, or None.
        label_box: `(x1, y1, x2, y2)` of the label plate, or None.
        label_height: glyph height in px (0 without a label).
    """

    x: int
    y: int
    diameter: int
    color: str
    kind: str
    content: str
    mean: float
    period: int
    offset: tuple[int, int]
    label: str | None = None
    label_box: tuple[int, int, int, int] | None = None
    label_height: int = 0

    @property
    def box(self) -> Box:
        return Box(self.x, self.y, self.x + self.diameter, self.y + self.diameter)


@dataclass(frozen=True)
class SyntheticImage:
    """Zero-argument callable that draws one synthetic image (picklable, deterministic).

    Attributes:
        sample_id: id of the sample it belongs to (for messages).
        size: `(w, h)` in px.
        render_seed: seeds the background and clutter.
        rings: the rings, target first.
        difficulty: content difficulty in [0, 1].
        excluded_hue: hue (0..1) clutter avoids (`read`: the target's), or None.
    """

    sample_id: str
    size: tuple[int, int]
    render_seed: int
    rings: tuple[Ring, ...]
    difficulty: float
    excluded_hue: float | None = None

    def __repr__(self) -> str:
        return f"SyntheticImage({self.sample_id!r}, {self.size[0]}x{self.size[1]})"

    def __call__(self) -> Image.Image:
        """Draw the image: RGB, `size` px."""
        rng = np.random.default_rng(self.render_seed)
        canvas = _background(rng, self.size, self.excluded_hue)
        _draw_clutter(canvas, rng, self.excluded_hue)
        draw = ImageDraw.Draw(canvas)
        for ring in self.rings:
            _draw_ring(canvas, draw, ring, self.difficulty, rng)
        return canvas


def _random_colors(rng: np.random.Generator, count: int, excluded_hue: float | None) -> np.ndarray:
    """`count` muted colours (saturation <= CLUTTER_MAX_SAT) as uint8 (count, 3)."""
    hue = rng.random(count)
    if excluded_hue is not None:
        hue = (excluded_hue + HUE_EXCLUSION + hue * (1.0 - 2.0 * HUE_EXCLUSION)) % 1.0
    sat = rng.uniform(0.0, CLUTTER_MAX_SAT, count)
    val = rng.uniform(0.25, 0.95, count)
    rgb = [colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hue, sat, val, strict=True)]
    return np.clip(np.asarray(rgb) * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(count, 3)


def _smooth_interp(n_out: int, n_nodes: int) -> np.ndarray:
    """(n_out, n_nodes) weights interpolating `n_nodes` values smoothly (smoothstep) to `n_out`."""
    t = (np.arange(n_out, dtype=np.float32) + 0.5) / n_out * (n_nodes - 1)
    i0 = np.minimum(t.astype(np.int64), n_nodes - 2)
    f = t - i0
    f = f * f * (3.0 - 2.0 * f)
    weights = np.zeros((n_out, n_nodes), dtype=np.float32)
    rows = np.arange(n_out)
    weights[rows, i0] = 1.0 - f
    weights[rows, i0 + 1] = f
    return weights


def _background(
    rng: np.random.Generator, size: tuple[int, int], excluded_hue: float | None
) -> Image.Image:
    """Low-frequency colour noise: a few random colours interpolated at 1/4 size, then enlarged."""
    w, h = size
    gw, gh = (int(g) for g in rng.integers(3, 8, size=2))
    grid = _random_colors(rng, gw * gh, excluded_hue).reshape(gh, gw, 3).astype(np.float32)
    wy, wx = _smooth_interp(-(-h // 4), gh), _smooth_interp(-(-w // 4), gw)
    small = np.stack([wy @ grid[:, :, c] @ wx.T for c in range(3)], axis=-1)  # (h/4, w/4, 3)
    small_img = Image.fromarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))
    return small_img.resize((w, h), Image.Resampling.NEAREST)


def _draw_clutter(
    canvas: Image.Image, rng: np.random.Generator, excluded_hue: float | None
) -> None:
    """Rectangles, ellipses, lines and polygons of random muted colours, sizes log-uniform."""
    w, h = canvas.size
    count = round(60 + 40 * w * h / 1e6)
    largest = max(12.0, 0.12 * math.sqrt(w * h))
    sizes = np.exp(rng.uniform(math.log(6.0), math.log(largest), count))
    kinds = rng.integers(0, 4, count)
    colors = _random_colors(rng, count, excluded_hue)
    xs, ys = rng.uniform(0, w, count), rng.uniform(0, h, count)
    shape = rng.uniform(-1.0, 1.0, (count, 10))
    draw = ImageDraw.Draw(canvas)
    for k in range(count):
        s, x, y, p = float(sizes[k]), float(xs[k]), float(ys[k]), shape[k]
        fill = tuple(int(c) for c in colors[k])
        if kinds[k] == 0:
            draw.rectangle((x, y, x + s, y + s * (0.65 + 0.35 * p[0])), fill=fill)
        elif kinds[k] == 1:
            draw.ellipse((x, y, x + s, y + s * (0.65 + 0.35 * p[0])), fill=fill)
        elif kinds[k] == 2:
            end = (x + 2.0 * s * p[0], y + 2.0 * s * p[1])
            draw.line((x, y, *end), fill=fill, width=max(1, round(s * (0.06 + 0.04 * p[2]))))
        else:
            points = [
                (x + s * p[2 * j], y + s * p[2 * j + 1]) for j in range(3 + int(p[9] > 0) * 2)
            ]
            draw.polygon(points, fill=fill)


def _draw_ring(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    ring: Ring,
    difficulty: float,
    rng: np.random.Generator,
) -> None:
    """Paste the ring's content inside a disk, draw the outline, then the label (if any)."""
    d, t = ring.diameter, ring_thickness(ring.diameter)
    size = content_canvas(d)
    values = render_content(ring.kind, ring.content, size, size, ring.period, ring.offset)
    grey = ring.mean + content_contrast(difficulty) * (values - 0.5)
    grey += rng.integers(-8, 9, grey.shape, dtype=np.int8)  # dither: hides sub-level residue
    content = Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8), "L")
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size - 1, size - 1), fill=255)
    canvas.paste(content, (ring.x + t - 1, ring.y + t - 1), mask)
    draw.ellipse(
        (ring.x, ring.y, ring.x + d - 1, ring.y + d - 1), outline=PALETTE[ring.color], width=t
    )
    if ring.label is not None and ring.label_box is not None:
        _draw_label(draw, ring.label, ring.label_box, ring.label_height)


def _label_layout(height: int, n_chars: int) -> tuple[int, int, float, float]:
    """(plate width, plate height, padding, glyph width) of a label with glyphs `height` px tall."""
    pad = max(2.0, 0.3 * height)
    glyph_w, space = 0.6 * height, 0.4 * height
    width = math.ceil(2 * pad + n_chars * glyph_w + (n_chars - 1) * space)
    return width, math.ceil(2 * pad + height), pad, glyph_w


def _draw_label(
    draw: ImageDraw.ImageDraw, text: str, plate: tuple[int, int, int, int], height: int
) -> None:
    """A light plate with `text` in dark stroke glyphs."""
    x1, y1, x2, y2 = plate
    draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=_LABEL_PLATE)
    _, _, pad, glyph_w = _label_layout(height, len(text))
    stroke = max(1, round(0.14 * height))
    inset = stroke / 2.0
    for j, char in enumerate(text):
        gx = x1 + pad + j * (glyph_w + 0.4 * height)
        gy = y1 + pad
        for line in GLYPHS[char]:
            points = [
                (gx + inset + px * (glyph_w - 2 * inset), gy + inset + py * (height - 2 * inset))
                for px, py in line
            ]
            draw.line(points, fill=_LABEL_INK, width=stroke, joint="curve")


def _hue(color: str) -> float:
    r, g, b = PALETTE[color]
    return colorsys.rgb_to_hsv(r / 255.0, g / 255.0, b / 255.0)[0]
