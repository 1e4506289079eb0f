"""Property tests for `grounding_gym.actions`: never raises, canonical round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grounding_gym.actions import (
    MULTI_BOX_MODES,
    ParsedAction,
    format_answer,
    format_crop,
    parse_action,
)

CANONICAL = [
    "<crop>[12, 30, 400, 380]</crop>",
    "<think>the sign is small</think><crop>[12.5, 30, 400, 380.25]</crop>",
    "<box>(1, 2, 3, 4)</box>",
    "<answer>B</answer>",
    "<think>x</think><answer>The red car</answer>",
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4], "label": '
    '"a"}}</tool_call>',
    '```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8]}]\n```',
    r"The answer is \boxed{\text{B}}",
]

# Characters that matter to the grammar, so mutations hit the interesting paths.
GRAMMAR_CHARS = "<>/[](){},.:;'\"\\`-+eE0123456789 \n\tcropboxanswerthinktool_call"


def check_result(result: ParsedAction) -> None:
    """The invariants of every `ParsedAction`."""
    assert isinstance(result, ParsedAction)
    assert result.kind in ("crop", "answer", "invalid")
    assert result.format_ok == (result.error is None)
    if result.error is not None:
        assert not result.error.startswith("internal parser error"), result.error
    if result.kind == "crop":
        assert len(result.boxes) == 1 and len(result.box) == 4
        assert all(isinstance(v, float) for v in result.box)
        assert result.answer is None
    elif result.kind == "answer":
        assert result.boxes == () and result.answer and result.answer == result.answer.strip()
    else:
        assert result.boxes == () and result.answer is None and not result.format_ok


@settings(max_examples=1500, deadline=None)
@given(text=st.text(), multi_box=st.sampled_from(MULTI_BOX_MODES))
def test_never_raises_on_any_text(text, multi_box):
    check_result(parse_action(text, multi_box=multi_box))


@settings(max_examples=1500, deadline=None)
@given(text=st.text(alphabet=GRAMMAR_CHARS, max_size=300))
def test_never_raises_on_grammar_soup(text):
    check_result(parse_action(text))


@st.composite
def mutated_actions(draw: st.DrawFn) -> str:
    """A canonical action with random characters inserted and deleted."""
    text = draw(st.sampled_from(CANONICAL))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        if draw(st.booleans()) and text:
            text = text[:pos] + text[pos + 1 :]
        else:
            text = (
                text[:pos]
                + draw(st.text(alphabet=GRAMMAR_CHARS, min_size=1, max_size=3))
                + text[pos:]
            )
    return text


@settings(max_examples=1500, deadline=None)
@given(text=mutated_actions(), multi_box=st.sampled_from(MULTI_BOX_MODES))
def test_never_raises_on_mutated_actions(text, multi_box):
    check_result(parse_action(text, multi_box=multi_box))


@settings(max_examples=600, deadline=None)
@given(text=mutated_actions(), limit=st.integers(1, 80))
def test_truncation_flag_matches_length(text, limit):
    result = parse_action(text, max_action_chars=limit)
    check_result(result)
    assert result.truncated == (len(text) > limit)


coords = st.integers(-(10**6), 10**6)


@settings(max_examples=600, deadline=None)
@given(box=st.tuples(coords, coords, coords, coords))
def test_integer_crop_round_trip(box):
    result = parse_action(format_crop(box))
    assert result.kind == "crop" and result.format_ok
    assert result.boxes[0] == box


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(
    box=st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False)] * 4),
    decimals=st.integers(1, 4),
)
def test_decimal_crop_round_trip(box, decimals):
    result = parse_action(format_crop(box, decimals))
    assert result.format_ok
    assert result.boxes[0] == tuple(round(v, decimals) for v in box)


@settings(max_examples=200, deadline=None)
@given(letter=st.sampled_from("ABCDE"), think=st.none() | st.text(alphabet="abc .", max_size=20))
def test_answer_round_trip(letter, think):
    text = (
        format_answer(letter) if think is None else f"<think>{think}</think>{format_answer(letter)}"
    )
    result = parse_action(text)
    assert (result.kind, result.answer, result.format_ok) == ("answer", letter, True)
