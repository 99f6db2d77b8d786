"""Seeded percentile-bootstrap 95% intervals of per-example means (numpy only), and the
per-example outcome strings the sweeps store.

Shares and paired gains have exact intervals (fragile.intervals); the bootstrap is kept where
no exact one fits: the mean per-example masking gap (FGSM gain minus strong-attack gain, in
{−2, …, 2}). It redraws the examples with replacement `resamples` times and takes the 2.5th
and 97.5th percentiles of the redrawn means; the redraws depend only on (seed, n, resamples).
"""

from __future__ import annotations

import functools

import numpy as np

LEVEL = 0.95


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
