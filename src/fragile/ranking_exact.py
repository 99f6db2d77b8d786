"""Exact ranking by nodal dropout (Section 3.3, Fig. 1): drop each kernel of a conv in turn
and count the examples still classified right.

`rank_conv1` computes the stem (normalise, conv1, bn1, relu, max-pool) once per batch — it
is the same for every kernel — and runs only the rest of the network per kernel, with
several kernels stacked into one batch. For a deeper conv, `rank_layer` computes everything
before the residual block holding it once per batch and reruns that block and the rest per
kernel, stacked the same way, with a forward hook zeroing each stacked copy's own channel.
The naive reference (the whole network once per kernel, a hook zeroing the channel) is
benchmarks/reference_ranking.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fragile.attacks import eval_mode
from fragile.devices import batch_to
from fragile.errors import FragileError
from fragile.kernel_drop import after_stem, drop_point, dropped_channel_value, split_at_block, stem
from fragile.kernel_sets import KernelRanking
from fragile.models import FragileNet, conv_layer

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def rank_conv1(
    model: FragileNet,
    batches: Batches,
    drop: str = "activation",
    kernels_per_pass: int | None = None,
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> KernelRanking:
    channels = model.net.conv1.out_channels
    fill = dropped_channel_value(model, drop)
    correct = torch.zeros(channels, dtype=torch.long)
    loss_sum = torch.zeros(channels, dtype=torch.float64)
    base_correct = 0
    examples = 0
    outcomes: list[np.ndarray] = []  # per batch, (batch, kernels): example right with the kernel dropped
    with eval_mode(model), torch.no_grad():
        fill = fill.to(device) if device is not None else fill
        for images, labels in batches:
            images, labels = batch_to(images, device), labels.to(device)
            hidden = stem(model, images)
            base_correct += int((after_stem(model, hidden).argmax(1) == labels).sum())
            batch = len(labels)
            group = kernels_per_pass or max(1, 1000 // batch)
            hits = torch.zeros(batch, channels, dtype=torch.bool)
            for first in range(0, channels, group):
                kernels = torch.arange(first, min(first + group, channels), device=hidden.device)
                stacked = hidden.unsqueeze(0).repeat(len(kernels), 1, 1, 1, 1)
                stacked[torch.arange(len(kernels)), :, kernels] = fill[kernels, None, None, None].to(hidden.dtype)
                logits = after_stem(model, stacked.flatten(0, 1).contiguous(memory_format=torch.channels_last))
                _tally(logits, labels, first, correct, loss_sum, hits)
            outcomes.append(hits.numpy())
            examples += batch
            if progress is not None:
                progress(batch)
    return tallied(correct, loss_sum, base_correct, examples, outcomes)


def _tally(logits: torch.Tensor, labels: torch.Tensor, first: int, correct: torch.Tensor,
           loss_sum: torch.Tensor, example_hits: torch.Tensor) -> None:
    """Add hits and summed losses of stacked copies of one batch (copy i dropped kernel first + i),
    and set each example's hit per copy in `example_hits` (batch × kernels)."""
    copies, batch = len(logits) // len(labels), len(labels)
    targets = labels.repeat(copies)
    right = (logits.argmax(1) == targets).view(copies, batch)
    hits = right.sum(1)
    example_hits[:, first : first + copies] = right.T.cpu()
    losses = F.cross_entropy(logits, targets, reduction="none").view(copies, batch)
    correct[first : first + copies] += hits.cpu()
    loss_sum[first : first + copies] += losses.double().sum(1).cpu()


def rank_layer(
    model: FragileNet,
    layer: str,
    batches: Batches,
    drop: str = "activation",
    kernels_per_pass: int | None = None,
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> KernelRanking:
    """Exact ranking of the named conv's kernels (conv1 takes the faster `rank_conv1`)."""
    if layer == "conv1":
        return rank_conv1(model, batches, drop, kernels_per_pass, device, progress)
    channels = conv_layer(model, layer).out_channels
    point = drop_point(model, layer, drop)
    prefix, rest = split_at_block(model, layer)
    dropped: list[torch.Tensor] = []  # kernel of each stacked copy, read by the hook below

    def zero_own_channel(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        if dropped:  # in place, before the block's residual addition or ReLU reads it
            stacked = out.view(len(dropped[0]), -1, *out.shape[1:])
            stacked[torch.arange(len(dropped[0]), device=out.device), :, dropped[0]] = 0

    correct = torch.zeros(channels, dtype=torch.long)
    loss_sum = torch.zeros(channels, dtype=torch.float64)
    base_correct = examples = 0
    outcomes: list[np.ndarray] = []
    handle = point.register_forward_hook(zero_own_channel)
    try:
        with eval_mode(model), torch.no_grad():
            for images, labels in batches:
                images, labels = batch_to(images, device), labels.to(device)
                hidden = prefix(images)
                dropped.clear()
                base_correct += int((rest(hidden).argmax(1) == labels).sum())
                batch = len(labels)
                group = kernels_per_pass or max(1, 1000 // batch)
                hits = torch.zeros(batch, channels, dtype=torch.bool)
                for first in range(0, channels, group):
                    kernels = torch.arange(first, min(first + group, channels), device=hidden.device)
                    dropped[:] = [kernels]
                    logits = rest(hidden.repeat(len(kernels), *([1] * (hidden.ndim - 1))))
                    _tally(logits, labels, first, correct, loss_sum, hits)
                outcomes.append(hits.numpy())
                examples += batch
                if progress is not None:
                    progress(batch)
    finally:
        handle.remove()
    return tallied(correct, loss_sum, base_correct, examples, outcomes)


def tallied(correct: torch.Tensor, loss_sum: torch.Tensor, base_correct: int, examples: int,
            outcomes: list[np.ndarray] | None = None) -> KernelRanking:
    """The ranking of per-kernel hit counts and summed losses over `examples` examples, with
    each example's outcomes per kernel (`outcomes`: per batch, batch × kernels) when given."""
    if examples == 0:
        raise FragileError("the ranking split has no examples; check rank.split and rank.max_examples")
    return KernelRanking(correct=[int(c) for c in correct], loss_sum=[float(s) for s in loss_sum],
                         examples=examples, baseline_correct=base_correct,
                         example_correct=np.concatenate(outcomes).astype(np.uint8) if outcomes else None)
