"""Seeded percentile-bootstrap 95% confidence intervals for shares of examples (numpy only).

Every accuracy and targeting percentage is the mean of a 0/1 outcome per example. The
bootstrap redraws the examples with replacement `resamples` times and takes the 2.5th and
97.5th percentiles of the redrawn means. The redraws depend only on (seed, n, resamples), so
every number over the same examples uses the same redraws: a difference between two
settings (e.g. hardened minus original accuracy) is a paired bootstrap.
"""

from __future__ import annotations

import functools

import numpy as np

LEVEL = 0.95
DIGITS = 6  # interval ends are rounded: percentile interpolation leaves float noise (55.195000000000001)


def outcomes(flags: str) -> np.ndarray:
    """A '0'/'1' string (as the sweeps store them) as a 0/1 array."""
    return np.frombuffer(flags.encode("ascii"), dtype=np.uint8) - ord("0")


@functools.lru_cache(maxsize=8)
def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def mean_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of `values` (one per example)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or resamples <= 0:
        raise ValueError("mean_ci needs at least one value and one resample")
    means = values[_indices(values.size, resamples, seed)].mean(axis=1)
    low, high = np.percentile(means, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(low), float(high)


def share_ci(flags: str, resamples: int, seed: int, scale: float = 1.0) -> list[float] | None:
    """[low, high] of the share of '1's in `flags` (times `scale`, e.g. 100 for percent);
    None when there is nothing to resample (no flags stored, or resamples = 0)."""
    if not flags or resamples <= 0:
        return None
    low, high = mean_ci(outcomes(flags), resamples, seed)
    return [round(scale * low, DIGITS), round(scale * high, DIGITS)]


def difference_ci(first: str, second: str, resamples: int, seed: int) -> list[float] | None:
    """[low, high] of share(second) − share(first) over the same examples (paired)."""
    if not first or not second or resamples <= 0:
        return None
    if len(first) != len(second):
        raise ValueError(f"paired outcomes differ in length: {len(first)} vs {len(second)}")
    low, high = mean_ci(outcomes(second).astype(float) - outcomes(first), resamples, seed)
    return [round(low, DIGITS), round(high, DIGITS)]
