from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fragile.intervals import (
    CLOPPER_PEARSON,
    PAIRED_METHOD,
    WILSON,
    detectable_difference,
    mcnemar_p,
    min_discordant,
    newcombe_interval,
    paired,
    paired_counts,
    share,
    share_of,
    sign_test,
)


def test_zero_of_500_gets_the_exact_clopper_pearson_upper_limit():
    # Exact 95% upper limit for 0 successes: 1 − 0.025^(1/n) = 0.00735... at n = 500.
    s = share(0, 500)
    assert (s.low, s.estimate) == (0.0, 0.0)
    assert s.high == pytest.approx(1 - 0.025 ** (1 / 500), rel=1e-9)
    assert s.high == pytest.approx(0.0073506, abs=1e-7)
    assert s.method == CLOPPER_PEARSON


def test_all_of_500_mirrors_none_of_500():
    none, every = share(0, 500), share(500, 500)
    assert every.high == 1.0
    assert every.low == pytest.approx(1 - none.high, rel=1e-9)


def test_half_of_500_matches_the_beta_quantiles():
    # Clopper–Pearson limits are Beta quantiles: B(α/2; k, n−k+1) and B(1−α/2; k+1, n−k).
    s = share(250, 500)
    assert s.low == pytest.approx(stats.beta.ppf(0.025, 250, 251), rel=1e-9)
    assert s.high == pytest.approx(stats.beta.ppf(0.975, 251, 250), rel=1e-9)
    assert s.high - 0.5 == pytest.approx(0.5 - s.low, rel=1e-9)  # symmetric at one half


def test_wilson_matches_its_closed_form():
    z = stats.norm.ppf(0.975)
    for k, n in ((0, 500), (250, 500), (37, 50)):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        s = share(k, n, method="wilson")
        assert (s.low, s.high) == pytest.approx((centre - half, centre + half), abs=1e-12)
        assert s.method == WILSON


@pytest.mark.parametrize("method", ["clopper-pearson", "wilson"])
@pytest.mark.parametrize("n", [1, 2, 10, 500, 10_000])
def test_no_interval_collapses_to_a_point_at_the_edges(method, n):
    for k in (0, n):
        s = share(k, n, method)
        assert s.high - s.low > 0
        assert s.low <= s.estimate <= s.high


def test_share_of_a_vector_counts_its_ones():
    s = share_of([1, 0, 1, 1, 0])
    assert (s.successes, s.n, s.estimate) == (3, 5, 0.6)
    assert s.to_dict()["method"] == CLOPPER_PEARSON


def test_bad_counts_are_refused():
    for args in ((3, 2), (-1, 5), (1, 0), (0.5, 4)):
        with pytest.raises(ValueError):
            share(*args)
    with pytest.raises(ValueError, match="method"):
        share(1, 2, method="bootstrap")
    with pytest.raises(ValueError, match="0/1"):
        share_of([0, 2, 1])


def test_mcnemar_is_the_two_sided_binomial_test_on_the_discordant_pairs():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 * 0.5**6)  # the fewest pairs that reach 5 %
    assert mcnemar_p(0, 5) == pytest.approx(2 * 0.5**5)
    assert mcnemar_p(12, 2) == mcnemar_p(2, 12) == pytest.approx(2 * stats.binom.cdf(2, 14, 0.5))
    assert mcnemar_p(7, 7) == 1.0
    assert min_discordant() == 6


def test_newcombe_method_10_reproduces_a_published_interval():
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8:
    # complete response before/after consolidation therapy (Cavo et al. 2012), the table
    # (59, 6, 16, 80): Newcombe square-and-add −0.0621 (95% CI −0.1186 to −0.0046). Here ad > bc,
    # so the continuity-adjusted φ = (ad − bc − n/2)/√(efgh) is the one in use.
    low, high = newcombe_interval(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_newcombe_method_10_when_ad_is_below_bc():
    # The paired table (36, 12, 2, 0) of Newcombe (1998), n = 50, difference 0.2000; ad < bc, so
    # φ = (0 − 24)/√(48·2·38·12) unadjusted. 0.0569 to 0.3404 is method 10 computed by hand from
    # the Wilson limits of 48/50 and 38/50 (the Wald interval would be 0.0642 to 0.3358).
    low, high = newcombe_interval(36, 12, 2, 0)
    assert (round(low, 4), round(high, 4)) == (0.0569, 0.3404)
    result = paired_counts(36, 2, 12, 0)  # second − first: b and c swap roles
    assert result.difference == pytest.approx(0.2)
    assert (result.low, result.high) == pytest.approx((low, high))
    assert result.p_value == pytest.approx(mcnemar_p(2, 12))
    assert result.method == PAIRED_METHOD


def test_paired_counts_its_table_from_the_vectors():
    first = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    second = np.array([1, 0, 1, 1, 1, 0, 1, 1])
    result = paired(first, second)
    assert (result.n, result.b, result.c) == (8, 1, 3)
    assert result.difference == pytest.approx(second.mean() - first.mean())
    assert result.low < result.difference < result.high
    assert result.to_dict()["b"] == 1
    with pytest.raises(ValueError, match="length"):
        paired([1, 0], [1, 0, 1])


def test_identical_settings_give_no_difference_but_a_nonzero_interval():
    for outcome in (np.zeros(500), np.ones(500), np.r_[np.ones(250), np.zeros(250)]):
        result = paired(outcome, outcome)
        assert (result.difference, result.p_value) == (0.0, 1.0)
        assert result.low < 0 < result.high
        assert not result.significant


def test_a_large_one_sided_change_is_significant_and_its_interval_excludes_0():
    first = np.r_[np.zeros(40), np.ones(460)]
    second = np.ones(500)
    result = paired(first, second)
    assert result.second_better and result.low > 0
    assert not paired(second, first).second_better


def test_the_sign_test_counts_positive_and_negative_differences():
    assert sign_test([0, 0, 0]).p_value == 1.0
    result = sign_test([1, 2, 1, 1, 1, 0, 0])
    assert (result.positive, result.nonzero) == (5, 5)
    assert result.p_value == pytest.approx(0.5**5)
    assert result.significant
    assert not sign_test([1, -1, 1, -1, 1]).significant


def test_the_detectable_difference_is_where_the_power_reaches_80_percent():
    n, discordant = 500, 40
    delta = detectable_difference(n, discordant)
    critical = next(k for k in range(20, 41) if mcnemar_p(40 - k, k) < 0.05)

    def power(d):
        return stats.binom.sf(critical - 1, discordant, 0.5 + d * n / (2 * discordant))

    assert power(delta) == pytest.approx(0.8, abs=1e-6)
    assert power(delta - 0.002) < 0.8
    # More discordance (noisier pairs) or fewer examples need a larger gain to be detected.
    assert detectable_difference(n, 80) > delta
    assert detectable_difference(250, 40) > delta
    # Without discordant pairs the bound uses the 6 that a significant result needs: never 0.
    assert detectable_difference(500, 0) == detectable_difference(500, 6) > 0
