"""Original vs hardened: the noise-level search and the side-by-side FGSM and PGD evaluation.

`evaluate_checkpoint` is the evaluate stage's work; `fgsm_at_epsilon` is summarize's attack
at an ε off evaluate's grid; `search_noise_on_val` is harden's choice of σ.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from fragile import models
from fragile.checkpoint_run import CheckpointRun
from fragile.comparison import Comparison, SweepResult
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.hardening import HardenReport, harden_model
from fragile.models import FragileNet, conv_layer
from fragile.params import EvaluateParams, Params
from fragile.results import AttackResult, EvaluateResult, NoiseTrialRow
from fragile.robustness_run import robustness_record
from fragile.sweep import fgsm_sweep, pgd_sweep
from fragile.targeting import READINGS, following_batchnorm

NOISE_SEARCH_BATCH = 250

BatchFactory = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class PgdSettings:
    """attack.pgd_*; both models get the same seeded random starts (a paired comparison)."""

    epsilons: Sequence[float]
    steps: int
    step: float = 0.0
    seed: int = 0
    restarts: int = 1


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
    original_sweep: SweepResult | None = None,
) -> Comparison:
    """FGSM white-box against each model and transferred from the original; with `pgd`
    (and a non-empty grid) also PGD white-box against each model. `original_sweep`: the
    original's white-box FGSM sweep when it has been run already (`reusable_sweep`)."""
    def sweep(target: FragileNet, source: FragileNet | None = None) -> SweepResult:
        return fgsm_sweep(
            target, batches(), epsilons, fragile, null, conv_layer(target, layer),
            source=source, device=device, progress=progress,
            bn=following_batchnorm(target, layer),  # every Algorithm 1 reading, per example (C4 on the same x')
        )

    def pgd_run(target: FragileNet) -> SweepResult | None:
        if pgd is None or not pgd.epsilons:
            return None
        return pgd_sweep(target, batches(), pgd.epsilons, fragile, null, conv_layer(target, layer), pgd.steps,
                         pgd.step, pgd.seed, device=device, progress=progress, restarts=pgd.restarts)

    return Comparison(
        original=original_sweep if original_sweep is not None else sweep(original), hardened=sweep(hardened), transfer=sweep(hardened, source=original),
        pgd_original=pgd_run(original), pgd_hardened=pgd_run(hardened),
    )


def reusable_sweep(attack: AttackResult, run: CheckpointRun, epsilons: Sequence[float]) -> SweepResult | None:
    """attack_target's FGSM sweep of `run`'s model, rebuilt from its per-example outcomes, when
    it ran on exactly what evaluate would run it on (checkpoint, layer, device type, examples,
    batch size, S and S', ε grid): then evaluate's own sweep of the original would repeat it
    outcome for outcome. None otherwise (evaluate runs the sweep itself), and under torchrun,
    where each process sweeps its own shard."""
    same = run.ctx.world_size == 1 and (
        attack.checkpoint == str(run.checkpoint) and attack.layer == run.layer and attack.device == run.device.type
        and attack.examples == run.examples and attack.batch_size == run.batch_size
        and attack.fragile == run.fragile and attack.null == run.null and attack.epsilons == list(epsilons)
        and all(reading in attack.readings for reading in READINGS)
    )
    return SweepResult.from_outcomes(attack.epsilons, attack.per_example) if same else None


def evaluate_checkpoint(run: CheckpointRun, hardened: str | os.PathLike[str], p: Params,
                        original_sweep: SweepResult | None = None) -> EvaluateResult:
    """`run`'s model against its hardened checkpoint on attack.epsilons (FGSM) and PGD on
    attack.pgd_grid (attack.pgd_epsilons, `epsilon` and attack.sanity_epsilon; both models from
    the same seeded starts, attack.pgd_restarts each), with the robustness record (AutoAttack
    at `epsilon` when attack.autoattack). `original_sweep` (from `reusable_sweep`) replaces the
    original model's FGSM sweep."""
    a = p.attack
    pgd = PgdSettings(list(a.pgd_grid(p.epsilon)), a.pgd_steps, a.pgd_step_size, p.seed, a.pgd_restarts)
    hard = run.load_peer(hardened)
    sweeps = (2 if original_sweep is not None else 3) + (2 if pgd.epsilons else 0)
    comparison = run.combine("evaluate", lambda advance: compare(
        run.model, hard, run.batches, list(a.epsilons), run.fragile, run.null, run.device, advance, pgd=pgd,
        layer=run.layer, original_sweep=original_sweep,
    ), passes=sweeps)
    return EvaluateResult.from_comparison(checkpoint=run.checkpoint, epoch=run.epoch, layer=run.layer,
                                          comparison=comparison, device=run.device.type,
                                          robustness=robustness_record(run, hard, p))


def fgsm_at_epsilon(original: Path, hardened: Path, data: Path, fragile: Sequence[int], null: Sequence[int],
                    epsilon: float, p: EvaluateParams, layer: str) -> Comparison:
    """FGSM original, hardened and transfer at the single `epsilon`, on evaluate's examples."""
    original_model = models.load(original)
    hardened_model = models.load(hardened)
    split = load_split(data, "test").head(p.max_examples)
    device = pick_device()
    to_device(original_model, device)
    to_device(hardened_model, device)
    return compare(original_model, hardened_model, lambda: split.batches(p.batch_size), [epsilon], fragile, null,
                   device, layer=layer)


def search_noise_on_val(checkpoint: Path, data: Path, fragile: Sequence[int], null: Sequence[int],
                        p: Params) -> tuple[float, list[NoiseTrialRow], str]:
    """(σ, one row per harden.noise_grid value, device type): the grid's best σ by FGSM accuracy
    at `epsilon` on the first harden.search_examples of the val split."""
    h = p.harden
    net = models.load(checkpoint, **models.fits_data(read_manifest(data)))
    val = load_split(data, "val").head(h.search_examples)
    device = pick_device()
    to_device(net, device)
    best, trials = search_noise(
        net, fragile, null, h.noise_grid, p.epsilon, lambda: val.batches(NOISE_SEARCH_BATCH), h.threshold, h.norm,
        device, layer=p.analysis.layer,
    )
    rows = [NoiseTrialRow(sigma=t.sigma, fgsm_accuracy_val=t.fgsm_accuracy, tau=t.report.tau,
                          rank_kept=t.report.rank_kept, alpha=t.report.alpha) for t in trials]
    return best.sigma, rows, device.type
