"""Argument checks whose errors name the bad value, the allowed ones and the closest match.

`did_you_mean` is the project's one "Did you mean ...?" hint; `check_choice` uses it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def did_you_mean(
    value: Any, choices: Iterable[Any], template: str = " Did you mean {!r}?", cutoff: float = 0.6
) -> str:
    """`template` filled with the choice closest to `value` (difflib), or "" when none is close.

    >>> did_you_mean("srp", ["grpo", "srpo"])
    " Did you mean 'srpo'?"
    >>> did_you_mean("vstr", ["vstar"], " (did you mean {!r}?)")
    " (did you mean 'vstar'?)"
    >>> did_you_mean("xyz", ["grpo"])
    ''
    """
    hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=cutoff)
    return template.format(hint[0]) if hint else ""


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return `value` if it is one of `allowed`, else raise a ValueError with a suggestion.

    >>> check_choice("agg", "max", ("max", "mean"))
    'max'
    """
    allowed = tuple(allowed)
    if value in allowed:
        return value
    raise ValueError(f"{name}={value!r} is not one of {allowed}.{did_you_mean(value, allowed)}")
