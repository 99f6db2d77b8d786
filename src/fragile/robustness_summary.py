"""The headline's robustness numbers: exact intervals, paired tests, sanity checks, the verdict.

summarize (fragile.summary) calls these for each checkpoint at the headline ε:
- every share (an accuracy, a targeting percentage: k of n examples) gets an exact
  Clopper–Pearson 95% interval, `<name>_ci95` (never of width 0 at 0/n or n/n);
- every hardened-minus-original difference on the same examples gets its Newcombe (1998)
  method 10 95% interval, `<name>_ci95`, the exact McNemar p-value on the discordant pairs,
  `<name>_mcnemar_p`, and `<name>_gain`: significant at 5% in favour of the hardened model;
- `sanity`: fragile.sanity's checks per model, each pass/fail with its numbers;
- `masking`: fragile.masking's verdict ("robust gain", "masking suspected", "inconclusive",
  "robust loss", or "not assessed" under a PGD of fewer than 10 steps) against the strongest
  attack run (AutoAttack when attack.autoattack, otherwise PGD), with the smallest gain the
  sample could detect. The per-example gap between the FGSM gain and the strong-attack gain
  (a difference of differences, in {−2, …, 2}) keeps the seeded percentile bootstrap.
`METHODS` names the method behind each kind of number (the headline's `methods` note).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fragile.autoattack import AutoAttackResult
from fragile.bootstrap import mean_ci, outcomes
from fragile.comparison import Comparison, SweepResult
from fragile.intervals import CLOPPER_PEARSON, PairedComparison, detectable_difference, paired, share
from fragile.masking import DETECTION_POWER, MIN_PGD_STEPS, NOT_ASSESSED, masking_verdict
from fragile.results import RobustnessRecord
from fragile.sanity import LARGE_EPSILON, Check, model_checks

DIGITS = 6  # interval ends are rounded so that the file reads cleanly

METHODS = {
    "shares": f"{CLOPPER_PEARSON} 95% interval of k of n examples (`<name>_ci95`)",
    "gains": ("hardened minus original on the same examples: exact McNemar test on the discordant pairs "
              "(`<name>_mcnemar_p`), Newcombe (1998) method 10 95% interval (`<name>_ci95`); `<name>_gain`: "
              "significant at 5% in the hardened model's favour"),
    "masking_gap": ("per-example FGSM gain minus strong-attack gain: exact one-sided sign test (`gain_gap_sign_p`), "
                    "seeded percentile bootstrap 95% interval of its mean (`gain_gap_ci95`, analysis.bootstrap "
                    "resamples)"),
    "detectable_gain": (f"smallest gain the exact McNemar test detects with {DETECTION_POWER:.0%} power at 5% "
                        "for this n and the observed discordant pairs"),
    "sanity": ("exact McNemar tests at 5% (accuracy vs ε: Bonferroni over the steps); near chance: one-sided "
               "exact binomial test against the largest label share"),
}


def share_ci95(successes: int, n: int, scale: float = 1.0) -> list[float]:
    """The exact Clopper–Pearson 95% interval of successes/n, times `scale` (100: percent)."""
    s = share(successes, n)
    return [round(scale * s.low, DIGITS), round(scale * s.high, DIGITS)]


def add_gain(block: dict[str, Any], name: str, original: str, hardened: str) -> PairedComparison:
    """`name` (hardened minus original share of the 0/1 outcome strings), its Newcombe
    interval, McNemar p-value and whether it is a significant gain, into `block`."""
    c = paired(outcomes(original), outcomes(hardened))
    block[name] = c.difference
    block[f"{name}_ci95"] = [round(c.low, DIGITS), round(c.high, DIGITS)]
    block[f"{name}_mcnemar_p"] = c.p_value
    block[f"{name}_gain"] = c.second_better
    return c


def autoattack_results(record: RobustnessRecord | None, epsilon: float) -> dict[str, AutoAttackResult]:
    """{"original": ..., "hardened": ...} of AutoAttack at `epsilon` (empty when it did not run there)."""
    if record is None or record.autoattack_original is None or record.autoattack_hardened is None:
        return {}
    found = {"original": AutoAttackResult.from_dict(record.autoattack_original),
             "hardened": AutoAttackResult.from_dict(record.autoattack_hardened)}
    return found if all(r.epsilon == epsilon for r in found.values()) else {}


def component_key(component: str) -> str:
    """"APGD-CE" -> "autoattack_apgd_ce_accuracy"."""
    return f"autoattack_{component.lower().replace('-', '_')}_accuracy"


def add_autoattack(original: dict[str, Any], hardened: dict[str, Any], gain: dict[str, Any],
                   attacked: dict[str, AutoAttackResult]) -> None:
    """AutoAttack's final robust accuracy and its running accuracy after each component, with
    exact intervals, per model; the hardened-minus-original gain under it."""
    if not attacked:
        return
    for block, result in ((original, attacked["original"]), (hardened, attacked["hardened"])):
        for key, flags in [(component_key(c), after) for c, after in zip(result.components, result.robust_after)] + \
                [("autoattack_accuracy", result.final)]:
            block[key] = float(flags.mean())
            block[f"{key}_ci95"] = share_ci95(int(flags.sum()), flags.size)
    add_gain(gain, "autoattack", _flags(attacked["original"].final), _flags(attacked["hardened"].final))


def sanity_block(curves: Comparison, at_epsilon: Comparison, epsilon: float, record: RobustnessRecord | None,
                 attacked: dict[str, AutoAttackResult]) -> tuple[dict[str, Any], list[Check]]:
    """fragile.sanity's checks per model on evaluate's FGSM and PGD grids (plus FGSM at
    `epsilon` from `at_epsilon` when it is off the grid), and the checks that could not run.
    Returns the block and every check, named "<model>: <check>"."""
    block: dict[str, Any] = {}
    named: list[Check] = []
    if record is None:
        return {"original": [], "hardened": [], "failed": 0, "not_run": ["every check: no robustness record"]}, []
    pgd_sweeps = {"original": curves.pgd_original, "hardened": curves.pgd_hardened}
    for model, grid, point in (("original", curves.original, at_epsilon.original),
                               ("hardened", curves.hardened, at_epsilon.hardened)):
        fgsm = _by_epsilon(grid)
        if epsilon not in fgsm and epsilon in point.epsilons:
            fgsm[epsilon] = outcomes(point.outcomes("correct", point.at(epsilon)))
        pgd = _by_epsilon(pgd_sweeps[model]) if pgd_sweeps[model] is not None else {}
        result = attacked.get(model) if epsilon in pgd else None
        checks = model_checks(epsilon, fgsm, pgd, np.asarray(record.labels), result)
        block[model] = [c.to_dict() for c in checks]
        block[f"{model}_failed"] = sum(not c.passed for c in checks)
        named += [Check(f"{model}: {c.name}", c.passed, c.reason, c.numbers) for c in checks]
    block["failed"] = block["original_failed"] + block["hardened_failed"]
    block["not_run"] = _not_run(curves, attacked)
    return block, named


def _not_run(curves: Comparison, attacked: dict[str, AutoAttackResult]) -> list[str]:
    missing = []
    if curves.pgd_original is None:
        missing.append("every PGD check: evaluate ran no PGD")
    elif max(curves.pgd_original.epsilons) < LARGE_EPSILON:
        missing.append(f"PGD accuracy near chance at ε >= {LARGE_EPSILON:g}: attack.sanity_epsilon is 0")
    if not attacked:
        missing.append("AutoAttack at least as strong as PGD, and Square (gradient-free) not stronger than "
                       "AutoAttack's gradient attacks: attack.autoattack is off")
    return missing


def masking_block(comparison: Comparison, epsilon: float, record: RobustnessRecord | None,
                  attacked: dict[str, AutoAttackResult], checks: list[Check], resamples: int,
                  seed: int) -> dict[str, Any]:
    """The three-way verdict at `epsilon` (module docstring) and the numbers behind it."""
    o, h = comparison.original, comparison.hardened
    at = o.at(epsilon)
    fgsm = (outcomes(o.outcomes("correct", at)), outcomes(h.outcomes("correct", at)))
    pgd_o, pgd_h = comparison.pgd_original, comparison.pgd_hardened
    steps = record.pgd_steps if record is not None else 0
    if attacked:
        strong_attack, strong = "AutoAttack", (attacked["original"].final, attacked["hardened"].final)
    elif pgd_o is not None and pgd_h is not None and epsilon in pgd_o.epsilons and record is not None:
        i = pgd_o.at(epsilon)
        strong_attack, strong = "PGD", (outcomes(pgd_o.outcomes("correct", i)), outcomes(pgd_h.outcomes("correct", i)))
    else:
        return {"verdict": NOT_ASSESSED, "reason": f"neither PGD nor AutoAttack ran at ε = {epsilon:g} with a "
                                                   "robustness record; rerun evaluate", "strong_attack": "none"}
    v = masking_verdict(fgsm[0], fgsm[1], strong[0], strong[1], strong_attack, steps, checks)
    gap = (fgsm[1].astype(float) - fgsm[0]) - (np.asarray(strong[1], dtype=float) - np.asarray(strong[0], dtype=float))
    out: dict[str, Any] = {"verdict": v.verdict, "reason": v.reason, "strong_attack": strong_attack,
                           "examples": v.strong_gain.n, "pgd_steps": steps, "pgd_restarts": record.pgd_restarts,
                           "pgd_steps_needed": MIN_PGD_STEPS}
    for name, c in (("fgsm_gain", v.fgsm_gain), ("strong_gain", v.strong_gain)):
        out[name] = c.difference
        out[f"{name}_ci95"] = [round(c.low, DIGITS), round(c.high, DIGITS)]
        out[f"{name}_mcnemar_p"] = c.p_value
    out["gain_gap"] = float(gap.mean())
    if resamples > 0:
        low, high = mean_ci(gap, resamples, seed)
        out["gain_gap_ci95"] = [round(low, DIGITS), round(high, DIGITS)]
    out["gain_gap_sign_p"] = v.gain_gap.p_value
    out["failed_checks"] = list(v.failed_checks)
    out["detectable_gain"] = round(detectable_difference(v.strong_gain.n, v.strong_gain.b + v.strong_gain.c,
                                                         power=DETECTION_POWER), DIGITS)
    return out


def _by_epsilon(sweep: SweepResult) -> dict[float, np.ndarray]:
    return {e: outcomes(sweep.outcomes("correct", i)) for i, e in enumerate(sweep.epsilons)}


def _flags(values: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in values)
