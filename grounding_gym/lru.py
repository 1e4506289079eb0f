"""`LRU`: a bounded map that drops the least recently used value first.

The caches of decoded images (`views.ImageCache`), of first views and shared images
(`agents.rollout`) and of PNG encodings (`remote.codec`) all keep a few large values by key.
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
    """

    def __init__(self, max_items: int, name: str = "cache size"):
        if max_items < 0:
            raise ValueError(f"{name} must be >= 0, got {max_items}")
        self.max_items = max_items
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
        """Keep `value` for `key` as the most recent; drop the oldest beyond `max_items`."""
        if self.max_items:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
