"""Algorithm 1 (adversarial targeting): does the attack move the fragile kernels more?

For layer f_L, d_k = ‖f_L(x)_k − f_L(x')_k‖₂ over kernel k's feature map; S_f and S_n are
the means of d over the fragile set S and the null set S'; an example "targets S" when
S_f > S_n. Pure tensor math; `capture_output` is the only bridge to a model.

The relative distance d_k / ‖f_L(x)_k‖₂ removes each kernel's scale: hardening multiplies
the fragile kernels by α > 1, which multiplies their absolute d_k by α for any attack, so
absolute distances favour S after hardening by construction; relative ones do not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

DISTANCES = ("absolute", "relative")


def kernel_distances(clean: torch.Tensor, adversarial: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """(B, K) Euclidean distance per example and kernel between (B, K, H, W) layer outputs;
    `relative` divides by the clean map's norm (a map that is all zero counts as norm `tiny`,
    so an unmoved dead kernel has distance 0)."""
    distances = (clean - adversarial).flatten(2).norm(dim=2)
    if relative:
        distances = distances / clean.flatten(2).norm(dim=2).clamp_min(torch.finfo(distances.dtype).tiny)
    return distances


def targets_fragile(
    distances: torch.Tensor, fragile: Sequence[int], null: Sequence[int]
) -> torch.Tensor:
    """(B,) bool: S_f > S_n per example (a tie is not an attack on S)."""
    s_f = distances[:, list(fragile)].mean(dim=1)
    s_n = distances[:, list(null)].mean(dim=1)
    return s_f > s_n


@contextlib.contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the layer's output (detached) on every forward pass while active."""
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        yield outputs
    finally:
        handle.remove()
