"""Procedural high-resolution grounding data: datasets `synthetic-hr` and `synthetic`.

Each sample is a cluttered image with a few coloured rings; one ring is the target and holds the
content the question asks about. The content is drawn so fine that it survives only when the ring
is seen close to full resolution: in the first view of a 4K image (the whole image resized to
~1 megapixel) a small ring's content averages to flat grey, while a crop around the ring shows it.

Families (`Sample.category`):

| family   | how the target is named                   | what needs zooming                      |
|----------|-------------------------------------------|-----------------------------------------|
| `read`   | its colour ("the red ring"), the only     | reading the content                     |
|          | ring of that colour                       |                                         |
| `search` | a small label next to it ("the ring       | finding it among same-colour rings by   |
|          | labelled K7")                             | their labels, then reading the content  |

Content kinds (`metadata["content_kind"]`), always 4 options A-D with the answer letter uniform:

* `pattern`: one of `PATTERNS` ("horizontal stripes", "vertical stripes", "checkerboard", "dots");
* `digit`: a seven-segment digit 0-9 as large as the ring allows (drawn as polygons, no font),
  its segments filled with a fine checkerboard on a flat ground (texture-defined).

Both are two greys whose every period is symmetric with mean grey exactly the ground's, and the
texture region's outline is hidden too (patterns fade out over two periods, digit segments are
snapped to whole periods; see `render_content`), so once a view's resampling removes the texture
nothing of the content is left: not a brighter blob, not an outline.

Legibility. The period scales with the ring: patterns have `24 + 8 * difficulty` cycles across
the ring's inside, digits `3.5 + difficulty` checker cells across a segment; never finer than
`MIN_PERIOD_PX` = 4 original px (digit cells are even, >= 2 px). PIL's bicubic reduction (the
env's resize) keeps < 1 % of a texture whose period is <= 1.1 view px (measured), so a view that
shrinks the ring's inside below ~`1.1 * N` view px shows flat grey. With the first view at ~1 MP
that is every target of relative area <= 1e-3 on 4K images (period 4 px / 4.1 = 0.98 view px),
while targets of relative area >= 0.05 keep a period of >= 6 view px, legible in the first view.
Measured (tests/test_synthetic.py): swapping the target's content in a 4K image (relative area
1e-4..1e-3) changes its first view by <= 3 grey levels (patterns; digits <= 2) and its oracle crop
by >= 119 levels. `difficulty` in [0, 1] also lowers the contrast (200 -> 110 grey levels) and,
in `search`, shrinks the labels (0.26 -> 0.16 of the ring's diameter) and adds same-colour rings
(2 -> 8).

Template reader `read_content` (default `min_score=0.5`), measured on 4096 px images with the
first view from `fit_to_budget(w, h, 3136, 1003520)`: targets of relative area 1e-4..1e-3 read in
the first view 0/240 (always None, "illegible"; forced choice 26 %, chance 25 %), in the oracle
crop 240/240 (difficulty 0, 0.5, 1); relative area 0.05..0.3 read in the first view 160/160
(1024-4096 px images); relative area 1e-3..5e-2: first view 60 % read (97 % of those it answers).
Best scores: >= 0.84 where the content is legible, <= 0.20 where the resampling removed it.

Rendering is lazy: `SyntheticHR[i]` lays out the scene (~3 ms, no pixels) and `Sample.image` is
a picklable `SyntheticImage` that draws the RGB image when called: per image (default settings,
square, CPU time, median / max of 10; single-threaded, so about the wall time on an idle 2-core
machine) 2048 px 0.03 / 0.07 s, 4096 px 0.14 / 0.22 s, 8192 px 0.61 / 0.89 s.

`read_content(view, box_view, sample)` is that template reader (tests and scripted agents): it
renders every option's content at the ring's size in the view and compares phase-free features.
"""

from __future__ import annotations

import colorsys
import dataclasses
import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from grounding_gym.data.registry import register_dataset
from grounding_gym.data.sample import Sample
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


# --------------------------------------------------------------------------------------------
# Content geometry and rendering (shared by the generator and the reader)
# --------------------------------------------------------------------------------------------


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
    coarse content: see `SyntheticHR(coarse_content=...)`), at least `MIN_PERIOD_PX`. Digits: the checkerboard texture's period `2 * cell`, with an even `cell`
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


# --------------------------------------------------------------------------------------------
# Scene description (cheap, picklable) and the lazy renderer
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


def _check_range(
    name: str, value: Any, lo: float, hi: float, kind: type = float
) -> tuple[Any, Any]:
    """Validate a scalar or (min, max) pair within [lo, hi]; returns (min, max)."""
    pair = (value, value) if isinstance(value, numbers.Real) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Real) for v in pair):
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    a, b = kind(pair[0]), kind(pair[1])
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name}={value!r} must satisfy {lo} <= min <= max <= {hi}")
    return a, b


def _check_ranges(name: str, value: Any, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """One `(min, max)` range (or a number), or a non-empty list of them; each within [lo, hi]."""
    if isinstance(value, numbers.Real) or (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, numbers.Real) for v in value)
    ):
        return (_check_range(name, value, lo, hi),)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(
            f"{name} must be a number, a (min, max) pair or a list of pairs, got {value!r}"
        )
    return tuple(_check_range(f"{name}[{k}]", v, lo, hi) for k, v in enumerate(value))


def _check_mix(weights: Sequence[float] | None, groups: int) -> tuple[float, ...]:
    """Normalised mixture weights, one per target group (equal when None)."""
    if weights is None:
        return tuple(1.0 / groups for _ in range(groups))
    values = tuple(float(w) for w in weights)
    if (
        len(values) != groups
        or not all(math.isfinite(w) and w >= 0 for w in values)
        or sum(values) <= 0
    ):
        raise ValueError(
            f"target_mix must hold {groups} non-negative weights (one per target_rel_area range), got {weights!r}"
        )
    return tuple(w / sum(values) for w in values)


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def target_group(index: int, seed: int, mix: Sequence[float]) -> int:
    """Mixture group of sample `index`: a golden-ratio (low-discrepancy) sequence against the
    cumulative weights, shifted by the seed. Every window of n consecutive indices holds
    `n * mix[k]` samples of group k to within one or two.

    >>> [target_group(i, 0, (0.5, 0.5)) for i in range(6)]
    [0, 1, 0, 1, 0, 0]
    """
    position = (index * _GOLDEN + seed * 0.1234567) % 1.0
    return min(int(np.searchsorted(np.cumsum(mix), position, side="right")), len(mix) - 1)


def _check_names(name: str, values: Iterable[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one of {allowed}")
    for v in values:
        if v not in allowed:
            hint = difflib.get_close_matches(str(v), allowed, n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"{name} contains {v!r}; allowed: {allowed}.{suggestion}")
    return values


class SyntheticHR(Sequence[Sample]):
    """Procedural high-resolution VQA samples with a ring target (see the module docstring).

    `self[i]` depends on `(seed, i)` alone and renders no pixels; `Sample.image` is a
    `SyntheticImage` that draws the image on demand. Each sample has 4 options (the content
    classes; the answer letter is uniform), `gt_boxes` = the target ring's tight box (original
    px), `category` = family, `image_size`, and `metadata`:

    | key | value |
    |-----|-------|
    | `family`, `content_kind`, `difficulty` | as drawn |
    | `target_rel_area` | gt box area / image area (the realised value) |
    | `attributes` | `{"color": palette name, "content": correct option, "label": str or None}` |
    | `referring_expression` | "the red ring filled with dots" / "the ring labelled K7" |
    | `num_distractors` | rings placed: `read` other-colour, `search` same-colour |
    | `distractor_boxes` | every other ring's box, original px (none overlaps the target) |
    | `label_box` | the target's label plate (`search`), original px, else None |

    Args:
        num_samples: length of the dataset.
        seed: non-negative int; the same seed gives identical samples and pixels.
        image_size: `(min, max)` px for each side, drawn independently (an int: square), >= 64.
            The long side is shortened when a large target would not fit (`FIT_FRACTION`).
        families: question families to draw from, uniformly: "read", "search".
        target_rel_area: `(min, max)` of the target box's area / image area, log-uniform, within
            (0, 0.4]. The realised value (integer px: within ~5 % of the draw, and inside the
            range whenever a whole-pixel ring allows) is in `metadata["target_rel_area"]`.
            A list of such ranges makes a mixture of target scales: sample `i` draws from range
            `metadata["target_group"]`, chosen by `target_mix`.
        target_mix: weights of the ranges of a mixture `target_rel_area` (default: equal). The
            group of sample `i` follows a golden-ratio sequence in `i`, not the RNG, so every
            window of n consecutive indices holds each group's share to within one sample
            (a skewed training mix and an exactly balanced held-out set from one generator).
        coarse_content: `(min_rel_area, cycles)`: in samples whose target covers at least
            `min_rel_area` of the image, every ring's pattern has only `cycles` periods across
            its inside (instead of `24 + 8 * difficulty`), so a crop much smaller than the ring
            sees at most a period of it: a fragment that cannot tell stripes from a checkerboard.
            None (default): every pattern is fine. The target's period is in
            `metadata["content_period"]`.
        difficulty: in [0, 1]; finer, fainter content; smaller labels and more rings in `search`.
        num_distractors: other rings: `read` other-colour rings (default `2 + round(4 * d)`),
            `search` same-colour labelled rings (default `2 + round(6 * d)`, plus 2 labelled rings
            of other colours). Rings that do not fit are dropped; `metadata["num_distractors"]`
            has the count placed.
        content_kinds: content kinds to draw from, uniformly: "pattern", "digit".
        id_prefix: ids are `f"{id_prefix}-{seed}-{i}"`.

    Raises:
        ValueError: an argument is out of range (the message names it and the allowed values).
    """

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        image_size: int | tuple[int, int] = (2048, 8192),
        families: Sequence[Family] = ("read", "search"),
        target_rel_area: float | tuple[float, float] | Sequence[tuple[float, float]] = (1e-4, 0.3),
        difficulty: float = 0.5,
        num_distractors: int | None = None,
        content_kinds: Sequence[ContentKind] = ("pattern", "digit"),
        id_prefix: str = "synthetic-hr",
        target_mix: Sequence[float] | None = None,
        coarse_content: tuple[float, float] | None = None,
    ):
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not 0.0 <= float(difficulty) <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty!r}")
        if num_distractors is not None and (
            not isinstance(num_distractors, int) or num_distractors < 0
        ):
            raise ValueError(
                f"num_distractors must be None or an int >= 0, got {num_distractors!r}"
            )
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.image_size: tuple[int, int] = _check_range("image_size", image_size, 64, 65536, int)
        self.target_groups: tuple[tuple[float, float], ...] = _check_ranges(
            "target_rel_area", target_rel_area, 1e-9, 0.4
        )
        self.target_rel_area = (
            min(lo for lo, _ in self.target_groups),
            max(hi for _, hi in self.target_groups),
        )
        self.target_mix = _check_mix(target_mix, len(self.target_groups))
        if coarse_content is not None:
            threshold, cycles = _check_range("coarse_content", coarse_content, 0.0, math.inf)
            if not (0.0 < threshold <= 0.4 and 1.0 <= cycles):
                raise ValueError(
                    f"coarse_content={coarse_content!r} must be (min_rel_area in (0, 0.4], cycles >= 1)"
                )
            coarse_content = (threshold, cycles)
        self.coarse_content = coarse_content
        self.families = _check_names("families", families, FAMILIES)
        self.content_kinds = _check_names("content_kinds", content_kinds, CONTENT_KINDS)
        self.difficulty = float(difficulty)
        self.num_distractors = num_distractors
        self.id_prefix = id_prefix

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"SyntheticHR(num_samples={self.num_samples}, seed={self.seed}, "
            f"image_size={self.image_size}, families={self.families}, "
            f"target_rel_area={self.target_groups if len(self.target_groups) > 1 else self.target_rel_area}, "
            f"difficulty={self.difficulty})"
        )

    def index_of(self, sample_id: str) -> int | None:
        """Index of the sample with id `sample_id` (parsed, nothing rendered); None if not here."""
        prefix = f"{self.id_prefix}-{self.seed}-"
        tail = sample_id[len(prefix) :] if sample_id.startswith(prefix) else ""
        if (
            tail.isascii()
            and tail.isdigit()
            and str(int(tail)) == tail
            and int(tail) < self.num_samples
        ):
            return int(tail)
        return None

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"SyntheticHR indices must be int, got {type(index).__name__}")
        i = int(index) + (self.num_samples if index < 0 else 0)
        if not 0 <= i < self.num_samples:
            raise IndexError(
                f"index {index} out of range for SyntheticHR of length {self.num_samples}"
            )
        return _make_sample(self, i)


def make_synthetic(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int | tuple[int, int] = (448, 1344),
    target_rel_area: float | tuple[float, float] = (5e-3, 0.3),
    **kwargs: Any,
) -> SyntheticHR:
    """Ordinary-resolution variant (dataset `synthetic`, ids `synthetic-{seed}-{i}`)."""
    kwargs.setdefault("id_prefix", "synthetic")
    return SyntheticHR(
        num_samples=num_samples,
        seed=seed,
        image_size=image_size,
        target_rel_area=target_rel_area,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# Scene layout: everything a sample needs, without pixels
# --------------------------------------------------------------------------------------------


class _Layout:
    """Non-overlapping placement of boxes inside an image (rejection sampling, vectorised)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]):
        self.rng = rng
        self.w, self.h = size
        self.margin = max(2, round(0.01 * min(size)))
        self.occupied: list[tuple[float, float, float, float]] = []

    def place(self, w: int, h: int, gap: float, tries: int = 256) -> tuple[int, int] | None:
        """Top-left of a free `w` x `h` spot at least `gap` px from every placed box, or None."""
        hi_x, hi_y = self.w - self.margin - w, self.h - self.margin - h
        if hi_x < self.margin or hi_y < self.margin:
            return None
        xs = self.rng.integers(self.margin, hi_x + 1, tries)
        ys = self.rng.integers(self.margin, hi_y + 1, tries)
        free = np.ones(tries, dtype=bool)
        for x1, y1, x2, y2 in self.occupied:
            free &= (
                (xs >= x2 + gap) | (xs + w <= x1 - gap) | (ys >= y2 + gap) | (ys + h <= y1 - gap)
            )
        if not free.any():
            return None
        k = int(np.argmax(free))
        x, y = int(xs[k]), int(ys[k])
        self.occupied.append((x, y, x + w, y + h))
        return x, y


def _draw_image_size(
    rng: np.random.Generator, cfg: SyntheticHR, rel_area: float
) -> tuple[int, int]:
    lo, hi = cfg.image_size
    w, h = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    short, long = min(w, h), max(w, h)
    long = max(short, min(long, math.floor(FIT_FRACTION**2 * short / rel_area)))
    return (long, short) if w >= h else (short, long)


def _ring_diameter(rel_area: float, size: tuple[int, int], lo: float, hi: float) -> int:
    """Diameter whose area ratio is closest to `rel_area` and, when possible, inside [lo, hi]."""
    area = size[0] * size[1]
    d = max(MIN_RING_PX, round(math.sqrt(rel_area * area)))
    d = min(d, math.floor(FIT_FRACTION * min(size)))
    if d * d / area < lo and (d + 1) <= FIT_FRACTION * min(size):
        d += 1
    if d * d / area > hi and d - 1 >= MIN_RING_PX:
        d -= 1
    return d


def _label_unit(
    rng: np.random.Generator, layout: _Layout, d: int, label: str, label_h: int, gap: float
) -> tuple[tuple[int, int], tuple[int, int, int, int]] | None:
    """Place a ring of diameter `d` with its label plate on a random side that fits.

    Returns ((ring x, ring y), label plate box) or None.
    """
    lw, lh, _, _ = _label_layout(label_h, len(label))
    sep = max(2, round(0.06 * d))
    sides = [int(s) for s in rng.permutation(4)]  # 0 right, 1 left, 2 below, 3 above
    for side in sides:
        if side < 2:
            uw, uh = d + sep + lw, max(d, lh)
            ring_off = (0 if side == 0 else lw + sep, (uh - d) // 2)
            label_off = (d + sep if side == 0 else 0, (uh - lh) // 2)
        else:
            uw, uh = max(d, lw), d + sep + lh
            ring_off = ((uw - d) // 2, 0 if side == 2 else lh + sep)
            label_off = ((uw - lw) // 2, d + sep if side == 2 else 0)
        spot = layout.place(uw, uh, gap)
        if spot is not None:
            rx, ry = spot[0] + ring_off[0], spot[1] + ring_off[1]
            lx, ly = spot[0] + label_off[0], spot[1] + label_off[1]
            return (rx, ry), (lx, ly, lx + lw, ly + lh)
    return None


def _options(rng: np.random.Generator, kind: str) -> tuple[str, list[str], int]:
    """(correct content, option texts, correct index) with the index uniform over 4."""
    classes = PATTERNS if kind == "pattern" else DIGITS
    content = classes[int(rng.integers(len(classes)))]
    others = [c for c in classes if c != content]
    wrong = [others[int(j)] for j in rng.permutation(len(others))[:3]]
    index = int(rng.integers(4))
    return content, wrong[:index] + [content] + wrong[index:], index


_ARTICLE = {"checkerboard": "a checkerboard"}


def _make_sample(cfg: SyntheticHR, i: int) -> Sample:
    rng = np.random.default_rng([cfg.seed, i])
    family = cfg.families[int(rng.integers(len(cfg.families)))]
    kind = cfg.content_kinds[int(rng.integers(len(cfg.content_kinds)))]
    group = target_group(i, cfg.seed, cfg.target_mix) if len(cfg.target_groups) > 1 else 0
    lo, hi = cfg.target_groups[group]
    rel_area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    size = _draw_image_size(rng, cfg, rel_area)
    d = _ring_diameter(rel_area, size, lo, hi)
    diff = cfg.difficulty
    content, options, answer_index = _options(rng, kind)
    wrong = [o for o in options if o != content]
    color_names = list(PALETTE)
    color = color_names[int(rng.integers(len(color_names)))]
    other_colors = [c for c in color_names if c != color]
    labelled = family == "search"
    if labelled:
        n_same = cfg.num_distractors if cfg.num_distractors is not None else 2 + round(6 * diff)
        n_other = 2
        codes = rng.permutation(len(LABEL_LETTERS) * 10)[: 1 + n_same + n_other]
        labels = [f"{LABEL_LETTERS[int(c) // 10]}{int(c) % 10}" for c in codes]
    else:
        n_same = 0
        n_other = cfg.num_distractors if cfg.num_distractors is not None else 2 + round(4 * diff)
        labels = []
    label_frac = _lerp(0.26, 0.16, diff)
    coarse = cfg.coarse_content is not None and d * d / (size[0] * size[1]) >= cfg.coarse_content[0]
    cycles = cfg.coarse_content[1] if coarse else None

    layout = _Layout(rng, size)
    rings: list[Ring] = []

    def add_ring(
        diameter: int, ring_color: str, ring_content: str, label: str | None, shrink_tries: int
    ) -> bool:
        for _ in range(shrink_tries + 1):
            gap = max(4.0, 0.08 * min(diameter, d))
            if label is None:
                spot = layout.place(diameter, diameter, gap)
                plate, label_h = None, 0
            else:
                label_h = max(9, round(label_frac * diameter))
                placed = _label_unit(rng, layout, diameter, label, label_h, gap)
                spot, plate = placed if placed is not None else (None, None)
            if spot is not None:
                period = content_period(kind, diameter, diff, cycles)
                offset = (
                    (0, 0)
                    if kind == "digit"
                    else tuple(int(o) for o in rng.integers(period, size=2))
                )
                rings.append(
                    Ring(
                        x=spot[0],
                        y=spot[1],
                        diameter=diameter,
                        color=ring_color,
                        kind=kind,
                        content=ring_content,
                        mean=float(rng.uniform(110.0, 145.0)),
                        period=period,
                        offset=offset,
                        label=label,
                        label_box=plate,
                        label_height=label_h,
                    )
                )
                return True
            diameter = max(MIN_RING_PX, round(diameter * 0.8))
        return False

    # The target first (shrunk only if it cannot fit with its label: not for areas <= 0.4 in
    # images >= 64 px), then the distractors.
    if not add_ring(d, color, content, labels[0] if labelled else None, shrink_tries=20):
        raise RuntimeError(f"cannot place the target of sample {i} in a {size} image")
    target = rings[0]
    placed_same = 0
    for j in range(n_same):
        dj = max(MIN_RING_PX, round(d * rng.uniform(0.8, 1.25)))
        placed_same += add_ring(dj, color, wrong[j % len(wrong)], labels[1 + j], shrink_tries=8)
    placed_other = 0
    for j in range(n_other):
        dj = max(MIN_RING_PX, round(d * math.exp(rng.uniform(-0.5, 0.5))))
        cj = other_colors[int(rng.integers(len(other_colors)))]
        label = labels[1 + n_same + j] if labelled else None
        placed_other += add_ring(
            dj, cj, wrong[int(rng.integers(len(wrong)))], label, shrink_tries=3
        )

    sample_id = f"{cfg.id_prefix}-{cfg.seed}-{i}"
    image = SyntheticImage(
        sample_id=sample_id,
        size=size,
        render_seed=int(rng.integers(2**63)),
        rings=tuple(rings),
        difficulty=diff,
        excluded_hue=None if labelled else _hue(color),
    )
    gt = target.box
    if labelled:
        name = f"the ring labelled {target.label}"
    else:
        name = f"the {color} ring"
    if kind == "pattern":
        question = f"What fills {name}?"
        expression = name if labelled else f"{name} filled with {_ARTICLE.get(content, content)}"
    else:
        question = f"Which digit is inside {name}?"
        expression = name if labelled else f"{name} containing the digit {content}"
    return Sample(
        id=sample_id,
        image=image,
        question=question,
        answer="ABCD"[answer_index],
        options=tuple(options),
        gt_boxes=(gt,),
        category=family,
        image_size=size,
        metadata={
            "family": family,
            "content_kind": kind,
            "difficulty": diff,
            "target_rel_area": gt.area / (size[0] * size[1]),
            "target_group": group,
            "content_period": target.period,
            "attributes": {"color": color, "content": content, "label": target.label},
            "referring_expression": expression,
            "num_distractors": placed_same if labelled else placed_other,
            "distractor_boxes": tuple(r.box for r in rings[1:]),
            "label_box": Box(*target.label_box) if target.label_box else None,
        },
    )


def _hue(color: str) -> float:
    r, g, b = PALETTE[color]
    return colorsys.rgb_to_hsv(r / 255.0, g / 255.0, b / 255.0)[0]


# --------------------------------------------------------------------------------------------
# A template reader
# --------------------------------------------------------------------------------------------

_READER_MAX_PX = 160
"""The reader resamples the ring's inside to at most this many px a side."""

_READER_FULL_AMPLITUDE = 0.06
"""Scores are scaled down when the patch's grey-level std is below this fraction of the content
contrast: legible views measure >= 0.11, views that resampled the texture away <= 0.02 (dither)."""


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else 0.0


def _disk_window(n: int, radius: float) -> np.ndarray:
    """Soft disk of `radius` px centred on an n x n patch (raised-cosine outer 25 %), (n, n)."""
    c = (np.arange(n, dtype=np.float32) + 0.5) - n / 2.0
    r = np.sqrt(c[None, :] ** 2 + c[:, None] ** 2) / max(radius, 1e-6)
    t = np.clip((r - 0.75) / 0.25, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * t)


def _spectrum(grey: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Phase-free feature: magnitude spectrum of the windowed, mean-free patch (DC dropped)."""
    w_sum = float(window.sum()) or 1.0
    x = (grey - float((grey * window).sum()) / w_sum) * window
    mag = np.abs(np.fft.rfft2(x))
    mag[0, 0] = 0.0
    return mag


def _energy(grey: np.ndarray, window: np.ndarray, radius: int) -> np.ndarray:
    """Position feature for texture-defined digits: box-blurred squared gradient, windowed."""
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    gy[1:-1, :] = grey[2:, :] - grey[:-2, :]
    e = gx * gx + gy * gy
    k = 2 * radius + 1
    pad = np.pad(e, radius + 1, mode="constant")
    s = pad.cumsum(0).cumsum(1)
    blurred = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
    return blurred[: e.shape[0], : e.shape[1]] * window


def _view_patch(view: np.ndarray, box: Box, n: int) -> np.ndarray:
    """Greyscale float32 (n, n) resample of `box` (view px) of `view`; edge pixels extend it."""
    h, w = view.shape[:2]
    margin = 4  # the resampling kernel's reach beyond the box
    x0, y0 = math.floor(box.x1) - margin, math.floor(box.y1) - margin
    x1, y1 = math.ceil(box.x2) + margin, math.ceil(box.y2) + margin
    ys = np.clip(np.arange(y0, y1), 0, h - 1)
    xs = np.clip(np.arange(x0, x1), 0, w - 1)
    cut = np.ascontiguousarray(view[np.ix_(ys, xs)], dtype=np.uint8)
    local = (box.x1 - x0, box.y1 - y0, box.x2 - x0, box.y2 - y0)
    patch = Image.fromarray(cut).convert("L").resize((n, n), Image.Resampling.BICUBIC, box=local)
    return np.asarray(patch, dtype=np.float32)


def content_scores(view: np.ndarray, box_view: Box, sample: Sample) -> np.ndarray:
    """Similarity in [-1, 1] of the ring's inside with each option's template, float (n_options,).

    The normalised cross-correlation of each template's feature with the view's, times
    `min(1, amplitude / _READER_FULL_AMPLITUDE)`, where amplitude is the patch's grey-level std
    over the content contrast: a flat (texture-free) patch scores near 0 for every option.

    Args:
        view: uint8 (H, W, 3) view image.
        box_view: where the target ring (its `gt_boxes[0]`) lies in `view`, view px.
        sample: a `SyntheticHR` sample (uses its options, content kind, difficulty and ring size).
    """
    meta = sample.metadata
    if not sample.gt_boxes or not sample.options or meta.get("content_kind") not in CONTENT_KINDS:
        raise ValueError(
            f"Sample {sample.id!r} is not a synthetic-hr sample (no ring content to read)"
        )
    kind, diameter = str(meta["content_kind"]), round(sample.gt_boxes[0].width)
    scale_x = box_view.width / diameter
    scale_y = box_view.height / diameter
    inset = ring_thickness(diameter) - 1
    canvas = content_canvas(diameter)
    inner = Box(
        box_view.x1 + inset * scale_x,
        box_view.y1 + inset * scale_y,
        box_view.x1 + (inset + canvas) * scale_x,
        box_view.y1 + (inset + canvas) * scale_y,
    )
    n = int(min(_READER_MAX_PX, max(8, round(inner.width))))
    period = meta.get("content_period") or content_period(kind, diameter, float(meta["difficulty"]))
    window = _disk_window(n, 0.9 * (canvas - 2) / 2.0 * n / canvas)
    patch = _view_patch(view, inner, n)
    mean = float((patch * window).sum() / window.sum())
    std = math.sqrt(float(((patch - mean) ** 2 * window).sum() / window.sum()))
    amplitude = std / content_contrast(float(meta["difficulty"]))
    confidence = min(1.0, amplitude / _READER_FULL_AMPLITUDE)
    templates = [render_content(kind, option, n, canvas, period) for option in sample.options]
    if kind == "pattern":
        feats = [_spectrum(t, window) for t in templates]
        target = _spectrum(patch, window)
    else:
        radius = max(1, round(0.75 * period * n / canvas))
        feats = [_energy(t, window, radius) for t in templates]
        target = _energy(patch, window, radius)
    return np.array([_ncc(target, f) for f in feats]) * confidence


def read_content(
    view: np.ndarray, box_view: Box, sample: Sample, *, min_score: float = 0.5
) -> str | None:
    """Read the target ring's content from a view: the best-matching option's letter.

    Renders every option's content at the ring's size in the view and compares phase-free
    features (patterns: magnitude spectra; digits: local texture-energy maps) by normalised
    cross-correlation, damped when the view shows no texture at all (`content_scores`). No
    learning. Measured best scores: >= 0.84 where the content is legible, <= 0.20 where the
    view's resampling removed it (module docstring).

    Args:
        view: uint8 (H, W, 3), any size.
        box_view: the target ring's box (`sample.gt_boxes[0]` mapped to the view), view px.
        sample: the `SyntheticHR` sample the view belongs to.
        min_score: below this best correlation the content is taken as illegible (None);
            `-inf` forces a choice.

    Returns:
        "A".."D", or None when nothing matches well enough.
    """
    scores = content_scores(view, box_view, sample)
    best = int(np.argmax(scores))
    return sample.option_letters[best] if scores[best] >= min_score else None


register_dataset(
    "synthetic-hr",
    SyntheticHR,
    bin_edges=(1e-3, 1e-2),
    why="synthetic-hr targets cover 1e-4..0.3 of the image (log-uniform): log-decade edges",
)
register_dataset("synthetic", make_synthetic)


class SyntheticRef(Sequence[Sample]):
    """`synthetic-hr` scenes as referring-expression samples (dataset `synthetic-ref`).

    Sample `i` is `SyntheticHR(...)[i]` with `question` = its `metadata["referring_expression"]`,
    `answer` "" and `options` None (the env scores the box); `gt_boxes`, the image, `category`
    (the family: "read" names the ring by its unique colour, "search" by its label) and the
    metadata are kept, plus `source_question` and `source_answer`.

    Args:
        num_samples, seed: as in `SyntheticHR`.
        id_prefix: ids are `f"{id_prefix}-{seed}-{i}"`.
        **kwargs: any other `SyntheticHR` argument (`image_size`, `target_rel_area`, ...).
    """

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        *,
        id_prefix: str = "synthetic-ref",
        **kwargs: Any,
    ):
        self.source = SyntheticHR(num_samples=num_samples, seed=seed, id_prefix=id_prefix, **kwargs)

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"SyntheticRef({self.source!r})"

    def index_of(self, sample_id: str) -> int | None:
        """As `SyntheticHR.index_of`."""
        return self.source.index_of(sample_id)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        sample = self.source[index]
        expression = str(sample.metadata["referring_expression"])
        metadata = {
            **sample.metadata,
            "source_question": sample.question,
            "source_answer": sample.answer,
        }
        return dataclasses.replace(
            sample, question=expression, answer="", options=None, metadata=metadata
        )


register_dataset("synthetic-ref", SyntheticRef)
