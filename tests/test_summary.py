from __future__ import annotations

import pytest

from fragile.comparison import Comparison, SweepResult
from fragile.summary import GAIN_MARGIN, accuracy_series, headline, is_gain, targeting_series

N = 100
SETS = {"fragile": [0, 1], "null": [2, 3, 4]}
HARDEN = {"sigma": 0.015, "tau": 0.5, "alpha": 1.2, "rank_kept": 3}


def sweep(epsilons: list[float], clean: int, correct: list[int], targeted: list[int]) -> SweepResult:
    """Outcomes with the first `k` examples right (or on S), the rest not."""
    result = SweepResult(list(epsilons))
    result.record_clean([j < clean for j in range(N)])
    for i, (c, t) in enumerate(zip(correct, targeted)):
        result.record(i, "correct", [j < c for j in range(N)])
        result.record(i, "targeted", [j < t for j in range(N)])
        result.record(i, "targeted_relative", [j < t // 2 for j in range(N)])
    return result


def comparison(hardened_fgsm: int, hardened_pgd: int) -> Comparison:
    eps = [0.0, 0.1]
    return Comparison(
        original=sweep(eps, 90, [90, 40], [0, 80]),
        hardened=sweep(eps, 90, [90, hardened_fgsm], [0, 95]),
        transfer=sweep(eps, 90, [90, 50], [0, 70]),
        pgd_original=sweep([0.1], 90, [20], [85]),
        pgd_hardened=sweep([0.1], 90, [hardened_pgd], [96]),
    )


def test_a_gain_against_fgsm_that_pgd_takes_away_is_flagged_as_gradient_masking():
    block = headline(comparison(hardened_fgsm=60, hardened_pgd=20), 0.1, SETS, HARDEN, resamples=500, seed=0)
    gain = block["gain"]
    assert gain["fgsm_whitebox"] == pytest.approx(0.2) and gain["fgsm_whitebox_gain"]
    assert gain["pgd_whitebox"] == 0.0 and not gain["pgd_whitebox_gain"]
    assert gain["gradient_masking"]
    assert block["original"]["pgd_accuracy"] == 0.2 and block["hardened"]["pgd_accuracy_whitebox"] == 0.2


def test_a_gain_that_holds_under_pgd_is_not_masking():
    gain = headline(comparison(hardened_fgsm=60, hardened_pgd=40), 0.1, SETS, HARDEN, resamples=500, seed=0)["gain"]
    assert gain["fgsm_whitebox_gain"] and gain["pgd_whitebox_gain"] and not gain["gradient_masking"]


def test_every_share_gets_an_interval_around_it_and_none_when_resampling_is_off():
    on = headline(comparison(60, 20), 0.1, SETS, HARDEN, resamples=300, seed=1)
    for side in ("original", "hardened"):
        numbers = [k for k in on[side] if not k.endswith("_ci95")]
        assert len(numbers) >= 5
        for key in numbers:
            low, high = on[side][f"{key}_ci95"]
            assert low <= on[side][key] <= high, key
    assert on["original"]["targeting_pct"] == 80.0 and on["original"]["targeting_pct_relative"] == 40.0
    assert 60 < on["original"]["targeting_pct_ci95"][0] < 80 < on["original"]["targeting_pct_ci95"][1] < 100
    off = headline(comparison(60, 20), 0.1, SETS, HARDEN, resamples=0)
    assert not [k for side in ("original", "hardened", "gain") for k in off[side] if k.endswith("_ci95")]
    assert off["original"]["fgsm_accuracy"] == on["original"]["fgsm_accuracy"]


def test_without_intervals_a_gain_must_exceed_the_margin():
    assert not is_gain(GAIN_MARGIN / 2, None)
    assert is_gain(2 * GAIN_MARGIN, None)
    assert not is_gain(0.2, [-0.01, 0.3])
    assert is_gain(0.02, [0.001, 0.05])


def test_plot_series_include_pgd_and_relative_targeting():
    c = comparison(60, 20)
    assert {"epoch 3 original PGD", "epoch 3 hardened PGD"} <= set(accuracy_series({3: c})["series"])
    assert {"epoch 3 original (relative d)", "epoch 3 hardened (relative d)"} <= set(targeting_series({3: c})["series"])
