"""Uncertainty of accuracies: Wilson intervals, percentile bootstrap, paired differences.

* `wilson_interval(k, n)`: the 95 % Wilson score interval of a proportion k / n (good at small n
  and at 0 % or 100 %, where the normal interval collapses to a point).
* `bootstrap_ci(values)`: the mean and percentile-bootstrap interval of values (per-seed metrics,
  or paired per-sample differences), seeded so a report rebuilds byte for byte.
* `paired_bootstrap(scores_a, scores_b)`: run B minus run A over the sample ids both answered,
  resampling samples (one function, so gain / harm counts can be added beside it).

Proportions are fractions in [0, 1]; callers scale to percent for display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["PairedDifference", "bootstrap_ci", "paired_bootstrap", "wilson_interval"]

_MAX_DRAWS = 4_000_000
"""Resampled indices held in memory at once (int64): larger problems are drawn in chunks."""


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval of the proportion `successes / n` at `level`.

    `successes` is rounded to a whole count (an accuracy times n). n = 0 gives (nan, nan).

    >>> low, high = wilson_interval(5, 5)
    >>> round(low, 3), high
    (0.566, 1.0)
    >>> [round(v, 3) for v in wilson_interval(15, 30)]
    [0.332, 0.668]
    """
    if n <= 0:
        return math.nan, math.nan
    k = min(max(round(successes), 0), n)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends, not float round-off
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` (NaN ignored) and its percentile-bootstrap
    interval at `level` (`resamples` resamples of the values with replacement, seeded).

    For a paired comparison pass the per-seed (or per-sample) differences. One finite value
    gives (v, nan, nan); none gives (nan, nan, nan).

    >>> mean, low, high = bootstrap_ci([0.1, 0.2, 0.3, 0.4])
    >>> round(mean, 2), low < mean < high
    (0.25, True)
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan, math.nan
    rng = np.random.default_rng(seed)
    step = max(1, _MAX_DRAWS // x.size)
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, size=(min(step, resamples - start), x.size))].mean(axis=1)
            for start in range(0, resamples, step)
        ]
    )
    tail = (1.0 - level) / 2.0
    return float(x.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


@dataclass(frozen=True)
class PairedDifference:
    """Run B minus run A over the samples both answered (fractions, not percent).

    Attributes:
        n: shared sample ids (the pairs resampled).
        mean: mean of B - A over those samples (an accuracy difference for 0/1 scores).
        low, high: its percentile-bootstrap interval (nan when n < 2).
        level: the interval's coverage, e.g. 0.95.
        only_a, only_b: sample ids answered by one run only (left out of the pairs).
    """

    n: int
    mean: float
    low: float
    high: float
    level: float
    only_a: int
    only_b: int


def paired_bootstrap(
    scores_a: Mapping[str, float],
    scores_b: Mapping[str, float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """B - A over the sample ids in both mappings, with a bootstrap over samples.

    Args:
        scores_a, scores_b: sample id -> score of that run (1.0 / 0.0 for correct / wrong; a
            run that answered a sample several times passes its mean).
        level, resamples, seed: as in `bootstrap_ci`.

    >>> a = {"q1": 1.0, "q2": 0.0, "q3": 0.0, "q4": 1.0}
    >>> b = {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 1.0, "q5": 0.0}
    >>> d = paired_bootstrap(a, b)
    >>> d.n, d.mean, d.only_a, d.only_b
    (4, 0.5, 0, 1)
    """
    shared = sorted(set(scores_a) & set(scores_b))
    diffs = [float(scores_b[k]) - float(scores_a[k]) for k in shared]
    mean, low, high = bootstrap_ci(diffs, level=level, resamples=resamples, seed=seed)
    return PairedDifference(
        n=len(shared),
        mean=mean,
        low=low,
        high=high,
        level=level,
        only_a=len(set(scores_a) - set(scores_b)),
        only_b=len(set(scores_b) - set(scores_a)),
    )
