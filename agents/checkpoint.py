"""Checkpoint files: atomic `torch.save` and RNG snapshots, so a resumed run continues exactly.

The other atomic writers live in `grounding_gym.atomic`.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from grounding_gym.atomic import atomic_open

__all__ = ["atomic_torch_save", "get_rng_state", "set_rng_state"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` atomically."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def get_rng_state() -> dict[str, Any]:
    """States of Python's, NumPy's global and torch's CPU (and CUDA, if present) generators."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
