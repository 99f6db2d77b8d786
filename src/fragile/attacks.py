"""FGSM on models that take pixels in [0, 1] (ε in pixel units).

x' = clamp(x + ε·sign(∇x CE(f(x), y)), 0, 1). The sign does not depend on ε, so an
ε-sweep computes it once per batch and reuses it (`perturb`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; the caller's train/eval mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def gradient_sign(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sign(∇x CE(f(x), y)) with the model in eval mode; parameter grads are not touched."""
    return gradient_sign_and_fooled(model, images, labels)[0]


def gradient_sign_and_fooled(model: nn.Module, images: torch.Tensor,
                             labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient's sign, and which images the same forward pass already misclassifies."""
    with eval_mode(model), torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        logits = model(x)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad.sign(), logits.detach().argmax(1) != labels


def perturb(images: torch.Tensor, sign: torch.Tensor, epsilon: float) -> torch.Tensor:
    """clamp(x + ε·sign, 0, 1) in the memory layout of `images`."""
    return torch.add(images, epsilon * sign, out=like(images)).clamp_(0.0, 1.0)


def like(images: torch.Tensor) -> torch.Tensor:
    """An empty tensor with the strides of `images` (channels_last from `batch_to`).

    With one channel, channels_last and contiguous strides are both valid for the same data,
    and arithmetic with a gradient (contiguous) takes the gradient's. The model would then run
    another kernel path on the adversarial images than on the clean ones, rounding differently:
    ε = 0 would not reproduce the clean pass, and the forward passes would be slower.
    """
    return torch.empty_like(images, memory_format=torch.preserve_format)


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """One FGSM step of size ε from `images` against `model`."""
    return perturb(images, gradient_sign(model, images, labels), epsilon)
