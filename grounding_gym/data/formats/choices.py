"""Multiple-choice options as benchmarks publish them: option lists, option strings with
letter labels, answer letters, and a seeded option shuffle.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grounding_gym.data.formats.records import format_error

LETTERS = string.ascii_uppercase


_CHOICE_PREFIX = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s*")


STRING_OPTION_LETTERS = LETTERS[:6]
"""Labels recognised when the options are one string (2-6 options, A-F)."""


def strip_choice_prefix(text: str, letter: str) -> str:
    """`"(A) red"` / `"A. red"` -> `"red"` when the prefix letter is `letter`; else unchanged."""
    match = _CHOICE_PREFIX.match(text)
    if match and (match.group(1) or match.group(2)).upper() == letter:
        return text[match.end() :].strip()
    return text.strip()


def split_choice_label(text: str) -> tuple[str | None, str]:
    """`"(D) red"` / `"D. red"` / `"D) red"` / `"D: red"` -> `("D", "red")`; no label ->
    `(None, text)`."""
    match = _CHOICE_PREFIX.match(text)
    if match is None or not text[match.end() :].strip():
        return None, text.strip()
    return (match.group(1) or match.group(2)).upper(), text[match.end() :].strip()


@dataclass(frozen=True)
class Choices:
    """Options as a file gives them: `texts` in position order (shown as A, B, ...), and the
    label printed with each (`labels[i]`, None where none was printed)."""

    texts: tuple[str, ...]
    labels: tuple[str | None, ...]


def _label_pattern(letter: str) -> re.Pattern[str]:
    """Where the label of `letter` may start in a one-string option list: `(B)`, `B.`, `B)`, `B:`
    after the start or whitespace; a bare `B ` only at the start of a line."""
    return re.compile(
        rf"(?:(?<=\s)|^)(?:\({letter}\)|{letter}[.):])[ \t]*|(?:(?<=\n)|^)[ \t]*{letter}[ \t]+"
    )


def split_options_string(text: str, where: str, field: str = "options") -> Choices:
    r"""One string of labelled options -> `Choices` (labels A, B, ... in order, up to F).

    Styles, mixable: `"A. x\nB. y"`, `"(A) x\n(B) y"`, `"A x\nB y"` (bare letters at line
    starts), `"A. x B. y C. z"` (on one line).

    >>> split_options_string("A. red B. dark blue\nC green", "f").texts
    ('red', 'dark blue', 'green')

    Raises:
        DatasetFormatError: fewer than two labels A, B, ... in order, or an empty option.
    """
    body = text.strip()
    spans: list[tuple[int, int]] = []
    pos = 0
    for letter in STRING_OPTION_LETTERS:
        match = _label_pattern(letter).search(body, pos)
        if match is None or (letter == "A" and match.start() != 0):
            break
        spans.append((match.start(), match.end()))
        pos = match.end()
    if len(spans) < 2:
        raise format_error(
            where,
            f"field {field!r} is one string without option labels A, B, ... in order: "
            f"{body[:80]!r}",
            'write it as a list, or label each option ("A. x\nB. y", "(A) x (B) y", "A x\nB y").',
        )
    ends = [start for start, _ in spans[1:]] + [len(body)]
    texts = tuple(body[end:stop].strip() for (_, end), stop in zip(spans, ends, strict=True))
    for letter, option in zip(LETTERS, texts, strict=False):
        if not option:
            raise format_error(where, f"field {field!r}: option {letter} is empty in {body[:80]!r}")
    return Choices(texts, tuple(LETTERS[: len(texts)]))


def parse_choices(value: Any, where: str, field: str = "options") -> Choices:
    """Options from a list (items may print their label: `"(A) x"`), a dict `{"A": ..., ...}`,
    or one string (`split_options_string`). Labels printed in list items are stripped from the
    texts and kept in `labels` (see `answer_letter`)."""
    if isinstance(value, str):
        return split_options_string(value, where, field)
    if isinstance(value, Mapping):
        keys = [str(k).strip().upper() for k in value]
        if sorted(keys) != list(LETTERS[: len(keys)]):
            raise format_error(
                where, f"{field} keys {list(value)} must be consecutive letters from 'A'"
            )
        ordered = sorted(value, key=lambda k: str(k).strip().upper())
        texts = [value[k] for k in ordered]
        printed = [str(k).strip().upper() for k in ordered]
    elif isinstance(value, (list, tuple)):
        texts, printed = list(value), []
    else:
        raise format_error(
            where, f"{field} must be a list, a letter->text dict or one string, got {value!r}"
        )
    if not 2 <= len(texts) <= len(LETTERS):
        raise format_error(where, f"{field} needs 2..26 options, got {len(texts)}")
    for letter, text in zip(LETTERS, texts, strict=False):
        if (
            not isinstance(text, (str, int, float))
            or isinstance(text, bool)
            or not str(text).strip()
        ):
            raise format_error(where, f"{field}: option {letter} is empty or not text: {text!r}")
    if printed:
        stripped = [strip_choice_prefix(str(t), k) for t, k in zip(texts, printed, strict=True)]
        return Choices(tuple(stripped), tuple(printed))
    split = [split_choice_label(str(t)) for t in texts]
    return Choices(tuple(t for _, t in split), tuple(label for label, _ in split))


def parse_options(value: Any, where: str, field: str = "options") -> tuple[str, ...]:
    """Option texts in position order from a list, a letter->text dict, or one string
    (`parse_choices(...).texts`; list items keep any printed label)."""
    choices = parse_choices(value, where, field)
    if isinstance(value, (list, tuple)):
        return tuple(str(t).strip() for t in value)
    return choices.texts


def answer_letter(
    answer: Any,
    options: Sequence[str],
    where: str,
    labels: Sequence[str | None] = (),
    field: str = "answer",
) -> str:
    """The correct option's position letter from a letter ("B", "(B)", "b.") or the option's text.

    Printed labels are authoritative: when `labels` (the label printed with each option) hold
    the answer's letter, the answer is the first option printed with it, whatever its position
    (MME-RealWorld rows list "(D)" twice, and "E" names the option printed "(E)", the sixth).
    """
    text = str(answer).strip() if answer is not None else ""
    letters = LETTERS[: len(options)]
    bare = text.strip("().: ").upper()
    if len(bare) == 1 and bare in LETTERS:
        if bare in labels:
            return LETTERS[list(labels).index(bare)]
        if bare in letters:
            return bare
    for letter, option in zip(letters, options, strict=True):
        if text and text.casefold() == option.casefold():
            return letter
    shown = f"; printed labels {[label or '-' for label in labels]}" if any(labels) else ""
    raise format_error(
        where,
        f"field {field!r}: answer {answer!r} is neither an option letter "
        f"({', '.join(letters)}){shown} "
        "nor an option text",
    )


def shuffled_order(n: int, seed: int, sample_id: str) -> list[int]:
    """A permutation of `range(n)` fixed by `(seed, sample_id)` (sha256, not `hash()`).

    >>> shuffled_order(4, 0, "x") == shuffled_order(4, 0, "x")
    True
    """
    digest = hashlib.sha256(f"{seed}\x00{sample_id}".encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order
