"""The naive reference ranking: the whole network from the input once per kernel, with a
forward hook zeroing that kernel's channel. The fast exact ranking (fragile.ranking_exact)
must give the same counts; tests/test_ranking.py checks it and benchmarks/ranking.py times it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fragile.attacks import eval_mode
from fragile.kernel_sets import KernelRanking
from fragile.models import FragileNet
from fragile.ranking_exact import Batches


def rank_by_hooks(model: FragileNet, batches: Batches, point: nn.Module, channels: int) -> KernelRanking:
    """Every kernel dropped in turn at `point` (see fragile.kernel_drop.drop_point)."""
    batch_list = list(batches)
    correct = [0] * channels
    loss_sum = [0.0] * channels
    with eval_mode(model), torch.no_grad():
        base_correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batch_list)
        for k in range(channels):
            def zero_channel(_m: nn.Module, _i: object, out: torch.Tensor, k: int = k) -> torch.Tensor:
                out = out.clone()
                out[:, k] = 0
                return out

            handle = point.register_forward_hook(zero_channel)
            try:
                for images, labels in batch_list:
                    logits = model(images)
                    correct[k] += int((logits.argmax(1) == labels).sum())
                    loss_sum[k] += float(F.cross_entropy(logits, labels, reduction="sum").double())
            finally:
                handle.remove()
    examples = sum(len(labels) for _, labels in batch_list)
    return KernelRanking(correct=correct, loss_sum=loss_sum, examples=examples, baseline_correct=base_correct)
