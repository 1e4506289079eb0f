"""Atomic file writes: results, tables, plots and checkpoints that survive a crash mid-write.

Every writer goes to a temporary file in the destination's folder, flushes and fsyncs it,
`os.replace`s it over the destination (atomic on POSIX and Windows) and fsyncs the folder:
a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FolderLockedError",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "folder_lock",
]

LOCK_FILE = ".grounding-gym.lock"
"""Name of the lock file `folder_lock` keeps in a folder (left in place: removing it would race)."""


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock (it is writing results there)."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "a run") -> Iterator[Path]:
    """Hold an exclusive lock on `folder` (an OS advisory lock on `folder/LOCK_FILE`, released
    when the process exits, however it exits) or fail at once.

    Raises:
        FolderLockedError: another process holds it; the message names the folder and that
            process's pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; the run goes on unlocked
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()[:20] or "unknown"
                raise FolderLockedError(
                    f"{folder} is in use by {what} in another process (pid {holder}, lock "
                    f"{path}); wait for it to finish or choose another output folder"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on a clean exit it replaces `path` atomically.

    On an exception the temporary file is removed, `path` is left untouched, and the
    exception propagates. The new file gets the usual permissions (umask), not mkstemp's 0600.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write `obj` as JSON to `path` atomically (NaN written as `NaN`, as `json` does)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; platforms that cannot open folders (Windows) skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
            os.fsync(fd)
    finally:
        os.close(fd)
