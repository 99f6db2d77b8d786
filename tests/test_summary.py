from __future__ import annotations

import dataclasses

import pytest
from scipy import stats

import fake_results as fake
from fragile.comparison import Comparison, SweepResult
from fragile.layout import PLOTS
from fragile.params import params_from_dict
from fragile.summary import (
    GAIN_MARGIN,
    accuracy_series,
    fragile_persistence,
    headline,
    is_gain,
    kernel_stability,
    summarize,
    targeting_series,
)

N = 100
RANK = fake.rank(1)
HARDEN = fake.harden(1)


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
    block = headline(comparison(hardened_fgsm=60, hardened_pgd=20), 0.1, RANK, HARDEN, resamples=500, seed=0)
    gain = block.gain
    assert gain["fgsm_whitebox"] == pytest.approx(0.2) and gain["fgsm_whitebox_gain"]
    assert gain["pgd_whitebox"] == 0.0 and not gain["pgd_whitebox_gain"]
    assert gain["gradient_masking"]
    assert block.original["pgd_accuracy"] == 0.2 and block.hardened["pgd_accuracy_whitebox"] == 0.2
    assert block.kernels.fragile == len(RANK.fragile) and block.harden.alpha == HARDEN.alpha


def test_a_gain_that_holds_under_pgd_is_not_masking():
    gain = headline(comparison(hardened_fgsm=60, hardened_pgd=40), 0.1, RANK, HARDEN, resamples=500, seed=0).gain
    assert gain["fgsm_whitebox_gain"] and gain["pgd_whitebox_gain"] and not gain["gradient_masking"]


def test_every_share_gets_an_interval_around_it_and_none_when_resampling_is_off():
    on = headline(comparison(60, 20), 0.1, RANK, HARDEN, resamples=300, seed=1)
    for side in (on.original, on.hardened):
        numbers = [k for k in side if not k.endswith("_ci95")]
        assert len(numbers) >= 5
        for key in numbers:
            low, high = side[f"{key}_ci95"]
            assert low <= side[key] <= high, key
    assert on.original["targeting_pct"] == 80.0 and on.original["targeting_pct_relative"] == 40.0
    assert 60 < on.original["targeting_pct_ci95"][0] < 80 < on.original["targeting_pct_ci95"][1] < 100
    off = headline(comparison(60, 20), 0.1, RANK, HARDEN, resamples=0)
    assert not [k for side in (off.original, off.hardened, off.gain) for k in side if k.endswith("_ci95")]
    assert off.original["fgsm_accuracy"] == on.original["fgsm_accuracy"]


def test_without_intervals_a_gain_must_exceed_the_margin():
    assert not is_gain(GAIN_MARGIN / 2, None)
    assert is_gain(2 * GAIN_MARGIN, None)
    assert not is_gain(0.2, [-0.01, 0.3])
    assert is_gain(0.02, [0.001, 0.05])


def test_plot_series_include_pgd_and_relative_targeting():
    c = comparison(60, 20)
    assert {"epoch 3 original PGD", "epoch 3 hardened PGD"} <= set(accuracy_series({3: c})["series"])
    assert {"epoch 3 original (relative d)", "epoch 3 hardened (relative d)"} <= set(targeting_series({3: c})["series"])


def test_plot_rows_carry_the_exact_95_percent_interval_as_low_and_high():
    c = comparison(60, 20)
    accuracy = accuracy_series({3: c}).set_index(["series", "epsilon"])
    exact = stats.binomtest(40, N).proportion_ci(0.95, method="exact")  # original FGSM: 40 of 100 right at ε 0.1
    row = accuracy.loc[("epoch 3 original", 0.1)]
    assert (row["accuracy"], row["low"], row["high"]) == pytest.approx((0.4, exact.low, exact.high))
    # no count here is 0 or n: every interval reaches both sides of its share
    assert (accuracy["low"] < accuracy["accuracy"]).all() and (accuracy["accuracy"] < accuracy["high"]).all()
    targeting = targeting_series({3: c}).set_index(["series", "epsilon"])
    on_s = stats.binomtest(40, N).proportion_ci(0.95, method="exact")  # relative d: 80 // 2 of 100 on S
    row = targeting.loc[("epoch 3 original (relative d)", 0.1)]
    assert (row["targeting_pct"], row["low"], row["high"]) == pytest.approx((40.0, 100 * on_s.low, 100 * on_s.high))
    none = targeting.loc[("epoch 3 original", 0.0)]  # 0 of 100 on S: the interval still reaches above 0
    assert none["low"] == 0 and 0 < none["high"] < 5


def _ranks(*fragile_sets):
    return {epoch: sorted(s) for epoch, s in fragile_sets}


def test_jaccard_between_consecutive_checkpoints_and_the_always_fragile_kernels():
    ranks = _ranks((50, {1, 2, 3, 4}), (10, {1, 2, 5}), (100, {2, 4}))  # out of order on purpose
    stability = kernel_stability(ranks)
    assert stability["checkpoints"] == [10, 50, 100]
    assert stability["jaccard_10_50"] == pytest.approx(2 / 5)  # {1, 2} of {1, 2, 3, 4, 5}
    assert stability["jaccard_50_100"] == pytest.approx(2 / 4)  # {2, 4} of {1, 2, 3, 4}
    assert "jaccard_10_100" not in stability  # consecutive pairs only
    assert stability["always_fragile"] == [2] and stability["always_fragile_count"] == 1
    assert fragile_persistence(ranks) == ([2], [1, 3, 4, 5])


def test_identical_and_disjoint_sets():
    assert kernel_stability(_ranks((1, {0, 7}), (2, {0, 7})))["jaccard_1_2"] == 1.0
    disjoint = kernel_stability(_ranks((1, {0}), (2, {1})))
    assert disjoint["jaccard_1_2"] == 0.0 and disjoint["always_fragile"] == []


def test_a_single_checkpoint_has_no_pairs_and_its_whole_set_is_always_fragile():
    stability = kernel_stability(_ranks((3, {5, 1, 9})))
    assert stability == {"checkpoints": [3], "always_fragile": [1, 5, 9], "always_fragile_count": 3}


def _summarize(epsilon, off_grid):
    epochs = (1, 2)
    said = []
    headline_, plots = summarize(params_from_dict(fake.params(epochs, epsilon)), {e: fake.rank(e) for e in epochs},
                                 {e: fake.harden(e) for e in epochs}, {e: fake.evaluate(e) for e in epochs},
                                 off_grid=off_grid, say=said.append)
    return headline_, plots, said


def test_summarize_reads_evaluates_counts_on_the_grid_and_attacks_only_off_it():
    def refuse(epoch, rank):
        raise AssertionError("ε = 0.1 is on the grid")

    on_grid, plots, said = _summarize(0.1, refuse)
    assert sorted(on_grid.checkpoints) == [1, 2] and on_grid.layer == "conv1"
    assert on_grid.checkpoints[2].original["fgsm_accuracy"] == fake.comparison(2).original.accuracy(2)
    assert list(plots) == list(PLOTS) and all(len(table) for table in plots.values())
    assert any(line.startswith("epoch 2 at ε=0.1: PGD original") for line in said)

    attacked = []

    def attack(epoch, rank):  # stands in for FGSM at ε = 0.2: the original's counts at 0.1, halved
        attacked.append((epoch, rank.fragile))
        c = fake.comparison(epoch)
        half = [dataclasses.replace(s, epsilons=[0.2], correct=[s.correct[2] // 2]) for s in
                (c.original, c.hardened, c.transfer)]
        return Comparison(*half)

    off_grid, _, said = _summarize(0.2, attack)
    assert attacked == [(1, fake.rank(1).fragile), (2, fake.rank(2).fragile)]
    assert off_grid.checkpoints[1].original["fgsm_accuracy"] == fake.comparison(1).original.correct[2] // 2 / 200
    assert "pgd_accuracy" not in off_grid.checkpoints[1].original  # PGD runs on attack.pgd_epsilons only
    assert "epoch 1: ε=0.2 is not in attack.epsilons; attacking at it now" in said
