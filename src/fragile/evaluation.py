"""Original vs hardened: the noise-level search and the side-by-side FGSM evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch

from fragile.hardening import HardenReport, harden_model
from fragile.models import FragileNet
from fragile.sweep import SweepResult, fgsm_sweep

BatchFactory = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class NoiseTrial:
    sigma: float
    fgsm_accuracy: float
    report: HardenReport


def search_noise(
    model: FragileNet,
    fragile: Sequence[int],
    null: Sequence[int],
    grid: Sequence[float],
    epsilon: float,
    batches: BatchFactory,
    threshold: str,
    norm: str,
    device: torch.device | None = None,
) -> tuple[NoiseTrial, list[NoiseTrial]]:
    """The paper's "systematic search" for σ: the grid value whose hardened model has the
    highest FGSM accuracy at ε (ties go to the earlier grid value)."""
    trials = []
    for sigma in grid:
        hardened, report = harden_model(model, fragile, null, sigma, threshold, norm)
        result = fgsm_sweep(hardened, batches(), [epsilon], fragile, null, hardened.net.conv1, device=device)
        trials.append(NoiseTrial(sigma, result.accuracy(0), report))
    best = max(trials, key=lambda t: t.fgsm_accuracy)  # max keeps the first of equals
    return best, trials


@dataclass(frozen=True)
class Comparison:
    original: SweepResult  # white-box against the original
    hardened: SweepResult  # white-box against the hardened model
    transfer: SweepResult  # the original's adversarial examples, fed to the hardened model


def compare(
    original: FragileNet,
    hardened: FragileNet,
    batches: BatchFactory,
    epsilons: Sequence[float],
    fragile: Sequence[int],
    null: Sequence[int],
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    def sweep(target: FragileNet, source: FragileNet | None = None) -> SweepResult:
        return fgsm_sweep(
            target, batches(), epsilons, fragile, null, target.net.conv1,
            source=source, device=device, progress=progress,
        )

    return Comparison(
        original=sweep(original), hardened=sweep(hardened), transfer=sweep(hardened, source=original)
    )


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
