"""`LRU`: a bounded map that drops the least recently used value first.

The caches of decoded images (`views.ImageCache`), of first views (`renderer.FirstViewCache`), of
a training pool's shared images and of PNG encodings (`remote.codec`) all keep a few large
values by key.
Not thread-safe: callers that share one across threads hold their own lock around it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["LRU"]


class LRU:
    """At most `max_items` values by key; the least recently used goes first (0: no caching).

    Args:
        max_items: values kept, >= 0.
        name: what `max_items` is called in the error for a negative size.
        max_bytes: optional budget on the sum of `size(value)` (bytes); the oldest values go
            until the sum fits, and a value larger than the whole budget is not kept.
        size: bytes of a value (needed with `max_bytes`).
    """

    def __init__(
        self,
        max_items: int,
        name: str = "cache size",
        max_bytes: int | None = None,
        size: Callable[[Any], int] | None = None,
    ):
        if max_items < 0:
            raise ValueError(f"{name} must be >= 0, got {max_items}")
        if max_bytes is not None and (max_bytes < 0 or size is None):
            raise ValueError(f"max_bytes must be >= 0 and come with size=, got {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._size = size
        self._bytes = 0
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The value kept for `key`, else `make()` (then kept)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self.put(key, value)
        return value

    def peek(self, key: Any) -> Any:
        """The value kept for `key` (now the most recent), or None."""
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: Any, value: Any) -> None:
        """Keep `value` for `key` as the most recent; drop the oldest beyond `max_items` (and
        beyond `max_bytes`)."""
        if not self.max_items:
            return
        if self._size is None:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
            return
        if key in self._items:
            self._bytes -= self._size(self._items.pop(key))
        nbytes = self._size(value)
        if self.max_bytes is not None and nbytes > self.max_bytes:
            return
        self._items[key] = value
        self._bytes += nbytes
        while len(self._items) > self.max_items or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            self._bytes -= self._size(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        """Drop every value."""
        self._items.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Sum of `size(value)` over the values kept (0 without `size`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
