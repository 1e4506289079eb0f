"""Geometry: frame round trips, IoU/coverage invariants, crop resolution (property tests)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grounding_gym.geometry import (
    FRAMES,
    Box,
    coverage,
    from_original,
    grow_to_min,
    iou,
    resolve_crop,
    round_outward,
    to_original,
)

coord = st.floats(min_value=0, max_value=8192, allow_nan=False)
size = st.floats(min_value=1, max_value=4096, allow_nan=False)


@st.composite
def boxes(draw, x_max: float = 8192, y_max: float = 8192):
    x1 = draw(st.floats(0, x_max - 1))
    y1 = draw(st.floats(0, y_max - 1))
    return Box(x1, y1, draw(st.floats(x1 + 1e-3, x_max)), draw(st.floats(y1 + 1e-3, y_max)))


view_sizes = st.tuples(st.integers(28, 2048), st.integers(28, 2048))
SETTINGS = settings(max_examples=600, deadline=None)


@SETTINGS
@given(box=boxes(), view_box=boxes(), view_size=view_sizes, frame=st.sampled_from(FRAMES))
def test_frame_round_trip(box, view_box, view_size, frame):
    there = from_original(box, frame, view_box, view_size)
    back = to_original(there, frame, view_box, view_size)
    assert back.as_tuple() == pytest.approx(box.as_tuple(), rel=1e-9, abs=1e-6)


@SETTINGS
@given(
    outer=boxes(),
    inner_frac=st.tuples(*[st.floats(0, 1)] * 4),
    view_size=view_sizes,
    size2=view_sizes,
)
def test_crop_of_crop_composes_as_one_affine_map(outer, inner_frac, view_size, size2):
    """Mapping a norm1 box through two nested views equals the composed fractions."""
    fx1, fx2 = sorted(inner_frac[:2])
    fy1, fy2 = sorted(inner_frac[2:])
    if fx2 - fx1 < 1e-3 or fy2 - fy1 < 1e-3:
        return
    inner_norm = Box(fx1, fy1, fx2, fy2)
    inner_view = from_original(
        to_original(inner_norm, "norm1", outer, view_size), "view", outer, view_size
    )
    inner_orig = to_original(inner_view, "view", outer, view_size)
    expected = (
        outer.x1 + fx1 * outer.width,
        outer.y1 + fy1 * outer.height,
        outer.x1 + fx2 * outer.width,
        outer.y1 + fy2 * outer.height,
    )
    assert inner_orig.as_tuple() == pytest.approx(expected, rel=1e-9, abs=1e-6)


@SETTINGS
@given(a=boxes(), b=boxes())
def test_iou_and_coverage_bounds_and_symmetry(a, b):
    assert 0.0 <= iou(a, b) <= 1.0 + 1e-12
    assert iou(a, b) == pytest.approx(iou(b, a))
    assert 0.0 <= coverage(a, b) <= 1.0 + 1e-12
    assert iou(a, a) == pytest.approx(1.0) and coverage(a, a) == pytest.approx(1.0)
    assert iou(a, b) <= min(coverage(a, b), coverage(b, a)) + 1e-12


@SETTINGS
@given(box=boxes(), decimals=st.integers(0, 4))
def test_round_outward_contains_box(box, decimals):
    rounded = round_outward(box, decimals)
    assert coverage(box, rounded) == 1.0


@SETTINGS
@given(
    box=boxes(),
    bounds_size=st.tuples(st.floats(64, 8192), st.floats(64, 8192)),
    min_size=st.floats(1, 64),
    max_aspect=st.floats(1, 200),
)
def test_grow_to_min_respects_limits(box, bounds_size, min_size, max_aspect):
    bounds = Box(0, 0, *bounds_size)
    inside = Box(
        min(box.x1, bounds.x2 - 1),
        min(box.y1, bounds.y2 - 1),
        min(box.x2, bounds.x2),
        min(box.y2, bounds.y2),
    )
    grown = grow_to_min(inside, min_size, bounds, max_aspect)
    eps = 1e-6
    assert grown.x1 >= -eps and grown.y1 >= -eps
    assert grown.x2 <= bounds.x2 + eps and grown.y2 <= bounds.y2 + eps
    assert grown.width >= min(min_size, bounds.width) - eps
    assert grown.height >= min(min_size, bounds.height) - eps
    # Growth only adds: the box it grew from stays inside, whatever sliding into the bounds did.
    assert grown.x1 <= inside.x1 + eps and grown.y1 <= inside.y1 + eps
    assert grown.x2 >= inside.x2 - eps and grown.y2 >= inside.y2 - eps
    # Long side <= max_aspect x short side, unless the short side already spans the bounds.
    long_side, short_side = max(grown.width, grown.height), min(grown.width, grown.height)
    short_bound = bounds.height if grown.width >= grown.height else bounds.width
    assert (
        long_side <= max_aspect * short_side * (1 + 1e-9) + eps or short_side >= short_bound - eps
    ), f"aspect {long_side / short_side:.6g} > max_aspect {max_aspect:.6g}: {grown}"


@SETTINGS
@given(
    coords=st.tuples(*[st.floats(allow_nan=True, allow_infinity=True)] * 4),
    view_box=boxes(),
    view_size=view_sizes,
    frame=st.sampled_from(FRAMES),
    mode=st.sampled_from(["clip", "reject"]),
)
def test_resolve_crop_never_raises_and_stays_in_view(coords, view_box, view_size, frame, mode):
    crop, error, _ = resolve_crop(coords, frame, view_box, view_size, invalid_box=mode)
    assert (crop is None) != (error is None)
    if crop is not None:
        tol = 1e-6 * max(1.0, abs(view_box.x2), abs(view_box.y2))
        assert view_box.x1 - tol <= crop.x1 < crop.x2 <= view_box.x2 + tol
        assert view_box.y1 - tol <= crop.y1 < crop.y2 <= view_box.y2 + tol
        assert math.isfinite(crop.area)


@pytest.mark.parametrize(
    ("coords", "view", "clipped"),
    [
        # 6000 x 40 (aspect 150): the height grows about its centre to 6000 / 100 = 60.
        ((1000, 2000, 7000, 2040), (8000, 6000), (1000, 1990, 7000, 2050)),
        # 30 x 5000 (aspect 167): the width grows to 50, slid right to stay inside the view.
        ((0, 500, 30, 5500), (8000, 6000), (0, 500, 50, 5500)),
        # 8000 x 50 (aspect 160) in an 8000 x 50 view: the short side already spans the view.
        ((0, 0, 8000, 50), (8000, 50), (0, 0, 8000, 50)),
    ],
)
def test_resolve_crop_clamps_the_aspect_ratio_by_hand(coords, view, clipped):
    view_box = Box(0, 0, *view)
    crop, error, adjusted = resolve_crop(coords, "original", view_box, view, max_aspect=100.0)
    assert error is None and crop.as_tuple() == pytest.approx(clipped)
    assert adjusted or crop.as_tuple() == pytest.approx(coords)
    crop, error, _ = resolve_crop(coords, "original", view_box, view, invalid_box="reject")
    assert crop is None and "aspect ratio above 100" in error


def test_box_validation_errors():
    with pytest.raises(ValueError, match="x1 < x2"):
        Box(5, 0, 5, 1)
    with pytest.raises(ValueError, match="finite"):
        Box(0, 0, float("inf"), 1)
    assert Box.from_xywh(10, 20, 30, 40).as_tuple() == (10, 20, 40, 60)


def test_hand_computed_iou_and_coverage():
    a, b = Box(0, 0, 10, 10), Box(5, 5, 15, 15)
    assert iou(a, b) == pytest.approx(25 / 175)
    assert coverage(a, b) == pytest.approx(0.25)
    assert coverage(Box(2, 2, 4, 4), a) == 1.0


def test_view_frame_scales_to_original():
    view_box, view_size = Box(1000, 500, 3000, 1500), (1000, 500)  # 2 original px per view px
    assert to_original(Box(10, 20, 110, 70), "view", view_box, view_size).as_tuple() == (
        1020,
        540,
        1220,
        640,
    )
    assert to_original(Box(0, 0, 500, 1000), "norm1000", view_box, view_size).as_tuple() == (
        1000,
        500,
        2000,
        1500,
    )
    assert to_original(Box(1100, 600, 1200, 700), "original", view_box, view_size).as_tuple() == (
        1100,
        600,
        1200,
        700,
    )
