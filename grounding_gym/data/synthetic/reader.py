"""A template reader for synthetic content: `read_content(view, box_view, sample)` renders every
option's content at the ring's size in the view and compares phase-free features (tests and
scripted agents use it; measured numbers in the package docstring).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from grounding_gym.data.sample import Sample
from grounding_gym.data.synthetic.render import (
    CONTENT_KINDS,
    content_canvas,
    content_contrast,
    content_period,
    render_content,
    ring_thickness,
)
from grounding_gym.geometry import Box

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
