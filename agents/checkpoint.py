"""Checkpoint files: atomic `torch.save`, a safe `torch.load`, and RNG snapshots in plain types.

Checkpoints are untrusted input (they are shared, downloaded, swapped in pull requests): every
load goes through `load_checkpoint_file`, which uses `torch.load(weights_only=True)` and so runs
no code from the file. What the trainer saves is made of tensors and plain Python types only
(RNG states included), so its own checkpoints load that way. The other atomic writers live in
`grounding_gym.atomic`.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding_gym.atomic import atomic_open

__all__ = [
    "UnsafeCheckpointError",
    "atomic_torch_save",
    "get_rng_state",
    "load_checkpoint_file",
    "set_rng_state",
]


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read without unpickling arbitrary objects (or at all)."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` atomically."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def load_checkpoint_file(path: str | os.PathLike) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)` with errors that name the file.

    Raises:
        FileNotFoundError: no file at `path`.
        UnsafeCheckpointError: the file needs objects other than tensors and plain Python
            types (loading it would unpickle, i.e. run, code from the file: it is refused, and
            nothing from it runs), or it is truncated / not a torch checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint file at {file}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[-1].strip()[:300]
        raise UnsafeCheckpointError(
            f"{file}: refused, it needs unpickling of objects other than tensors and plain "
            f"Python types, which could run code from the file (torch said: {first}). Checkpoints "
            "written by this project never do; re-save a checkpoint you trust with tensors and "
            "plain types only"
        ) from err
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile) as err:
        raise UnsafeCheckpointError(
            f"{file}: not a readable torch checkpoint (truncated or corrupt: "
            f"{type(err).__name__}: {str(err)[:200]}); write it again or restore a copy"
        ) from err


def get_rng_state() -> dict[str, Any]:
    """States of Python's, NumPy's global and torch's CPU (and CUDA, if present) generators,
    as tensors and plain Python types (so `load_checkpoint_file` reads them back)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` returned."""
    random.setstate(state["python"])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
