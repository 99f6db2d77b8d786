from __future__ import annotations

import math

import numpy as np
import pytest

from fragile.bootstrap import mean_ci, outcomes


def test_outcomes_parse_the_stored_flags():
    assert outcomes("0110").tolist() == [0, 1, 1, 0]


def test_the_interval_matches_the_normal_approximation_on_a_large_sample():
    rng = np.random.default_rng(1)
    n, p = 4000, 0.3
    flags = "".join("1" if v else "0" for v in rng.random(n) < p)
    share = flags.count("1") / n
    low, high = mean_ci(outcomes(flags), 2000, seed=0)
    half = 1.96 * math.sqrt(share * (1 - share) / n)
    assert low < share < high
    assert low == pytest.approx(share - half, abs=0.004)
    assert high == pytest.approx(share + half, abs=0.004)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    values = outcomes("0110100111" * 10)
    assert mean_ci(values, 300, seed=7) == mean_ci(values, 300, seed=7)
    assert mean_ci(values, 300, seed=7) != mean_ci(values, 300, seed=8)


def test_nothing_to_resample_is_an_error():
    with pytest.raises(ValueError):
        mean_ci(np.array([]), 10, 0)
    with pytest.raises(ValueError):
        mean_ci(np.array([1.0]), 0, 0)
