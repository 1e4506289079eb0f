"""Datasets by name: `register_dataset(name, loader)` and `make_dataset(name, **kwargs)`.

A loader is any callable returning a `Sequence[Sample]` (len + integer indexing). Loaders must
not decode images: a dataset of 10,000 rows is built from metadata alone.

A dataset may declare default scale-bin edges on the target's relative area suited to its
targets (`register_dataset(..., bin_edges=...)` or `declare_bin_edges`); the env's `info`, the
eval summary and plots use them unless edges are given (`dataset_bin_edges`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grounding_gym.data.sample import Sample
from grounding_gym.registry import Registry
from grounding_gym.validation import check_call_kwargs

DatasetLoader = Callable[..., Sequence[Sample]]

DATASETS: Registry[DatasetLoader] = Registry("dataset")
"""Every dataset loader by name."""
_BIN_EDGES: dict[str, tuple[tuple[float, ...], str]] = {}


def register_dataset(
    name: str, loader: DatasetLoader, *, bin_edges: Sequence[float] | None = None, why: str = ""
) -> None:
    """Register `loader` under `name`; re-registering the same loader is a no-op.

    Args:
        name: the registry key.
        loader: `loader(**kwargs) -> Sequence[Sample]`.
        bin_edges: default scale-bin edges (relative area) for this dataset's targets, if any.
        why: one line on why these edges suit the targets (recorded in eval summaries).

    Raises:
        ValueError: `name` is already taken by a different loader, or bad `bin_edges`.
    """
    DATASETS.register(name, loader)
    if bin_edges is not None:
        declare_bin_edges(name, bin_edges, why)


def declare_bin_edges(name: str, bin_edges: Sequence[float], why: str = "") -> None:
    """Declare the default scale-bin edges (relative area, strictly increasing in (0, 1)) of the
    dataset `name`, with a line on why they suit its targets."""
    from grounding_gym.scale import check_bin_edges

    _BIN_EDGES[name] = (check_bin_edges(bin_edges), why)


def dataset_bin_edges(name: Any) -> tuple[tuple[float, ...], str] | None:
    """`(edges, why)` declared for the dataset `name`, or None (undeclared, or not a name)."""
    return _BIN_EDGES.get(name) if isinstance(name, str) else None


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return DATASETS.names()


def dataset_loader(name: str) -> DatasetLoader:
    """The loader registered as `name`.

    Raises:
        ValueError: unknown name (with the closest registered name).
    """
    return DATASETS.get(name)


def make_dataset(name: str, **kwargs: Any) -> Sequence[Sample]:
    """Build the dataset registered as `name` with the loader's keyword arguments.

    Raises:
        ValueError: unknown name (with the closest registered name), an unknown keyword
            argument (with the closest of the loader's), or a missing required one (named).
    """
    loader = dataset_loader(name)
    check_call_kwargs(f"dataset {name!r} (dataset_kwargs / data_dir)", loader, kwargs)
    return loader(**kwargs)
