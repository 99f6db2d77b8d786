"""Does hardening make the model robust, or only hide its gradients from FGSM?

From per-example 0/1 outcomes (1: still correct) of the original and the hardened model on the
same examples at the headline ε, under FGSM and under the strongest attack run (PGD, or
AutoAttack when it ran), and the sanity checks (fragile.sanity), in this order:

1. "not assessed" when the strongest attack is PGD with fewer than MIN_PGD_STEPS steps:
   a weak PGD proves nothing either way.
2. "masking suspected" when a sanity check failed, or when the FGSM gain is significant
   (exact McNemar, hardened better) and exceeds the strong-attack gain per example: with
   g = hardened − original ∈ {−1, 0, 1} per example under each attack, the differences
   g_FGSM − g_strong are positive significantly more often than negative (exact one-sided
   sign test at 5 %). It takes precedence over a robust gain: the FGSM number then overstates
   what the strong attack confirms (the strong-attack gain stays in the result).
3. "robust gain" when the strong attack shows a significant paired gain (McNemar, hardened better).
4. "robust loss" when it shows a significant paired loss.
5. "inconclusive" otherwise, with the smallest gain the exact McNemar test would detect with
   80 % power at this n and the observed discordance (fragile.intervals.detectable_difference):
   no significant difference is not evidence of no difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fragile.intervals import (
    PairedComparison,
    SignTest,
    detectable_difference,
    paired,
    sign_test,
)
from fragile.sanity import Check

MIN_PGD_STEPS = 10
STRONG_ATTACKS = ("PGD", "AutoAttack")
NOT_ASSESSED = "not assessed"
MASKING = "masking suspected"
ROBUST_GAIN = "robust gain"
ROBUST_LOSS = "robust loss"
INCONCLUSIVE = "inconclusive"
DETECTION_POWER = 0.8


@dataclass(frozen=True)
class MaskingVerdict:
    verdict: str
    reason: str
    strong_attack: str
    fgsm_gain: PairedComparison
    strong_gain: PairedComparison
    gain_gap: SignTest  # per example: FGSM gain minus strong-attack gain
    failed_checks: tuple[str, ...] = ()
    detectable_gain: float | None = None  # inconclusive only: detectable with DETECTION_POWER

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "strong_attack": self.strong_attack,
            "fgsm_gain": self.fgsm_gain.to_dict(),
            "strong_gain": self.strong_gain.to_dict(),
            "gain_gap": self.gain_gap.to_dict(),
            "failed_checks": list(self.failed_checks),
            "detectable_gain": self.detectable_gain,
        }


def masking_verdict(
    original_fgsm: Any,
    hardened_fgsm: Any,
    original_strong: Any,
    hardened_strong: Any,
    strong_attack: str,
    pgd_steps: int,
    checks: Sequence[Check] = (),
) -> MaskingVerdict:
    """The verdict (module docstring) from 0/1 outcome vectors over the same examples."""
    if strong_attack not in STRONG_ATTACKS:
        raise ValueError(f"strong_attack must be one of {', '.join(STRONG_ATTACKS)}, got {strong_attack!r}")
    fgsm_gain = paired(original_fgsm, hardened_fgsm)
    strong_gain = paired(original_strong, hardened_strong)
    if fgsm_gain.n != strong_gain.n:
        raise ValueError(f"FGSM and {strong_attack} outcomes cover {fgsm_gain.n} and {strong_gain.n} examples")
    gap = sign_test(_gain(original_fgsm, hardened_fgsm) - _gain(original_strong, hardened_strong))
    failed = tuple(check.name for check in checks if not check.passed)
    found = {"strong_attack": strong_attack, "fgsm_gain": fgsm_gain, "strong_gain": strong_gain,
             "gain_gap": gap, "failed_checks": failed}
    fgsm, strong = _describe("FGSM", fgsm_gain), _describe(strong_attack, strong_gain)

    if strong_attack == "PGD" and pgd_steps < MIN_PGD_STEPS:
        return MaskingVerdict(NOT_ASSESSED, f"PGD has {pgd_steps} steps, fewer than {MIN_PGD_STEPS}: too weak to "
                                            "tell robustness from masking", **found)
    if failed:
        return MaskingVerdict(MASKING, f"sanity check failed: {'; '.join(failed)}", **found)
    if fgsm_gain.second_better and gap.significant:
        return MaskingVerdict(MASKING, f"{fgsm} is significant but exceeds the {strong} per example "
                                       f"(sign test p = {gap.p_value:.3g})", **found)
    if strong_gain.second_better:
        return MaskingVerdict(ROBUST_GAIN, f"{strong} is significant", **found)
    if strong_gain.significant:
        return MaskingVerdict(ROBUST_LOSS, f"{strong}: the hardened model is significantly less robust", **found)
    detectable = detectable_difference(strong_gain.n, strong_gain.b + strong_gain.c, power=DETECTION_POWER)
    return MaskingVerdict(
        INCONCLUSIVE,
        f"{strong} is not significant; {strong_gain.n} examples detect a gain of {100 * detectable:.1f} pp "
        f"with {DETECTION_POWER:.0%} power at the observed discordance",
        detectable_gain=detectable, **found,
    )


def _gain(original: Any, hardened: Any) -> np.ndarray:
    return np.asarray(hardened, dtype=np.int8).ravel() - np.asarray(original, dtype=np.int8).ravel()


def _describe(attack: str, gain: PairedComparison) -> str:
    return (f"{attack} gain {100 * gain.difference:+.1f} pp [{100 * gain.low:+.1f}, {100 * gain.high:+.1f}] "
            f"(McNemar p = {gain.p_value:.3g})")
