from __future__ import annotations

import numpy as np
import pytest

from fragile.autoattack import COMPONENTS, AutoAttackResult
from fragile.sanity import (
    accuracy_falls_with_epsilon,
    at_least_as_strong,
    autoattack_at_least_as_strong_as_pgd,
    gradient_free_not_stronger,
    model_checks,
    near_chance_at_large_epsilon,
    pgd_at_least_as_strong_as_fgsm,
)

N = 500


def correct(first: int, n: int = N) -> np.ndarray:
    """The first `first` of n examples correct."""
    return np.arange(n) < first


def test_a_falling_curve_passes():
    check = accuracy_falls_with_epsilon([0.0, 0.1, 0.2, 0.3], [correct(k) for k in (490, 300, 120, 40)])
    assert check.passed
    # No step rises, so the step named is the flattest fall (0.2 -> 0.3), not called a rise.
    assert check.reason == ("accuracy never rises with ε; the flattest step goes from 24.0 % at ε = 0.2 to 8.0 % "
                            f"at ε = 0.3 (McNemar p = {check.numbers['p_value']:.3g}, level {0.05 / 3:.3g})")


def test_a_rise_within_noise_passes():
    # One example more at the larger ε is not a rise the test can tell from noise.
    check = accuracy_falls_with_epsilon([0.0, 0.1, 0.2], [correct(k) for k in (490, 200, 201)])
    assert check.passed
    assert check.numbers["accuracy_to"] > check.numbers["accuracy_from"]
    assert "the most significant rise goes from 40.0 % at ε = 0.1" in check.reason


def test_a_significant_rise_fails_and_names_the_step():
    check = accuracy_falls_with_epsilon([0.0, 0.1, 0.2, 0.3], [correct(k) for k in (490, 150, 260, 30)])
    assert not check.passed
    assert (check.numbers["epsilon_from"], check.numbers["epsilon_to"]) == (0.1, 0.2)
    assert "rises" in check.reason and "ε = 0.2" in check.reason


def test_the_rise_is_judged_at_the_bonferroni_level():
    # 8 examples gained, none lost: p = 2·0.5^8 ≈ 0.0078, significant alone but not at 0.05/9.
    outcomes = [correct(k) for k in (490, 200, 208)]
    assert not accuracy_falls_with_epsilon([0.0, 0.1, 0.2], outcomes).passed  # level 0.025
    grid = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    ten = [correct(k) for k in (490, 200, 208, 150, 100, 80, 60, 40, 20, 10)]
    assert accuracy_falls_with_epsilon(grid, ten).passed  # level 0.05/9


def test_a_single_epsilon_has_nothing_to_compare_and_bad_grids_are_refused():
    assert accuracy_falls_with_epsilon([0.1], [correct(10)]).passed
    with pytest.raises(ValueError, match="increasing"):
        accuracy_falls_with_epsilon([0.2, 0.1], [correct(1), correct(2)])
    with pytest.raises(ValueError, match="outcome vectors"):
        accuracy_falls_with_epsilon([0.1, 0.2], [correct(1)])


def test_pgd_weaker_than_fgsm_fails_and_pgd_as_strong_passes():
    assert pgd_at_least_as_strong_as_fgsm(correct(200), correct(150), 0.1).passed
    assert pgd_at_least_as_strong_as_fgsm(correct(200), correct(203), 0.1).passed  # noise
    check = pgd_at_least_as_strong_as_fgsm(correct(150), correct(200), 0.1)
    assert not check.passed
    assert check.numbers["pgd_accuracy"] == 0.4 and check.numbers["fgsm_accuracy"] == 0.3


def test_autoattack_weaker_than_pgd_fails():
    assert autoattack_at_least_as_strong_as_pgd(correct(100), correct(90), 0.1).passed
    assert not autoattack_at_least_as_strong_as_pgd(correct(100), correct(160), 0.1).passed


def test_a_gradient_free_attack_that_beats_the_white_box_ones_fails():
    white_box = correct(300)
    assert gradient_free_not_stronger(white_box, correct(300), 0.1).passed
    assert gradient_free_not_stronger(white_box, correct(297), 0.1).passed  # 3 more broken: noise
    check = gradient_free_not_stronger(white_box, correct(200), 0.1)
    assert not check.passed
    assert "white-box" in check.name and "Square" in check.name


def test_the_comparison_is_paired_not_on_the_accuracies_alone():
    # Equal accuracies, but the stronger attack keeps a different half correct: no direction wins.
    first, second = correct(250), ~correct(250)
    assert at_least_as_strong(second, first, "A", "B", 0.1).passed


def test_accuracy_above_chance_at_a_large_epsilon_fails():
    labels = np.arange(N) % 10  # every label on a tenth of the examples
    assert near_chance_at_large_epsilon(correct(0), labels, 0.5).passed
    assert near_chance_at_large_epsilon(correct(55), labels, 0.5).passed  # 11 % vs 10 %: noise
    check = near_chance_at_large_epsilon(correct(150), labels, 0.5)
    assert not check.passed
    assert check.numbers["bound"] == pytest.approx(0.1)


def test_the_chance_bound_is_the_largest_label_share():
    labels = np.r_[np.zeros(300, dtype=int), np.arange(200) % 9 + 1]  # 60 % are class 0
    check = near_chance_at_large_epsilon(correct(290), labels, 0.6)
    assert check.passed and check.numbers["bound"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="0.5"):
        near_chance_at_large_epsilon(correct(0), labels, 0.3)


def test_model_checks_runs_every_check_the_outcomes_allow():
    labels = np.arange(N) % 10
    fgsm = {0.0: correct(490), 0.1: correct(300), 0.2: correct(200)}
    pgd = {0.1: correct(100), 0.5: correct(10)}
    names = [check.name for check in model_checks(0.1, fgsm, pgd, labels)]
    assert names == ["FGSM accuracy does not rise with ε", "PGD accuracy does not rise with ε",
                     "PGD at least as strong as FGSM", "PGD accuracy near chance at ε = 0.5"]
    assert all(check.passed for check in model_checks(0.1, fgsm, pgd, labels))


def test_model_checks_catch_square_beating_autoattacks_gradient_attacks():
    labels = np.arange(N) % 10
    gradient, final = correct(100), correct(40)  # Square breaks 60 the gradient attacks left
    outcomes = np.zeros(N, dtype=bool)
    result = AutoAttackResult(0.1, COMPONENTS, correct(490),
                              (correct(200), correct(150), gradient, final))
    assert np.array_equal(result.white_box, gradient)
    checks = model_checks(0.1, {0.1: correct(300)}, {0.1: correct(100)}, labels, autoattack=result)
    failed = [check.name for check in checks if not check.passed]
    assert failed == ["AutoAttack's gradient attacks at least as strong as Square"]
    with pytest.raises(ValueError, match="headline"):
        model_checks(0.2, {0.1: outcomes}, {0.1: outcomes}, labels, autoattack=result)
