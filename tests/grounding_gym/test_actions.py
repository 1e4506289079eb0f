"""Table tests for `grounding_gym.actions`: canonical actions, alternates, malformed text."""

from __future__ import annotations

import dataclasses
import doctest
import math

import gymnasium as gym
import pytest

from grounding_gym import actions
from grounding_gym.actions import (
    ACTION_CHARSET,
    ParsedAction,
    format_answer,
    format_crop,
    parse_action,
)

B = (10.0, 20.0, 110.0, 90.0)
TOOL = '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 110, 90]'
MGPO_TWO = (
    '```json\n[{"bbox_2d": [10, 20, 110, 90], "label": "a"}, {"bbox_2d": [0, 50, 60, 200], '
    '"label": "b"}]\n```'
)
INF = float("inf")

# (id, text, kind, boxes, answer, format_ok) with the default multi_box="first".
# fmt: off
CASES = [
    # canonical
    ("crop", "<crop>[10, 20, 110, 90]</crop>", "crop", (B,), None, True),
    ("crop-no-spaces", "<crop>[10,20,110,90]</crop>", "crop", (B,), None, True),
    ("crop-floats", "<crop>[10.5, 20.25, 110.0, 90.75]</crop>", "crop", ((10.5, 20.25, 110.0, 90.75),), None, True),
    ("crop-scientific", "<crop>[1e1, 2.0E1, +1.1e2, 9e+1]</crop>", "crop", (B,), None, True),
    ("crop-parens", "<crop>(10, 20, 110, 90)</crop>", "crop", (B,), None, True),
    ("crop-bare-commas", "<crop>10, 20, 110, 90</crop>", "crop", (B,), None, True),
    ("crop-bare-spaces", "<crop> 10 20 110 90 </crop>", "crop", (B,), None, True),
    ("box-alias", "<box>[10, 20, 110, 90]</box>", "crop", (B,), None, True),
    ("uppercase-tags", "<CROP>[10, 20, 110, 90]</Crop>", "crop", (B,), None, True),
    ("whitespace-in-tags", "  < crop >\n[ 10 ,\t20 , 110 , 90 ]\n</ crop >  ", "crop", (B,), None, True),
    ("negative-numbers", "<crop>[-10, -20.5, 110, 90]</crop>", "crop", ((-10.0, -20.5, 110.0, 90.0),), None, True),
    ("inverted-passed-through", "<crop>[110, 90, 10, 20]</crop>", "crop", ((110.0, 90.0, 10.0, 20.0),), None, True),
    ("overflow-becomes-inf", "<crop>[0, 0, 1e999, 5]</crop>", "crop", ((0.0, 0.0, INF, 5.0),), None, True),
    ("answer", "<answer>B</answer>", "answer", (), "B", True),
    ("answer-stripped", "<answer>  The red car \n</answer>", "answer", (), "The red car", True),
    ("answer-uppercase", "<ANSWER>C</ANSWER>", "answer", (), "C", True),
    ("think-crop", "<think>The sign is tiny.</think>\n<crop>[10, 20, 110, 90]</crop>", "crop", (B,), None, True),
    ("think-answer", "<think>zoomed enough</think><answer>D</answer>", "answer", (), "D", True),
    ("template-opened-think", "it is blue</think><answer>A</answer>", "answer", (), "A", True),
    ("preamble-and-trailing-text", "Let me zoom. <crop>[10, 20, 110, 90]</crop> Then I answer.", "crop", (B,), None, True),
    ("unicode-junk", "✨ 看这里 <crop>[10, 20, 110, 90]</crop> 🙂 ñ", "crop", (B,), None, True),
    ("answer-with-brackets-is-text", "<answer>[1, 2, 3, 4]</answer>", "answer", (), "[1, 2, 3, 4]", True),
    # several boxes, multi_box="first"
    ("two-crop-tags", "<crop>[10, 20, 110, 90]</crop><crop>[0, 0, 5, 5]</crop>", "crop", (B,), None, True),
    ("eight-numbers", "<crop>[10, 20, 110, 90, 0, 0, 5, 5]</crop>", "crop", (B,), None, True),
    ("nested-list-in-tag", "<crop>[[10, 20, 110, 90], [0, 0, 5, 5]]</crop>", "crop", (B,), None, True),
    # alternates
    ("tool-call-closed", TOOL + ', "label": "sign"}}</tool_call>', "crop", (B,), None, True),
    ("tool-call-unclosed", "I should zoom.\n" + TOOL + "}}", "crop", (B,), None, True),
    ("tool-call-crop-name", '<tool_call>{"name": "Crop_Image", "arguments": {"bbox_2d": [10, 20, ' '110, 90]}}</tool_call>', "crop", (B,), None, True),
    ("tool-call-trailing-comma", TOOL + ",},}</tool_call>", "crop", (B,), None, False),
    ("tool-call-single-quotes", "<tool_call>{'name': 'zoom_in', 'arguments': {'bbox_2d': [10, 20, " "110, 90]}}", "crop", (B,), None, False),
    ("tool-call-garbled-json", '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, ' '110, 90] oops', "crop", (B,), None, False),
    ("tool-call-string-arguments", '<tool_call>{"name": "zoom", "arguments": "{\\"bbox_2d\\": ' '[10, 20, 110, 90]}"}</tool_call>', "crop", (B,), None, True),
    ("tool-call-non-zoom", '<tool_call>{"name": "web_search", "arguments": {"query": ' '"cat"}}</tool_call>', "invalid", (), None, False),
    ("tool-call-no-name", '<tool_call>{"arguments": {"bbox_2d": [10, 20, 110, 90]}}</tool_call>', "invalid", (), None, False),
    ("tool-call-no-bbox", '<tool_call>{"name": "zoom", "arguments": {"label": "x"}}</tool_call>', "invalid", (), None, False),
    ("tool-call-3-numbers", '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [10, 20, 110]}}', "invalid", (), None, False),
    ("mgpo-one", '```json\n[{"bbox_2d": [10, 20, 110, 90], "label": "sign"}]\n```', "crop", (B,), None, True),
    ("mgpo-two-first", MGPO_TWO, "crop", (B,), None, True),
    ("mgpo-bare-list", '[{"bbox_2d": [10, 20, 110, 90], "label": "sign"}]', "crop", (B,), None, True),
    ("mgpo-bare-dict-with-prose", 'Look at [this]: {"bbox_2d": [10, 20, 110, 90]}', "crop", (B,), None, True),
    ("mgpo-trailing-comma", '```json\n[{"bbox_2d": [10, 20, 110, 90],},]\n```', "crop", (B,), None, False),
    ("mgpo-json-nan", '[{"bbox_2d": [10, 20, NaN, 90]}]', "invalid", (), None, False),
    ("boxed", r"So the answer is \boxed{B}.", "answer", (), "B", True),
    ("boxed-text", r"\boxed{\text{B}}", "answer", (), "B", True),
    ("boxed-nested-braces", r"\boxed{\frac{1}{2}}", "answer", (), r"\frac{1}{2}", True),
    ("boxed-inside-answer-kept", r"<answer>\boxed{C}</answer>", "answer", (), r"\boxed{C}", True),
    ("boxed-unclosed", r"\boxed{B", "answer", (), "B", False),
    # usable but malformed
    ("unclosed-answer", "<answer>B", "answer", (), "B", False),
    ("unclosed-answer-cut-closing", "<answer>B</ans", "answer", (), "B", False),
    ("unclosed-crop", "<crop>[10, 20, 110, 90]", "crop", (B,), None, False),
    ("missing-close-bracket", "<crop>[10, 20, 110, 90</crop>", "crop", (B,), None, False),
    ("missing-open-bracket", "<crop>10, 20, 110, 90]</crop>", "crop", (B,), None, False),
    ("mismatched-brackets", "<crop>[10, 20, 110, 90)</crop>", "crop", (B,), None, False),
    ("mismatched-tags", "<crop>[10, 20, 110, 90]</box>", "crop", (B,), None, False),
    ("unclosed-think", "<think>hmm <answer>A</answer>", "answer", (), "A", False),
    ("same-answer-twice", "<answer>A</answer> <answer>A</answer>", "answer", (), "A", False),
    # invalid
    ("three-numbers", "<crop>[10, 20, 110]</crop>", "invalid", (), None, False),
    ("five-numbers", "<crop>[10, 20, 110, 90, 5]</crop>", "invalid", (), None, False),
    ("nan-word", "<crop>[nan, 20, 110, 90]</crop>", "invalid", (), None, False),
    ("inf-word", "<crop>[10, 20, inf, 90]</crop>", "invalid", (), None, False),
    ("words-in-box", "<crop>x1=10, y1=20, x2=110, y2=90</crop>", "invalid", (), None, False),
    ("empty-crop", "<crop></crop>", "invalid", (), None, False),
    ("empty-answer", "<answer></answer>", "invalid", (), None, False),
    ("blank-answer", "<answer>   </answer>", "invalid", (), None, False),
    ("crop-and-answer", "<crop>[10, 20, 110, 90]</crop><answer>B</answer>", "invalid", (), None, False),
    ("tool-call-and-answer", TOOL + "}}</tool_call><answer>B</answer>", "invalid", (), None, False),
    ("crop-nested-in-answer", "<answer><crop>[10, 20, 110, 90]</crop></answer>", "invalid", (), None, False),
    ("crop-nested-in-crop", "<crop><crop>[10, 20, 110, 90]</crop></crop>", "invalid", (), None, False),
    ("unclosed-crop-then-answer", "<crop>[10, 20, 110, 90] <answer>B", "invalid", (), None, False),
    ("two-different-answers", "<answer>A</answer><answer>B</answer>", "invalid", (), None, False),
    ("action-only-in-think", "<think><answer>A</answer></think>", "invalid", (), None, False),
    ("no-tags", "The answer is probably B.", "invalid", (), None, False),
    ("bare-list-no-key", "[10, 20, 110, 90]", "invalid", (), None, False),
    ("typo-tag", "<crops>[10, 20, 110, 90]</crops>", "invalid", (), None, False),
    ("closing-tag-only", "B</answer>", "invalid", (), None, False),
    ("empty-string", "", "invalid", (), None, False),
    ("whitespace-only", " \n\t  ", "invalid", (), None, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "kind", "boxes", "answer", "format_ok"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_parse_table(text, kind, boxes, answer, format_ok):
    result = parse_action(text)
    assert (result.kind, result.boxes, result.answer, result.format_ok) == (
        kind,
        boxes,
        answer,
        format_ok,
    ), result.error
    # Invariants every result keeps.
    assert result.format_ok == (result.error is None)
    assert result.truncated is False
    if kind == "invalid":
        assert result.error and not result.error.startswith("internal parser error")
    assert result.box == (boxes[0] if boxes else None)


def test_table_is_large_and_ids_unique():
    assert len(CASES) >= 45
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("mode", "kind", "boxes"),
    [
        ("first", "crop", ((10.0, 20.0, 110.0, 90.0),)),
        ("union", "crop", ((0.0, 20.0, 110.0, 200.0),)),
        ("reject", "invalid", ()),
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        MGPO_TWO,
        "<crop>[10, 20, 110, 90]</crop> <crop>[0, 50, 60, 200]</crop>",
        "<crop>[10, 20, 110, 90, 0, 50, 60, 200]</crop>",
        '[{"bbox_2d": [10, 20, 110, 90]}, {"bbox_2d": [0, 50, 60, 200]}]',
    ],
    ids=["mgpo-fence", "two-tags", "eight-numbers", "mgpo-bare"],
)
def test_multi_box_modes(text, mode, kind, boxes):
    result = parse_action(text, multi_box=mode)
    assert (result.kind, result.boxes) == (kind, boxes)
    if mode == "reject":
        assert "2 boxes" in result.error and "multi_box='reject'" in result.error
    else:
        assert result.format_ok and len(result.boxes) == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<crop>[1, 2, 3]</crop>", "found 3"),
        ("<crop>[1, 2, 3, 4, 5]</crop>", "found 5"),
        ('<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2]}}', "found 2"),
        ("<crop>[1, 2, 3, 4]</crop><answer>B</answer>", "both a crop"),
        (
            '<tool_call>{"name": "web_search", "arguments": {}}',
            "'web_search' is not a zoom/crop tool",
        ),
        ("<answer></answer>", "empty <answer>"),
        ("hello", "no <crop>[x1, y1, x2, y2]</crop> or <answer>...</answer> found"),
        ("", "empty action"),
        ("<crops>[1, 2, 3, 4]</crops>", "did you mean <crop>?"),
        ("<think><crop>[1, 2, 3, 4]</crop></think>", "inside <think>"),
        ("<crop>[nan, 1, 2, 3]</crop>", "nan/inf are not numbers"),
        ("<answer>A</answer><answer>B</answer>", "2 different answers"),
    ],
)
def test_errors_name_the_cause(text, fragment):
    result = parse_action(text)
    assert result.kind == "invalid"
    assert fragment in result.error


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<answer>B", "<answer> is never closed"),
        ("<crop>[1, 2, 3, 4]</box>", "<crop> is closed by </box>"),
        ("<crop>[1, 2, 3, 4</crop>", "unbalanced brackets"),
        ("<tool_call>{'name': 'zoom', 'arguments': {'bbox_2d': [1, 2, 3, 4]}}", "malformed"),
        ("<think>x <answer>B</answer>", "<think> is never closed"),
    ],
)
def test_format_problems_keep_the_action_and_explain(text, fragment):
    result = parse_action(text)
    assert result.kind != "invalid" and not result.format_ok
    assert fragment in result.error


def test_think_content_is_kept():
    assert parse_action("<think> look left </think><answer>A</answer>").think == "look left"
    assert parse_action("look left</think><answer>A</answer>").think == "look left"
    assert parse_action("<answer>A</answer>").think is None


def test_overflow_and_huge_ints_pass_through_as_floats():
    huge = "9" * 5000  # beyond Python's int-string limit: must not raise
    text = '<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [' + huge + ", 1, 2, 3]}}"
    result = parse_action(text, max_action_chars=10_000)
    assert result.kind == "crop" and math.isinf(result.boxes[0][0])
    assert (
        parse_action(f"<crop>[{huge}, 1, 2, 3]</crop>", max_action_chars=10_000).boxes[0][0] == INF
    )


def test_truncation_keeps_what_remains():
    text = "<answer>B</answer>" + "x" * 10_000
    result = parse_action(text, max_action_chars=100)
    assert (result.kind, result.answer, result.truncated, result.format_ok) == (
        "answer",
        "B",
        True,
        True,
    )

    cut = parse_action("<answer>" + "long " * 1000 + "</answer>", max_action_chars=50)
    assert cut.truncated and cut.kind == "answer" and not cut.format_ok  # closing tag was cut off

    lost = parse_action("x" * 5000 + "<answer>B</answer>")
    assert lost.truncated and lost.kind == "invalid"
    assert "max_action_chars=4096" in lost.error

    exact = parse_action("<answer>B</answer>", max_action_chars=len("<answer>B</answer>"))
    assert exact.truncated is False and exact.format_ok


@pytest.mark.parametrize("value", [None, 42, b"<answer>B</answer>", ["<answer>B</answer>"]])
def test_non_str_input_is_invalid_not_an_exception(value):
    result = parse_action(value)
    assert result.kind == "invalid" and type(value).__name__ in result.error


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"multi_box": "unoin"}, "did you mean 'union'"),
        ({"multi_box": "all"}, "multi_box must be one of"),
        ({"max_action_chars": 0}, "max_action_chars must be in 1..65536"),
        ({"max_action_chars": 1.5}, "max_action_chars must be an int"),
    ],
)
def test_bad_configuration_raises_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_action("<answer>B</answer>", **kwargs)


def test_parsed_action_is_frozen_and_box_property():
    result = parse_action("<crop>[1, 2, 3, 4]</crop>")
    assert result.box == (1.0, 2.0, 3.0, 4.0)
    assert ParsedAction("invalid").box is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kind = "answer"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("box", "decimals", "text", "parsed"),
    [
        ((12, 30, 400, 380), 0, "<crop>[12, 30, 400, 380]</crop>", (12, 30, 400, 380)),
        ((12.4, 30.6, 400.5, 380), 0, "<crop>[12, 31, 400, 380]</crop>", (12, 31, 400, 380)),
        (
            (12.345, 30, 400.5, -1.25),
            2,
            "<crop>[12.35, 30.00, 400.50, -1.25]</crop>",
            (12.35, 30, 400.5, -1.25),
        ),
    ],
)
def test_format_crop(box, decimals, text, parsed):
    assert format_crop(box, decimals) == text
    result = parse_action(text)
    assert result.format_ok and result.boxes == (parsed,)


@pytest.mark.parametrize(
    ("box", "decimals"),
    [((1, 2, 3), 0), ((1, 2, 3, float("nan")), 0), ((1, 2, 3, INF), 0), ((1, 2, 3, 4), -1)],
)
def test_format_crop_rejects_bad_input(box, decimals):
    with pytest.raises(ValueError):
        format_crop(box, decimals)


def test_format_answer_round_trip():
    assert format_answer("B") == "<answer>B</answer>"
    assert parse_action(format_answer("a red car")).answer == "a red car"


def test_action_charset_fits_gymnasium_text_space():
    assert len(ACTION_CHARSET) == len(set(ACTION_CHARSET)) == 95 + 2
    assert "\n" in ACTION_CHARSET and "\t" in ACTION_CHARSET and "\r" not in ACTION_CHARSET
    space = gym.spaces.Text(max_length=4096, charset=ACTION_CHARSET)
    for text in (
        format_crop((12, 30, 400, 380)),
        format_answer("B"),
        "<think>look\tleft\n</think>" + format_crop((0.5, 1, 2, 3), decimals=1),
        TOOL + "}}</tool_call>",
    ):
        assert space.contains(text), text


def test_doctests_pass():
    outcome = doctest.testmod(actions)
    assert outcome.attempted >= 6 and outcome.failed == 0


def test_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, grounding_gym.actions; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
