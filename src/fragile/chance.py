"""What share of examples would Algorithm 1 give a random set of kernels of S's size?

Algorithm 1 counts an example when the mean distance d over S exceeds the mean over S'. That
share alone says nothing: if a few kernels move a lot for every example (because they are
large, or sit where the attack's pixels are), any set holding them wins. The chance baseline
draws `subsets` random kernel sets of size |S| from the kernels of S ∪ S' (seeded numpy
Generator; the rest are the random S'), computes each one's share on the same distances, and
places the observed share among them: its mid-rank percentile and the one-sided permutation
p-value (1 + #{random ≥ observed}) / (1 + R) (Phipson & Smyth 2010: never 0, valid at any R).

All shares go through one vectorised path (a subset-indicator matrix times the distances), so
the observed share and the random ones use the same arithmetic. Sums, not means, are compared
(|S'|·ΣS > |S|·ΣS'), and an infinite relative distance (a map the attack wakes from all zero)
counts as larger than any finite one, as a plain mean would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ChanceBaseline:
    """The observed share of examples with S_f > S_n and where it falls among random sets."""

    observed: float
    chance_mean: float  # mean share over the random sets
    chance_median: float
    chance_low: float  # 2.5th and 97.5th percentiles of the random shares
    chance_high: float
    percentile: float  # mid-rank percentile of `observed` among the random shares, 0..100
    p_value: float  # one-sided, observed above chance: (1 + #{random ≥ observed}) / (1 + R)
    p_value_below: float  # the other side: (1 + #{random ≤ observed}) / (1 + R)
    subsets: int  # R
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def subset_shares(distances: np.ndarray, fragile_masks: np.ndarray, null_masks: np.ndarray) -> np.ndarray:
    """(R,) share of examples whose mean distance over each row's fragile kernels exceeds the
    mean over its null kernels; (n_examples, K) distances, (R, K) boolean masks."""
    return _above(distances, fragile_masks, null_masks).mean(axis=0)


def example_targets(distances: np.ndarray, fragile: Sequence[int], null: Sequence[int]) -> np.ndarray:
    """(n_examples,) bool: Algorithm 1 per example (S_f > S_n), by the arithmetic of the shares."""
    kernels = np.asarray(distances).shape[1]
    return _above(distances, _mask(fragile, kernels)[None], _mask(null, kernels)[None])[:, 0]


def _above(distances: np.ndarray, fragile_masks: np.ndarray, null_masks: np.ndarray) -> np.ndarray:
    """(n_examples, R) bool: example i's mean over row r's fragile kernels exceeds its null mean."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"distances must be (examples, kernels), got shape {d.shape}")
    if np.isnan(d).any():
        raise ValueError("distances hold NaN; Algorithm 1 needs a number for every example and kernel")
    fragile = np.asarray(fragile_masks, dtype=bool)
    null = np.asarray(null_masks, dtype=bool)
    sizes_f = fragile.sum(axis=1).astype(np.float64)
    sizes_n = null.sum(axis=1).astype(np.float64)
    if (sizes_f == 0).any() or (sizes_n == 0).any():
        raise ValueError("every subset needs at least one fragile and one null kernel")
    infinite = np.isinf(d)
    finite = np.where(infinite, 0.0, d)
    sum_f = finite @ fragile.T.astype(np.float64)  # (n_examples, R)
    sum_n = finite @ null.T.astype(np.float64)
    above = sizes_n * sum_f > sizes_f * sum_n
    if infinite.any():
        inf_f = infinite.astype(np.float64) @ fragile.T.astype(np.float64) > 0
        inf_n = infinite.astype(np.float64) @ null.T.astype(np.float64) > 0
        # inf beats any finite mean; inf against inf is a tie, and a tie does not count
        above = np.where(inf_f | inf_n, inf_f & ~inf_n, above)
    return above


def targeting_share(distances: np.ndarray, fragile: Sequence[int], null: Sequence[int]) -> float:
    """Algorithm 1's share: examples with mean d over S > mean d over S' (ties do not count)."""
    kernels = np.asarray(distances).shape[1]
    return float(subset_shares(distances, _mask(fragile, kernels)[None], _mask(null, kernels)[None])[0])


def random_subsets(pool: Sequence[int], size: int, count: int, kernels: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(fragile, null) boolean masks, each (count, kernels): `count` uniform random `size`-subsets
    of `pool` and their complements within `pool`."""
    pool = np.asarray(sorted(pool), dtype=np.int64)
    if not 0 < size < len(pool):
        raise ValueError(f"subset size must be between 1 and {len(pool) - 1}, got {size}")
    chosen = rng.permuted(np.tile(pool, (count, 1)), axis=1)[:, :size]
    fragile = np.zeros((count, kernels), dtype=bool)
    np.put_along_axis(fragile, chosen, True, axis=1)
    null = np.zeros((count, kernels), dtype=bool)
    null[:, pool] = True
    return fragile, null & ~fragile


def chance_baseline(distances: np.ndarray, fragile: Sequence[int], null: Sequence[int],
                    subsets: int = 1000, seed: int = 0) -> ChanceBaseline:
    """The observed share and its place among `subsets` random sets of |S| kernels drawn from
    S ∪ S'. The draws depend only on (seed, S ∪ S', |S|, subsets): every ε and reading of one
    checkpoint is compared with the same random sets."""
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    if set(fragile) & set(null):
        raise ValueError("S and S' overlap")
    kernels = np.asarray(distances).shape[1]
    observed = targeting_share(distances, fragile, null)
    random_f, random_n = random_subsets([*fragile, *null], len(fragile), subsets, kernels,
                                        np.random.default_rng(seed))
    shares = subset_shares(distances, random_f, random_n)
    above, below = int((shares >= observed).sum()), int((shares <= observed).sum())
    lower, ties = int((shares < observed).sum()), int((shares == observed).sum())
    low, median, high = np.percentile(shares, [2.5, 50, 97.5])
    return ChanceBaseline(
        observed=observed,
        chance_mean=float(shares.mean()),
        chance_median=float(median),
        chance_low=float(low),
        chance_high=float(high),
        percentile=100.0 * (lower + 0.5 * ties) / subsets,
        p_value=(1 + above) / (1 + subsets),
        p_value_below=(1 + below) / (1 + subsets),
        subsets=subsets,
        seed=seed,
    )


def _mask(indices: Sequence[int], kernels: int) -> np.ndarray:
    mask = np.zeros(kernels, dtype=bool)
    mask[list(indices)] = True
    return mask
