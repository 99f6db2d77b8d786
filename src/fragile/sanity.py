"""Sanity checks of an attack evaluation (Carlini et al. 2019, "On evaluating adversarial
robustness"), per model, on per-example 0/1 outcomes (1: still classified correctly).

Each check returns pass/fail with its numbers and a one-line reason. Accuracies are compared
on the same examples, so "within sampling noise" is the exact McNemar test (fragile.intervals)
at ALPHA = 5 %: a check fails only on a significant difference in the wrong direction.

- accuracy does not rise with ε: no significant rise between consecutive ε of a curve, each
  pair tested at 5 % / (number of pairs) (Bonferroni), so a curve raises a false alarm at most
  5 % of the time;
- the iterative attack is at least as strong as FGSM at the same ε (PGD accuracy not
  significantly above FGSM's), and AutoAttack at least as strong as PGD;
- a gradient-free attack (Square) is not stronger than the white-box ones: it must not find
  significantly lower accuracy, or the gradients are failing (masked);
- at ε ≥ 0.5 every image in [0, 1] lies within ε of the uniform grey image, so a perfect attack
  maps every example to that one image and leaves at most the share of its most common label
  correct: accuracy significantly above that share (one-sided exact binomial test) fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from fragile.intervals import ALPHA, paired

if TYPE_CHECKING:
    from fragile.autoattack import AutoAttackResult

LARGE_EPSILON = 0.5  # from here on every pixel image is within ε of uniform grey


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_falls_with_epsilon(epsilons: Sequence[float], outcomes: Sequence[Any], attack: str = "FGSM",
                                alpha: float = ALPHA) -> Check:
    """Accuracy must not rise significantly between consecutive ε of `epsilons` (increasing);
    outcomes[i] holds every example's outcome at epsilons[i]."""
    name = f"{attack} accuracy does not rise with ε"
    if len(epsilons) != len(outcomes):
        raise ValueError(f"{len(epsilons)} ε but {len(outcomes)} outcome vectors")
    if list(epsilons) != sorted(set(epsilons)):
        raise ValueError(f"epsilons must be strictly increasing, got {list(epsilons)}")
    if len(epsilons) < 2:
        return Check(name, True, "one ε: nothing to compare")
    level = alpha / (len(epsilons) - 1)
    rises = [(paired(outcomes[i], outcomes[i + 1]), i) for i in range(len(epsilons) - 1)]
    rising = [r for r in rises if r[0].c > r[0].b]
    # The most significant rise, or (none rising) the flattest step.
    comparison, i = min(rising, key=lambda r: r[0].p_value) if rising else max(rises, key=lambda r: r[0].difference)
    significant = bool(rising) and comparison.p_value < level
    numbers = {"epsilon_from": epsilons[i], "epsilon_to": epsilons[i + 1],
               "accuracy_from": _mean(outcomes[i]), "accuracy_to": _mean(outcomes[i + 1]),
               "p_value": comparison.p_value, "level": level}
    step = (f"{_pct(numbers['accuracy_from'])} at ε = {epsilons[i]:g} to {_pct(numbers['accuracy_to'])} "
            f"at ε = {epsilons[i + 1]:g} (McNemar p = {comparison.p_value:.3g}, level {level:.3g})")
    if significant:
        return Check(name, False, f"{attack} accuracy rises from {step}", numbers)
    if rising:
        return Check(name, True, f"no significant rise; the most significant rise goes from {step}", numbers)
    return Check(name, True, f"accuracy never rises with ε; the flattest step goes from {step}", numbers)


def at_least_as_strong(stronger: Any, weaker: Any, stronger_name: str, weaker_name: str, epsilon: float,
                       alpha: float = ALPHA) -> Check:
    """`stronger` (outcomes under the attack expected to be stronger) must not leave
    significantly more examples correct than `weaker` on the same examples at `epsilon`."""
    name = f"{stronger_name} at least as strong as {weaker_name}"
    comparison = paired(weaker, stronger)
    numbers = {"epsilon": epsilon, f"{_key(stronger_name)}_accuracy": _mean(stronger),
               f"{_key(weaker_name)}_accuracy": _mean(weaker), "p_value": comparison.p_value}
    detail = (f"{stronger_name} {_pct(_mean(stronger))} vs {weaker_name} {_pct(_mean(weaker))} at "
              f"ε = {epsilon:g} (McNemar p = {comparison.p_value:.3g})")
    if comparison.c > comparison.b and comparison.p_value < alpha:
        return Check(name, False, f"{stronger_name} leaves significantly more examples correct: {detail}", numbers)
    return Check(name, True, detail, numbers)


def pgd_at_least_as_strong_as_fgsm(fgsm: Any, pgd: Any, epsilon: float) -> Check:
    return at_least_as_strong(pgd, fgsm, "PGD", "FGSM", epsilon)


def autoattack_at_least_as_strong_as_pgd(pgd: Any, autoattack: Any, epsilon: float) -> Check:
    return at_least_as_strong(autoattack, pgd, "AutoAttack", "PGD", epsilon)


def gradient_free_not_stronger(white_box: Any, gradient_free: Any, epsilon: float,
                               white_box_name: str = "white-box", gradient_free_name: str = "Square") -> Check:
    """A gradient-free attack finding significantly lower accuracy than the white-box ones
    means the gradients mislead them: the sign of gradient masking."""
    return at_least_as_strong(white_box, gradient_free, white_box_name, gradient_free_name, epsilon)


def near_chance_at_large_epsilon(outcomes: Any, labels: Any, epsilon: float, attack: str = "PGD",
                                 alpha: float = ALPHA) -> Check:
    """At ε ≥ 0.5 accuracy must not be significantly above the largest label share among the
    examples (what a constant image can keep correct)."""
    if epsilon < LARGE_EPSILON:
        raise ValueError(f"the chance-level bound needs ε >= {LARGE_EPSILON}, got {epsilon}")
    flags = np.asarray(outcomes).astype(bool).ravel()
    labels = np.asarray(labels).ravel()
    if flags.size != labels.size or flags.size == 0:
        raise ValueError(f"need one label per outcome, got {labels.size} labels for {flags.size} outcomes")
    bound = float(np.bincount(labels).max() / labels.size)
    correct = int(flags.sum())
    p = float(stats.binomtest(correct, flags.size, bound, alternative="greater").pvalue)
    name = f"{attack} accuracy near chance at ε = {epsilon:g}"
    numbers = {"epsilon": epsilon, "accuracy": correct / flags.size, "bound": bound, "p_value": p}
    detail = (f"{attack} accuracy {_pct(correct / flags.size)} at ε = {epsilon:g} against the largest "
              f"label share {_pct(bound)} (one-sided binomial p = {p:.3g})")
    if p < alpha:
        return Check(name, False, f"the attack fails where a constant image would succeed: {detail}", numbers)
    return Check(name, True, detail, numbers)


def model_checks(
    headline: float,
    fgsm: Mapping[float, Any],
    pgd: Mapping[float, Any],
    labels: Any,
    autoattack: AutoAttackResult | None = None,
) -> list[Check]:
    """Every check that the outcomes of one model allow: `fgsm` and `pgd` map ε to per-example
    outcomes (the same examples throughout, `labels` theirs). PGD at least as strong as FGSM at
    every ε > 0 on both grids; the chance-level bound at every PGD ε >= 0.5; AutoAttack against
    PGD at the headline ε, and its gradient-free Square against its gradient components."""
    checks = [accuracy_falls_with_epsilon(sorted(grid), [grid[e] for e in sorted(grid)], attack)
              for attack, grid in (("FGSM", fgsm), ("PGD", pgd)) if grid]
    checks += [pgd_at_least_as_strong_as_fgsm(fgsm[e], pgd[e], e) for e in sorted(set(fgsm) & set(pgd)) if e > 0]
    checks += [near_chance_at_large_epsilon(pgd[e], labels, e) for e in sorted(pgd) if e >= LARGE_EPSILON]
    if autoattack is not None:
        if autoattack.epsilon != headline or headline not in pgd:
            raise ValueError(f"AutoAttack ran at ε = {autoattack.epsilon:g}; it is checked against PGD at the "
                             f"headline ε = {headline:g}, which both need")
        checks.append(autoattack_at_least_as_strong_as_pgd(pgd[headline], autoattack.final, headline))
        checks.append(gradient_free_not_stronger(autoattack.white_box, autoattack.final, headline,
                                                 "AutoAttack's gradient attacks", "Square"))
    return checks


def _mean(outcomes: Any) -> float:
    return float(np.asarray(outcomes, dtype=float).mean())


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _key(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")
