"""L∞ PGD (Madry et al. 2018) on models that take pixels in [0, 1] (ε in pixel units).

x₀ = x + U(−ε, ε) (random start), x_{t+1} = clamp(Π_{B∞(x,ε)}(x_t + step·sign(∇ CE)), 0, 1).
FGSM is one step of size ε from x; PGD's many smaller steps find the loss maximum inside
the ball that a single linearisation can miss, which is what makes it the check for
gradient masking. The random start is drawn on the CPU from a `torch.Generator`, so a
seed gives the same start on every device. With restarts, the attack starts again from new
random points for the examples that are still classified correctly: an example counts as
robust only if it survives every restart.

Early stop (the default): an example stops moving at its first iterate the model misclassifies
(the random start included), read from the forward pass that computes the next gradient, so it
costs no extra pass. Robust accuracy is then "survives every iterate", the standard of
AutoAttack's APGD, which is at most the accuracy at the last iterate of a full run, and the
attack spends no steps on examples it has already broken (at a large ε, nearly all after one).
`early_stop=False` runs every step for every example (torchattacks' PGD arithmetic).
"""

from __future__ import annotations

import torch
from torch import nn

from fragile.attacks import eval_mode, gradient_sign, gradient_sign_and_fooled, like

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
    early_stop: bool = True,
) -> torch.Tensor:
    """`steps` signed-gradient steps against `model` (eval mode), projected onto the ε-ball
    around `images` and the pixel range after each step; with `restarts` > 1, each restart
    attacks the examples that every earlier one left correctly classified, and the result keeps
    each example's first successful adversarial (its last attempt when none succeeded)."""
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    if restarts > 1 and not random_start:
        raise ValueError("restarts without a random start would repeat the same attack")
    adversarial = _pgd(model, images, labels, epsilon, steps, step, random_start, generator, early_stop)
    if epsilon == 0 or steps == 0:
        return adversarial
    for _ in range(restarts - 1):
        # Judged on the whole batch, as the caller's forward pass will judge the result.
        with torch.no_grad(), eval_mode(model):
            survivors = (model(adversarial).argmax(1) == labels).nonzero().squeeze(1)
        if survivors.numel() == 0:
            break
        adversarial[survivors] = _pgd(model, images[survivors], labels[survivors], epsilon, steps, step,
                                      random_start, generator, early_stop)
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
    early_stop: bool = True,
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
    if not early_stop:
        for _ in range(steps):
            x = torch.min(torch.max(x + alpha * gradient_sign(model, x, labels), low), high, out=like(images))
        return x
    active = torch.arange(images.shape[0], device=images.device)
    for _ in range(steps):
        rows = _rows(x, active)
        sign, fooled = gradient_sign_and_fooled(model, rows, labels[active])
        moving = ~fooled
        if not bool(moving.any()):
            break
        active, rows, sign = active[moving], rows[moving], sign[moving]
        x[active] = torch.min(torch.max(rows + alpha * sign, low[active]), high[active])
    return x


def _rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[index] in x's memory layout, so the model runs the same kernels on it."""
    rows = x.index_select(0, index)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return rows.contiguous(memory_format=torch.channels_last)
    return rows
