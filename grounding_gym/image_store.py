"""`ImageStore`: decoded images shared by every env of a process, bounded in bytes.

Each env used to keep its own decode (and `fast_resize` pyramid) of every image it showed,
so a pool of N envs working on the same questions held N copies: memory grew with the number
of envs. An `ImageStore` keeps one copy per image for the whole process, evicting the least
recently used values once their bytes exceed `max_bytes`:

* values are what `views.ImageHandle` derives from an image source: the decode, reduced JPEG
  decodes (previews) and pyramid levels; `views.ImageHandle(source, store=...)` keeps nothing
  itself, so a handle is only a name and a header;
* keys start with `source_key(source)`: a file by its resolved path, size and modification
  time; encoded bytes by a BLAKE2 digest; a value-comparable source (a frozen dataclass such
  as the synthetic generator's `SyntheticImage`) by value; anything else (an in-memory PIL
  image, a lambda) by identity. Envs with separate copies of one dataset therefore share;
* thread-safe, and a value that several threads ask for at once is made once (the others wait
  for it), so threads stepping envs of one question decode its image once;
* a value larger than the whole budget is returned but not kept;
* full decodes run `max_decodes` at a time (default `MAX_DECODES` = 1; `ImageStore.decode_slot`,
  held by `views.ImageHandle`), so however many threads step envs, one image is being decoded;
* once the values it evicted add up to `RELEASE_MIN_BYTES`, the store hands the C heap's free
  pages back to the OS (`release_freed_memory`: glibc's `malloc_trim`), which the allocator
  would otherwise keep for the process after Pillow frees an image.

`shared_store(max_bytes)` is THE store of the process for a budget (created on first use;
every env asking for the same budget gets the same object; a forked child starts empty).
The envs' `image_cache_bytes` picks the budget: default `DEFAULT_IMAGE_CACHE_BYTES`, or the
`GROUNDING_GYM_IMAGE_CACHE_BYTES` environment variable when set. Resident memory is then at
most the budget, plus the one image being decoded and its pyramid levels being built, plus the
views in use, plus the process's fixed base (docs/benchmarks.md, "Memory against the number of
envs").
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DEFAULT_IMAGE_CACHE_BYTES",
    "IMAGE_CACHE_BYTES_ENV",
    "ImageStore",
    "StoreStats",
    "clear_shared_stores",
    "default_cache_bytes",
    "nbytes",
    "release_freed_memory",
    "shared_store",
    "source_key",
]

DEFAULT_IMAGE_CACHE_BYTES = 512 * 2**20
"""Default budget of the process's store: 512 MiB holds about 6 decoded 4096 x 4096 images with
their pyramids (89 MiB each), or 24 at 2048 px; one 8192 x 8192 image with its pyramid takes
358 MiB. Raise it when many distinct 8K images are in flight at once (they are re-decoded when
evicted; memory stays bounded either way)."""

IMAGE_CACHE_BYTES_ENV = "GROUNDING_GYM_IMAGE_CACHE_BYTES"
"""Environment variable that overrides `DEFAULT_IMAGE_CACHE_BYTES` (an integer, bytes)."""

MAX_DECODES = 1
"""Full decodes in flight at once per store (`ImageStore.decode_slot`): one, so the memory above
the budget is one image being decoded (up to 358 MiB for an 8192 x 8192 image with its pyramid)
whatever the number of env threads; JPEG decoding and drawing then use one core at a time."""

RELEASE_MIN_BYTES = 16 * 2**20
"""A store hands freed memory back to the OS (`release_freed_memory`) once the values it evicted
since the last time add up to this many bytes (one 2048 x 2048 RGB image)."""

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
"""Pillow's storage per pixel for single-byte modes; every other mode (RGB included) takes 4."""


def nbytes(value: Any) -> int:
    """Bytes of pixel memory held by a PIL image (Pillow stores RGB in 4 bytes per pixel) or a
    numpy array; 0 for anything else."""
    if isinstance(value, Image.Image):
        return value.width * value.height * _BYTES_PER_PIXEL.get(value.mode, 4)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return 0


@dataclass(frozen=True, eq=False)
class _Identity:
    """Key of a source compared by identity (it is kept alive by the key, so its id stays its)."""

    obj: Any

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def source_key(source: Any) -> Hashable:
    """Key under which the pixels of an `ImageSource` are stored.

    Files: `("file", resolved path, size, mtime_ns)` (an edited file gets a new key; a missing
    one keys by path, and decoding it raises as usual); encoded bytes: `("bytes", length,
    BLAKE2b digest)`; hashable sources that compare by value (frozen dataclasses such as
    `SyntheticImage` or a lazy base64 reference): the source itself; anything else (PIL images,
    which do not hash): its identity.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.path.realpath(os.fspath(source))
        try:
            stat = os.stat(path)
        except OSError:
            return ("file", path)
        return ("file", path, stat.st_size, stat.st_mtime_ns)
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest = hashlib.blake2b(source, digest_size=16).digest()
        return ("bytes", len(source), digest)
    try:
        hash(source)
    except TypeError:
        return _Identity(source)
    return ("value", source)


@dataclass(frozen=True)
class StoreStats:
    """Counters of an `ImageStore` since it was made.

    Attributes:
        hits: values found. misses: values made. evictions: values dropped for the budget.
        too_large: values returned without keeping them (each larger than the budget).
        waits: requests that waited for another thread making the same value.
        releases: calls of `release_freed_memory` after evictions; release_seconds: their
            wall time together, s.
    """

    hits: int
    misses: int
    evictions: int
    too_large: int
    waits: int
    releases: int = 0
    release_seconds: float = 0.0


class ImageStore:
    """Thread-safe map of decoded images by key, bounded by the bytes of its values (LRU).

    Args:
        max_bytes: budget, >= 0 (`nbytes` of every kept value together). 0 keeps nothing:
            every request makes its value again (concurrent requests still share one making).
        max_decodes: full decodes of its handles in flight at once (`decode_slot`), >= 1.

    Raises:
        ValueError: `max_bytes` is negative or not an int, or `max_decodes` < 1.
    """

    def __init__(self, max_bytes: int = DEFAULT_IMAGE_CACHE_BYTES, max_decodes: int = MAX_DECODES):
        self.max_bytes = check_cache_bytes(max_bytes)
        if isinstance(max_decodes, bool) or not isinstance(max_decodes, int) or max_decodes < 1:
            raise ValueError(f"max_decodes must be an int >= 1, got {max_decodes!r}")
        self.max_decodes = max_decodes
        self.decode_slot = threading.BoundedSemaphore(max_decodes)
        """Held by `views.ImageHandle` while it decodes (or draws) a full image for this store:
        threads beyond `max_decodes` wait, so the images being decoded at any moment add at most
        `max_decodes` full images to the store's budget."""
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self._bytes = 0
        self._counts = dict.fromkeys(
            ("hits", "misses", "evictions", "too_large", "waits", "releases"), 0
        )
        self._release_seconds = 0.0
        self._freed = 0  # bytes evicted or returned unkept since the last release

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value kept for `key`, else `make()` (kept if it fits the budget).

        `make` runs outside the lock; a thread asking for a key that another thread is making
        waits for that result (and sees its exception, if `make` raised) instead of making it
        again. Values must not be mutated by callers: they are shared.
        """
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self._counts["hits"] += 1
                return item[0]
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = Future()
                owner = True
                self._counts["misses"] += 1
            else:
                owner = False
                self._counts["waits"] += 1
        if not owner:
            return pending.result()
        try:
            value = make()
        except BaseException as err:
            with self._lock:
                del self._pending[key]
            pending.set_exception(err)
            raise
        with self._lock:
            del self._pending[key]
            release = self._keep(key, value)
        pending.set_result(value)
        if release:
            self._release()
        return value

    def peek(self, key: Hashable) -> Any:
        """The value kept for `key` (not counted, not made more recent), or None."""
        with self._lock:
            item = self._items.get(key)
        return None if item is None else item[0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of the values kept now (<= `max_bytes`)."""
        with self._lock:
            return self._bytes

    def stats(self) -> StoreStats:
        """Hit, miss, eviction and wait counts so far."""
        with self._lock:
            return StoreStats(**self._counts, release_seconds=self._release_seconds)

    def clear(self) -> None:
        """Drop every kept value (values being made are kept when they are done)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __reduce__(self) -> tuple:
        """Pickled or deep-copied (with an env, e.g. for a subprocess), a store arrives as the
        receiving process's shared store of the same budget: decodes are never copied."""
        return (shared_store, (self.max_bytes,))

    def __repr__(self) -> str:
        return (
            f"ImageStore({len(self)} values, {self.nbytes / 2**20:.1f} of "
            f"{self.max_bytes / 2**20:.1f} MiB)"
        )

    def _keep(self, key: Hashable, value: Any) -> bool:
        """Keep `value` (under the lock); True when the bytes freed since the last release reach
        `RELEASE_MIN_BYTES` (the caller then calls `_release` outside the lock)."""
        size = nbytes(value)
        if key in self._items:  # kept meanwhile (after a `clear` during its making)
            self._bytes -= self._items.pop(key)[1]
        if size > self.max_bytes:  # freed by the caller once used: released next time
            self._counts["too_large"] += 1
            self._freed += size
            return False
        self._items[key] = (value, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._items.popitem(last=False)
            self._bytes -= dropped
            self._freed += dropped
            self._counts["evictions"] += 1
        if self._freed < RELEASE_MIN_BYTES:
            return False
        self._freed = 0
        return True

    def _release(self) -> None:
        """`release_freed_memory`, timed (an evicted value still used by another thread is freed
        later; its pages go at the next release)."""
        start = time.perf_counter()
        if release_freed_memory():
            with self._lock:
                self._counts["releases"] += 1
                self._release_seconds += time.perf_counter() - start


def check_cache_bytes(value: Any, name: str = "image_cache_bytes") -> int:
    """`value` as a byte budget (an int >= 0), else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"{name} must be an int >= 0 (bytes; 0 keeps no decoded image), got {value!r}"
        )
    return int(value)


def default_cache_bytes() -> int:
    """`GROUNDING_GYM_IMAGE_CACHE_BYTES` when set, else `DEFAULT_IMAGE_CACHE_BYTES`.

    Raises:
        ValueError: the variable is set but not an integer >= 0.
    """
    text = os.environ.get(IMAGE_CACHE_BYTES_ENV)
    if text is None or not text.strip():
        return DEFAULT_IMAGE_CACHE_BYTES
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{IMAGE_CACHE_BYTES_ENV}={text!r} is not a byte count; set it to an integer >= 0, "
            f"e.g. {IMAGE_CACHE_BYTES_ENV}={2**30} for 1 GiB"
        )
    return value


def release_freed_memory() -> bool:
    """Hand the free pages of the C heap back to the OS; False where that is not available.

    Pillow allocates an image in blocks of up to 16 MiB (`PIL.Image.core.get_block_size()`).
    Once glibc has freed one such block, its dynamic mmap threshold rises above that size and
    later blocks come from the heaps of the allocating threads' arenas, where freed ones stay
    resident: a process that decodes, evicts and decodes again keeps the freed images (the
    scale-bias trainer peaked at 1.68 GB with 384 MiB in its store, docs/benchmarks.md).
    glibc's `malloc_trim(0)` walks every arena and returns their free pages (`madvise`); it
    costs about 0.15 ms per MiB returned, plus a page fault per 4 KiB when that memory is used
    again, and almost nothing when there is nothing to return. Linux with glibc only; elsewhere
    a no-op.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None (not Linux, another C library)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc is already loaded: no library is opened
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int  # int malloc_trim(size_t pad)
    return trim


_stores: dict[int, ImageStore] = {}
_stores_lock = threading.Lock()


def shared_store(max_bytes: int | None = None) -> ImageStore:
    """The process's `ImageStore` with budget `max_bytes` (None: `default_cache_bytes()`).

    Every caller asking for the same budget gets the same store, so envs built separately
    (a vector env's, a trainer's rollout and evaluation pools) share decodes.
    """
    budget = default_cache_bytes() if max_bytes is None else check_cache_bytes(max_bytes)
    with _stores_lock:
        store = _stores.get(budget)
        if store is None:
            store = _stores[budget] = ImageStore(budget)
        return store


def clear_shared_stores() -> None:
    """Drop the values of every shared store (tests start from empty stores with it)."""
    with _stores_lock:
        stores = list(_stores.values())
    for store in stores:
        store.clear()


def _forget_stores_in_child() -> None:
    """A forked child (AsyncVectorEnv workers) starts with empty stores and a fresh lock: the
    parent's lock may have been held by another thread at the fork."""
    global _stores_lock
    _stores.clear()
    _stores_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_stores_in_child)
