"""Supervised training of a FragileNet with SGD, epoch by epoch.

The data order of epoch e is a permutation drawn from (seed, e) alone, so a run resumed
at any epoch boundary sees exactly the batches an uninterrupted run would.

On CUDA the forward pass runs under bf16 autocast (weights, gradients and the optimizer
stay float32) with channels_last inputs and weights; on CPU and MPS it is plain float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fragile.data import Split
from fragile.devices import batch_to, to_device
from fragile.distributed import all_sum
from fragile.errors import FragileError
from fragile.params import TrainParams

ProgressFactory = Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(), lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay
    )


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams) -> torch.optim.lr_scheduler.LRScheduler:
    if params.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA (tensor cores, no loss scaling needed unlike fp16); None elsewhere: CPU
    bf16 autocast is slower than float32 on most CPUs and would change the CPU results."""
    return torch.bfloat16 if device.type == "cuda" else None


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def training_subset(split: Split, max_examples: int, seed: int) -> Split:
    """The whole split (max_examples 0), else a seeded random subset in the split's order.

    Random rather than a head: a prepared training split may be ordered by class.
    Epoch orders are drawn from (seed, e) with e >= 1, so (seed, 0) is free for this draw.
    """
    if max_examples == 0 or max_examples >= len(split):
        return split
    keep = np.sort(np.random.default_rng([seed, 0]).permutation(len(split))[:max_examples])
    return Split(split.images[keep], split.labels[keep])


def train_one_epoch(
    model: nn.Module,
    split: Split,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    seed: int,
    epoch: int,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, float]:
    """(mean loss, accuracy) over the epoch's full batches (a last partial batch is dropped
    so BatchNorm never sees a batch of one).

    With several processes (`model` wrapped in DistributedDataParallel), every process walks
    the same seeded order and takes the strided slice `rank::world_size` of each batch, as
    DistributedSampler does: the batches are one process's, split, and DDP's averaged
    gradient is their mean loss's gradient. Loss and accuracy are summed over the processes.
    """
    model.train()
    order = epoch_order(seed, epoch, len(split))
    usable = (len(order) // batch_size) * batch_size or len(order)
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, usable, batch_size):
        idx = order[start : start + batch_size][rank::world_size]
        images = batch_to(torch.from_numpy(split.images[idx]).float().div_(255), device)
        labels = torch.from_numpy(split.labels[idx]).to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        batch_loss = float(loss.detach())  # the one host sync per batch
        if not math.isfinite(batch_loss):
            raise diverged(batch_loss, epoch, start // batch_size + 1, optimizer)
        loss_sum += batch_loss * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if progress is not None:
            progress(len(labels) * world_size)
    if world_size > 1:
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen])
    return loss_sum / seen, correct / seen


def diverged(loss: float, epoch: int, batch: int, optimizer: torch.optim.Optimizer) -> FragileError:
    """The error that stops a run whose loss is no longer finite: its weights are already
    NaN or inf, and nothing trained from here on would be worth a checkpoint."""
    group = optimizer.param_groups[0]
    base, now = group.get("initial_lr", group["lr"]), group["lr"]
    at = "" if now == base else f", {now:g} at this epoch"
    return FragileError(
        f"the training loss became {loss} at epoch {epoch}, batch {batch} (train.lr {base:g}{at}); "
        "lower train.lr and retrain"
    )


def evaluate_split(
    model: nn.Module, split: Split, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in split.batches(batch_size):
            images, labels = batch_to(images, device), labels.to(device)
            logits = model(images)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
    model.train(was_training)
    return loss_sum / len(split), correct / len(split)


def train_epochs(
    model: nn.Module,
    train: Split,
    val: Split,
    params: TrainParams,
    seed: int,
    device: torch.device,
    start_epoch: int = 1,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: ProgressFactory | None = None,
    wrapped: nn.Module | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[EpochMetrics]:
    """Train epochs start_epoch..params.epochs, yielding each epoch's metrics once it is done
    (the caller saves checkpoints and logs between epochs).

    `progress(description, total)` is a context manager yielding `advance(n)`. `wrapped` is
    `model` inside DistributedDataParallel when this is process `rank` of `world_size`; the
    validation pass runs on `model` itself, whole in every process.
    """
    to_device(model, device)
    optimizer = optimizer or make_optimizer(model, params)
    scheduler = scheduler or make_scheduler(optimizer, params)
    usable = (len(train) // params.batch_size) * params.batch_size or len(train)
    for epoch in range(start_epoch, params.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        bar = progress(f"epoch {epoch}/{params.epochs}", usable) if progress else contextlib.nullcontext(None)
        with bar as advance:
            train_loss, train_acc = train_one_epoch(
                wrapped or model, train, optimizer, params.batch_size, seed, epoch, device, advance,
                rank, world_size,
            )
        scheduler.step()
        val_loss, val_acc = evaluate_split(model, val, 500, device)
        yield EpochMetrics(epoch, train_loss, train_acc, val_loss, val_acc, lr)
