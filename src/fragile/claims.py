"""Does the paper hold? A verdict for each of its claims, from numbers the pipeline measured.

Pure logic on plain numbers and the result dataclasses of `chance` and `overlap`; the stages
that measure the inputs and the report that prints the rows live elsewhere.

The claims (Pravin et al., "Adversarial Robustness in Deep Learning: Attacks on Fragile Neurons"):

C1  fragile kernels are 37 % of the layer's kernels. Sec. 5 states it for ResNet-50 on MNIST
    after 10 epochs (Fig. 3); Sec. 6 repeats "37 %" for ResNet-50 on CIFAR10 after 50 epochs.
C2  the attack concentrates on S for about 89 % of the examples (Algorithm 1): Sec. 5 "almost
    89 %" (MNIST, Fig. 3), Sec. 6 "approximately 89 %" (CIFAR10). No ε and no chance level given.
C3  some kernels stay fragile through all of training (Sec. 5, Fig. 4 red circles); no count
    and no chance level given.
C4  hardening keeps the share of examples attacking S below the original model's (Sec. 5,
    Fig. 3), read on transferred examples so that both models see the same x'.
C5  hardening raises accuracy under attack: Eq. 2, P(ŷ = y | x', θ') > P(ŷ = y | x', θ), and
    Sec. 6 "improves the robustness"; no numbers for the hardened model are given.

One principle for every verdict (α = `analysis.significance`):
  agree         the paper's effect is there and significant at α (for a numeric claim, also
                near the paper's value);
  disagree      our estimate does not point the paper's way (no effect, or the opposite), or,
                for C1/C2, it is clearly away from the paper's value without being significant
                the paper's way;
  inconclusive  our estimate points the paper's way but is not significant, or it is
                significant but far from the paper's number, or the data cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from fragile.chance import ChanceBaseline
from fragile.overlap import Persistence

AGREE, DISAGREE, INCONCLUSIVE = "agree", "disagree", "inconclusive"
VERDICTS = (AGREE, DISAGREE, INCONCLUSIVE)

PAPER_FRAGILE_SHARE = 0.37
PAPER_TARGETING_SHARE = 0.89

STATEMENTS = {
    "C1": "Fragile kernels S are about 37 % of the analysed layer's kernels.",
    "C2": "For about 89 % of the examples the attack moves the fragile kernels S more than the null "
          "kernels S' (Algorithm 1).",
    "C3": "Some kernels stay fragile through all of training.",
    "C4": "Hardening lowers the share of examples whose attack concentrates on S.",
    "C5": "Hardening raises accuracy under attack.",
}
PAPER = {
    "C1": "37 % (Sec. 5: ResNet-50, MNIST, 10 epochs; Sec. 6: ResNet-50, CIFAR10, 50 epochs)",
    "C2": "≈ 89 % of examples (Sec. 5, Fig. 3; Sec. 6); ε and chance level not given",
    "C3": "kernels fragile at every epoch exist (Sec. 5, Fig. 4); no count, no chance level",
    "C4": "hardened below original (Sec. 5, Fig. 3); no numbers",
    "C5": "P(ŷ=y|x',θ') > P(ŷ=y|x',θ) (Eq. 2); 'improves the robustness' (Sec. 6); no numbers",
}


@dataclass(frozen=True)
class Claim:
    """One row of the verdict table."""

    id: str
    statement: str
    paper: str  # the paper's value in words, and where it says so
    paper_value: float | None
    ours: float | None
    interval: tuple[float, float] | None  # our value's interval (which one: see the claim's function)
    verdict: str
    reason: str
    scope: str = ""  # what was measured: checkpoint(s), ε, reading
    p_value: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, object]:
        row = asdict(self)
        row["interval"] = list(self.interval) if self.interval is not None else None
        return row


def fragile_share_claim(fragile_counts: Sequence[int], kernels: int, scope: str = "",
                        alpha: float = 0.05, paper: float = PAPER_FRAGILE_SHARE) -> Claim:
    """C1 from |S| at each checkpoint of a layer with `kernels` kernels.

    Each checkpoint's |S|/n gets its exact (Clopper–Pearson) 1 − α binomial interval, treating
    the kernels as n draws of "fragile or not". agree: the paper's share is inside every
    checkpoint's interval; disagree: outside every one; inconclusive: inside some, outside others.
    `ours` is the pooled share Σ|S|/Σn and `interval` spans the lowest to the highest bound."""
    if not fragile_counts:
        raise ValueError("C1 needs |S| of at least one checkpoint")
    intervals = [_exact_interval(count, kernels, 1 - alpha) for count in fragile_counts]
    inside = [low <= paper <= high for low, high in intervals]
    ours = sum(fragile_counts) / (kernels * len(fragile_counts))
    shares = ", ".join(f"{c}/{kernels}" for c in fragile_counts)
    if all(inside):
        verdict, reason = AGREE, f"{_pct(paper)} is inside the exact interval of every checkpoint ({shares})"
    elif not any(inside):
        verdict, reason = DISAGREE, f"{_pct(paper)} is outside the exact interval of every checkpoint ({shares})"
    else:
        verdict, reason = INCONCLUSIVE, f"{_pct(paper)} fits {sum(inside)} of {len(inside)} checkpoints ({shares})"
    return Claim("C1", STATEMENTS["C1"], PAPER["C1"], paper, ours,
                 (min(i[0] for i in intervals), max(i[1] for i in intervals)), verdict, reason, scope)


def targeting_claim(baseline: ChanceBaseline, share_interval: tuple[float, float] | None = None,
                    scope: str = "", alpha: float = 0.05, tolerance: float = 0.10,
                    paper: float = PAPER_TARGETING_SHARE) -> Claim:
    """C2 for one reading at one checkpoint and ε: Algorithm 1's share against its chance baseline.

    above chance: the baseline's one-sided p < α. near the paper: the paper's share is within
    `tolerance` of our interval (the example bootstrap's, `share_interval`), or of our share when
    no interval is given. agree: above chance and near. disagree: the share is at or below the
    median random set (nothing concentrates on S), or it is not above chance and clearly below
    the paper's (the interval's top, or the share, is more than `tolerance` below it).
    inconclusive: the rest (above chance but far from the paper's number; near it but random
    sets of |S| kernels get as much)."""
    observed = baseline.observed
    low, high = share_interval if share_interval is not None else (observed, observed)
    above = baseline.p_value < alpha
    near = low - tolerance <= paper <= high + tolerance
    chance = f"random sets {_pct(baseline.chance_median)}, p={baseline.p_value:.3g}"
    if above and near:
        verdict, reason = AGREE, f"above chance ({chance}) and near {_pct(paper)}"
    elif observed <= baseline.chance_median:
        verdict, reason = DISAGREE, f"no more than a random set of |S| kernels ({chance})"
    elif not above and high < paper - tolerance:
        verdict, reason = DISAGREE, f"not above chance ({chance}) and well below {_pct(paper)}"
    elif above:
        verdict, reason = INCONCLUSIVE, f"above chance ({chance}) but far from {_pct(paper)}"
    else:
        verdict, reason = INCONCLUSIVE, f"not significantly above chance ({chance})"
    return Claim("C2", STATEMENTS["C2"], PAPER["C2"], paper, observed, share_interval, verdict,
                 f"{_pct(observed)} of examples: {reason}", scope, baseline.p_value)


def persistence_claim(result: Persistence, scope: str = "", alpha: float = 0.05) -> Claim:
    """C3 from the S of every checkpoint (`overlap.persistence`).

    agree: more kernels are fragile at every checkpoint than independent random sets of the
    same sizes would share, p < α (exact). disagree: no more than chance expects (count ≤
    n·∏|S_i|/n). inconclusive: more, but not significantly; or a single checkpoint. `ours` is
    the count of always-fragile kernels."""
    count, expected = result.count, result.expected
    checkpoints = len(result.sizes)
    numbers = f"{count} kernels fragile at all {checkpoints} checkpoints, chance expects {expected:.2f}"
    if checkpoints < 2:
        verdict, reason = INCONCLUSIVE, "one checkpoint: nothing to persist across"
    elif result.p_value < alpha:
        verdict, reason = AGREE, f"{numbers} (p={result.p_value:.3g})"
    elif count <= expected:
        verdict, reason = DISAGREE, f"{numbers}: no more than chance"
    else:
        verdict, reason = INCONCLUSIVE, f"{numbers}; not significant (p={result.p_value:.3g})"
    return Claim("C3", STATEMENTS["C3"], PAPER["C3"], None, float(count), None, verdict, reason, scope,
                 result.p_value)


def hardening_targeting_claim(original_share: float, hardened_share: float, p_value: float,
                              difference_interval: tuple[float, float] | None = None, scope: str = "",
                              alpha: float = 0.05) -> Claim:
    """C4 for one reading and ε, on transferred examples (the same x' for both models): shares
    of examples attacking S, with a paired p-value (e.g. `mcnemar_p_value`). `ours` is hardened
    − original. agree: lower, p < α; disagree: not lower; inconclusive: lower, not significant."""
    verdict, reason = _paired_verdict(hardened_share - original_share, -1, p_value, alpha, "targeting of S")
    return Claim("C4", STATEMENTS["C4"], PAPER["C4"], None, hardened_share - original_share, difference_interval,
                 verdict, f"{_pct(original_share)} → {_pct(hardened_share)}: {reason}", scope, p_value)


def hardening_accuracy_claim(original_accuracy: float, hardened_accuracy: float, p_value: float,
                             difference_interval: tuple[float, float] | None = None, scope: str = "",
                             alpha: float = 0.05) -> Claim:
    """C5 for one ε, white-box (each model attacked with its own gradients): accuracies with a
    paired p-value. `ours` is hardened − original. agree: higher, p < α; disagree: not higher;
    inconclusive: higher, not significant."""
    verdict, reason = _paired_verdict(hardened_accuracy - original_accuracy, +1, p_value, alpha, "accuracy")
    return Claim("C5", STATEMENTS["C5"], PAPER["C5"], None, hardened_accuracy - original_accuracy,
                 difference_interval, verdict, f"{_pct(original_accuracy)} → {_pct(hardened_accuracy)}: {reason}",
                 scope, p_value)


def mcnemar_p_value(before: Sequence[int] | np.ndarray, after: Sequence[int] | np.ndarray) -> float:
    """Exact two-sided McNemar test of paired 0/1 outcomes (the same examples before and after):
    a binomial test of the discordant pairs against 1/2; 1.0 when no example changed."""
    first, second = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"paired outcomes differ in shape: {first.shape} vs {second.shape}")
    gained, lost = int((second & ~first).sum()), int((first & ~second).sum())
    if gained + lost == 0:
        return 1.0
    return float(stats.binomtest(gained, gained + lost, 0.5).pvalue)


def _paired_verdict(change: float, direction: int, p_value: float, alpha: float, what: str) -> tuple[str, str]:
    claimed = "lower" if direction < 0 else "higher"
    if change * direction <= 0:
        return DISAGREE, f"{what} not {claimed} ({_signed_pp(change)}, p={p_value:.3g})"
    if p_value < alpha:
        return AGREE, f"{what} {claimed} by {abs(change) * 100:.1f} points (p={p_value:.3g})"
    return INCONCLUSIVE, f"{what} {claimed} by {abs(change) * 100:.1f} points, not significant (p={p_value:.3g})"


def _exact_interval(successes: int, trials: int, level: float) -> tuple[float, float]:
    ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _signed_pp(change: float) -> str:
    return f"{100 * change:+.1f} points"
