"""The FGSM ε-sweep with Algorithm 1, streamed over batches (bounded memory).

One gradient per batch (from `source`), reused for every ε; for each ε one forward pass
of `target` gives both its accuracy and its layer output for Algorithm 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fragile.attacks import eval_mode, gradient_sign, perturb
from fragile.devices import batch_to
from fragile.targeting import capture_output, kernel_distances, targets_fragile


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
) -> SweepResult:
    """Accuracy of `target` under FGSM from `source` (white-box when None) and Algorithm 1
    on `layer` (a module of `target`), for every ε. `layer=None` gives the accuracy curve
    alone (`targeted` stays 0), without the layer captures and distances."""
    source = target if source is None else source
    result = SweepResult(list(epsilons))
    capture = capture_output(layer) if layer is not None else contextlib.nullcontext(None)
    with eval_mode(target), eval_mode(source), capture as outputs:
        for images, labels in batches:
            images, labels = batch_to(images, device), labels.to(device)
            sign = gradient_sign(source, images, labels)
            if outputs is not None:
                outputs.clear()  # the gradient pass's capture
            with torch.no_grad():
                result.clean_correct += int((target(images).argmax(1) == labels).sum())
                clean_layer = outputs.pop() if outputs is not None else None
                for i, eps in enumerate(epsilons):
                    logits = target(perturb(images, sign, eps))
                    result.correct[i] += int((logits.argmax(1) == labels).sum())
                    if outputs is not None:
                        distances = kernel_distances(clean_layer, outputs.pop())
                        result.targeted[i] += int(targets_fragile(distances, fragile, null).sum())
            result.examples += len(labels)
            if progress is not None:
                progress(len(labels))  # type: ignore[operator]
    return result
