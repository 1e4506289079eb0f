"""Reward terms and scale bins on hand-checked cases."""

from __future__ import annotations

import math

import pytest

from grounding_gym.geometry import Box
from grounding_gym.rewards import (
    answer_reward,
    check_reward_weights,
    combine_rewards,
    crop_score,
    extract_choice,
    format_reward,
    grounding_reward,
    numbers_match,
)
from grounding_gym.scale import bin_names, equal_bin_edges, relative_area, scale_bin, scale_bin_name

OPTIONS = ["horizontal stripes", "vertical stripes", "checkerboard", "dots"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b", None),
        ("B) vertical stripes", "B"),
        ("The answer is B", "B"),
        ("the answer is (C).", "C"),
        ("Answer: D", "D"),
        ("\\boxed{A}", "A"),
        ("\\boxed{\\text{C}}", "C"),
        ("dots", "D"),
        ("It has Dots.", "D"),
        ("checkerboard pattern", "C"),
        ("stripes", None),  # two options contain "stripes"
        ("A red ring", None),
        ("the answer is a ring", None),
        ("E", None),  # only 4 options
        ("I think (A) is right", "A"),
        ("(A) or (B)", None),
        ("", None),
        ("   ", None),
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text, OPTIONS) == expected


def test_extract_choice_without_options_allows_a_to_e():
    assert extract_choice("E") == "E" and extract_choice("F") is None


@pytest.mark.parametrize(
    ("pred", "gold", "options", "expected"),
    [
        ("<b>", "B", OPTIONS, 0.0),
        ("B", "B", OPTIONS, 1.0),
        ("vertical stripes", "B", OPTIONS, 1.0),
        ("3.14", "3.1416", None, 1.0),
        ("1,000", "1000", None, 1.0),
        ("3", "4", None, 0.0),
        ("The Eiffel Tower!", "eiffel tower", None, 1.0),
        ("Paris", "London", None, 0.0),
    ],
)
def test_answer_reward(pred, gold, options, expected):
    assert answer_reward(pred, gold, options) == expected


def test_numbers_match_tolerance():
    assert numbers_match("100", "101", rel_tol=0.02) and not numbers_match(
        "100", "110", rel_tol=0.02
    )
    assert not numbers_match("abc", "1")


def test_format_reward():
    assert (format_reward(True), format_reward(False), format_reward(True, accepted=False)) == (
        1.0,
        0.0,
        0.0,
    )


def test_grounding_reward_aggregations_by_hand():
    gt = [Box(0, 0, 10, 10)]
    crops = [Box(0, 0, 20, 10), Box(0, 0, 10, 10), Box(100, 100, 110, 110)]  # IoU 0.5, 1, 0
    assert grounding_reward(crops, gt, "iou", "max") == 1.0
    assert grounding_reward(crops, gt, "iou", "last") == 0.0
    assert grounding_reward(crops, gt, "iou", "mean") == pytest.approx(0.5)
    assert grounding_reward(crops, gt, "coverage", "mean") == pytest.approx(2 / 3)
    assert grounding_reward([], gt) == 0.0 and grounding_reward(crops, []) == 0.0
    with pytest.raises(ValueError, match="aggregation"):
        grounding_reward(crops, gt, agg="median")


def test_several_gt_boxes_score_against_their_union():
    gt = [Box(0, 0, 10, 10), Box(30, 0, 40, 10)]  # union (0, 0, 40, 10)
    assert crop_score(Box(0, 0, 40, 10), gt, "iou") == 1.0
    assert crop_score(Box(0, 0, 20, 10), gt, "coverage") == pytest.approx(0.5)
    assert math.isnan(crop_score(Box(0, 0, 1, 1), [], "iou"))


def test_weights_and_combination():
    terms = ("answer", "format", "grounding", "vepa")
    weights = check_reward_weights({"grounding": 2.0, "vepa": 1.0}, terms=terms)
    assert weights == {"answer": 1.0, "format": 0.1, "grounding": 2.0, "vepa": 1.0}
    assert combine_rewards(
        {"answer": 1.0, "format": 1.0, "grounding": 0.5}, weights
    ) == pytest.approx(2.1)
    with pytest.raises(ValueError, match="finite"):
        check_reward_weights({"answer": float("nan")})


def test_scale_bins():
    assert relative_area(Box(0, 0, 100, 100), (1000, 1000)) == pytest.approx(0.01)
    assert [scale_bin(a) for a in (0.0, 0.0999, 0.1, 0.29, 0.3, 1.0)] == [0, 0, 1, 1, 2, 2]
    assert scale_bin(math.nan) == -1 and scale_bin_name(math.nan) is None
    assert scale_bin_name(0.05) == "small" and scale_bin_name(0.5) == "large"
    assert equal_bin_edges(4) == (0.25, 0.5, 0.75)
    assert bin_names(equal_bin_edges(4)) == ("[0,0.25)", "[0.25,0.5)", "[0.5,0.75)", "[0.75,1)")
    assert scale_bin(0.6, equal_bin_edges(4)) == 2
