"""L∞ PGD (Madry et al. 2018) on models that take pixels in [0, 1] (ε in pixel units).

x₀ = x + U(−ε, ε) (random start), x_{t+1} = clamp(Π_{B∞(x,ε)}(x_t + step·sign(∇ CE)), 0, 1).
FGSM is one step of size ε from x; PGD's many smaller steps find the loss maximum inside
the ball that a single linearisation can miss, which is what makes it the check for
gradient masking. The random start is drawn on the CPU from a `torch.Generator`, so a
seed gives the same start on every device. With restarts, the attack starts again from new
random points for the examples that are still classified correctly: an example counts as
robust only if it survives every restart.
"""

from __future__ import annotations

import torch
from torch import nn

from fragile.attacks import eval_mode, gradient_sign, like

STEP_RULE = 2.5  # step = 2.5·ε/steps when no step is given (Madry et al.): the walk can cross the ball


def step_size(epsilon: float, steps: int, step: float = 0.0) -> float:
    """The step in pixel units: `step` when positive, otherwise 2.5·ε/steps."""
    return step if step > 0 else STEP_RULE * epsilon / steps


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    steps: int,
    step: float = 0.0,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    restarts: int = 1,
) -> torch.Tensor:
    """`steps` signed-gradient steps against `model` (eval mode), projected onto the ε-ball
    around `images` and the pixel range after each step; with `restarts` > 1, each restart
    attacks the examples that every earlier one left correctly classified, and the result keeps
    each example's first successful adversarial (its last attempt when none succeeded)."""
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    if restarts > 1 and not random_start:
        raise ValueError("restarts without a random start would repeat the same attack")
    adversarial = _pgd(model, images, labels, epsilon, steps, step, random_start, generator)
    if epsilon == 0 or steps == 0:
        return adversarial
    for _ in range(restarts - 1):
        # Judged on the whole batch, as the caller's forward pass will judge the result.
        with torch.no_grad(), eval_mode(model):
            survivors = (model(adversarial).argmax(1) == labels).nonzero().squeeze(1)
        if survivors.numel() == 0:
            break
        adversarial[survivors] = _pgd(model, images[survivors], labels[survivors], epsilon, steps, step,
                                      random_start, generator)
    return adversarial


def _pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    steps: int,
    step: float,
    random_start: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if epsilon == 0 or steps == 0:
        return images.clone()
    low = (images - epsilon).clamp_(0.0, 1.0)  # the ball ∩ [0, 1], as per-pixel bounds
    high = (images + epsilon).clamp_(0.0, 1.0)
    x = images.clone()
    if random_start:
        noise = torch.rand(images.shape, generator=generator, dtype=images.dtype)
        x = torch.min(torch.max(x + (2 * noise.to(images.device) - 1) * epsilon, low), high, out=like(images))
    alpha = step_size(epsilon, steps, step)
    for _ in range(steps):
        x = torch.min(torch.max(x + alpha * gradient_sign(model, x, labels), low), high, out=like(images))
    return x
