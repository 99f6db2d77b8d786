"""Original vs hardened: the noise-level search and the side-by-side FGSM evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from fragile.comparison import Comparison, SweepResult
from fragile.hardening import HardenReport, harden_model
from fragile.models import FragileNet, conv_layer
from fragile.sweep import fgsm_sweep, pgd_sweep

BatchFactory = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class PgdSettings:
    """attack.pgd_*; both models get the same seeded random starts (a paired comparison)."""

    epsilons: Sequence[float]
    steps: int
    step: float = 0.0
    seed: int = 0


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
    layer: str = "conv1",
) -> tuple[NoiseTrial, list[NoiseTrial]]:
    """The paper's "systematic search" for σ: the grid value whose hardened model has the
    highest FGSM accuracy at ε (ties go to the earlier grid value)."""
    trials = []
    for sigma in grid:
        hardened, report = harden_model(model, fragile, null, sigma, threshold, norm, layer)
        result = fgsm_sweep(hardened, batches(), [epsilon], fragile, null, conv_layer(hardened, layer), device=device)
        trials.append(NoiseTrial(sigma, result.accuracy(0), report))
    best = max(trials, key=lambda t: t.fgsm_accuracy)  # max keeps the first of equals
    return best, trials


def compare(
    original: FragileNet,
    hardened: FragileNet,
    batches: BatchFactory,
    epsilons: Sequence[float],
    fragile: Sequence[int],
    null: Sequence[int],
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
    pgd: PgdSettings | None = None,
    layer: str = "conv1",
) -> Comparison:
    """FGSM white-box against each model and transferred from the original; with `pgd`
    (and a non-empty grid) also PGD white-box against each model."""
    def sweep(target: FragileNet, source: FragileNet | None = None) -> SweepResult:
        return fgsm_sweep(
            target, batches(), epsilons, fragile, null, conv_layer(target, layer),
            source=source, device=device, progress=progress,
        )

    def pgd_run(target: FragileNet) -> SweepResult | None:
        if pgd is None or not pgd.epsilons:
            return None
        return pgd_sweep(target, batches(), pgd.epsilons, fragile, null, conv_layer(target, layer), pgd.steps,
                         pgd.step,                         pgd.seed, device=device, progress=progress)

    return Comparison(
        original=sweep(original), hardened=sweep(hardened), transfer=sweep(hardened, source=original),
        pgd_original=pgd_run(original), pgd_hardened=pgd_run(hardened),
    )
