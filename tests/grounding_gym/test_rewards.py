"""Reward terms and scale bins on hand-checked cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grounding_gym.geometry import Box
from grounding_gym.judge import deterministic_match
from grounding_gym.rewards import (
    answer_reward,
    check_reward_weights,
    combine_rewards,
    crop_score,
    extract_choice,
    format_reward,
    grounding_reward,
    numbers_match,
    read_number_word,
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
        ("Eight.", "8", None, 1.0),
        ("eight birds", "8 birds", None, 0.0),  # only a whole answer reads as a number
        ("one", "A", ["one", "two"], 1.0),  # multiple choice still matches the option text
    ],
)
def test_answer_reward(pred, gold, options, expected):
    assert answer_reward(pred, gold, options) == expected


def test_numbers_match_tolerance():
    assert numbers_match("100", "101", rel_tol=0.02) and not numbers_match(
        "100", "110", rel_tol=0.02
    )
    assert not numbers_match("abc", "1")


# Written out here, independently of rewards.NUMBER_WORDS.
SPELLED = {
    0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
    8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen",
    15: "fifteen", 16: "sixteen", 17: "seventeen", 18: "eighteen", 19: "nineteen", 20: "twenty",
    30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
    90: "ninety", 100: "hundred",
}  # fmt: skip
numbers = st.sampled_from(sorted(SPELLED))


@st.composite
def spelled(draw, n: int) -> str:
    """`SPELLED[n]` as a model or an annotator may write it: any case, an article, punctuation."""
    word = "".join(c.upper() if draw(st.booleans()) else c for c in SPELLED[n])
    return draw(st.sampled_from(["", "the ", " "])) + word + draw(st.sampled_from(["", ".", "!"]))


@given(data=st.data(), n=numbers)
def test_a_number_word_answer_scores_as_its_digits(data, n):
    word = data.draw(spelled(n))
    for digits in (str(n), f"{n}.0", f" {n}. "):
        assert answer_reward(word, digits) == answer_reward(digits, word) == 1.0
        assert answer_reward(f"<answer>{word}</answer>", digits) == 1.0
    other = data.draw(numbers.filter(lambda m: m != n))
    assert answer_reward(word, str(other)) == answer_reward(str(other), word) == 0.0
    assert read_number_word(f"{word} birds") == f"{word} birds"  # only a whole answer is read


TEXTS = st.text(alphabet="eightnwo8 .,!", max_size=12) | st.sampled_from(list(SPELLED.values()))


@given(prediction=TEXTS, gold=TEXTS)
def test_the_judges_first_stage_is_the_envs_match(prediction, gold):
    matched = deterministic_match(prediction, gold) == "exact"
    assert matched == (answer_reward(prediction, gold) == 1.0)


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
