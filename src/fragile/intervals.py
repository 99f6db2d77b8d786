"""Exact intervals and tests for shares of examples and for paired comparisons (scipy.stats).

A share (an accuracy, a targeting percentage) is k successes of n examples: its interval is
exact Clopper–Pearson (default) or Wilson score, both from `scipy.stats.binomtest`, and never
collapses to a point at 0 or n (0 of 500 gives [0, 0.74 %], where a percentile bootstrap gives
[0, 0]). Two settings on the same examples (hardened vs original, PGD vs FGSM) are compared by
their discordant pairs: b examples right only under the first, c right only under the second.
The exact McNemar test is the two-sided binomial test of min(b, c) of b + c at 1/2; the
interval for the paired difference (c − b)/n is Newcombe's (1998) method 10, built from the two
Wilson score intervals and the correlation of the paired outcomes. The percentile bootstrap
(fragile.bootstrap) stays for differences of aggregate statistics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
ALPHA = 1 - LEVEL  # the significance level of every test here
CLOPPER_PEARSON = "Clopper-Pearson exact"
WILSON = "Wilson score"
SHARE_METHODS = {"clopper-pearson": ("exact", CLOPPER_PEARSON), "wilson": ("wilson", WILSON)}
PAIRED_METHOD = "exact McNemar test; Newcombe (1998) method 10 interval"
SIGN_TEST = "exact one-sided sign test"


@dataclass(frozen=True)
class Share:
    """`successes` of `n` examples, with its `method` interval [low, high] at LEVEL."""

    successes: int
    n: int
    estimate: float
    low: float
    high: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """Second setting minus first on the same n examples. b: right under the first only,
    c: right under the second only; difference = (c − b)/n with its interval [low, high];
    p_value: the exact McNemar test (1 when b + c = 0)."""

    n: int
    b: int
    c: int
    difference: float
    low: float
    high: float
    p_value: float
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    @property
    def second_better(self) -> bool:
        """A significant difference in favour of the second setting."""
        return self.significant and self.c > self.b

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignTest:
    """Whether paired differences tend to be positive: of the `nonzero` differences,
    `positive` are above 0; p_value is one-sided (more positives than 1/2 under no effect)."""

    n: int
    positive: int
    nonzero: int
    mean_difference: float
    p_value: float
    method: str = SIGN_TEST

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def share(successes: int, n: int, method: str = "clopper-pearson", level: float = LEVEL) -> Share:
    """The share successes/n with an exact Clopper–Pearson or a Wilson score interval."""
    successes, n = _count(successes, "successes"), _count(n, "n")
    if n == 0:
        raise ValueError("a share needs at least one example (n = 0)")
    if successes > n:
        raise ValueError(f"successes ({successes}) exceed n ({n})")
    if method not in SHARE_METHODS:
        raise ValueError(f"method must be one of {', '.join(SHARE_METHODS)}, got {method!r}")
    scipy_method, name = SHARE_METHODS[method]
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=level, method=scipy_method)
    return Share(successes, n, successes / n, float(ci.low), float(ci.high), name)


def share_of(outcomes: Any, method: str = "clopper-pearson", level: float = LEVEL) -> Share:
    """`share` of a 0/1 vector (one outcome per example)."""
    flags = _flags(outcomes)
    return share(int(flags.sum()), flags.size, method, level)


def mcnemar_p(b: int, c: int) -> float:
    """Exact McNemar test: two-sided binomial test of min(b, c) of b + c at 1/2; 1 when b + c = 0."""
    b, c = _count(b, "b"), _count(c, "c")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def paired(first: Any, second: Any, level: float = LEVEL) -> PairedComparison:
    """Second minus first on the same examples, from their 0/1 outcome vectors."""
    x, y = _flags(first), _flags(second)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes differ in length: {x.size} vs {y.size}")
    both, b, c = int((x & y).sum()), int((x & ~y).sum()), int((~x & y).sum())
    return paired_counts(both, b, c, x.size - both - b - c, level)


def paired_counts(both: int, b: int, c: int, neither: int, level: float = LEVEL) -> PairedComparison:
    """Second minus first from the paired 2×2 table: right under both, first only (b), second
    only (c), neither."""
    n = sum(_count(v, name) for v, name in ((both, "both"), (b, "b"), (c, "c"), (neither, "neither")))
    if n == 0:
        raise ValueError("a paired comparison needs at least one example (n = 0)")
    # Newcombe's table is (a, b, c, d) for the difference first − second; ours is second − first.
    low, high = newcombe_interval(both, c, b, neither, level)
    return PairedComparison(n, b, c, (c - b) / n, low, high, mcnemar_p(b, c), PAIRED_METHOD)


def newcombe_interval(a: int, b: int, c: int, d: int, level: float = LEVEL) -> tuple[float, float]:
    """Newcombe (1998) method 10 for θ = (a+b)/n − (a+c)/n of the paired table (a, b, c, d):
    a: success in both, b: first only, c: second only, d: neither.

    With Wilson score limits (l1, u1) for p1 = (a+b)/n and (l2, u2) for p2 = (a+c)/n,
    L = θ − √((p1−l1)² − 2φ(p1−l1)(u2−p2) + (u2−p2)²),
    U = θ + √((p2−l2)² − 2φ(p2−l2)(u1−p1) + (u1−p1)²),
    where φ estimates the correlation of the paired outcomes: (ad − bc)/√(efgh) over the four
    margins e, f, g, h; 0 when a margin is 0; and for ad > bc, max(ad − bc − n/2, 0)/√(efgh).
    """
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, level)
    l2, u2 = _wilson(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if margins == 0:
        phi = 0.0
    elif cross > 0:
        phi = max(cross - n / 2, 0.0) / math.sqrt(margins)
    else:
        phi = cross / math.sqrt(margins)
    theta = p1 - p2
    below = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    above = math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return max(theta - below, -1.0), min(theta + above, 1.0)


def sign_test(differences: Any) -> SignTest:
    """Exact one-sided sign test that paired differences (one per example) tend to be
    positive: the nonzero ones are a binomial sample at 1/2 under no effect; p = 1 when all are 0."""
    values = np.asarray(differences, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("a sign test needs at least one paired difference")
    positive, nonzero = int((values > 0).sum()), int((values != 0).sum())
    p = 1.0 if nonzero == 0 else float(stats.binomtest(positive, nonzero, 0.5, alternative="greater").pvalue)
    return SignTest(values.size, positive, nonzero, float(values.mean()), p)


def detectable_difference(n: int, discordant: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest paired difference (as a share of n) that the exact McNemar test detects
    with `power`, given `discordant` (b + c) pairs.

    Conditional on D discordant pairs, a true difference δ puts each one on the better side
    with probability p = 1/2 + δn/(2D); the test rejects at `alpha` when that side has at least
    the critical count. D is raised to the smallest count that can reject at all (6 at 5 %),
    since a real effect of that size would bring at least that many discordant pairs.
    """
    n, discordant = _count(n, "n"), _count(discordant, "discordant")
    if not 0 <= discordant <= n or n == 0:
        raise ValueError(f"discordant pairs ({discordant}) must lie in 0..n (n = {n}), n > 0")
    pairs = max(discordant, min_discordant(alpha))
    critical = _critical_count(pairs, alpha)
    # The power rises continuously from below alpha at p = 1/2 to 1 at p = 1.
    p = optimize.brentq(lambda q: stats.binom.sf(critical - 1, pairs, q) - power, 0.5, 1.0, xtol=1e-12)
    return min(pairs * (2 * p - 1) / n, 1.0)


def min_discordant(alpha: float = ALPHA) -> int:
    """The fewest discordant pairs with which the exact McNemar test can reject at `alpha`."""
    pairs = 1
    while 2 * 0.5**pairs >= alpha:
        pairs += 1
    return pairs


def _critical_count(pairs: int, alpha: float) -> int:
    """The smallest count on one side of `pairs` discordant pairs that the test rejects."""
    for count in range(math.ceil(pairs / 2), pairs + 1):
        if stats.binomtest(pairs - count, pairs, 0.5).pvalue < alpha:
            return count
    raise ValueError(f"{pairs} discordant pairs cannot reach significance at {alpha}")


def _wilson(successes: int, n: int, level: float) -> tuple[float, float]:
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    return int(value)


def _flags(outcomes: Any) -> np.ndarray:
    flags = np.asarray(outcomes).ravel()
    if flags.size and not np.isin(flags, (0, 1)).all():
        raise ValueError("outcomes must be 0/1 (or booleans), one per example")
    return flags.astype(bool)
