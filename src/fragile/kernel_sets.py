"""Kernel rankings as exact tallies, and the paper's mean-line rule that splits them into
fragile kernels S and null kernels S'.

A ranking keeps sums (hits, summed losses, summed scores) and the example count, never
means: the shards of a ranking run by several processes merge by adding (`merge`), and
every fraction is derived. Torch-free: the exact (`ranking_exact`) and first-order
(`ranking_taylor`) rankings fill these in, the rank stage reads and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fragile.errors import FragileError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class KernelRanking:
    """Exact drop effect of each kernel: S = kernels whose drop gives accuracy below the mean
    over all kernels; S' = the rest."""

    correct: list[int]  # per kernel, examples right with that kernel dropped
    loss_sum: list[float]  # per kernel, summed cross-entropy with that kernel dropped
    examples: int
    baseline_correct: int  # examples right with nothing dropped
    # (examples × kernels) uint8: example i right with kernel k dropped (the ranking bootstrap's input)
    example_correct: np.ndarray | None = field(default=None, compare=False)

    @property
    def accuracy(self) -> list[float]:
        return [c / self.examples for c in self.correct]

    @property
    def loss(self) -> list[float]:
        """Per kernel, mean cross-entropy with that kernel dropped."""
        return [s / self.examples for s in self.loss_sum]

    @property
    def baseline_accuracy(self) -> float:
        return self.baseline_correct / self.examples

    @property
    def mean_accuracy(self) -> float:
        accuracy = self.accuracy
        return sum(accuracy) / len(accuracy)

    @property
    def fragile(self) -> list[int]:
        """S: dropping these costs more than the average kernel. Compared in whole counts
        (K·c_k < Σc), so a kernel exactly on the mean line is never in S by float rounding."""
        total, kernels = sum(self.correct), len(self.correct)
        return [k for k, c in enumerate(self.correct) if kernels * c < total]

    @property
    def null(self) -> list[int]:
        """S': the rest (at or above the mean line)."""
        total, kernels = sum(self.correct), len(self.correct)
        return [k for k, c in enumerate(self.correct) if kernels * c >= total]

    def check_sets(self) -> None:
        if not self.fragile or not self.null:
            raise FragileError(
                f"all {len(self.correct)} kernels give the same accuracy when dropped "
                f"({self.accuracy[0]:.4f}), so S or S' is empty; rank on more examples "
                "(rank.max_examples) or a checkpoint that trained longer"
            )

    def merge(self, other: KernelRanking) -> KernelRanking:
        """This ranking and `other`'s, run on other examples: the tallies add."""
        return KernelRanking(
            correct=[a + b for a, b in zip(self.correct, other.correct, strict=True)],
            loss_sum=[a + b for a, b in zip(self.loss_sum, other.loss_sum, strict=True)],
            examples=self.examples + other.examples,
            baseline_correct=self.baseline_correct + other.baseline_correct,
            example_correct=None if self.example_correct is None or other.example_correct is None
            else np.concatenate([self.example_correct, other.example_correct]),
        )


@dataclass(frozen=True)
class TaylorRanking:
    """First-order estimate of each kernel's drop effect.

    score[k] ≈ mean over examples of L(x with kernel k dropped) − L(x): the signed change in
    cross-entropy, so a larger score means the drop hurts more. S = kernels whose estimated
    drop hurts more than the mean over all kernels (the paper's mean-line rule, on loss
    instead of accuracy); S' = the rest.
    """

    score_sum: list[float]  # per kernel, the first-order loss change summed over examples
    examples: int
    loss_sum: float  # summed cross-entropy with nothing dropped

    @property
    def score(self) -> list[float]:
        return [s / self.examples for s in self.score_sum]

    @property
    def baseline_loss(self) -> float:
        return self.loss_sum / self.examples

    @property
    def mean_score(self) -> float:
        score = self.score
        return sum(score) / len(score)

    @property
    def fragile(self) -> list[int]:
        mean = self.mean_score
        return [k for k, s in enumerate(self.score) if s > mean]

    @property
    def null(self) -> list[int]:
        mean = self.mean_score
        return [k for k, s in enumerate(self.score) if s <= mean]

    def check_sets(self) -> None:
        if not self.fragile or not self.null:
            raise FragileError(
                f"all {len(self.score_sum)} kernels get the same Taylor score ({self.score[0]:.4g}), so S or S' "
                "is empty; rank on more examples (rank.max_examples) or use rank.method: ablation"
            )

    def merge(self, other: TaylorRanking) -> TaylorRanking:
        """This ranking and `other`'s, run on other examples: the sums add."""
        return TaylorRanking(
            score_sum=[a + b for a, b in zip(self.score_sum, other.score_sum, strict=True)],
            examples=self.examples + other.examples,
            loss_sum=self.loss_sum + other.loss_sum,
        )


def compare_rankings(taylor: TaylorRanking, exact: KernelRanking) -> dict[str, float]:
    """How well the Taylor estimate reproduces the exact ranking.

    spearman: rank correlation of the Taylor score with the exact accuracy lost by each drop
    (baseline − accuracy, so both grow with harm; ties get average ranks); spearman_loss: the
    same against the exact loss with the kernel dropped; set_agreement: share of kernels put
    in the same set (S or S') by both.
    """
    import pandas as pd

    score = pd.Series(taylor.score)
    harm = pd.Series([exact.baseline_accuracy - a for a in exact.accuracy])
    fragile_t, fragile_e = set(taylor.fragile), set(exact.fragile)
    kernels = len(taylor.score_sum)
    same = sum((k in fragile_t) == (k in fragile_e) for k in range(kernels))
    return {
        "spearman": float(score.corr(harm, method="spearman")),
        "spearman_loss": float(score.corr(pd.Series(exact.loss), method="spearman")),
        "set_agreement": same / kernels,
    }


def ranking_table(ranking: KernelRanking) -> pd.DataFrame:
    """Per-kernel rows: kernel, accuracy, loss, set (S = fragile, S' = null; "null" would read as NaN)."""
    import pandas as pd

    fragile = set(ranking.fragile)
    kernels = range(len(ranking.correct))
    return pd.DataFrame(
        {
            "kernel": kernels,
            "accuracy": ranking.accuracy,
            "loss": ranking.loss,
            "set": ["S" if k in fragile else "S'" for k in kernels],
        }
    )


def taylor_table(taylor: TaylorRanking, exact: KernelRanking | None = None) -> pd.DataFrame:
    """Per-kernel rows: kernel, score, set (from the Taylor score), and the exact accuracy and loss
    when the exact ranking was computed too."""
    import pandas as pd

    fragile = set(taylor.fragile)
    kernels = range(len(taylor.score_sum))
    table = pd.DataFrame({"kernel": kernels, "score": taylor.score})
    if exact is not None:
        table["accuracy"], table["loss"] = exact.accuracy, exact.loss
    table["set"] = ["S" if k in fragile else "S'" for k in kernels]
    return table
