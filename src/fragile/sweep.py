"""The FGSM ε-sweep with Algorithm 1, streamed over batches (bounded memory).

One gradient per batch (from `source`), reused for every ε; for each ε one forward pass
of `target` gives both its accuracy and its layer output for Algorithm 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from fragile.attacks import eval_mode, gradient_sign, perturb
from fragile.comparison import SweepResult
from fragile.devices import batch_to
from fragile.targeting import capture_output, kernel_distances, targets_fragile


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
