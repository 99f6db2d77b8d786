"""How sure is S, and how much do the S of different checkpoints share beyond chance?

Ranking uncertainty: S comes from a finite ranking sample. `bootstrap_ranking` redraws the
examples with replacement, recomputes every kernel's accuracy with it dropped and the mean
line, and reports how often each kernel lands in S (and the spread of |S|/n).

Overlap by chance: if S_a and S_b were independent uniform random sets of sizes a and b among
n kernels, their overlap X would be hypergeometric(n, a, b) (scipy.stats.hypergeom). For k
checkpoints, the count of kernels in every S has an exact distribution too: the running
intersection I_j = S_1 ∩ … ∩ S_j meets the next set in hypergeometric(n, |I_j|, |S_{j+1}|)
kernels, so its pmf follows by iterating that kernel over the pmf (`intersection_pmf`; exact,
O(k·n²)); its mean is n·∏(|S_i|/n).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

_BOOTSTRAP_WEIGHTS = 2_000_000  # resample × example weights held at once by `bootstrap_ranking`


@dataclass(frozen=True)
class RankingBootstrap:
    """Per kernel, the share of resamples in which it is fragile; |S|/n over the resamples."""

    probability: list[float]
    fragile_share_mean: float
    fragile_share_low: float  # 2.5th and 97.5th percentiles of |S|/n
    fragile_share_high: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def fragile_mask(correct_counts: np.ndarray) -> np.ndarray:
    """S as a boolean mask over the last axis: kernels whose count of correct examples with
    them dropped is below the mean over kernels. Compared as integers (K·c_k < Σc), so a tie
    with the mean line is never taken for a kernel below it by float rounding."""
    counts = np.asarray(correct_counts)
    return counts * counts.shape[-1] < counts.sum(axis=-1, keepdims=True)


def bootstrap_ranking(correct: np.ndarray, resamples: int, seed: int) -> RankingBootstrap:
    """`correct`: (n_examples, n_kernels) 0/1, example i right with kernel k dropped. Each
    resample redraws the examples (seeded numpy Generator, the same draws for every kernel)
    and recomputes S by the mean-line rule."""
    outcome = np.asarray(correct)
    if outcome.ndim != 2 or outcome.shape[0] == 0 or outcome.shape[1] < 2:
        raise ValueError(f"correct must be (examples, kernels), two kernels or more, got {outcome.shape}")
    if not np.isin(outcome, (0, 1)).all():
        raise ValueError("correct must hold 0/1 outcomes")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    examples, kernels = outcome.shape
    rng = np.random.default_rng(seed)
    fragile_counts = np.zeros(kernels, dtype=np.int64)
    sizes = np.empty(resamples, dtype=np.int64)
    chunk = max(1, _BOOTSTRAP_WEIGHTS // examples)  # bounded memory: at most this many weights at once
    for first in range(0, resamples, chunk):
        rows = min(chunk, resamples - first)
        draws = rng.integers(0, examples, size=(rows, examples))
        offsets = (draws + examples * np.arange(rows)[:, None]).ravel()
        weights = np.bincount(offsets, minlength=rows * examples).reshape(rows, examples)  # times drawn
        # float64 matmul (BLAS) is exact for these integer sums; rounding makes them integers again
        counts = np.rint(weights.astype(np.float64) @ outcome.astype(np.float64)).astype(np.int64)
        fragile = fragile_mask(counts)
        fragile_counts += fragile.sum(axis=0)
        sizes[first:first + rows] = fragile.sum(axis=1)
    shares = sizes / kernels
    low, high = np.percentile(shares, [2.5, 97.5])
    return RankingBootstrap(
        probability=(fragile_counts / resamples).tolist(),
        fragile_share_mean=float(shares.mean()),
        fragile_share_low=float(low),
        fragile_share_high=float(high),
        resamples=resamples,
        seed=seed,
    )


@dataclass(frozen=True)
class PairOverlap:
    """Overlap of two checkpoints' S against independent uniform sets of the same sizes."""

    kernels: int
    size_a: int
    size_b: int
    overlap: int
    jaccard: float
    expected_overlap: float  # a·b/n
    expected_jaccard: float  # E[X/(a+b−X)], X ~ hypergeometric(n, a, b)
    p_value: float  # P(X ≥ overlap)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def expected_jaccard(kernels: int, size_a: int, size_b: int) -> float:
    """E[X / (a + b − X)] for X ~ hypergeometric(n, a, b), exact from the pmf."""
    from scipy import stats  # not at import: the rank stage uses this module's bootstrap alone (scipy.stats ~1 s)

    _check_sizes(kernels, [size_a, size_b])
    x = np.arange(max(0, size_a + size_b - kernels), min(size_a, size_b) + 1)
    pmf = stats.hypergeom.pmf(x, kernels, size_a, size_b)
    return float((pmf * x / (size_a + size_b - x)).sum())


def overlap_p_value(kernels: int, size_a: int, size_b: int, overlap: int) -> float:
    """P(X ≥ overlap) for X ~ hypergeometric(n, a, b)."""
    from scipy import stats  # not at import: the rank stage uses this module's bootstrap alone (scipy.stats ~1 s)

    _check_sizes(kernels, [size_a, size_b])
    return float(stats.hypergeom.sf(overlap - 1, kernels, size_a, size_b))


def pair_overlap(fragile_a: Sequence[int], fragile_b: Sequence[int], kernels: int) -> PairOverlap:
    a, b = set(fragile_a), set(fragile_b)
    shared = len(a & b)
    return PairOverlap(
        kernels=kernels,
        size_a=len(a),
        size_b=len(b),
        overlap=shared,
        jaccard=shared / len(a | b),
        expected_overlap=len(a) * len(b) / kernels,
        expected_jaccard=expected_jaccard(kernels, len(a), len(b)),
        p_value=overlap_p_value(kernels, len(a), len(b), shared),
    )


def intersection_pmf(kernels: int, sizes: Sequence[int]) -> np.ndarray:
    """(kernels + 1,) pmf of |S_1 ∩ … ∩ S_k| for independent uniform sets of the given sizes."""
    from scipy import stats  # not at import: the rank stage uses this module's bootstrap alone (scipy.stats ~1 s)

    _check_sizes(kernels, sizes)
    support = np.arange(kernels + 1)
    pmf = np.zeros(kernels + 1)
    pmf[sizes[0]] = 1.0
    for size in sizes[1:]:
        # transition[x, y] = P(y of the next set's kernels fall in an intersection of x)
        transition = stats.hypergeom.pmf(support[None, :], kernels, support[:, None], size)
        pmf = pmf @ np.nan_to_num(transition)
    return pmf


@dataclass(frozen=True)
class Persistence:
    """Kernels fragile at every checkpoint against independent uniform sets of the same sizes."""

    kernels: int
    sizes: list[int]  # |S| per checkpoint
    always_fragile: list[int]
    expected: float  # n·∏(|S_i|/n)
    p_value: float  # P(count ≥ observed), exact
    consecutive: list[PairOverlap]  # checkpoint i against i + 1

    @property
    def count(self) -> int:
        return len(self.always_fragile)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "count": self.count}


def persistence(fragile_sets: Sequence[Sequence[int]], kernels: int) -> Persistence:
    """S per checkpoint (in training order) of a layer with `kernels` kernels."""
    if not fragile_sets:
        raise ValueError("persistence needs the S of at least one checkpoint")
    sets = [set(s) for s in fragile_sets]
    sizes = [len(s) for s in sets]
    always = sorted(set.intersection(*sets))
    pmf = intersection_pmf(kernels, sizes)
    return Persistence(
        kernels=kernels,
        sizes=sizes,
        always_fragile=always,
        expected=float(kernels * np.prod([s / kernels for s in sizes])),
        p_value=float(min(1.0, pmf[len(always):].sum())),
        consecutive=[pair_overlap(a, b, kernels) for a, b in itertools.pairwise(fragile_sets)],
    )


def _check_sizes(kernels: int, sizes: Sequence[int]) -> None:
    if kernels < 1 or not sizes or any(not 1 <= s <= kernels for s in sizes):
        raise ValueError(f"set sizes must be within 1..{kernels}, got {list(sizes)}")
