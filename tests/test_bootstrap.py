from __future__ import annotations

import math

import numpy as np
import pytest

from fragile.bootstrap import difference_ci, mean_ci, outcomes, share_ci


def test_outcomes_parse_the_stored_flags():
    assert outcomes("0110").tolist() == [0, 1, 1, 0]


def test_a_constant_sample_has_a_zero_width_interval():
    assert share_ci("1" * 50, 200, seed=0) == [1.0, 1.0]
    assert share_ci("0" * 50, 200, seed=0, scale=100) == [0.0, 0.0]


def test_the_interval_matches_the_normal_approximation_on_a_large_sample():
    rng = np.random.default_rng(1)
    n, p = 4000, 0.3
    flags = "".join("1" if v else "0" for v in rng.random(n) < p)
    share = flags.count("1") / n
    low, high = share_ci(flags, 2000, seed=0)
    half = 1.96 * math.sqrt(share * (1 - share) / n)
    assert low < share < high
    assert low == pytest.approx(share - half, abs=0.004)
    assert high == pytest.approx(share + half, abs=0.004)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    flags = "0110100111" * 10
    assert share_ci(flags, 300, seed=7) == share_ci(flags, 300, seed=7)
    assert share_ci(flags, 300, seed=7) != share_ci(flags, 300, seed=8)


def test_the_paired_difference_sees_a_consistent_gain_that_unpaired_intervals_would_blur():
    # The second setting gets 10 more examples right and none wrong: every redraw shows a gain.
    first = "0" * 10 + "01" * 45
    second = "1" * 10 + "01" * 45
    low, high = difference_ci(first, second, 500, seed=0)
    assert 0 < low <= 0.1 <= high
    # The two unpaired intervals overlap, so comparing them would call this no gain.
    assert share_ci(second, 500, 0)[0] < share_ci(first, 500, 0)[1]


def test_nothing_to_resample_gives_none_and_bad_input_an_error():
    assert share_ci("", 100, 0) is None
    assert share_ci("01", 0, 0) is None
    assert difference_ci("01", "", 100, 0) is None
    with pytest.raises(ValueError):
        difference_ci("01", "011", 100, 0)
    with pytest.raises(ValueError):
        mean_ci(np.array([]), 10, 0)
