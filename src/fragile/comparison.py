"""Attack results as exact counts: per-ε sweeps and the original-vs-hardened comparison.

Torch-free on purpose: the aggregation stages (summarize, figures, report) read these from
JSON without paying for a torch import, and shards of a sweep sum exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd


@dataclass
class SweepResult:
    """Counts per ε; fractions are derived so that shards can be summed exactly."""

    epsilons: list[float]
    examples: int = 0
    clean_correct: int = 0
    correct: list[int] = field(default_factory=list)
    targeted: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.correct = self.correct or [0] * len(self.epsilons)
        self.targeted = self.targeted or [0] * len(self.epsilons)

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.examples

    def accuracy(self, i: int) -> float:
        return self.correct[i] / self.examples

    def targeting_pct(self, i: int) -> float:
        return 100.0 * self.targeted[i] / self.examples

    def at(self, epsilon: float) -> int:
        return self.epsilons.index(epsilon)

    def rows(self) -> list[dict[str, float]]:
        return [
            {"epsilon": eps, "accuracy": self.accuracy(i), "targeting_pct": self.targeting_pct(i)}
            for i, eps in enumerate(self.epsilons)
        ]


@dataclass(frozen=True)
class Comparison:
    original: SweepResult  # white-box against the original
    hardened: SweepResult  # white-box against the hardened model
    transfer: SweepResult  # the original's adversarial examples, fed to the hardened model


def comparison_table(result: Comparison) -> pd.DataFrame:
    """One row per ε: accuracies and targeting percentages of the three settings."""
    indices = range(len(result.original.epsilons))
    return pd.DataFrame(
        {
            "epsilon": result.original.epsilons,
            "original_accuracy": [result.original.accuracy(i) for i in indices],
            "hardened_whitebox_accuracy": [result.hardened.accuracy(i) for i in indices],
            "hardened_transfer_accuracy": [result.transfer.accuracy(i) for i in indices],
            "original_targeting_pct": [result.original.targeting_pct(i) for i in indices],
            "hardened_targeting_pct": [result.hardened.targeting_pct(i) for i in indices],
            "transfer_targeting_pct": [result.transfer.targeting_pct(i) for i in indices],
        }
    )


def comparison_counts(result: Comparison) -> dict[str, Any]:
    """Exact counts (JSON-ready), from which every fraction can be recomputed."""
    return {
        "examples": result.original.examples,
        "epsilons": result.original.epsilons,
        **{name: {k: v for k, v in asdict(sweep).items() if k not in ("epsilons", "examples")}
           for name, sweep in (("original", result.original), ("hardened", result.hardened),
                               ("transfer", result.transfer))},
    }


def comparison_from_counts(counts: dict[str, Any]) -> Comparison:
    def sweep(name: str) -> SweepResult:
        return SweepResult(list(counts["epsilons"]), counts["examples"], **counts[name])

    return Comparison(original=sweep("original"), hardened=sweep("hardened"), transfer=sweep("transfer"))
