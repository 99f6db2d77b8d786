"""First-order (Taylor) ranking (`rank.method: taylor`): each kernel's drop effect estimated
from one forward and one backward pass per batch (first-order sensitivity analysis, as in
the paper's reference Li & Chen 2018). `kernel_sets.compare_rankings` measures how well it
reproduces the exact ranking (`ranking_exact`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from fragile.attacks import eval_mode
from fragile.devices import batch_to
from fragile.errors import FragileError
from fragile.kernel_drop import drop_site
from fragile.kernel_sets import TaylorRanking
from fragile.models import FragileNet, conv_layer

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def rank_taylor(
    model: FragileNet,
    batches: Batches,
    drop: str = "activation",
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
    layer: str = "conv1",
) -> TaylorRanking:
    """score[k] = mean over examples of Σ_hw (fill_k − a_k)·∂L/∂a_k, with a = the tensor whose
    channel the exact ranking replaces and fill_k the value a dropped channel takes there. For
    conv1, a = the stem's output (after BN, ReLU and max-pool, as in `rank_conv1`) and fill_k
    = 0 for `drop="activation"`, see `dropped_channel_value`; for a deeper conv, a = the
    output of its `drop_point` and fill_k = 0.

    This is the first-order change in the example's loss when channel k is replaced by its
    dropped value; for `activation` it is −Σ a_k·∂L/∂a_k. It stays signed: the exact ranking
    orders kernels by how much their drop hurts, and a kernel whose drop helps (negative
    score) must not look as fragile as one whose drop hurts by the same amount, which |·|
    (the pruning criterion of Molchanov et al. 2017) would do. One forward and one backward
    pass per batch; the backward computes only the gradient with respect to a.
    """
    channels = conv_layer(model, layer).out_channels
    fill, prefix, rest, point = drop_site(model, layer, drop)
    captured: list[torch.Tensor] = []

    def capture(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        captured.append(out)
        return out.clone()  # the block's in-place residual addition / ReLU must not overwrite `out`

    score = torch.zeros(channels, dtype=torch.float64)
    loss_sum = 0.0
    examples = 0
    handle = point.register_forward_hook(capture) if point is not None else None
    try:
        with eval_mode(model):
            fill = fill.to(device) if device is not None else fill
            for images, labels in batches:
                images, labels = batch_to(images, device), labels.to(device)
                with torch.no_grad():
                    hidden = prefix(images)
                hidden.requires_grad_(True)
                captured.clear()
                with torch.enable_grad():
                    # Summed loss: its gradient is each example's own ∂L_i/∂a_i.
                    loss = F.cross_entropy(rest(hidden), labels, reduction="sum")
                    a = captured[0] if point is not None else hidden
                    (grad,) = torch.autograd.grad(loss, a)
                change = (fill.to(a.dtype)[None, :, None, None] - a.detach()) * grad
                score += change.sum(dim=(0, 2, 3)).double().cpu()
                loss_sum += float(loss.detach())
                examples += len(labels)
                if progress is not None:
                    progress(len(labels))
    finally:
        if handle is not None:
            handle.remove()
    if examples == 0:
        raise FragileError("the ranking split has no examples; check rank.split and rank.max_examples")
    return TaylorRanking(score_sum=score.tolist(), examples=examples, loss_sum=loss_sum)

