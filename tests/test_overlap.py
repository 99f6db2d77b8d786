from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from fragile import overlap
from fragile.overlap import (
    bootstrap_ranking,
    expected_jaccard,
    fragile_mask,
    intersection_pmf,
    overlap_p_value,
    pair_overlap,
    persistence,
)
from fragile.ranking import KernelRanking


def _brute_force(kernels: int, sizes: list[int]) -> dict[int, Fraction]:
    """Distribution of |S_1 ∩ … ∩ S_k| over every tuple of subsets of the given sizes."""
    counts: dict[int, int] = {}
    choices = [list(itertools.combinations(range(kernels), s)) for s in sizes]
    total = 0
    for sets in itertools.product(*choices):
        size = len(set.intersection(*map(set, sets)))
        counts[size] = counts.get(size, 0) + 1
        total += 1
    return {k: Fraction(v, total) for k, v in counts.items()}


def test_expected_jaccard_of_two_pairs_among_four_kernels_by_hand():
    # X ~ hypergeometric(4, 2, 2): P(0) = 1/6, P(1) = 4/6, P(2) = 1/6; J = 0, 1/3, 1.
    assert expected_jaccard(4, 2, 2) == pytest.approx(4 / 6 * 1 / 3 + 1 / 6)  # 7/18
    assert overlap_p_value(4, 2, 2, 2) == pytest.approx(1 / 6)
    assert overlap_p_value(4, 2, 2, 1) == pytest.approx(5 / 6)
    assert overlap_p_value(4, 2, 2, 0) == pytest.approx(1.0)


def test_expected_jaccard_matches_enumeration_where_overlap_is_forced():
    # n = 5, a = 4, b = 3: at least 2 shared. Enumerate all C(5,4)·C(5,3) pairs.
    pairs = list(itertools.product(itertools.combinations(range(5), 4), itertools.combinations(range(5), 3)))
    mean = sum(Fraction(len(set(a) & set(b)), len(set(a) | set(b))) for a, b in pairs) / len(pairs)
    assert expected_jaccard(5, 4, 3) == pytest.approx(float(mean))


def test_pair_overlap_of_two_sets():
    result = pair_overlap([0, 1, 2, 3], [2, 3, 4], kernels=10)
    assert (result.overlap, result.size_a, result.size_b) == (2, 4, 3)
    assert result.jaccard == pytest.approx(2 / 5)
    assert result.expected_overlap == pytest.approx(1.2)
    # P(X >= 2) for X ~ hypergeometric(10, 4, 3) = (C(4,2)C(6,1) + C(4,3)) / C(10,3) = 40/120
    assert result.p_value == pytest.approx(40 / 120)
    assert result.to_dict()["jaccard"] == pytest.approx(0.4)


@pytest.mark.parametrize(("kernels", "sizes"), [(3, [2, 2, 2]), (5, [3, 2]), (5, [3, 4, 2]), (4, [1, 3, 2, 3])])
def test_the_intersection_pmf_is_exact(kernels, sizes):
    pmf = intersection_pmf(kernels, sizes)
    exact = _brute_force(kernels, sizes)
    assert pmf.sum() == pytest.approx(1.0)
    for size in range(kernels + 1):
        assert pmf[size] == pytest.approx(float(exact.get(size, 0)), abs=1e-12)
    # its mean is n·∏(|S_i|/n)
    assert (np.arange(kernels + 1) * pmf).sum() == pytest.approx(kernels * np.prod([s / kernels for s in sizes]))


def test_three_pairs_among_three_kernels_by_hand():
    # I_2 is 1 or 2 kernels w.p. 2/3, 1/3; the third pair then keeps: P = 2/9, 6/9, 1/9 for 0, 1, 2.
    assert intersection_pmf(3, [2, 2, 2]).tolist() == pytest.approx([2 / 9, 6 / 9, 1 / 9, 0.0])


def test_persistence_counts_the_always_fragile_kernels_against_chance():
    sets = [[0, 1, 2, 3, 9], [0, 1, 2, 5, 7], [0, 1, 2, 4, 8]]
    result = persistence(sets, kernels=10)
    assert result.always_fragile == [0, 1, 2] and result.count == 3
    assert result.expected == pytest.approx(10 * 0.5**3)
    assert result.p_value == pytest.approx(intersection_pmf(10, [5, 5, 5])[3:].sum())
    assert result.p_value < 0.2
    assert [p.overlap for p in result.consecutive] == [3, 3]
    assert persistence([[1, 2]], kernels=4).p_value == pytest.approx(1.0)
    with pytest.raises(ValueError):
        persistence([[0], []], kernels=4)


def test_the_mean_line_rule_is_exact_at_a_tie():
    # Three kernels with the same accuracy: none is below the mean. A float mean of 0.1 three
    # times is 0.10000000000000002 and would put all three in S.
    assert not fragile_mask(np.array([1, 1, 1])).any()
    assert fragile_mask(np.array([[3, 1, 2], [2, 2, 2]])).tolist() == [[False, True, False], [False, False, False]]


def test_the_mean_line_rule_is_the_ranking_s():
    counts = np.array([90, 40, 85, 70, 99, 10])
    ranking = KernelRanking(correct=counts.tolist(), loss_sum=[0.0] * 6, examples=100, baseline_correct=100)
    assert np.flatnonzero(fragile_mask(counts)).tolist() == ranking.fragile
    tied = KernelRanking(correct=[1, 1, 1, 2], loss_sum=[0.0] * 4, examples=10, baseline_correct=10)
    assert tied.fragile == [0, 1, 2] and tied.null == [3]
    even = KernelRanking(correct=[1, 1, 1], loss_sum=[0.0] * 3, examples=10, baseline_correct=10)
    assert even.fragile == [] and even.null == [0, 1, 2]  # 0.1 each: on the line, never below it


def test_the_bootstrap_finds_sure_and_unsure_kernels():
    rng = np.random.default_rng(0)
    examples = 400
    correct = np.ones((examples, 4), dtype=np.int8)
    correct[:, 0] = rng.random(examples) < 0.2   # dropping kernel 0 costs a lot: always in S
    correct[:, 1] = 1                            # kernel 1 never matters: never in S
    correct[:, 2] = rng.random(examples) < 0.6   # kernels 2 and 3 sit on the mean line:
    correct[:, 3] = rng.random(examples) < 0.6   # (0.2 + 1 + 0.6 + 0.6) / 4 = 0.6
    result = bootstrap_ranking(correct, resamples=300, seed=1)
    assert result.probability[0] == 1.0 and result.probability[1] == 0.0
    assert 0.0 < result.probability[2] < 1.0 and 0.0 < result.probability[3] < 1.0
    assert 0.25 <= result.fragile_share_low <= result.fragile_share_mean <= result.fragile_share_high <= 0.75
    assert result == bootstrap_ranking(correct, resamples=300, seed=1)
    assert result != bootstrap_ranking(correct, resamples=300, seed=2)


def test_the_bootstrap_does_not_depend_on_how_resamples_are_chunked(monkeypatch):
    rng = np.random.default_rng(3)
    correct = (rng.random((500, 6)) < np.linspace(0.5, 0.9, 6)).astype(np.int8)
    one_pass = bootstrap_ranking(correct, resamples=200, seed=0)
    monkeypatch.setattr(overlap, "_BOOTSTRAP_WEIGHTS", 500 * 7)  # 7 resamples per chunk
    assert bootstrap_ranking(correct, resamples=200, seed=0) == one_pass
    assert one_pass.probability[0] == 1.0 and one_pass.probability[-1] == 0.0


def test_bad_ranking_outcomes_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        bootstrap_ranking(np.full((3, 2), 2), 10, 0)
    with pytest.raises(ValueError, match="examples, kernels"):
        bootstrap_ranking(np.ones(5), 10, 0)
