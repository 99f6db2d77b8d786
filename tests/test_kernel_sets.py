"""Rankings as tallies: the mean-line rule, merging shards, Taylor against exact."""

from __future__ import annotations

import pytest

from fragile.errors import FragileError
from fragile.kernel_sets import KernelRanking, TaylorRanking, compare_rankings, taylor_table


def test_sets_split_at_the_mean_line():
    ranking = KernelRanking(correct=[5, 9, 7, 9], loss_sum=[0.0] * 4, examples=10, baseline_correct=9)
    assert ranking.mean_accuracy == pytest.approx(0.75)
    assert ranking.fragile == [0, 2]
    assert ranking.null == [1, 3]


def test_all_kernels_equal_is_a_clear_error():
    ranking = KernelRanking(correct=[8] * 8, loss_sum=[1.0] * 8, examples=10, baseline_correct=8)
    assert ranking.fragile == []
    with pytest.raises(FragileError, match="S or S' is empty"):
        ranking.check_sets()


def test_taylor_sets_split_at_the_mean_score():
    taylor = TaylorRanking(score_sum=[1.2, -0.4, 0.2, 0.8], examples=4, loss_sum=4.0)
    assert taylor.mean_score == pytest.approx(0.1125)
    assert taylor.fragile == [0, 3]  # their drop raises the loss more than the mean
    assert taylor.null == [1, 2]
    with pytest.raises(FragileError, match="same Taylor score"):
        TaylorRanking(score_sum=[0.4] * 4, examples=4, loss_sum=4.0).check_sets()


def test_comparison_with_the_exact_ranking():
    exact = KernelRanking(correct=[5, 9, 7, 8], loss_sum=[20.0, 5.0, 10.0, 7.0], examples=10,
                          baseline_correct=9)
    agreeing = TaylorRanking(score_sum=[9.0, 0.0, 4.0, 2.0], examples=10, loss_sum=4.0)
    assert compare_rankings(agreeing, exact) == {"spearman": 1.0, "spearman_loss": 1.0, "set_agreement": 1.0}
    reversed_ = TaylorRanking(score_sum=[0.0, 9.0, 2.0, 4.0], examples=10, loss_sum=4.0)
    result = compare_rankings(reversed_, exact)
    assert result["spearman"] == pytest.approx(-1.0)
    assert result["set_agreement"] == 0.0  # exact S = {0, 2}, taylor S = {1, 3}
    table = taylor_table(agreeing, exact)
    assert list(table.columns) == ["kernel", "score", "accuracy", "loss", "set"]
    assert table["set"].tolist() == ["S", "S'", "S", "S'"]


def test_merged_tallies_add_counts_and_sums():
    a = KernelRanking(correct=[3, 1], loss_sum=[0.5, 2.0], examples=4, baseline_correct=4)
    b = KernelRanking(correct=[1, 0], loss_sum=[0.25, 1.0], examples=2, baseline_correct=1)
    merged = a.merge(b)
    assert merged == KernelRanking(correct=[4, 1], loss_sum=[0.75, 3.0], examples=6, baseline_correct=5)
    assert merged.accuracy == [4 / 6, 1 / 6] and merged.baseline_accuracy == 5 / 6
    t = TaylorRanking(score_sum=[1.0, -2.0], examples=4, loss_sum=2.0).merge(
        TaylorRanking(score_sum=[0.5, 0.5], examples=1, loss_sum=0.5))
    assert t.score == [1.5 / 5, -1.5 / 5] and t.baseline_loss == 0.5
