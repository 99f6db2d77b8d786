"""Nodal dropout of a conv layer (Section 3.3, Fig. 1): fragile kernels S and null kernels S'.

Dropping kernel k zeroes its output channel after the conv's BatchNorm for the rest of the
network (`drop="activation"`, the default; see `drop_point`) or zeroes its weights so that
the channel carries only what BatchNorm adds (`drop="weight"`). S = kernels whose drop gives
accuracy below the mean over all kernels; S' = the rest. `rank_layer` ranks any conv of the
ResNet by name (`analysis.layer`); the paper's layer is conv1.

`rank_conv1` computes the stem (normalise, conv1, bn1, relu, max-pool) once per batch — it
is the same for every kernel — and runs only the rest of the network per kernel, with
several kernels stacked into one batch. For a deeper conv, `rank_layer` computes everything
before the residual block holding it once per batch and reruns that block and the rest per
kernel, stacked the same way, with a forward hook zeroing each stacked copy's own channel.
`rank_by_hooks` is the naive reference: the whole network from the input once per kernel, a
forward hook zeroing the channel.

`rank_taylor` is the fast approximate ranking (`rank.method: taylor`): a first-order Taylor
estimate of each drop's change in loss from one forward and one backward pass (first-order
sensitivity analysis, as in the paper's reference Li & Chen 2018). `compare_rankings` gives
its Spearman correlation and set agreement with the exact ranking.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fragile.attacks import eval_mode
from fragile.devices import batch_to
from fragile.errors import FragileError
from fragile.models import FragileNet, conv_layer

if TYPE_CHECKING:
    import pandas as pd

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class KernelRanking:
    accuracy: list[float]  # per kernel, accuracy with that kernel dropped
    loss: list[float]  # per kernel, mean cross-entropy with that kernel dropped
    examples: int
    baseline_accuracy: float  # nothing dropped

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracy) / len(self.accuracy)

    @property
    def fragile(self) -> list[int]:
        """S: dropping these costs more than the average kernel."""
        mean = self.mean_accuracy
        return [k for k, acc in enumerate(self.accuracy) if acc < mean]

    @property
    def null(self) -> list[int]:
        """S': the rest (at or above the mean line)."""
        mean = self.mean_accuracy
        return [k for k, acc in enumerate(self.accuracy) if acc >= mean]

    def check_sets(self) -> None:
        if not self.fragile or not self.null:
            raise FragileError(
                f"all {len(self.accuracy)} kernels give the same accuracy when dropped "
                f"({self.accuracy[0]:.4f}), so S or S' is empty; rank on more examples "
                "(rank.max_examples) or a checkpoint that trained longer"
            )


def _stem(model: FragileNet, images: torch.Tensor) -> torch.Tensor:
    net = model.net
    return net.maxpool(net.relu(net.bn1(net.conv1(model.normalize(images)))))


def _rest(model: FragileNet, hidden: torch.Tensor) -> torch.Tensor:
    net = model.net
    x = net.layer4(net.layer3(net.layer2(net.layer1(hidden))))
    return net.fc(torch.flatten(net.avgpool(x), 1))


def dropped_channel_value(model: FragileNet, drop: str) -> torch.Tensor:
    """(K,) value each dropped channel takes after the stem: 0, or what BN makes of a zero conv."""
    channels = model.net.conv1.out_channels
    if drop == "activation":
        return torch.zeros(channels)
    bn = model.net.bn1
    zero_conv = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    return torch.relu(zero_conv).detach()  # max-pool of a constant map is that constant


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
    with eval_mode(model), torch.no_grad():
        fill = fill.to(device) if device is not None else fill
        for images, labels in batches:
            images, labels = batch_to(images, device), labels.to(device)
            hidden = _stem(model, images)
            base_correct += int((_rest(model, hidden).argmax(1) == labels).sum())
            batch = len(labels)
            group = kernels_per_pass or max(1, 1000 // batch)
            for first in range(0, channels, group):
                kernels = torch.arange(first, min(first + group, channels), device=hidden.device)
                stacked = hidden.unsqueeze(0).repeat(len(kernels), 1, 1, 1, 1)
                stacked[torch.arange(len(kernels)), :, kernels] = fill[kernels, None, None, None].to(hidden.dtype)
                logits = _rest(model, stacked.flatten(0, 1).contiguous(memory_format=torch.channels_last))
                _tally(logits, labels, first, correct, loss_sum)
            examples += batch
            if progress is not None:
                progress(batch)
    return _ranking(correct, loss_sum, base_correct, examples)


def _tally(logits: torch.Tensor, labels: torch.Tensor, first: int, correct: torch.Tensor,
           loss_sum: torch.Tensor) -> None:
    """Add hits and summed losses of stacked copies of one batch (copy i dropped kernel first + i)."""
    copies, batch = len(logits) // len(labels), len(labels)
    targets = labels.repeat(copies)
    hits = (logits.argmax(1) == targets).view(copies, batch).sum(1)
    losses = F.cross_entropy(logits, targets, reduction="none").view(copies, batch)
    correct[first : first + copies] += hits.cpu()
    loss_sum[first : first + copies] += losses.double().sum(1).cpu()


def _split(model: FragileNet, layer: str) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                   Callable[[torch.Tensor], torch.Tensor]]:
    """(prefix, rest): model(x) == rest(prefix(x)), where `prefix` ends just before the residual
    block holding `layer` (just after `normalize` for the stem's conv1), so it does not depend
    on which of the layer's kernels is dropped."""
    net = model.net
    pieces: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("", lambda x: net.maxpool(net.relu(net.bn1(net.conv1(x))))),  # the stem
        *((f"{name}.{i}.", block) for name in ("layer1", "layer2", "layer3", "layer4")
          for i, block in enumerate(getattr(net, name))),
        ("fc", lambda x: net.fc(torch.flatten(net.avgpool(x), 1))),
    ]
    start = next((i for i, (prefix, _) in enumerate(pieces) if prefix and layer.startswith(prefix)), 0)

    def run(x: torch.Tensor, part: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]) -> torch.Tensor:
        for _, piece in part:
            x = piece(x)
        return x

    return (lambda x: run(model.normalize(x), pieces[:start])), (lambda x: run(x, pieces[start:]))


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
    prefix, rest = _split(model, layer)
    dropped: list[torch.Tensor] = []  # kernel of each stacked copy, read by the hook below

    def zero_own_channel(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        if dropped:  # in place, before the block's residual addition or ReLU reads it
            stacked = out.view(len(dropped[0]), -1, *out.shape[1:])
            stacked[torch.arange(len(dropped[0]), device=out.device), :, dropped[0]] = 0

    correct = torch.zeros(channels, dtype=torch.long)
    loss_sum = torch.zeros(channels, dtype=torch.float64)
    base_correct = examples = 0
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
                for first in range(0, channels, group):
                    kernels = torch.arange(first, min(first + group, channels), device=hidden.device)
                    dropped[:] = [kernels]
                    logits = rest(hidden.repeat(len(kernels), *([1] * (hidden.ndim - 1))))
                    _tally(logits, labels, first, correct, loss_sum)
                examples += batch
                if progress is not None:
                    progress(batch)
    finally:
        handle.remove()
    return _ranking(correct, loss_sum, base_correct, examples)


@dataclass(frozen=True)
class TaylorRanking:
    """First-order estimate of each kernel's drop effect.

    score[k] ≈ mean over examples of L(x with kernel k dropped) − L(x): the signed change in
    cross-entropy, so a larger score means the drop hurts more. S = kernels whose estimated
    drop hurts more than the mean over all kernels (the paper's mean-line rule, on loss
    instead of accuracy); S' = the rest.
    """

    score: list[float]
    examples: int
    baseline_loss: float  # nothing dropped

    @property
    def mean_score(self) -> float:
        return sum(self.score) / len(self.score)

    @property
    def fragile(self) -> list[int]:
        mean = self.mean_score
        return [k for k, s in enumerate(self.score) if s > mean]

    @property
    def null(self) -> list[int]:
        mean = self.mean_score
        return [k for k, s in enumerate(self.score) if s <= mean]

    def check_sets(self) -> None:
        if not self.fragile or not self.null:
            raise FragileError(
                f"all {len(self.score)} kernels get the same Taylor score ({self.score[0]:.4g}), so S or S' "
                "is empty; rank on more examples (rank.max_examples) or use rank.method: ablation"
            )


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
    if layer == "conv1":
        fill = dropped_channel_value(model, drop)
        prefix, rest = (lambda x: _stem(model, x)), (lambda h: _rest(model, h))
        point = None
    else:
        fill = torch.zeros(channels)
        prefix, rest = _split(model, layer)
        point = drop_point(model, layer, drop)
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
    return TaylorRanking(score=(score / examples).tolist(), examples=examples, baseline_loss=loss_sum / examples)


def compare_rankings(taylor: TaylorRanking, exact: KernelRanking) -> dict[str, float]:
    """How well the Taylor estimate reproduces the exact ranking.

    spearman: rank correlation of the Taylor score with the exact accuracy lost by each drop
    (baseline − accuracy, so both grow with harm; ties get average ranks); spearman_loss: the
    same against the exact loss with the kernel dropped; set_agreement: share of kernels put
    in the same set (S or S') by both.
    """
    import pandas as pd

    score = pd.Series(taylor.score)
    harm = pd.Series([exact.baseline_accuracy - a for a in exact.accuracy])
    fragile_t, fragile_e = set(taylor.fragile), set(exact.fragile)
    kernels = len(taylor.score)
    same = sum((k in fragile_t) == (k in fragile_e) for k in range(kernels))
    return {
        "spearman": float(score.corr(harm, method="spearman")),
        "spearman_loss": float(score.corr(pd.Series(exact.loss), method="spearman")),
        "set_agreement": same / kernels,
    }


def drop_point(model: FragileNet, layer_name: str, drop: str) -> nn.Module:
    """Where zeroing a channel drops kernel k of `layer_name`.

    `weight`: the conv's own output (ResNet convs have no bias, so this equals zeroing the
    kernel's weights). `activation`: the BatchNorm right after it, whose zeroed channel
    stays zero through the ReLU (and conv1's max-pool).
    """
    modules = dict(model.net.named_modules())
    if drop == "weight":
        return modules[layer_name]
    prefix, _, leaf = layer_name.rpartition(".")
    if leaf.startswith("conv"):
        bn_name = (prefix + "." if prefix else "") + "bn" + leaf[len("conv"):]
    else:  # downsample.0 -> downsample.1
        bn_name = f"{prefix}.{int(leaf) + 1}"
    if not isinstance(modules.get(bn_name), nn.BatchNorm2d):
        raise FragileError(f"no BatchNorm follows '{layer_name}'; use rank.drop: weight for it")
    return modules[bn_name]


def rank_by_hooks(model: FragileNet, batches: Batches, point: nn.Module, channels: int) -> KernelRanking:
    """Reference ranking: the whole network from the input once per kernel, with a forward
    hook on `point` (see `drop_point`) zeroing that kernel's channel."""
    batch_list = list(batches)
    correct = torch.zeros(channels, dtype=torch.long)
    loss_sum = torch.zeros(channels, dtype=torch.float64)
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
    return _ranking(correct, loss_sum, base_correct, examples)


def _ranking(correct: torch.Tensor, loss_sum: torch.Tensor, base_correct: int, examples: int) -> KernelRanking:
    if examples == 0:
        raise FragileError("the ranking split has no examples; check rank.split and rank.max_examples")
    return KernelRanking(
        accuracy=[int(c) / examples for c in correct],
        loss=[float(s) / examples for s in loss_sum],
        examples=examples,
        baseline_accuracy=base_correct / examples,
    )


def ranking_table(ranking: KernelRanking) -> "pd.DataFrame":
    """Per-kernel rows: kernel, accuracy, loss, set (S = fragile, S' = null; "null" would read as NaN)."""
    import pandas as pd

    fragile = set(ranking.fragile)
    return pd.DataFrame(
        {
            "kernel": range(len(ranking.accuracy)),
            "accuracy": ranking.accuracy,
            "loss": ranking.loss,
            "set": ["S" if k in fragile else "S'" for k in range(len(ranking.accuracy))],
        }
    )


def taylor_table(taylor: TaylorRanking, exact: KernelRanking | None = None) -> "pd.DataFrame":
    """Per-kernel rows: kernel, score, set (from the Taylor score), and the exact accuracy and loss
    when the exact ranking was computed too."""
    import pandas as pd

    fragile = set(taylor.fragile)
    kernels = range(len(taylor.score))
    table = pd.DataFrame({"kernel": kernels, "score": taylor.score})
    if exact is not None:
        table["accuracy"], table["loss"] = exact.accuracy, exact.loss
    table["set"] = ["S" if k in fragile else "S'" for k in kernels]
    return table


def read_sets(path: "str | os.PathLike[str]", layer: str | None = None,
              kernels: int | None = None) -> tuple[list[int], list[int]]:
    """(S, S') from a rank stage's JSON; with `layer` and `kernels`, they must split exactly the
    kernels 0..kernels-1 of that layer (a rank result of another layer or model is refused)."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fragile, null = [int(k) for k in data["fragile"]], [int(k) for k in data["null"]]
    except FileNotFoundError:
        raise FragileError(f"{path} not found; run the rank stage first (dvc repro rank)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise FragileError(f"{path} is not a rank stage output (needs 'fragile' and 'null' lists); rerun rank") from None
    if not fragile or not null or set(fragile) & set(null):
        raise FragileError(f"{path} must hold two non-empty, disjoint kernel sets; rerun rank")
    ranked = data.get("layer", "conv1")
    if layer is not None and (ranked != layer or sorted(fragile + null) != list(range(kernels or 0))):
        raise FragileError(f"{path} ranks {len(fragile + null)} kernels of {ranked}, but analysis.layer is {layer} "
                           f"with {kernels} kernels; rerun rank (dvc repro rank)")
    return fragile, null
