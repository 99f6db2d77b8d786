"""Attack sweeps over ε with Algorithm 1, streamed over batches (bounded memory).

FGSM: one gradient per batch (from `source`), reused for every ε. PGD: a full iterative
attack per ε. Either way, for each ε one forward pass of `target` gives both its accuracy
and its layer output for Algorithm 1 (absolute and relative distances; given the layer's
BatchNorm, FGSM takes every reading of fragile.targeting), and every example's outcome is
kept for the bootstrap. At ε = 0, where the attack leaves the images as they are, that pass
is the clean pass, which is read instead of repeated. `attack_checkpoint` is the attack_target stage's work: both sweeps
against one checkpoint, and the FGSM distance archive.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fragile.attacks import eval_mode, gradient_sign, perturb
from fragile.chance import example_targets
from fragile.checkpoint_run import CheckpointRun
from fragile.comparison import SweepResult
from fragile.devices import batch_to
from fragile.params import AttackParams
from fragile.pgd import pgd
from fragile.results import AttackResult
from fragile.targeting import (
    CleanReadings,
    DistanceRecorder,
    bn_scaled_weight_norms,
    capture_output,
    following_batchnorm,
    kernel_weight_norms,
    targets_fragile,
)

# (images, labels) -> (ε -> adversarial images): the per-batch work an attack can share across ε
Adversary = Callable[[torch.Tensor, torch.Tensor], Callable[[float], torch.Tensor]]


def fgsm_sweep(
    target: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epsilons: Sequence[float],
    fragile: Sequence[int],
    null: Sequence[int],
    layer: nn.Module | None,
    source: nn.Module | None = None,
    device: torch.device | None = None,
    progress: object | None = None,
    bn: nn.BatchNorm2d | None = None,
    recorder: DistanceRecorder | None = None,
) -> SweepResult:
    """Accuracy of `target` under FGSM from `source` (white-box when None) and Algorithm 1
    on `layer` (a module of `target`), for every ε. `layer=None` gives the accuracy curve
    alone (`targeted` stays 0), without the layer captures and distances. With `bn` (the
    BatchNorm after `layer`) every reading of fragile.targeting is taken too: its per-example
    outcomes go into the result (`record_reading`) and its distances into `recorder`."""
    source = target if source is None else source

    def adversary(images: torch.Tensor, labels: torch.Tensor) -> Callable[[float], torch.Tensor]:
        return functools.partial(perturb, images, gradient_sign(source, images, labels))

    return _sweep(target, source, batches, epsilons, fragile, null, layer, adversary, device, progress, bn, recorder)


def pgd_sweep(
    target: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epsilons: Sequence[float],
    fragile: Sequence[int],
    null: Sequence[int],
    layer: nn.Module | None,
    steps: int,
    step: float = 0.0,
    seed: int = 0,
    device: torch.device | None = None,
    progress: object | None = None,
    restarts: int = 1,
) -> SweepResult:
    """White-box L∞ PGD against `target` with accuracy and Algorithm 1 per ε. Each batch's
    random starts come from a generator seeded with `seed` and the batch's pixels, so a batch
    gets the same starts whatever came before it (sharded runs equal one process). With
    `restarts` > 1 an example counts robust only if it survives every restart."""

    def adversary(images: torch.Tensor, labels: torch.Tensor) -> Callable[[float], torch.Tensor]:
        generator = torch.Generator().manual_seed(batch_seed(seed, images))
        return lambda eps: pgd(target, images, labels, eps, steps, step, generator=generator, restarts=restarts)

    return _sweep(target, target, batches, epsilons, fragile, null, layer, adversary, device, progress)


def batch_seed(seed: int, images: torch.Tensor) -> int:
    pixels = images.detach().cpu().contiguous().numpy().tobytes()
    return (seed << 32) + zlib.crc32(pixels)


def _sweep(
    target: nn.Module,
    source: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epsilons: Sequence[float],
    fragile: Sequence[int],
    null: Sequence[int],
    layer: nn.Module | None,
    adversary: Adversary,
    device: torch.device | None,
    progress: object | None,
    bn: nn.BatchNorm2d | None = None,
    recorder: DistanceRecorder | None = None,
) -> SweepResult:
    result = SweepResult(list(epsilons))
    capture = capture_output(layer) if layer is not None else contextlib.nullcontext(None)
    with eval_mode(target), eval_mode(source), capture as outputs:
        for images, labels in batches:
            images, labels = batch_to(images, device), labels.to(device)
            attack = adversary(images, labels)
            with torch.no_grad():
                if outputs is not None:
                    outputs.clear()  # the gradient passes' captures
                clean_logits = target(images)
                result.record_clean((clean_logits.argmax(1) == labels).tolist())
                clean_layer = outputs.pop() if outputs is not None else None
                # The clean side of the distances (and its norms) once per batch, not once per ε.
                clean_readings = CleanReadings(clean_layer, bn) if clean_layer is not None else None
                for i, eps in enumerate(epsilons):
                    adversarial = attack(eps)  # PGD's gradients run under their own enable_grad
                    if outputs is not None:
                        outputs.clear()
                    if _unchanged(adversarial, images):  # ε = 0: the clean pass is this pass, bit for bit
                        logits, adv_layer = clean_logits, clean_layer
                    else:
                        logits = target(adversarial)
                        adv_layer = outputs.pop() if outputs is not None else None
                    result.record(i, "correct", (logits.argmax(1) == labels).tolist())
                    if clean_readings is not None:
                        distances = clean_readings.distances(adv_layer)
                        _record_targeting(result, i, distances, fragile, null)
                        if bn is not None:
                            _record_readings(result, i, distances, fragile, null, recorder)
            if progress is not None:
                progress(len(labels))  # type: ignore[operator]
    return result


def _unchanged(adversarial: torch.Tensor, images: torch.Tensor) -> bool:
    """Whether the attack left the images as they are, in the same memory layout (so the model
    would take the same kernel path and give the clean pass's outputs exactly)."""
    return adversarial.stride() == images.stride() and torch.equal(adversarial, images)


def _record_targeting(result: SweepResult, i: int, distances: dict[str, torch.Tensor], fragile: Sequence[int],
                      null: Sequence[int]) -> None:
    """Algorithm 1's `targeted`/`targeted_relative` at ε index i, from the conv readings."""
    for kind, reading in (("targeted", "conv_absolute"), ("targeted_relative", "conv_relative")):
        result.record(i, kind, targets_fragile(distances[reading], fragile, null).tolist())


def _record_readings(result: SweepResult, i: int, distances: dict[str, torch.Tensor], fragile: Sequence[int],
                     null: Sequence[int], recorder: DistanceRecorder | None) -> None:
    """Algorithm 1 on every reading at ε index i (besides `_record_targeting`): each reading's
    outcomes by the chance baseline's arithmetic on the float32 distances that the archive keeps
    (so the archive reproduces them exactly), and the distances into `recorder`."""
    for reading, batch in distances.items():
        matrix = batch.detach().to("cpu", torch.float32).numpy()
        result.record_reading(i, reading, example_targets(matrix, fragile, null).tolist())
    if recorder is not None:
        recorder.add(i, distances)


@dataclass(frozen=True)
class RecordedSweep:
    """A sweep and its distance matrices, merged together over processes."""

    sweep: SweepResult
    distances: DistanceRecorder

    def merge(self, other: RecordedSweep) -> RecordedSweep:
        return RecordedSweep(self.sweep.merge(other.sweep), self.distances.merge(other.distances))


def attack_checkpoint(run: CheckpointRun, p: AttackParams, seed: int) -> tuple[AttackResult, dict[str, np.ndarray]]:
    """FGSM on attack.epsilons and L∞ PGD on attack.pgd_epsilons (none when empty) against
    `run`'s model, with Algorithm 1 on its conv; and the distance archive: every reading's
    (examples × kernels) FGSM distances per ε (`archive_key`), the ε grid and each kernel's
    weight norm, raw (`weight_norm`) and through its BatchNorm (`bn_weight_norm`)."""
    bn = following_batchnorm(run.model, run.layer)

    def fgsm_recorded(advance: Callable[[int], None]) -> RecordedSweep:
        recorder = DistanceRecorder()
        sweep = fgsm_sweep(run.model, run.batches(), p.epsilons, run.fragile, run.null, run.conv, device=run.device,
                           progress=advance, bn=bn, recorder=recorder)
        return RecordedSweep(sweep, recorder)

    recorded = run.combine("attack", fgsm_recorded)
    fgsm = recorded.sweep
    archive = {**recorded.distances.arrays(), "epsilons": np.asarray(p.epsilons, dtype=np.float64),
               "weight_norm": kernel_weight_norms(run.conv.weight),
               "bn_weight_norm": bn_scaled_weight_norms(run.conv.weight, bn)}
    pgd_result = None
    if p.pgd_epsilons:
        pgd_result = run.combine("attack", lambda advance: pgd_sweep(
            run.model, run.batches(), p.pgd_epsilons, run.fragile, run.null, run.conv, p.pgd_steps, p.pgd_step_size,
            seed, device=run.device, progress=advance,
        ), note="PGD")
    return AttackResult.from_sweeps(checkpoint=run.checkpoint, epoch=run.epoch, layer=run.layer, fgsm=fgsm,
                                    pgd=pgd_result, distance=p.distance, pgd_steps=p.pgd_steps,
                                    pgd_step_size=p.pgd_step_size, device=run.device.type,
                                    batch_size=run.batch_size, fragile=run.fragile, null=run.null), archive


def attack_lines(result: AttackResult) -> list[str]:
    """Accuracy and attack on S per ε (and per PGD ε), one line each."""
    lines = [f"ε={e:<6g} accuracy {a:.4f}  attack on S {t:.1f}% ({result.distance} distances)"
             for e, a, t in zip(result.epsilons, result.accuracy, result.targeting_pct)]
    if result.pgd is not None:
        g = result.pgd
        lines += [f"PGD ε={e:<6g} accuracy {a:.4f}  attack on S {t:.1f}% ({g.steps} steps, {result.distance} distances)"
                  for e, a, t in zip(g.epsilons, g.accuracy, g.targeting_pct)]
    return lines
