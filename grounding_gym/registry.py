"""`Registry`: name -> object or lazy `"module:attr"` string, with a requirement and a did-you-mean.

Datasets, eval agents, policies and advantage estimators are each one `Registry`; what differs
between them (a dataset's default bin edges, an estimator's call convention) stays beside them.

    >>> shapes = Registry("shape")
    >>> shapes.register("square", "fractions:Fraction", description="a lazy entry")
    >>> shapes.get("square").__name__
    'Fraction'
    >>> shapes.get("sqare")
    Traceback (most recent call last):
    ...
    ValueError: Unknown shape 'sqare'. Did you mean 'square'? Registered: ['square'].
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from grounding_gym.validation import did_you_mean

__all__ = ["Entry", "Registry", "import_entry_point"]

T = TypeVar("T")


def import_entry_point(path: str, what: str, requires: str = "") -> Any:
    """The attribute named by `"module:attr"`.

    Raises:
        ImportError: the module does not import (names `requires`, the extra to install).
        ValueError: `path` is not `"module:attr"`, or the module has no such attribute.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{what}: {path!r} is not a 'module:attr' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        needs = f" (needs {requires!r})" if requires else ""
        raise ImportError(
            f"{what} needs module {module_name!r}{needs}, which failed to import ({exc}). "
            "Install the extra that provides it, e.g. `pip install -e '.[all]'`."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ValueError(f"{what}: module {module_name!r} has no attribute {attr!r}") from exc


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name.

    Attributes:
        name: the registry key.
        target: the object, or a `"module:attr"` string imported on first `load`.
        description: one line for `grounding-gym list`.
        requires: the import the target needs beyond `grounding_gym` ("" for none).
    """

    name: str
    target: T | str
    description: str = ""
    requires: str = ""

    def load(self, kind: str = "entry") -> T:
        """The object, importing a lazy `"module:attr"` target."""
        if isinstance(self.target, str):
            return import_entry_point(self.target, f"{kind} {self.name!r}", self.requires)
        return self.target


class Registry(Generic[T]):
    """Names -> objects (or lazy `"module:attr"` strings) of one kind.

    Args:
        kind: what is registered, for messages ("dataset", "agent", ...).
        same: decides whether re-registering `name` to another target is the same target (a
            no-op replace, e.g. after `importlib.reload`); default: equality.
        how_to_add: appended to the unknown-name error, e.g. "Add one with @register(...)."
    """

    def __init__(
        self,
        kind: str,
        *,
        same: Callable[[Any, Any], bool] | None = None,
        how_to_add: str = "",
    ) -> None:
        self.kind = kind
        self._same = same or (lambda old, new: old is new or old == new)
        self._how_to_add = how_to_add
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, target: T | str, *, description: str = "", requires: str = ""
    ) -> None:
        """Register `target` under `name`; re-registering the same target replaces it.

        Raises:
            ValueError: `name` is taken by a different target, or a string target is not
                `"module:attr"`.
        """
        if isinstance(target, str) and ":" not in target:
            raise ValueError(
                f"{self.kind} {name!r}: a string target must be 'module:attr', got {target!r}"
            )
        old = self._entries.get(name)
        if old is not None and not self._same(old.target, target):
            raise ValueError(
                f"{self.kind.capitalize()} {name!r} is already registered to {_label(old.target)}"
                f"; cannot register {_label(target)} under the same name. Pick another name."
            )
        self._entries[name] = Entry(name, target, description, requires)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The `Entry` registered as `name`.

        Raises:
            ValueError: unknown name (the closest registered name, then all of them).
        """
        if name in self._entries:
            return self._entries[name]
        raise ValueError(
            f"Unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
            f"Registered: {self.names()}.{' ' + self._how_to_add if self._how_to_add else ''}"
        )

    def get(self, name: str) -> T:
        """The object registered as `name`, imported on first use if lazy (see `entry`)."""
        return self.entry(name).load(self.kind)

    def copy(self) -> Registry[T]:
        """A registry with the same entries (tests register into a copy)."""
        new: Registry[T] = Registry(self.kind, same=self._same, how_to_add=self._how_to_add)
        new._entries = dict(self._entries)
        return new

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _label(target: Any) -> str:
    """`module.qualname` for a function or class, else its repr."""
    qualname = getattr(target, "__qualname__", None)
    return f"{target.__module__}.{qualname}" if qualname else repr(target)
