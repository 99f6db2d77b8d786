"""The report's robustness sections from constructed headlines."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

import fake_results as fake
from fragile.autoattack import COMPONENTS, AutoAttackResult
from fragile.intervals import paired_counts
from fragile.paper import RunConfig
from fragile.report_robustness import (
    epsilon_units_section,
    flags_ci95,
    gains_table,
    robustness_section,
    sanity_tables,
    verdict_paragraph,
)
from fragile.summary import headline
from fragile.units import PAPER_EPSILON_UNITS
from test_summary import N, comparison

EPOCHS = (1, 2)


def _headline(hardened_pgd: dict[int, int], **record):
    blocks = {e: headline(comparison(60, hardened_pgd[e]), 0.1, fake.rank(e), fake.harden(e),
                          record=fake.robustness(N, **record)) for e in EPOCHS}
    return dataclasses.replace(fake.headline_metrics(EPOCHS), checkpoints=blocks)


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_gains_carry_newcombes_interval_and_mcnemars_p_and_the_methods_are_named():
    h = _headline({1: 20, 2: 40})
    table = gains_table(h, EPOCHS)
    row = _line(table, "| 1 | FGSM, white-box |")
    assert f"| +20.0 pp [{100 * h.checkpoints[1].gain['fgsm_whitebox_ci95'][0]:+.1f}," in row
    assert f"| {stats.binomtest(0, 20).pvalue:.3g} | yes |" in row
    same = paired_counts(20, 0, 0, N - 20)  # PGD: the same 20 examples right under both models
    assert _line(table, "| 1 | L∞ PGD, white-box |").endswith(
        f"| +0.0 pp [{100 * same.low:+.1f}, {100 * same.high:+.1f}] | 1 | no |")
    assert same.low < 0 < same.high
    text = robustness_section(h, EPOCHS)
    assert "Newcombe's (1998, method 10)" in text and "exact McNemar test" in text
    assert f"- shares: {h.methods['shares']}" in text


def test_the_three_verdicts_each_get_their_line():
    h = _headline({1: 20, 2: 40})
    text = verdict_paragraph(h, EPOCHS)
    assert "- epoch 1: **masking suspected** (PGD" in text and "- epoch 2: **robust gain** (PGD" in text
    small = dataclasses.replace(h, checkpoints={1: headline(comparison(42, 22), 0.1, fake.rank(1), fake.harden(1),
                                                           record=fake.robustness(N))})
    line = verdict_paragraph(small, (1,)).splitlines()[-1]
    assert "**inconclusive**" in line and "examples detect a gain of" in line


def test_a_failed_sanity_check_shows_as_fail_with_its_numbers():
    h = _headline({1: 80, 2: 40})  # epoch 1: PGD leaves more correct than FGSM on the hardened model
    tables = sanity_tables(h, EPOCHS)
    row = _line(tables, "| PGD at least as strong as FGSM |")
    assert "| pass: PGD 20.0 % vs FGSM 40.0 %" in row and "| **FAIL**: PGD leaves significantly more" in row
    assert "Epoch 1: 1 failed." in tables and "Epoch 2: 0 failed." in tables
    assert "attack.autoattack is off" in tables


def test_square_beating_the_gradient_attacks_is_named_a_masking_sign():
    def aa(final: int, white_box: int) -> dict:
        first = lambda k: np.arange(N) < k  # noqa: E731
        return AutoAttackResult(0.1, COMPONENTS, first(90), (first(white_box),) * 3 + (first(final),)).to_dict()

    h = _headline({1: 35, 2: 35}, autoattack_original=aa(10, 10), autoattack_hardened=aa(5, 30))
    text = robustness_section(h, EPOCHS)
    assert "### AutoAttack at ε = 0.1" in text
    assert _line(text, "| 1 | after Square (gradient-free) |").startswith("| 1 | after Square (gradient-free) | 10.0% [")
    assert "| 1 | **robust accuracy (final)** | 10.0% [" in text
    assert "Masking sign: Square (gradient-free) breaks examples" in _line(text, "- epoch 1:")


def test_the_papers_epsilon_under_both_readings_is_marked_units_not_stated():
    config = RunConfig("mnist", "resnet50", "imagenet", 100, (100,), 0)
    attack = dataclasses.replace(fake.attack(1), epsilons=[0.0, 0.105, 0.34], accuracy=[0.99, 0.85, 0.3])
    text = epsilon_units_section(config, {100: attack}, [0.3081])
    row = _line(text, "| ResNet-50, MNIST, 100 epochs |")
    assert "| 0.34 | 79.4% | 0.34 | 30.0% | 0.105 | 85.0% |" in row
    assert "pixel reading: disagrees" in row and "normalised reading:" in row and row.endswith(f"{PAPER_EPSILON_UNITS} |")
    cifar = _line(text, "| ResNet-50, CIFAR10, 100 epochs |")
    assert "not comparable: dataset differs" in cifar and "— (not on attack.epsilons)" in cifar
    assert epsilon_units_section(config, {100: attack}, []) == ""


def test_flags_get_the_exact_interval_and_none_without_flags():
    low, high = flags_ci95("0" * 500)
    assert low == 0.0 and high > 0.007
    assert flags_ci95("1" * 250 + "0" * 250, percent=True) == [
        round(100 * v, 6) for v in stats.binomtest(250, 500).proportion_ci(method="exact")]
    assert flags_ci95("") is None
