"""Item 1: the pipeline's FGSM ε-sweep against torchattacks' FGSM called once per ε.

Both compute the whole accuracy-vs-ε curve (clean accuracy included) on the same model and
batches; torchattacks needs one gradient per ε, the sweep one per batch. The second pair adds
Algorithm 1's conv1 distances to both sides. The ε grid is the run's attack.epsilons (the
headline sweep).
"""

from __future__ import annotations

import torch
import torchattacks

from benchmarks.timing import Ratio, interleaved
from fragile.attacks import eval_mode, gradient_sign, perturb
from fragile.comparison import SweepResult
from fragile.data import Split
from fragile.devices import batch_to
from fragile.models import FragileNet
from fragile.sweep import fgsm_sweep
from fragile.targeting import capture_output, kernel_distances, targets_fragile

TARGET_CURVE, TARGET_ALGORITHM_1 = 2.8, 2.5  # on the default 7-value attack.epsilons


def torchattacks_curve(
    model: FragileNet, split: Split, batch_size: int, epsilons: list[float],
    fragile: list[int] | None = None, null: list[int] | None = None,
) -> SweepResult:
    """The peer's way: a fresh torchattacks.FGSM per ε, then the model on its output; with
    S and S' given, Algorithm 1 on conv1 as well."""
    result = SweepResult(list(epsilons))
    attacks = [torchattacks.FGSM(model, eps=eps) for eps in epsilons]
    layer = model.net.conv1
    with eval_mode(model), capture_output(layer) as outputs:
        for images, labels in split.batches(batch_size):
            images = batch_to(images, None)
            with torch.no_grad():
                result.clean_correct += int((model(images).argmax(1) == labels).sum())
            clean = outputs[-1]
            for i, attack in enumerate(attacks):
                adv = batch_to(attack(images, labels), None)  # its output in the model's layout, as ours
                outputs.clear()
                with torch.no_grad():
                    result.correct[i] += int((model(adv).argmax(1) == labels).sum())
                if fragile is not None and null is not None:
                    distances = kernel_distances(clean, outputs[-1])
                    result.targeted[i] += int(targets_fragile(distances, fragile, null).sum())
            outputs.clear()
            result.examples += len(labels)
    return result


def identical_examples(model: FragileNet, split: Split, batch_size: int, epsilons: list[float]) -> tuple[int, int]:
    """(ε×batch pairs whose adversarial images are bit-identical, pairs compared)."""
    same = total = 0
    for images, labels in split.batches(batch_size):
        images = batch_to(images, None)
        sign = gradient_sign(model, images, labels)
        for eps in epsilons:
            ours = perturb(images, sign, eps)
            theirs = torchattacks.FGSM(model, eps=eps)(images, labels)
            same += int(torch.equal(ours, theirs))
            total += 1
    return same, total


def run(model: FragileNet, split: Split, batch_size: int, fragile: list[int], null: list[int],
        repeats: int, epsilons: list[float]) -> dict[str, object]:
    conv1 = model.net.conv1
    cases = {
        "torchattacks, accuracy": lambda: torchattacks_curve(model, split, batch_size, epsilons),
        "sweep, accuracy": lambda: fgsm_sweep(model, split.batches(batch_size), epsilons, fragile, null, None),
        "torchattacks, + Algorithm 1": lambda: torchattacks_curve(model, split, batch_size, epsilons, fragile, null),
        "sweep, + Algorithm 1": lambda: fgsm_sweep(model, split.batches(batch_size), epsilons, fragile, null, conv1),
    }
    one = split.head(8)  # warm-up: one small batch
    warmup = {
        "torchattacks": lambda: torchattacks_curve(model, one, batch_size, epsilons, fragile, null),
        "sweep": lambda: fgsm_sweep(model, one.batches(batch_size), epsilons, fragile, null, conv1),
    }
    times = interleaved(cases, repeats, warmup)
    ours = fgsm_sweep(model, split.batches(batch_size), epsilons, fragile, null, conv1)
    theirs = torchattacks_curve(model, split, batch_size, epsilons, fragile, null)
    same, total = identical_examples(model, split, batch_size, epsilons)
    return {
        "times": times,
        "ratios": [
            Ratio.of("FGSM ε-sweep vs torchattacks (accuracy curve)", times["torchattacks, accuracy"],
                     times["sweep, accuracy"], TARGET_CURVE),
            Ratio.of("FGSM ε-sweep vs torchattacks (+ Algorithm 1 conv1 distances)",
                     times["torchattacks, + Algorithm 1"], times["sweep, + Algorithm 1"], TARGET_ALGORITHM_1),
        ],
        "identical_examples": (same, total),
        "same_curve": ours.correct == theirs.correct and ours.targeted == theirs.targeted
        and ours.clean_correct == theirs.clean_correct,
        "curve": ours.rows(),
        "examples": ours.examples,
    }
