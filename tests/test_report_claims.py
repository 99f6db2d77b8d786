"""The report's opening claims section: its rows and numbers are the headline's claims blocks."""

from __future__ import annotations

import copy
import dataclasses

import fake_results as fake
from fragile.claims_summary import READINGS
from fragile.report import build_report
from fragile.report_claims import claims_section
from test_report import inputs

EPOCHS = (1, 2)


def _row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def test_the_report_opens_with_one_row_per_claim_and_its_verdict():
    report = build_report(inputs())
    sections = report.split("\n## ")
    assert sections[1].startswith("Does the paper hold? Claims C1–C5")
    claims = fake.headline_metrics(EPOCHS).claims
    for key in ("C1", "C2", "C3", "C4", "C5"):
        row = _row(report, key)
        assert f"**{claims[key]['verdict']}**" in row and claims[key]["reason"] in row
    assert "29.2 % [" in _row(report, "C1")  # (3 + 4) / 24 kernels with its exact interval


def test_a_changed_verdict_in_the_metrics_changes_the_row():
    headline = fake.headline_metrics(EPOCHS)
    claims = copy.deepcopy(headline.claims)
    claims["C5"].update(verdict="disagree", reason="a constructed reason")
    text = claims_section(dataclasses.replace(headline, claims=claims), {e: fake.rank(e) for e in EPOCHS})
    assert "| **disagree** | a constructed reason |" in _row(text, "C5")


def test_every_reading_has_a_row_with_its_chance_baseline_and_what_holds_by_construction():
    headline = fake.headline_metrics(EPOCHS)
    text = claims_section(headline, {e: fake.rank(e) for e in EPOCHS})
    for reading in READINGS:
        label = reading + (" (the paper's)" if reading == "conv_absolute" else "")
        row = _row(text, label)
        block = headline.readings["epoch_1"][reading]
        assert f"epoch 1: {100 * block['share']:.1f} %" in row and f"percentile {block['percentile']:.1f}" in row
    assert "kernel scale" in _row(text, "conv_absolute (the paper's)") and "| none" in _row(text, "bn_relative")
    assert "mean ‖W_k‖: S vs S'" in text


def test_the_ranking_bootstrap_and_the_overlap_by_chance_are_reported():
    ranks = {e: fake.rank(e) for e in EPOCHS}
    probability = [1.0 if k in ranks[2].fragile else (0.5 if k == 1 else 0.0) for k in range(fake.KERNELS)]
    ranks[2] = dataclasses.replace(ranks[2], p_fragile=probability, fragile_share_ci95=[0.25, 0.4])
    text = claims_section(fake.headline_metrics(EPOCHS), ranks)
    assert "ranking at epoch 1: no bootstrap" in text
    assert (f"ranking at epoch 2: |S| = {len(ranks[2].fragile)} of 12; over resampled ranking examples |S|/n spans "
            f"25.0 % to 40.0 % (95%); {len(ranks[2].fragile)} kernels are in S in ≥ 95% of resamples, "
            f"{12 - len(ranks[2].fragile) - 1} in ≤ 5%, 1 in between") in text
    assert "| 1 | 0.50 |" in text and f"| {ranks[2].fragile[0]} | 1.00 (S) |" in text
    stability = fake.headline_metrics(EPOCHS).stability
    assert f"random sets of the same sizes give {stability['expected_jaccard_1_2']:.2f}" in text
