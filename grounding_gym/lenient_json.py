"""JSON as models write it: decoded strictly, else after light repairs; numbers of nested lists.

`parse_action` reads tool-call arguments and MGPO box lists with these. Ints are read as floats
(no int-size limit, no overflow); NaN/Infinity literals are rejected.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TRAILING_COMMA_RE = re.compile(r",\s*([\]}])")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


# Ints are read as floats (no int-size limit, no overflow); NaN/Infinity literals are rejected.
_DECODER = json.JSONDecoder(parse_int=float, parse_constant=_reject_constant)


def load_json_at(text: str, start: int) -> tuple[Any, bool] | None:
    """Decode the JSON value at `text[start]`: strictly, else after light repairs.

    Returns:
        (value, strict) or None. Repairs: single quotes -> double, trailing commas dropped.
    """
    if start < 0:
        return None
    snippet = text[start:]
    repaired = _TRAILING_COMMA_RE.sub(r"\1", snippet.replace("'", '"'))
    for strict, candidate in ((True, snippet), (False, repaired)):
        try:
            return _DECODER.raw_decode(candidate)[0], strict
        except (ValueError, RecursionError):
            continue
    return None


def flatten_numbers(value: Any) -> list[float] | None:
    """Numbers of a (nested) list, depth-first; None if anything else is inside."""
    if not isinstance(value, list):
        return None
    numbers: list[float] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            numbers.append(float(item))
        else:
            return None
    return numbers
