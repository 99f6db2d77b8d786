from __future__ import annotations

import json

import pytest
from scipy import stats

from fragile.chance import ChanceBaseline
from fragile.claims import (
    AGREE,
    DISAGREE,
    INCONCLUSIVE,
    Claim,
    fragile_share_claim,
    hardening_accuracy_claim,
    hardening_targeting_claim,
    mcnemar_p_value,
    persistence_claim,
    targeting_claim,
)
from fragile.overlap import persistence


def _baseline(observed: float, p_value: float, median: float = 0.5) -> ChanceBaseline:
    return ChanceBaseline(observed=observed, chance_mean=median, chance_median=median, chance_low=median - 0.2,
                          chance_high=median + 0.2, percentile=50.0, p_value=p_value, p_value_below=1 - p_value,
                          subsets=1000, seed=0)


# C1: the share of fragile kernels, exact binomial interval per checkpoint ---------------------

def test_c1_agrees_when_37_percent_fits_every_checkpoint():
    claim = fragile_share_claim([24, 22, 26], kernels=64)  # 37.5 %, 34 %, 41 %
    assert claim.verdict == AGREE
    assert claim.ours == pytest.approx(72 / 192)
    low = stats.binomtest(22, 64).proportion_ci(0.95, "exact").low
    assert claim.interval[0] == pytest.approx(low)


def test_c1_disagrees_when_37_percent_fits_no_checkpoint():
    # 50/64 = 78 %: its exact interval is roughly 66-88 %
    assert fragile_share_claim([50, 52], kernels=64).verdict == DISAGREE


def test_c1_is_inconclusive_when_checkpoints_differ():
    claim = fragile_share_claim([24, 52], kernels=64)
    assert claim.verdict == INCONCLUSIVE and "1 of 2" in claim.reason


# C2: Algorithm 1's share against chance and against 89 % -------------------------------------

def test_c2_agrees_above_chance_and_near_89_percent():
    claim = targeting_claim(_baseline(0.86, 0.001), share_interval=(0.83, 0.89), scope="conv_absolute")
    assert claim.verdict == AGREE and claim.p_value == 0.001 and claim.scope == "conv_absolute"


def test_c2_disagrees_when_no_more_than_a_random_set():
    claim = targeting_claim(_baseline(0.88, 0.6, median=0.9), share_interval=(0.85, 0.91))
    assert claim.verdict == DISAGREE and "random set" in claim.reason


def test_c2_disagrees_when_not_above_chance_and_well_below_89_percent():
    claim = targeting_claim(_baseline(0.55, 0.2, median=0.5), share_interval=(0.51, 0.59))
    assert claim.verdict == DISAGREE and "well below" in claim.reason


def test_c2_is_inconclusive_when_above_chance_but_far_from_89_percent():
    claim = targeting_claim(_baseline(0.60, 0.001), share_interval=(0.56, 0.64))
    assert claim.verdict == INCONCLUSIVE and "far from" in claim.reason


def test_c2_is_inconclusive_when_near_89_percent_but_random_sets_get_as_much():
    claim = targeting_claim(_baseline(0.90, 0.2, median=0.85), share_interval=(0.87, 0.93))
    assert claim.verdict == INCONCLUSIVE and "not significantly" in claim.reason


def test_c2_without_an_interval_compares_the_share_itself():
    assert targeting_claim(_baseline(0.80, 0.001)).verdict == AGREE  # within 0.10 of 0.89
    assert targeting_claim(_baseline(0.78, 0.001)).verdict == INCONCLUSIVE
    assert targeting_claim(_baseline(0.78, 0.001), tolerance=0.12).verdict == AGREE


# C3: persistence across checkpoints against independent random sets --------------------------

def test_c3_agrees_when_far_more_kernels_stay_fragile_than_chance():
    sets = [list(range(24)), list(range(2, 26)), list(range(1, 25))]  # 22 always fragile
    claim = persistence_claim(persistence(sets, 64))
    assert claim.verdict == AGREE and claim.ours == 22.0 and claim.p_value < 1e-6


def test_c3_disagrees_when_no_more_than_chance():
    # expected 64·(24/64)² = 9 shared; these share 8
    sets = [list(range(24)), list(range(16, 40))]
    claim = persistence_claim(persistence(sets, 64))
    assert claim.verdict == DISAGREE and "no more than chance" in claim.reason


def test_c3_is_inconclusive_for_a_small_excess_or_a_single_checkpoint():
    sets = [list(range(24)), list(range(13, 37))]  # 11 shared, chance 9
    assert persistence_claim(persistence(sets, 64)).verdict == INCONCLUSIVE
    single = persistence_claim(persistence([list(range(24))], 64))
    assert single.verdict == INCONCLUSIVE and "one checkpoint" in single.reason


# C4 / C5: paired changes from hardening -------------------------------------------------------

def test_c4_reads_lower_targeting_as_agreement_and_higher_as_disagreement():
    assert hardening_targeting_claim(0.80, 0.60, p_value=0.001).verdict == AGREE
    assert hardening_targeting_claim(0.80, 0.78, p_value=0.4).verdict == INCONCLUSIVE
    raised = hardening_targeting_claim(0.60, 0.80, p_value=0.001, scope="conv_absolute")
    assert raised.verdict == DISAGREE and raised.ours == pytest.approx(0.2)
    assert hardening_targeting_claim(0.60, 0.60, p_value=1.0).verdict == DISAGREE  # no change is not lower


def test_c5_reads_higher_accuracy_as_agreement():
    claim = hardening_accuracy_claim(0.50, 0.56, p_value=0.01, difference_interval=(0.02, 0.10))
    assert claim.verdict == AGREE and claim.interval == (0.02, 0.10)
    assert hardening_accuracy_claim(0.50, 0.51, p_value=0.3).verdict == INCONCLUSIVE
    assert hardening_accuracy_claim(0.50, 0.45, p_value=0.3).verdict == DISAGREE


def test_mcnemar_is_the_exact_binomial_test_of_the_changed_examples():
    before = [1] * 10 + [0] * 10 + [1] * 80
    after = [0] * 2 + [1] * 8 + [1] * 10 + [1] * 80  # 2 lost, 10 gained
    assert mcnemar_p_value(before, after) == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue)
    assert mcnemar_p_value([1, 0, 1], [1, 0, 1]) == 1.0
    with pytest.raises(ValueError):
        mcnemar_p_value([1, 0], [1])


# The row itself --------------------------------------------------------------------------------

def test_a_row_is_plain_json_and_a_bad_verdict_is_refused():
    row = fragile_share_claim([24], kernels=64, scope="epoch 2").to_dict()
    assert json.loads(json.dumps(row)) == row
    assert set(row) == {"id", "statement", "paper", "paper_value", "ours", "interval", "verdict", "reason",
                        "scope", "p_value"}
    assert row["id"] == "C1" and row["paper_value"] == 0.37 and isinstance(row["interval"], list)
    with pytest.raises(ValueError):
        Claim("C9", "", "", None, None, None, "maybe", "")
