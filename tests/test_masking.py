from __future__ import annotations

import numpy as np
import pytest

from fragile.masking import (
    INCONCLUSIVE,
    MASKING,
    NOT_ASSESSED,
    ROBUST_GAIN,
    ROBUST_LOSS,
    masking_verdict,
)
from fragile.sanity import Check

N = 500


def span(start: int, stop: int) -> np.ndarray:
    """Examples start..stop−1 correct, the others wrong."""
    return (np.arange(N) >= start) & (np.arange(N) < stop)


def test_a_gain_that_the_strong_attack_confirms_is_a_robust_gain():
    # FGSM: +100 examples; PGD: +100 other ones, partly the same: the per-example gains differ
    # as often one way as the other (50 and 50), so FGSM does not overstate the PGD gain.
    result = masking_verdict(span(0, 100), span(0, 200), span(0, 50), span(0, 150), "PGD", pgd_steps=10)
    assert result.verdict == ROBUST_GAIN
    assert result.strong_gain.second_better and result.strong_gain.difference == pytest.approx(0.2)
    assert (result.gain_gap.positive, result.gain_gap.nonzero) == (50, 100)
    assert result.detectable_gain is None
    assert "PGD gain +20.0 pp" in result.reason


def test_an_fgsm_gain_that_pgd_does_not_show_is_masking():
    result = masking_verdict(span(0, 100), span(0, 300), span(0, 20), span(0, 22), "PGD", pgd_steps=10)
    assert result.verdict == MASKING
    assert result.fgsm_gain.second_better and not result.strong_gain.significant
    assert result.gain_gap.significant
    assert "exceeds the PGD gain" in result.reason


def test_masking_takes_precedence_over_a_smaller_confirmed_gain():
    # PGD confirms +30 examples (significant), FGSM claims +200: the FGSM number is inflated.
    result = masking_verdict(span(0, 100), span(0, 300), span(0, 20), span(0, 50), "PGD", pgd_steps=10)
    assert result.strong_gain.second_better
    assert result.verdict == MASKING


def test_no_significant_strong_gain_is_inconclusive_with_the_detectable_gain():
    result = masking_verdict(span(0, 100), span(0, 102), span(0, 50), span(0, 53), "PGD", pgd_steps=10)
    assert result.verdict == INCONCLUSIVE
    assert 0 < result.detectable_gain < 0.05
    assert f"{100 * result.detectable_gain:.1f} pp" in result.reason


def test_a_significant_fgsm_gain_alone_is_not_called_masking():
    # The former rule (FGSM gain significant, PGD gain not) read absence of evidence as evidence.
    original_fgsm, hardened_fgsm = span(0, 100), span(0, 115)
    # PGD: 30 gained (15 of them FGSM's 100..114), 20 lost; per example FGSM's gain exceeds
    # PGD's on 20 and falls short on 15: no evidence that FGSM overstates it.
    original_pgd = span(400, 420)
    hardened_pgd = span(100, 130)
    result = masking_verdict(original_fgsm, hardened_fgsm, original_pgd, hardened_pgd, "PGD", pgd_steps=10)
    assert result.fgsm_gain.second_better
    assert (result.strong_gain.b, result.strong_gain.c) == (20, 30) and not result.strong_gain.significant
    assert (result.gain_gap.positive, result.gain_gap.nonzero) == (20, 35) and not result.gain_gap.significant
    assert result.verdict == INCONCLUSIVE


def test_a_failed_sanity_check_means_masking_suspected():
    checks = [Check("PGD at least as strong as FGSM", True, "fine"),
              Check("white-box at least as strong as Square", False, "Square finds lower accuracy")]
    result = masking_verdict(span(0, 100), span(0, 200), span(0, 50), span(0, 150), "AutoAttack", pgd_steps=10,
                             checks=checks)
    assert result.verdict == MASKING
    assert result.failed_checks == ("white-box at least as strong as Square",)
    assert "Square" in result.reason


def test_a_significant_strong_loss_is_a_robust_loss():
    result = masking_verdict(span(0, 100), span(0, 100), span(0, 150), span(0, 50), "PGD", pgd_steps=10)
    assert result.verdict == ROBUST_LOSS


def test_pgd_with_fewer_than_10_steps_gives_no_verdict():
    args = (span(0, 100), span(0, 300), span(0, 20), span(0, 22))
    result = masking_verdict(*args, "PGD", pgd_steps=3)
    assert result.verdict == NOT_ASSESSED
    assert "3 steps, fewer than 10" in result.reason
    assert result.to_dict()["fgsm_gain"]["c"] == 200  # the numbers are still there
    # AutoAttack as the strongest attack does not depend on PGD's steps.
    assert masking_verdict(*args, "AutoAttack", pgd_steps=3).verdict == MASKING


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="strong_attack"):
        masking_verdict(span(0, 1), span(0, 1), span(0, 1), span(0, 1), "CW", pgd_steps=10)
    with pytest.raises(ValueError, match="examples"):
        masking_verdict(span(0, 1), span(0, 1), span(0, 1)[:10], span(0, 1)[:10], "PGD", pgd_steps=10)
