"""The headline's readings, kernel norms, overlap by chance and claims, on constructed results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fake_results as fake
from fragile.chance import chance_baseline, example_targets
from fragile.claims import AGREE, DISAGREE, INCONCLUSIVE, Claim
from fragile.claims_summary import (
    READINGS,
    VERDICT_CODES,
    checkpoint_readings,
    claims_blocks,
    claims_epsilon,
    combined_row,
    hardening_claims,
    reading_summary,
    stability_by_chance,
)
from fragile.comparison import Comparison, SweepResult
from fragile.overlap import pair_overlap, persistence
from fragile.params import params_from_dict
from fragile.results import Headline
from fragile.targeting import READINGS as TARGETING_READINGS


def _params(**analysis) -> object:
    raw = fake.params((1, 2))
    raw["analysis"].update(analysis)
    return params_from_dict(raw)


def test_the_readings_are_the_targeting_modules_and_the_nearest_grid_epsilon_is_used():
    assert READINGS == TARGETING_READINGS
    assert claims_epsilon(0.1, [0.0, 0.05, 0.1, 0.3]) == 2
    assert claims_epsilon(0.12, [0.0, 0.05, 0.1, 0.3]) == 2
    assert claims_epsilon(0.25, [0.0, 0.05, 0.1, 0.3]) == 3
    assert claims_epsilon(0.05, [0.0, 0.1, 0.2]) == 1  # ε = 0 is as near but moves nothing
    assert claims_epsilon(0.0, [0.0, 0.1]) == 1 and claims_epsilon(0.0, [0.0]) == 0
    assert claims_epsilon(0.5, [0.0, 0.25, 0.75]) == 2  # the larger of two as near


def _planted_archive(fragile, kernels=16, examples=300, seed=0):
    """S truly moves more on the absolute readings; on the relative ones every kernel is alike."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, eps in enumerate((0.0, 0.1)):
        for reading in READINGS:
            d = eps * rng.gamma(2.0, 1.0, size=(examples, kernels))
            if reading.endswith("absolute"):
                d[:, fragile] *= 2.0
            arrays[f"{reading}.eps{i}"] = d.astype(np.float32)
    norms = np.arange(1, kernels + 1, dtype=np.float64)
    return {**arrays, "epsilons": np.array([0.0, 0.1]), "weight_norm": norms, "bn_weight_norm": norms[::-1].copy()}


def test_a_planted_s_lies_above_chance_on_its_readings_and_a_null_reading_does_not():
    rank = dataclasses.replace(fake.rank(1), fragile=[0, 1, 2, 3, 4], null=list(range(5, 16)))
    archive = _planted_archive(rank.fragile)
    block, norms, claims = checkpoint_readings(archive, rank, 1, subsets=200, seed=3)
    for reading in READINGS:
        d = archive[f"{reading}.eps1"]
        baseline = chance_baseline(d, rank.fragile, rank.null, 200, 3)
        assert block[reading]["share"] == pytest.approx(example_targets(d, rank.fragile, rank.null).mean())
        assert block[reading]["p_value"] == baseline.p_value and block[reading]["percentile"] == baseline.percentile
        assert block[reading]["share_ci95"][0] <= block[reading]["share"] <= block[reading]["share_ci95"][1]
        assert block[reading]["by_epsilon"]["share"][1] == block[reading]["share"]
        assert block[reading]["by_epsilon"]["share"][0] == 0.0  # ε = 0 moves nothing: a tie is no attack on S
        if reading.endswith("absolute"):
            assert block[reading]["percentile"] > 95 and claims[reading].verdict != DISAGREE
        else:
            assert block[reading]["p_value"] > 0.01
    # kernels 0..4 have the smallest raw norms and the largest BN-scaled ones
    assert norms["weight_norm_fragile"] == 3.0 and norms["weight_norm_null"] == 11.0
    assert norms["bn_weight_norm_fragile"] > norms["bn_weight_norm_null"]
    assert norms["spearman_weight_norm"]["conv_absolute"] < 0 < norms["spearman_bn_weight_norm"]["conv_absolute"]


def test_without_a_chance_baseline_c2_is_inconclusive():
    rank = dataclasses.replace(fake.rank(1), fragile=[0, 1], null=list(range(2, 16)))
    block, _, claims = checkpoint_readings(_planted_archive(rank.fragile), rank, 1, subsets=0, seed=0)
    assert "p_value" not in block["conv_absolute"]
    low, high = block["conv_absolute"]["share_ci95"]  # the exact interval needs no resampling
    assert low <= block["conv_absolute"]["share"] <= high and high > low
    assert {c.verdict for c in claims.values()} == {INCONCLUSIVE}


def _claim(verdict: str) -> Claim:
    return Claim("C2", "s", "p", 0.89, 0.5, None, verdict, f"it is {verdict}")


def test_checkpoints_that_agree_give_their_verdict_and_differing_ones_inconclusive():
    assert combined_row({1: _claim(AGREE), 2: _claim(AGREE)})["verdict"] == AGREE
    row = combined_row({1: _claim(DISAGREE), 2: _claim(AGREE)})
    assert (row["verdict"], row["code"]) == (INCONCLUSIVE, 0)
    assert row["reason"].startswith("checkpoints differ") and "epoch 2: it is agree" in row["reason"]
    assert set(row["checkpoints"]) == {"epoch_1", "epoch_2"} and "statement" not in row["checkpoints"]["epoch_1"]
    assert VERDICT_CODES == {AGREE: 1, INCONCLUSIVE: 0, DISAGREE: -1}


def _sweep(correct: list[bool], on_s: list[bool]) -> SweepResult:
    result = SweepResult([0.1])
    result.record_clean([True] * len(correct))
    result.record(0, "correct", correct)
    for reading in READINGS:
        result.record_reading(0, reading, on_s if reading.startswith("bn") else [True] * len(on_s))
    return result


def test_c4_compares_the_same_x_on_both_models_and_c5_the_white_box_accuracies():
    n = 100
    original = _sweep([i < 40 for i in range(n)], [i < 80 for i in range(n)])
    transfer = _sweep([i < 40 for i in range(n)], [i < 50 for i in range(n)])  # bn: 30 examples leave S
    hardened = _sweep([i < 70 for i in range(n)], [True] * n)
    c4, c5 = hardening_claims(Comparison(original, hardened, transfer), 0, 3, alpha=0.05)
    assert c4["bn_absolute"].verdict == AGREE and c4["bn_absolute"].ours == pytest.approx(-0.3)
    assert c4["bn_absolute"].interval[1] < 0 and "transferred x'" in c4["bn_absolute"].scope
    assert c4["conv_absolute"].verdict == DISAGREE  # unchanged: not lower
    assert c5.verdict == AGREE and c5.ours == pytest.approx(0.3) and c5.p_value < 1e-6
    worse = Comparison(original, _sweep([i < 30 for i in range(n)], [True] * n), transfer)
    assert hardening_claims(worse, 0, 3, 0.05)[1].verdict == DISAGREE


def test_the_overlap_of_s_is_set_against_random_sets_of_the_same_sizes():
    ranks = {e: fake.rank(e) for e in (1, 2, 3)}
    out = stability_by_chance(ranks)
    for a, b in ((1, 2), (2, 3)):
        pair = pair_overlap(ranks[a].fragile, ranks[b].fragile, fake.KERNELS)
        assert out[f"expected_jaccard_{a}_{b}"] == pair.expected_jaccard
        assert out[f"overlap_p_{a}_{b}"] == pair.p_value
    result = persistence([ranks[e].fragile for e in (1, 2, 3)], fake.KERNELS)
    assert (out["always_fragile_expected"], out["always_fragile_p"]) == (result.expected, result.p_value)


def test_the_claims_block_follows_the_chosen_reading_and_its_rules():
    p = _params(output="bn", chance_subsets=100)
    p = dataclasses.replace(p, attack=dataclasses.replace(p.attack, distance="relative"))
    ranks = {e: fake.rank(e) for e in (1, 2)}
    blocks = claims_blocks(p, ranks, {e: fake.comparison(e) for e in (1, 2)}, {e: fake.archive(e) for e in (1, 2)})
    claims = blocks["claims"]
    assert claims["reading"] == blocks["readings"]["reading"] == "bn_relative"
    assert claims["C2"] == claims["C2_readings"]["bn_relative"] and claims["C4"] == claims["C4_readings"]["bn_relative"]
    assert claims["epsilon"] == 0.1 and set(blocks["kernel_norms"]) == {"epoch_1", "epoch_2"}
    for key in ("C1", "C2", "C3", "C4", "C5"):
        assert claims[key]["code"] == VERDICT_CODES[claims[key]["verdict"]] and claims[key]["id"] == key
    # the fakes plant S on the absolute readings only
    assert claims["C2_readings"]["conv_absolute"]["checkpoints"]["epoch_1"]["p_value"] < 0.05
    assert claims["C2_readings"]["bn_relative"]["verdict"] != AGREE
    # 3/12 and 4/12 fragile: 37 % fits both exact intervals; S persists beyond chance
    assert claims["C1"]["verdict"] == AGREE and claims["C3"]["ours"] == 3.0
    # a stricter α turns C3's p ≈ 0.018 from agree to inconclusive
    strict = claims_blocks(_params(significance=0.01), ranks, {e: fake.comparison(e) for e in (1, 2)},
                           {e: fake.archive(e) for e in (1, 2)})
    assert strict["claims"]["C3"]["verdict"] == INCONCLUSIVE


def test_a_checkpoint_without_an_archive_has_no_readings_and_c2_inconclusive():
    blocks = claims_blocks(_params(), {e: fake.rank(e) for e in (1, 2)}, {e: fake.comparison(e) for e in (1, 2)},
                           {1: fake.archive(1)})
    assert "epoch_1" in blocks["readings"] and "epoch_2" not in blocks["readings"]
    assert blocks["claims"]["C2"]["checkpoints"]["epoch_2"]["verdict"] == INCONCLUSIVE
    assert blocks["claims"]["C2"]["verdict"] == INCONCLUSIVE  # the checkpoints differ or are inconclusive


def test_the_headline_carries_the_blocks_through_its_file(tmp_path):
    headline = fake.headline_metrics((1, 2))
    headline.write(tmp_path / "h.json")
    again = Headline.read(tmp_path / "h.json")
    assert again == headline
    assert set(again.claims) >= {"C1", "C2", "C3", "C4", "C5", "C2_readings", "C4_readings"}
    assert set(again.readings["epoch_2"]) == set(READINGS)
    assert "expected_jaccard_1_2" in again.stability and "always_fragile_p" in again.stability


def test_a_share_of_zero_still_has_an_interval_above_zero():
    rank = dataclasses.replace(fake.rank(1), fragile=[0, 1], null=[2, 3])
    distances = np.tile(np.array([0.0, 0.0, 1.0, 1.0]), (500, 1))  # S never moves more than S'
    block, _, interval = reading_summary(distances, rank.fragile, rank.null, subsets=0, seed=0)
    assert block["share"] == 0.0 and interval[0] == 0.0
    assert interval[1] == pytest.approx(1 - 0.025 ** (1 / 500), abs=1e-6)  # Clopper–Pearson's upper end at 0 of n
