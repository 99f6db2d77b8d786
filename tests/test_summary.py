from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

import fake_results as fake
from fragile.autoattack import COMPONENTS, AutoAttackResult
from fragile.bootstrap import outcomes
from fragile.comparison import Comparison, SweepResult
from fragile.intervals import detectable_difference, paired
from fragile.layout import PLOTS
from fragile.masking import INCONCLUSIVE, MASKING, NOT_ASSESSED, ROBUST_GAIN
from fragile.params import params_from_dict
from fragile.summary import (
    accuracy_series,
    fragile_persistence,
    headline,
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


RECORD = fake.robustness(N)


def test_a_gain_against_fgsm_that_pgd_takes_away_is_masking_suspected():
    block = headline(comparison(hardened_fgsm=60, hardened_pgd=20), 0.1, RANK, HARDEN, record=RECORD)
    gain = block.gain
    assert gain["fgsm_whitebox"] == pytest.approx(0.2) and gain["fgsm_whitebox_gain"]
    assert gain["fgsm_whitebox_mcnemar_p"] == pytest.approx(stats.binomtest(0, 20).pvalue)  # 20 discordant, all one way
    assert gain["pgd_whitebox"] == 0.0 and not gain["pgd_whitebox_gain"] and gain["pgd_whitebox_mcnemar_p"] == 1.0
    assert block.masking["verdict"] == MASKING and block.masking["strong_attack"] == "PGD"
    assert block.masking["gain_gap"] == pytest.approx(0.2) and block.masking["gain_gap_sign_p"] < 0.05
    assert block.original["pgd_accuracy"] == 0.2 and block.hardened["pgd_accuracy_whitebox"] == 0.2
    assert block.kernels.fragile == len(RANK.fragile) and block.harden.alpha == HARDEN.alpha


def test_a_gain_that_holds_under_pgd_is_a_robust_gain():
    block = headline(comparison(hardened_fgsm=60, hardened_pgd=40), 0.1, RANK, HARDEN, record=RECORD)
    assert block.gain["fgsm_whitebox_gain"] and block.gain["pgd_whitebox_gain"]
    assert block.masking["verdict"] == ROBUST_GAIN and block.masking["failed_checks"] == []


def test_a_small_gain_is_inconclusive_with_the_smallest_detectable_gain():
    block = headline(comparison(hardened_fgsm=42, hardened_pgd=22), 0.1, RANK, HARDEN, record=RECORD)
    masking = block.masking
    assert masking["verdict"] == INCONCLUSIVE and not block.gain["pgd_whitebox_gain"]
    assert masking["detectable_gain"] == pytest.approx(detectable_difference(N, 2), abs=1e-6)
    assert masking["strong_gain"] < masking["detectable_gain"] < 1


def test_pgd_under_10_steps_gives_no_verdict_and_no_record_none_either():
    weak = headline(comparison(60, 40), 0.1, RANK, HARDEN, record=fake.robustness(N, pgd_steps=5))
    assert weak.masking["verdict"] == NOT_ASSESSED and "5 steps" in weak.masking["reason"]
    assert headline(comparison(60, 40), 0.1, RANK, HARDEN).masking["verdict"] == NOT_ASSESSED


def test_a_failed_sanity_check_is_in_the_sanity_block_and_makes_the_verdict_masking():
    # PGD leaves 80 of 100 correct where FGSM at the same ε leaves 60: PGD weaker than FGSM.
    block = headline(comparison(hardened_fgsm=60, hardened_pgd=80), 0.1, RANK, HARDEN, record=RECORD)
    failed = [c for c in block.sanity["hardened"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["PGD at least as strong as FGSM"]
    assert failed[0]["numbers"]["pgd_accuracy"] == 0.8 and failed[0]["numbers"]["fgsm_accuracy"] == 0.6
    assert block.sanity["hardened_failed"] == 1 and block.sanity["original_failed"] == 0
    assert block.masking["verdict"] == MASKING
    assert block.masking["failed_checks"] == ["hardened: PGD at least as strong as FGSM"]


def test_every_share_gets_an_exact_interval_and_none_of_width_0_at_the_edges():
    c = dataclasses.replace(comparison(60, 20), pgd_original=sweep([0.1], 90, [0], [100]))
    block = headline(c, 0.1, RANK, HARDEN, record=RECORD)
    for side in (block.original, block.hardened):
        numbers = [k for k in side if not k.endswith("_ci95")]
        assert len(numbers) >= 5
        for key in numbers:
            low, high = side[f"{key}_ci95"]
            assert low <= side[key] <= high and high > low, key
    assert block.original["pgd_accuracy"] == 0.0
    exact = stats.binomtest(0, N).proportion_ci(method="exact")
    assert block.original["pgd_accuracy_ci95"] == [0.0, pytest.approx(exact.high, abs=1e-6)]
    assert block.original["targeting_pct_ci95"] == pytest.approx(
        [100 * v for v in stats.binomtest(80, N).proportion_ci(method="exact")], abs=1e-4)
    assert block.original["pgd_targeting_pct_ci95"][1] == 100.0 and block.original["pgd_targeting_pct_ci95"][0] < 100


def test_every_gain_has_newcombes_interval_and_mcnemars_p():
    c = comparison(55, 30)
    block = headline(c, 0.1, RANK, HARDEN, record=RECORD)
    expected = paired(outcomes(c.original.outcomes("correct", 1)), outcomes(c.hardened.outcomes("correct", 1)))
    g = block.gain
    assert g["fgsm_whitebox_ci95"] == pytest.approx([expected.low, expected.high], abs=1e-6)
    assert g["fgsm_whitebox_mcnemar_p"] == expected.p_value
    for name in ("clean", "fgsm_whitebox", "fgsm_transfer", "pgd_whitebox"):
        assert {name, f"{name}_ci95", f"{name}_mcnemar_p", f"{name}_gain"} <= set(g)
    assert "gain_gap_ci95" not in block.masking  # the bootstrap of the gap needs resamples
    low, high = headline(c, 0.1, RANK, HARDEN, 300, 0, record=RECORD).masking["gain_gap_ci95"]
    assert low <= block.masking["gain_gap"] <= high


def _autoattack(final: int, white_box: int, n: int = N) -> dict:
    """AutoAttack at ε = 0.1 leaving the first `white_box` examples after the gradient attacks
    and the first `final` after Square."""
    first = lambda k: np.arange(n) < k  # noqa: E731
    return AutoAttackResult(0.1, COMPONENTS, first(90), (first(white_box),) * 3 + (first(final),)).to_dict()


def test_autoattack_is_the_strong_attack_with_its_accuracies_and_its_checks():
    record = fake.robustness(N, autoattack_original=_autoattack(10, 10), autoattack_hardened=_autoattack(30, 30))
    block = headline(comparison(60, 35), 0.1, RANK, HARDEN, record=record)
    assert block.original["autoattack_accuracy"] == 0.1 and block.hardened["autoattack_accuracy"] == 0.3
    assert block.hardened["autoattack_square_accuracy"] == 0.3 and "autoattack_apgd_ce_accuracy_ci95" in block.hardened
    assert block.gain["autoattack"] == pytest.approx(0.2) and block.gain["autoattack_gain"]
    assert block.masking["strong_attack"] == "AutoAttack" and block.masking["verdict"] == ROBUST_GAIN
    names = {c["name"] for c in block.sanity["hardened"]}
    assert {"AutoAttack at least as strong as PGD", "AutoAttack's gradient attacks at least as strong as Square"} <= names
    assert not any("attack.autoattack is off" in note for note in block.sanity["not_run"])


def test_square_far_below_the_gradient_attacks_fails_its_check():
    record = fake.robustness(N, autoattack_original=_autoattack(10, 10), autoattack_hardened=_autoattack(5, 30))
    block = headline(comparison(60, 35), 0.1, RANK, HARDEN, record=record)
    failed = [c["name"] for c in block.sanity["hardened"] if not c["passed"]]
    assert failed == ["AutoAttack's gradient attacks at least as strong as Square"]
    assert block.masking["verdict"] == MASKING


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
    assert on_grid.methods["shares"].startswith("Clopper-Pearson") and "Newcombe" in on_grid.methods["gains"]
    assert {on_grid.checkpoints[e].masking["verdict"] for e in (1, 2)} <= {MASKING, ROBUST_GAIN, INCONCLUSIVE}

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
