"""L∞ PGD (Madry et al. 2018) on models that take pixels in [0, 1] (ε in pixel units).

x₀ = x + U(−ε, ε) (random start), x_{t+1} = clamp(Π_{B∞(x,ε)}(x_t + step·sign(∇ CE)), 0, 1).
FGSM is one step of size ε from x; PGD's many smaller steps find the loss maximum inside
the ball that a single linearisation can miss, which is what makes it the check for
gradient masking. The random start is drawn on the CPU from a `torch.Generator`, so a
seed gives the same start on every device.
"""

from __future__ import annotations

import torch
from torch import nn

from fragile.attacks import gradient_sign, like

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
) -> torch.Tensor:
    """`steps` signed-gradient steps against `model` (eval mode), projected onto the ε-ball
    around `images` and the pixel range after each step."""
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
