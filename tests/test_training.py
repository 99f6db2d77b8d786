"""The train loop's device-dependent precision and its equality with a bare PyTorch loop."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from fragile.devices import batch_to, to_device
from fragile.params import TrainParams
from fragile.training import autocast, autocast_dtype, epoch_order, make_optimizer, train_one_epoch


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


def _copy(model):
    import copy

    return copy.deepcopy(model)
