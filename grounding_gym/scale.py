"""Relative area and scale bins.

Relative area = box area / original image area (both original px), in (0, 1].
Scale bins follow `numpy.digitize` on the edges: with the default edges `(0.1, 0.3)` an area
below 0.1 is bin 0 ("small"), [0.1, 0.3) bin 1 ("medium"), >= 0.3 bin 2 ("large").
`equal_bin_edges(K)` gives SRPO's K equal-width bins over [0, 1]; `quantile_bin_edges(areas, K)`
K equal-count bins of a run's target areas (`--bin-edges quantiles:K`). Datasets declare their
own default edges (`grounding_gym.data.registry.dataset_bin_edges`): log-decade edges such as
(1e-3, 1e-2) for high-resolution benchmarks, whose targets cover 1e-5..1e-1 of the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from grounding_gym.geometry import Box

DEFAULT_BIN_EDGES: tuple[float, ...] = (0.1, 0.3)
"""Edges for a dataset that declares none, and for large objects (RefCOCO)."""
HR_BIN_EDGES: tuple[float, ...] = (1e-3, 1e-2)
"""Log-decade edges of high-resolution data (V*, HR-Bench, MME-RealWorld, TreeBench,
synthetic-hr): their targets cover about 1e-5..1e-1 of the image."""
DEFAULT_BIN_NAMES: tuple[str, ...] = ("small", "medium", "large")


def relative_area(box_orig: Box, image_size: tuple[int, int]) -> float:
    """Area of `box_orig` over the area of a `(w, h)` image, both in original px."""
    return box_orig.area / float(image_size[0] * image_size[1])


def check_bin_edges(edges: Sequence[float], allow_empty: bool = False) -> tuple[float, ...]:
    """Validate scale-bin edges: strictly increasing values inside (0, 1); `()` (one bin) only
    with `allow_empty`."""
    edges = tuple(float(e) for e in edges)
    if not edges and allow_empty:
        return edges
    if not edges or any(not 0.0 < e < 1.0 for e in edges) or list(edges) != sorted(set(edges)):
        raise ValueError(
            f"scale bin edges must be strictly increasing values in (0, 1), got {edges}"
        )
    return edges


def equal_bin_edges(num_bins: int) -> tuple[float, ...]:
    """Edges of `num_bins` equal-width bins over [0, 1] (SRPO's K bins).

    >>> equal_bin_edges(4)
    (0.25, 0.5, 0.75)
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    return tuple(k / num_bins for k in range(1, num_bins))


QUANTILES_PREFIX = "quantiles:"


def parse_bin_spec(text: str) -> tuple[float, ...] | int:
    """`"E1,E2,..."` -> edges (checked), or `"quantiles:K"` -> K (>= 2).

    >>> parse_bin_spec("0.001,0.01"), parse_bin_spec("quantiles:4")
    ((0.001, 0.01), 4)
    """
    text = text.strip()
    if text.startswith(QUANTILES_PREFIX):
        count = text[len(QUANTILES_PREFIX) :]
        if not (count.isascii() and count.isdigit()) or int(count) < 2:
            raise ValueError(f"quantiles:K needs an integer K >= 2, got {text!r}")
        return int(count)
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise ValueError(
            f"bin edges are comma-separated numbers or quantiles:K, got {text!r}"
        ) from exc
    return check_bin_edges(values)


def quantile_bin_edges(rel_areas: Sequence[float | None], num_bins: int) -> tuple[float, ...]:
    """Edges splitting `rel_areas` (NaN/None skipped) into `num_bins` equal-count bins: the
    k/K quantiles (nearest rank), k = 1..K-1; tied quantiles merge, so fewer bins may result.

    >>> quantile_bin_edges([1e-4, 2e-4, 1e-3, 2e-3, 1e-2, 2e-2], 3)
    (0.001, 0.01)

    Raises:
        ValueError: `num_bins` < 2, or fewer than `num_bins` areas.
    """
    values = sorted(float(a) for a in rel_areas if a is not None and not math.isnan(float(a)))
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if len(values) < num_bins:
        raise ValueError(
            f"quantiles:{num_bins} needs at least {num_bins} episodes with a target, got "
            f"{len(values)}"
        )
    cuts = [values[math.ceil(k * len(values) / num_bins)] for k in range(1, num_bins)]
    edges = sorted({c for c in cuts if 0.0 < c < 1.0})
    if not edges:
        raise ValueError(
            f"quantiles:{num_bins}: every target has the same area ({values[0]:g}); no bins to "
            "split"
        )
    return tuple(edges)


def scale_bins(rel_areas: Sequence[float] | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """THE scale-bin function: (B,) int64 bin of each relative area, the number of edges <= it
    (`numpy.digitize`); NaN (no box) -> -1. `edges`: increasing; `()` is one bin.

    >>> scale_bins([0.05, 0.1, 0.5, float("nan")], (0.1, 0.3)).tolist()
    [0, 1, 2, -1]
    """
    values = np.asarray(rel_areas, dtype=np.float64)
    bins = np.digitize(np.nan_to_num(values, nan=0.0), np.asarray(edges, dtype=np.float64))
    return np.where(np.isnan(values), -1, bins).astype(np.int64)


def scale_bin(rel_area: float, edges: Sequence[float] = DEFAULT_BIN_EDGES) -> int:
    """`scale_bins` of one relative area.

    >>> scale_bin(0.05), scale_bin(0.1), scale_bin(0.5)
    (0, 1, 2)
    """
    return int(scale_bins([rel_area], edges)[0])


def bin_names(edges: Sequence[float] = DEFAULT_BIN_EDGES) -> tuple[str, ...]:
    """Human names of the bins: small/medium/large for 3 bins, else "[lo,hi)" ranges."""
    if len(edges) == 2:
        return DEFAULT_BIN_NAMES
    bounds = (0.0, *edges, 1.0)
    return tuple(f"[{lo:g},{hi:g})" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))


def scale_bin_name(rel_area: float, edges: Sequence[float] = DEFAULT_BIN_EDGES) -> str | None:
    """Name of `rel_area`'s bin, or None for NaN (no box)."""
    index = scale_bin(rel_area, edges)
    return None if index < 0 else bin_names(edges)[index]
