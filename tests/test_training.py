"""The train loop's device-dependent precision and its equality with a bare PyTorch loop."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from fragile.devices import batch_to, to_device
from fragile.errors import FragileError
from fragile.params import TrainParams
from fragile.training import (
    autocast,
    autocast_dtype,
    epoch_order,
    make_optimizer,
    make_scheduler,
    train_epochs,
    train_one_epoch,
)


def test_bf16_autocast_on_cuda_only():
    assert autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda", 1)) is torch.bfloat16
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("mps")) is None
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)


def test_cpu_epoch_equals_a_bare_float32_loop(tiny_model, tiny_split):
    """On CPU the stage's loop is exactly the bare loop the benchmark compares it with."""
    params = TrainParams(batch_size=16, lr=0.01)
    cpu = torch.device("cpu")
    to_device(tiny_model, cpu)  # channels_last, as train_epochs does
    bare = _copy(tiny_model)
    train_one_epoch(tiny_model, tiny_split, make_optimizer(tiny_model, params), 16, 0, 1, torch.device("cpu"))
    optimizer = make_optimizer(bare, params)
    bare.train()
    order = epoch_order(0, 1, len(tiny_split))
    for start in range(0, len(order), 16):
        idx = order[start : start + 16]
        images = batch_to(torch.from_numpy(tiny_split.images[idx]).float().div_(255), cpu)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(bare(images), torch.from_numpy(tiny_split.labels[idx])).backward()
        optimizer.step()
    for (name, ours), theirs in zip(tiny_model.state_dict().items(), bare.state_dict().values(), strict=True):
        assert ours.dtype == theirs.dtype, name
        assert torch.equal(ours, theirs), name


def test_a_diverging_run_stops_naming_train_lr_before_any_epoch_ends(tiny_model, tiny_split):
    """A huge learning rate makes the loss NaN within a few batches; the run stops there, so
    the caller, which saves checkpoints between epochs, never gets NaN weights to save."""
    params = TrainParams(epochs=2, checkpoints=(1, 2), batch_size=16, lr=1e10)
    finished = []
    with pytest.raises(FragileError, match=r"the training loss became nan at epoch 1, batch \d \(train.lr 1e\+10\); "
                                           r"lower train.lr and retrain$"):
        for metrics in train_epochs(tiny_model, tiny_split, tiny_split, params, 0, torch.device("cpu")):
            finished.append(metrics)
    assert finished == []


def test_the_divergence_message_gives_the_scheduled_rate_too(tiny_model, tiny_split, monkeypatch):
    params = TrainParams(epochs=4, checkpoints=(4,), batch_size=16, lr=0.1)
    optimizer = make_optimizer(tiny_model, params)
    make_scheduler(optimizer, params)  # records train.lr as the group's initial_lr
    optimizer.param_groups[0]["lr"] = 0.025  # where the schedule has lowered it by now
    real = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("inf"))
    with pytest.raises(FragileError, match=r"became inf at epoch 2, batch 1 \(train.lr 0.1, 0.025 at this epoch\)"):
        train_one_epoch(tiny_model, tiny_split, optimizer, 16, 0, 2, torch.device("cpu"))


def _copy(model):
    import copy

    return copy.deepcopy(model)
