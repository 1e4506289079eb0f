"""Argument checks whose errors name the bad value, the allowed ones and the closest match.

`did_you_mean` is the one did-you-mean hint; `check_choice` checks a value, `check_keys` the keys
of a mapping, and `check_call_kwargs` the keyword arguments of a call before it is made (unknown
names and missing required ones, instead of Python's bare `TypeError`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def did_you_mean(
    value: Any, choices: Iterable[Any], template: str = " Did you mean {!r}?", cutoff: float = 0.6
) -> str:
    """`template` filled with the choice closest to `value` (difflib), or "" when none is close.

    >>> did_you_mean("anser", ["answer", "format"])
    " Did you mean 'answer'?"
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


def check_keys(what: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise a ValueError naming the first key of `given` not in `allowed`, and the closest one.

    >>> check_keys("reward_weights", ["anser"], ["answer", "format", "grounding"])
    Traceback (most recent call last):
    ...
    ValueError: reward_weights: unknown key 'anser'. Did you mean 'answer'? Valid keys: ...
    """
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            raise ValueError(
                f"{what}: unknown key {key!r}.{did_you_mean(key, allowed)} Valid keys: {allowed}"
            )


def check_call_kwargs(
    what: str, func: Callable[..., Any], kwargs: Mapping[str, Any], positional: int = 0
) -> None:
    """Check `func(*args, **kwargs)` against `func`'s signature before calling it, where the
    first `positional` parameters are given positionally.

    A function that takes `**kwargs` accepts any name (only its required arguments are checked).

    >>> def load(path, *, limit=None): ...
    >>> check_call_kwargs("dataset 'x'", load, {"limt": 3})
    Traceback (most recent call last):
    ...
    ValueError: dataset 'x': unknown key 'limt'. Did you mean 'limit'? Valid keys: ['limit', 'path']

    Raises:
        ValueError: an unknown keyword (with the closest parameter name), or a required
            argument missing from `kwargs` (named).
    """
    named: dict[str, inspect.Parameter] = {}
    skip = positional + isinstance(func, type)  # each __init__ also takes `self` first
    for target in _signature_chain(func):
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):  # builtins without a signature: let the call decide
            return
        for name, p in list(params.items())[skip:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                named.setdefault(name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            check_keys(what, kwargs, named)
            break
    missing = [n for n, p in named.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise ValueError(f"{what}: missing required argument {missing[0]!r}; pass {missing[0]}=...")


def _signature_chain(func: Callable[..., Any]) -> list[Callable[..., Any]]:
    """`[func]`, or for a class the `__init__` of each class in its MRO: a subclass that passes
    `**kwargs` on to its parent accepts the parent's names too."""
    if not isinstance(func, type):
        return [func]
    chain = [cls.__dict__["__init__"] for cls in func.__mro__ if "__init__" in cls.__dict__]
    return [init for init in chain if init is not object.__init__] or [func]
