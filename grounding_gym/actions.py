r"""Action text -> `ParsedAction`: what one policy turn asks the environment to do.

`parse_action` never raises on model text; every failure is reported in `.error`.

Canonical grammar (tags are case-insensitive, whitespace inside tags is tolerated)::

    action := [ "<think>" TEXT "</think>" ] ( crop | answer )
    crop   := "<crop>" BOX "</crop>"  |  "<box>" BOX "</box>"
    BOX    := "[" x1 "," y1 "," x2 "," y2 "]"  |  "(" ... ")"  |  x1 y1 x2 y2
    answer := "<answer>" TEXT "</answer>"

Numbers are ints or floats with optional sign and exponent (`-12`, `3.5`, `1e3`). The words
`nan` / `inf` are *not* numbers (the action is invalid); a literal that overflows (`1e999`)
becomes `inf`. Coordinates are returned exactly as written, in whatever frame the model used:
no geometry is checked here (the env does that, DESIGN.md section 3).

Alternates that real models emit are parsed too:

* Qwen tool calls, closing tag optional (vLLM/transformers often strip it as a stop string):
  ``<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2]}}``.
  Any tool whose name contains "zoom" or "crop" (case-insensitive) is a crop; another tool
  name is invalid. Slightly malformed JSON (single quotes, trailing commas) is read leniently.
* MGPO JSON, fenced or bare: ``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]`` or one dict.
* ``\boxed{X}`` answers (nested braces are matched; ``\boxed{\text{B}}`` gives "B").

Rules:

* Free text before the action and after its closing tag is ignored; actions inside
  `<think>...</think>` do not count. A lone `</think>` (the chat template opened `<think>`)
  splits thinking from the action.
* A crop and an answer in one action: invalid. Different answers: invalid. The text of an
  `<answer>` is kept as written (`<answer>\boxed{C}</answer>` gives "\boxed{C}").
* Several boxes (several crop tags, a JSON list, a tag holding 8, 12, ... numbers) follow
  `multi_box`: "first" keeps the first, "union" their union, "reject" makes the action invalid;
  under "first"/"union" the format stays ok. A box of other than 4 numbers is invalid.
* `format_ok` is True for a clean canonical action or a clean alternate. A usable action with a
  format problem keeps its kind but has `format_ok=False` and the problem in `.error`: an
  unclosed `<answer>B` / `<crop>[...]` (content runs to the next tag or the end of the text),
  an unclosed `<think>`, mismatched `<crop>...</box>` tags, unbalanced brackets, malformed
  tool-call/MGPO JSON, or the same answer given twice. Hence always
  `format_ok == (error is None)`.
* Text longer than `max_action_chars` is cut to that length, parsed, and `truncated=True`;
  `max_action_chars` is at most `MAX_ACTION_CHARS_LIMIT` (65,536), and parsing work grows
  linearly with the text (no tag's content is scanned across another opening tag).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from grounding_gym.geometry import Box, frame_bounds, from_original, round_outward
from grounding_gym.lenient_json import flatten_numbers, load_json_at
from grounding_gym.validation import did_you_mean

__all__ = [
    "ACTION_CHARSET",
    "MULTI_BOX_MODES",
    "ActionKind",
    "BoxTuple",
    "ParsedAction",
    "action_frame",
    "crop_action_text",
    "format_answer",
    "format_crop",
    "parse_action",
]

ACTION_CHARSET: str = "".join(chr(code) for code in range(0x20, 0x7F)) + "\n\t"
"""Every printable ASCII character plus newline and tab: the `gymnasium.spaces.Text` charset."""

MULTI_BOX_MODES: tuple[str, ...] = ("first", "union", "reject")
"""Allowed values of `parse_action(..., multi_box=...)`."""

ActionKind = Literal["crop", "answer", "invalid"]
BoxTuple = tuple[float, float, float, float]

MAX_ACTION_CHARS_LIMIT = 65_536
"""Largest `max_action_chars` allowed: the bound up to which the parser's linear work is tested
(`tests/grounding_gym/remote/test_security.py::test_action_parsing_work_grows_linearly`)."""
_NO_ACTION = "no <crop>[x1, y1, x2, y2]</crop> or <answer>...</answer> found"
_FLAGS = re.IGNORECASE | re.DOTALL
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOX_PUNCTUATION = frozenset("[](),;")
_THINK_OPEN = r"<\s*think\s*>"
_CROP_OPEN = r"<\s*(?:crop|box)\s*>"
_ANSWER_OPEN = r"<\s*answer\s*>"


def _body_until(open_tag: str) -> str:
    """A tag's content: any text up to (lazily) its close, but never across another opening
    tag of the same kind. Each match attempt then scans at most to the next opening tag, so the
    parser's work grows linearly with the text (a lazy `.*?` rescans to the end from every
    opening tag: quadratic, 2.6 s for 32,000 chars of `<crop>[`)."""
    return rf"(?:(?!{open_tag}).)*?"


_THINK_RE = re.compile(rf"{_THINK_OPEN}({_body_until(_THINK_OPEN)})<\s*/\s*think\s*>", _FLAGS)
_THINK_OPEN_RE = re.compile(_THINK_OPEN, _FLAGS)
_THINK_CLOSE_RE = re.compile(r"<\s*/\s*think\s*>", _FLAGS)
_CROP_TAG_RE = re.compile(
    rf"<\s*(crop|box)\s*>({_body_until(_CROP_OPEN)})<\s*/\s*(crop|box)\s*>", _FLAGS
)
_ANSWER_TAG_RE = re.compile(
    rf"{_ANSWER_OPEN}({_body_until(_ANSWER_OPEN)})<\s*/\s*answer\s*>", _FLAGS
)
_OPEN_TAG_RE = re.compile(r"<\s*(crop|box|answer)\s*>", _FLAGS)
# An opening tag and its content up to the next tag ("</..." or "<name"), for unclosed tags.
_UNCLOSED_TAG_RE = re.compile(r"<\s*(crop|box|answer)\s*>((?:(?!<\s*/|<[A-Za-z_|]).)*)", _FLAGS)
_TOOL_CALL_RE = re.compile(
    r"<\s*tool_call\s*>(.*?)(<\s*/\s*tool_call\s*>|(?=<\s*tool_call\s*>)|\Z)", _FLAGS
)
_TOOL_NAME_RE = re.compile(r"""["']?name["']?\s*:\s*["']([^"']*)["']""", re.IGNORECASE)
_ZOOM_NAME_RE = re.compile(r"zoom|crop", re.IGNORECASE)
_BBOX_KEY_RE = re.compile(r"""["']?bbox_2d["']?\s*:\s*([\[(][^\])]*[\])])""", re.IGNORECASE)
_FENCE_RE = re.compile(r"```[ \t]*(?:json)?(.*?)(?:```|\Z)", _FLAGS)
_BOXED_RE = re.compile(r"\\boxed\s*\{")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_ANY_TAG_RE = re.compile(r"<\s*/?\s*([A-Za-z_]+)\s*>")
_KNOWN_TAGS = ("crop", "box", "answer", "think", "tool_call")
_MAX_JSON_STARTS = 64


@dataclass(frozen=True)
class ParsedAction:
    """The typed result of `parse_action`.

    Attributes:
        kind: "crop", "answer" or "invalid".
        boxes: for a crop, exactly one box `(x1, y1, x2, y2)` (the one `multi_box` kept),
            floats as written in the model's frame and unchecked: may be inverted, negative,
            huge or `inf`, never NaN. Empty otherwise.
        answer: for an answer, the text between the tags, stripped. None otherwise.
        format_ok: True for a clean canonical action or clean alternate (module docstring).
        error: why the action is invalid, or for a usable action with `format_ok=False`, what
            was wrong with its format. None exactly when `format_ok`.
        truncated: the text was longer than `max_action_chars` and was cut before parsing.
        think: the stripped content of `<think>...</think>`, or None without one.
    """

    kind: ActionKind
    boxes: tuple[BoxTuple, ...] = ()
    answer: str | None = None
    format_ok: bool = False
    error: str | None = None
    truncated: bool = False
    think: str | None = None

    @property
    def box(self) -> BoxTuple | None:
        """The first (after `multi_box` resolution, the only) box, or None."""
        return self.boxes[0] if self.boxes else None


@dataclass(frozen=True)
class _Found:
    """One action-like span of the text (internal)."""

    kind: Literal["crop", "answer", "other"]
    start: int
    source: str
    boxes: tuple[BoxTuple, ...] = ()
    answer: str | None = None
    error: str | None = None
    note: str | None = None


# ---------------------------------------------------------------- public API


def parse_action(
    text: str, *, multi_box: str = "first", max_action_chars: int = 4096
) -> ParsedAction:
    r"""Parse one turn of model text into a crop, an answer, or an invalid action.

    Args:
        text: the model's output for this turn. Non-str input gives an invalid result.
        multi_box: several boxes in one action: "first" keeps the first, "union" returns
            their union `(min x1, min y1, max x2, max y2)`, "reject" makes it invalid.
        max_action_chars: longer text is cut to this many characters (`truncated=True`).

    Returns:
        A `ParsedAction`; never raises on any text.

    Raises:
        ValueError: `multi_box` or `max_action_chars` is not allowed (configuration, not text).

    Examples:
        >>> parse_action("<think>the sign is small</think><crop>[10, 20, 110, 90]</crop>").box
        (10.0, 20.0, 110.0, 90.0)
        >>> a = parse_action("<answer>B</answer>")
        >>> a.kind, a.answer, a.format_ok
        ('answer', 'B', True)
        >>> parse_action("<answer>B").format_ok  # unclosed at the end: usable, not well-formed
        False
        >>> parse_action("zoom please").error
        'no <crop>[x1, y1, x2, y2]</crop> or <answer>...</answer> found'
    """
    _check_options(multi_box, max_action_chars)
    if not isinstance(text, str):
        return ParsedAction("invalid", error=f"action must be a str, got {type(text).__name__}")
    truncated = len(text) > max_action_chars
    text = text[:max_action_chars]
    try:
        result = _parse(text, multi_box)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; tests assert unused
        result = ParsedAction("invalid", error=f"internal parser error: {exc!r}")
    if truncated and result.kind == "invalid":
        cut = f" (the text was cut to max_action_chars={max_action_chars})"
        result = dataclasses.replace(result, error=f"{result.error}{cut}")
    return dataclasses.replace(result, truncated=truncated)


def format_crop(box: Iterable[float], decimals: int = 0) -> str:
    """Render a box as the canonical crop action.

    Args:
        box: `(x1, y1, x2, y2)` in the env's `coord_frame`.
        decimals: digits after the point; 0 writes integers.

    Returns:
        `"<crop>[x1, y1, x2, y2]</crop>"`; `parse_action` reads back the rounded values.

    Raises:
        ValueError: not 4 finite numbers, or `decimals < 0`.

    Examples:
        >>> format_crop((12, 30, 400, 380))
        '<crop>[12, 30, 400, 380]</crop>'
        >>> format_crop((12.345, 30, 400.5, 380), decimals=1)
        '<crop>[12.3, 30.0, 400.5, 380.0]</crop>'
    """
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"format_crop needs 4 finite numbers (x1, y1, x2, y2), got {values}")
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    if decimals == 0:
        parts = [str(round(v)) for v in values]
    else:
        parts = [f"{v:.{decimals}f}" for v in values]
    return f"<crop>[{', '.join(parts)}]</crop>"


def format_answer(answer: str) -> str:
    """Render an answer as the canonical answer action.

    The text is not escaped: an answer containing "</answer>" is cut there when parsed,
    and an empty answer parses as invalid.

    Examples:
        >>> format_answer("B")
        '<answer>B</answer>'
        >>> parse_action(format_answer("B")).answer
        'B'
    """
    return f"<answer>{answer}</answer>"


# ---------------------------------------------------------------- crop actions for a box

_DEFAULT_DECIMALS = {"view": 0, "original": 0, "norm1000": 0, "norm1": 3}


def action_frame(info: Mapping[str, Any]) -> tuple[Box, tuple[int, int]]:
    """`(box, size)` the next action's coordinates refer to, from an env info:
    `action_frame_box` (original px) and `action_frame_size` (w, h); the current view
    (`view_box`, `view_size`) for infos without them. Pass it to `crop_action_text`."""
    box = info.get("action_frame_box", info["view_box"])
    size = info.get("action_frame_size", info["view_size"])
    return Box(*box), (int(size[0]), int(size[1]))


def crop_action_text(
    box_orig: Box,
    view_box: Box,
    view_size: tuple[int, int],
    frame: str,
    decimals: int | None = None,
) -> str:
    """The crop action that makes the env crop (at least) `box_orig`.

    Maps `box_orig` (original px) into `frame` of the current view with `from_original`, rounds
    each edge outward with `round_outward` (so the crop the env cuts still contains `box_orig`:
    coverage 1), clamps to the view's extent in that frame (outward rounding of an edge lying on
    the view's border would otherwise leave the view), and formats it with `format_crop`.

    Args:
        box_orig: region to crop, original px, inside `view_box`.
        view_box, view_size: what the action's coordinates refer to, `action_frame(info)` (the
            current view, except in presets such as DeepEyes that keep the first view's frame).
        frame: the env's `coord_frame`.
        decimals: digits written; default 0 for view/original/norm1000 px, 3 for norm1.

    Edges on whole units also move out by one (`round_outward` guards against float noise):

    >>> crop_action_text(Box(10.2, 20, 30, 40.5), Box(0, 0, 200, 100), (100, 50), "view")
    '<crop>[5, 9, 16, 21]</crop>'
    """
    if decimals is None:
        decimals = _DEFAULT_DECIMALS.get(frame, 0)
    in_frame = round_outward(from_original(box_orig, frame, view_box, view_size), decimals)  # type: ignore[arg-type]
    bounds = frame_bounds(frame, view_box, view_size)
    clamped = (
        max(in_frame.x1, bounds.x1),
        max(in_frame.y1, bounds.y1),
        min(in_frame.x2, bounds.x2),
        min(in_frame.y2, bounds.y2),
    )
    if not (clamped[0] < clamped[2] and clamped[1] < clamped[3]) or not all(
        map(math.isfinite, clamped)
    ):
        raise ValueError(
            f"box {box_orig.as_tuple()} (original px) lies outside the view {view_box.as_tuple()}"
        )
    return format_crop(clamped, decimals)


# ---------------------------------------------------------------- driver


def _check_options(multi_box: str, max_action_chars: int) -> None:
    """Raise ValueError for a bad configuration (these come from code, not from the model)."""
    if multi_box not in MULTI_BOX_MODES:
        hint = did_you_mean(multi_box, MULTI_BOX_MODES, "; did you mean {!r}?")
        raise ValueError(f"multi_box must be one of {MULTI_BOX_MODES}, got {multi_box!r}{hint}")
    if isinstance(max_action_chars, bool) or not isinstance(max_action_chars, int):
        raise ValueError(f"max_action_chars must be an int, got {max_action_chars!r}")
    if not 1 <= max_action_chars <= MAX_ACTION_CHARS_LIMIT:
        raise ValueError(
            f"max_action_chars must be in 1..{MAX_ACTION_CHARS_LIMIT} (the parser's tested "
            f"bound), got {max_action_chars}"
        )


def _parse(text: str, multi_box: str) -> ParsedAction:
    """Split off `<think>`, find every action-like span, and resolve them to one action."""
    think, body, think_note = _split_think(text)
    found = _find_actions(body)
    if not found:
        return ParsedAction("invalid", error=_no_action_error(text, think), think=think)
    kind, boxes, answer, problem = _resolve(found, multi_box)
    if kind != "invalid":
        problem = _join(think_note, problem)
    return ParsedAction(kind, boxes, answer, problem is None, problem, think=think)


def _split_think(text: str) -> tuple[str | None, str, str | None]:
    """Return (think content, text left to parse, format note)."""
    match = _THINK_RE.search(text)
    if match:
        return match.group(1).strip(), _THINK_RE.sub(" ", text), None
    close = _THINK_CLOSE_RE.search(text)
    if close:  # the chat template opened <think> in the prompt
        return text[: close.start()].strip(), text[close.end() :], None
    opened = _THINK_OPEN_RE.search(text)
    if opened:
        rest = text[opened.end() :]
        return rest.strip(), rest, "<think> is never closed"
    return None, text, None


_Scanner = Callable[[str], tuple[list[_Found], str]]


def _find_actions(body: str) -> list[_Found]:
    """Run every scanner in priority order; each blanks what it consumed for the next."""
    scanners: tuple[_Scanner, ...] = (
        _scan_crop_tags,
        _scan_answer_tags,
        _scan_unclosed_tags,
        _scan_tool_calls,
        _scan_fences,
        _scan_bare_json,
        _scan_boxed,
    )
    found: list[_Found] = []
    for scanner in scanners:
        new, body = scanner(body)
        found.extend(new)
    return sorted(found, key=lambda f: f.start)


def _resolve(
    found: list[_Found], multi_box: str
) -> tuple[ActionKind, tuple[BoxTuple, ...], str | None, str | None]:
    """Return (kind, boxes, answer, problem); problem is the error or the format note."""
    crops = [f for f in found if f.kind == "crop"]
    answers = [f for f in found if f.kind == "answer"]
    if crops and answers:
        return (
            "invalid",
            (),
            None,
            f"both a crop ({crops[0].source}) and an answer ({answers[0].source}) were given; "
            "give exactly one action",
        )
    failed = next((f for f in found if f.error), None)
    if failed is not None:
        return "invalid", (), None, failed.error
    if answers:
        return _resolve_answers(answers)
    return _resolve_crops(crops, multi_box)


def _resolve_answers(
    answers: list[_Found],
) -> tuple[ActionKind, tuple[BoxTuple, ...], str | None, str | None]:
    texts = list(dict.fromkeys(f.answer for f in answers))
    if len(texts) > 1:
        shown = ", ".join(_snip(t or "") for t in texts[:3])
        return "invalid", (), None, f"{len(texts)} different answers were given ({shown}); give one"
    repeated = f"the answer was given {len(answers)} times" if len(answers) > 1 else None
    return "answer", (), texts[0], _join(*(f.note for f in answers), repeated)


def _resolve_crops(
    crops: list[_Found], multi_box: str
) -> tuple[ActionKind, tuple[BoxTuple, ...], str | None, str | None]:
    boxes = tuple(box for f in crops for box in f.boxes)
    if len(boxes) > 1 and multi_box == "reject":
        return (
            "invalid",
            (),
            None,
            f"{len(boxes)} boxes were given and multi_box='reject'; give exactly one box",
        )
    if len(boxes) > 1:
        boxes = (_union(boxes),) if multi_box == "union" else boxes[:1]
    return "crop", boxes, None, _join(*(f.note for f in crops))


def _union(boxes: tuple[BoxTuple, ...]) -> BoxTuple:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _no_action_error(text: str, think: str | None) -> str:
    """The "nothing found" error, with a hint where one helps."""
    if not text.strip():
        return f"empty action: {_NO_ACTION}"
    hints = []
    if think and _OPEN_TAG_RE.search(think):
        hints.append("an action inside <think>...</think> does not count")
    for tag in dict.fromkeys(t.lower() for t in _ANY_TAG_RE.findall(text)):
        hint = did_you_mean(tag, _KNOWN_TAGS, f"found <{tag}>: did you mean <{{}}>?")
        if tag not in _KNOWN_TAGS and hint:
            hints.append(hint)
    return _NO_ACTION + (f" ({'; '.join(hints[:3])})" if hints else "")


# ---------------------------------------------------------------- scanners


def _scan(
    pattern: re.Pattern[str], body: str, make: Callable[[re.Match[str]], _Found | None]
) -> tuple[list[_Found], str]:
    """Apply `make` to every match of `pattern`; blank the matches out of `body`."""
    found: list[_Found] = []
    pieces: list[str] = []
    last = 0
    for match in pattern.finditer(body):
        item = make(match)
        if item is not None:
            found.append(item)
        pieces.extend((body[last : match.start()], " " * (match.end() - match.start())))
        last = match.end()
    pieces.append(body[last:])
    return found, "".join(pieces)


def _scan_crop_tags(body: str) -> tuple[list[_Found], str]:
    def make(m: re.Match[str]) -> _Found:
        opened, closed = m.group(1).lower(), m.group(3).lower()
        note = None if opened == closed else f"<{opened}> is closed by </{closed}>"
        return _crop_from_text(m.group(2), m.start(), f"<{opened}>", note)

    return _scan(_CROP_TAG_RE, body, make)


def _scan_answer_tags(body: str) -> tuple[list[_Found], str]:
    return _scan(_ANSWER_TAG_RE, body, lambda m: _answer(m.group(1), m.start(), "<answer>"))


def _scan_unclosed_tags(body: str) -> tuple[list[_Found], str]:
    """Opening tags left without a closing tag; each one's content runs to the next tag."""

    def make(m: re.Match[str]) -> _Found:
        tag = m.group(1).lower()
        note = f"<{tag}> is never closed"
        if tag == "answer":
            return _answer(m.group(2), m.start(), "<answer>", note)
        return _crop_from_text(m.group(2), m.start(), f"<{tag}>", note)

    return _scan(_UNCLOSED_TAG_RE, body, make)


def _scan_tool_calls(body: str) -> tuple[list[_Found], str]:
    return _scan(_TOOL_CALL_RE, body, _tool_call)


def _scan_fences(body: str) -> tuple[list[_Found], str]:
    return _scan(_FENCE_RE, body, lambda m: _json_crop(m.group(1), m.start(), "```json``` block"))


def _scan_bare_json(body: str) -> tuple[list[_Found], str]:
    item = _json_crop(body, 0, "JSON bbox_2d")
    return ([item] if item else []), body


def _scan_boxed(body: str) -> tuple[list[_Found], str]:
    found: list[_Found] = []
    end = 0
    for match in _BOXED_RE.finditer(body):
        if match.start() < end:  # nested inside the previous \boxed{...}
            continue
        content, end, closed = _brace_content(body, match.end())
        inner = _TEXT_WRAP_RE.fullmatch(content.strip())
        note = None if closed else r"\boxed{ is never closed"
        found.append(
            _answer(inner.group(1) if inner else content, match.start(), r"\boxed{}", note)
        )
    return found, body


def _brace_content(text: str, start: int) -> tuple[str, int, bool]:
    """Content of a brace group opened just before `start`: (content, end index, closed)."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index], index + 1, True
    return text[start:], len(text), False


# ---------------------------------------------------------------- action builders


def _answer(content: str, start: int, source: str, note: str | None = None) -> _Found:
    text = content.strip()
    if not text:
        error = f"empty {source}: put the answer inside, e.g. <answer>B</answer>"
        return _Found("answer", start, source, error=error)
    return _Found("answer", start, source, answer=text, note=note)


def _crop_from_text(content: str, start: int, source: str, note: str | None = None) -> _Found:
    """A crop from tag content such as "[1, 2, 3, 4]", "(1,2,3,4)" or "1 2 3 4"."""
    tokens = _NUMBER_RE.findall(content)
    residue = _NUMBER_RE.sub(" ", content)
    bad = [c for c in residue if not (c.isspace() or c in _BOX_PUNCTUATION)]
    if bad:
        error = (
            f"{source} must hold numbers like [x1, y1, x2, y2]; could not read {_snip(content)}"
            " (words such as nan/inf are not numbers)"
        )
        return _Found("crop", start, source, error=error)
    if not tokens:
        error = f"{source} holds no numbers; expected [x1, y1, x2, y2]"
        return _Found("crop", start, source, error=error)
    if not _brackets_balanced(residue):
        note = _join(note, f"unbalanced brackets in {source} {_snip(content.strip())}")
    return _crop_from_numbers([float(t) for t in tokens], start, source, note)


def _crop_from_numbers(
    numbers: list[float], start: int, source: str, note: str | None = None
) -> _Found:
    count = len(numbers)
    if count == 0 or count % 4:
        error = f"a box needs 4 numbers (x1, y1, x2, y2); found {count} in {source}"
        return _Found("crop", start, source, error=error)
    boxes = tuple(
        (numbers[i], numbers[i + 1], numbers[i + 2], numbers[i + 3]) for i in range(0, count, 4)
    )
    return _Found("crop", start, source, boxes=boxes, note=note)


def _crop_from_values(values: list[Any], start: int, source: str, note: str | None) -> _Found:
    """A crop from decoded bbox_2d values (lists of numbers) or regex-captured strings."""
    boxes: list[BoxTuple] = []
    for value in values:
        if isinstance(value, str):
            item = _crop_from_text(value, start, source)
        else:
            numbers = flatten_numbers(value)
            if numbers is None:
                error = f"{source} must be a list of numbers, got {_snip(repr(value))}"
                return _Found("crop", start, source, error=error)
            item = _crop_from_numbers(numbers, start, source)
        if item.error:
            return item
        note = _join(note, item.note)
        boxes.extend(item.boxes)
    return _Found("crop", start, source, boxes=tuple(boxes), note=note)


def _tool_call(match: re.Match[str]) -> _Found:
    """A Qwen-style `<tool_call>{...}` (closing tag optional)."""
    start, source = match.start(), "<tool_call>"
    name, bbox, strict = _read_tool_call(match.group(1))
    if not name:
        error = (
            '<tool_call> names no tool; expected {"name": "image_zoom_in_tool", '
            '"arguments": {"bbox_2d": [x1, y1, x2, y2]}}'
        )
        return _Found("other", start, source, error=error)
    if not _ZOOM_NAME_RE.search(name):
        error = (
            f"tool call to {name!r} is not a zoom/crop tool (its name must contain 'zoom' or "
            "'crop')"
        )
        return _Found("other", start, source, error=error)
    if bbox is None:
        error = f"tool call to {name!r} has no arguments.bbox_2d = [x1, y1, x2, y2]"
        return _Found("crop", start, source, error=error)
    note = None if strict else "tool call JSON is malformed; bbox_2d was read leniently"
    return _crop_from_values([bbox], start, f"{source} bbox_2d", note)


def _read_tool_call(payload: str) -> tuple[str | None, Any, bool]:
    """Return (tool name, raw bbox_2d value, whether the JSON was strictly valid)."""
    loaded = load_json_at(payload, payload.find("{"))
    if loaded is not None and isinstance(loaded[0], dict):
        call, strict = loaded
        args = call.get("arguments", call.get("parameters"))
        if isinstance(args, str):  # OpenAI style: arguments encoded as a JSON string
            inner = load_json_at(args, args.find("{"))
            args = inner[0] if inner else None
        bbox = args.get("bbox_2d") if isinstance(args, dict) else None
        name = call.get("name")
        return (None if name is None else str(name)), bbox, strict
    name_match = _TOOL_NAME_RE.search(payload)
    bbox_match = _BBOX_KEY_RE.search(payload)
    return (
        name_match.group(1) if name_match else None,
        bbox_match.group(1) if bbox_match else None,
        False,
    )


def _json_crop(segment: str, offset: int, source: str) -> _Found | None:
    """MGPO style: a JSON list of {"bbox_2d": [...]} dicts, or one dict, inside `segment`."""
    key = segment.lower().find("bbox_2d")
    if key < 0:
        return None
    starts = [i for i, c in enumerate(segment[:key]) if c in "[{"][:_MAX_JSON_STARTS]
    for start in starts:
        loaded = load_json_at(segment, start)
        values = _bbox_values(loaded[0]) if loaded else []
        if loaded and values:
            note = None if loaded[1] else "JSON is malformed; bbox_2d was read leniently"
            return _crop_from_values(values, offset + start, source, note)
    captured = [m.group(1) for m in _BBOX_KEY_RE.finditer(segment)]
    if not captured:
        return None
    note = "JSON is malformed; bbox_2d was read leniently"
    return _crop_from_values(captured, offset + key, source, note)


def _bbox_values(obj: Any) -> list[Any]:
    items = obj if isinstance(obj, list) else [obj]
    return [item["bbox_2d"] for item in items if isinstance(item, dict) and "bbox_2d" in item]


# ---------------------------------------------------------------- small helpers


def _brackets_balanced(residue: str) -> bool:
    pairs = {"]": "[", ")": "("}
    stack: list[str] = []
    for char in residue:
        if char in "[(":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def _join(*notes: str | None) -> str | None:
    kept = list(dict.fromkeys(n for n in notes if n))
    return "; ".join(kept) if kept else None


def _snip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
