from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from fragile.chance import (
    chance_baseline,
    random_subsets,
    subset_shares,
    targeting_share,
)
from fragile.targeting import targets_fragile


def test_the_share_is_algorithm_1_and_a_tie_does_not_count():
    d = np.array([[3.0, 1.0, 0.5],   # S_f 3 > S_n 0.75
                  [1.0, 1.0, 1.0],   # tie
                  [0.0, 2.0, 0.0],   # S_f 0 < S_n 1
                  [2.0, 1.0, 3.0]])  # tie: 2 = (1 + 3)/2
    assert targeting_share(d, [0], [1, 2]) == 0.25
    assert targeting_share(d, [1, 2], [0]) == 0.25  # only row 2 targets {1, 2}


def test_the_share_agrees_with_the_torch_counter_including_infinite_relative_distances():
    rng = np.random.default_rng(0)
    d = rng.exponential(size=(300, 12)).astype(np.float32)
    d[rng.random(d.shape) < 0.05] = np.inf  # maps the attack woke from all zero
    fragile, null = [0, 3, 5, 7], [1, 2, 4, 6, 8, 9, 10, 11]
    expected = targets_fragile(torch.from_numpy(d), fragile, null).double().mean().item()
    assert targeting_share(d, fragile, null) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1


def test_random_subsets_are_uniform_sized_and_split_the_pool():
    fragile, null = random_subsets([0, 2, 3, 5, 6], 2, 500, kernels=8, rng=np.random.default_rng(1))
    assert fragile.shape == null.shape == (500, 8)
    assert (fragile.sum(1) == 2).all() and (null.sum(1) == 3).all()
    assert not (fragile & null).any()
    assert ((fragile | null)[:, [0, 2, 3, 5, 6]]).all() and not (fragile | null)[:, [1, 4, 7]].any()
    # each pool kernel is in the random S about 2/5 of the time
    assert np.allclose(fragile[:, [0, 2, 3, 5, 6]].mean(0), 0.4, atol=0.08)


def test_the_vectorised_shares_equal_a_loop_over_the_subsets():
    rng = np.random.default_rng(2)
    d = rng.random((40, 10))
    fragile, null = random_subsets(range(10), 4, 25, kernels=10, rng=rng)
    loop = [targets_fragile(torch.from_numpy(d), np.flatnonzero(f).tolist(), np.flatnonzero(n).tolist())
            .double().mean().item() for f, n in zip(fragile, null)]
    assert np.allclose(subset_shares(d, fragile, null), loop)


def test_a_planted_s_is_far_above_chance():
    rng = np.random.default_rng(3)
    d = rng.exponential(size=(200, 64))
    fragile = list(range(0, 64, 3))  # 22 kernels, as the paper's 37 %
    null = [k for k in range(64) if k not in fragile]
    d[:, fragile] *= 1.5  # the attack truly moves S more
    result = chance_baseline(d, fragile, null, subsets=1000, seed=0)
    assert result.observed > 0.9
    assert result.percentile == 100.0
    assert result.p_value == pytest.approx(1 / 1001)
    assert result.p_value_below == 1.0
    assert 0.3 < result.chance_median < 0.7  # a random set of 22 is as often above as below
    assert result.chance_low < result.chance_median < result.chance_high < result.observed


def test_a_random_s_on_iid_distances_gives_uniform_p_values():
    # Under the null (S a random set, distances exchangeable across kernels) the mid-rank
    # percentile is uniform and the p-value valid (a little conservative: shares are multiples of
    # 1/60, so random sets often tie with S and count as "≥").
    p_values, percentiles = [], []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        d = rng.exponential(size=(60, 16))
        fragile = sorted(rng.choice(16, size=6, replace=False).tolist())
        null = [k for k in range(16) if k not in fragile]
        result = chance_baseline(d, fragile, null, subsets=199, seed=seed)
        p_values.append(result.p_value)
        percentiles.append(result.percentile)
    assert abs(np.mean(percentiles) - 50) < 5
    assert stats.kstest(np.array(percentiles) / 100, "uniform").pvalue > 0.01
    assert 0.45 < np.mean(p_values) < 0.6
    assert np.mean(np.array(p_values) < 0.05) <= 0.06


def test_the_same_seed_gives_the_same_baseline_and_another_seed_other_draws():
    rng = np.random.default_rng(4)
    d = rng.random((100, 20))
    fragile, null = list(range(7)), list(range(7, 20))
    first = chance_baseline(d, fragile, null, subsets=300, seed=5)
    assert first == chance_baseline(d, fragile, null, subsets=300, seed=5)
    other = chance_baseline(d, fragile, null, subsets=300, seed=6)
    assert other.observed == first.observed and other.chance_mean != first.chance_mean
    assert set(first.to_dict()) >= {"observed", "percentile", "p_value", "subsets", "seed"}


def test_the_paper_sized_case_runs_in_one_vectorised_pass():
    d = np.random.default_rng(6).random((1000, 64)).astype(np.float32)
    result = chance_baseline(d, list(range(24)), list(range(24, 64)), subsets=1000, seed=0)
    assert result.subsets == 1000 and 0 <= result.p_value <= 1


def test_bad_inputs_are_refused():
    d = np.ones((3, 4))
    with pytest.raises(ValueError, match="overlap"):
        chance_baseline(d, [0, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        targeting_share(np.full((2, 2), np.nan), [0], [1])
    with pytest.raises(ValueError, match="subset size"):
        random_subsets([0, 1], 2, 10, kernels=2, rng=np.random.default_rng(0))
