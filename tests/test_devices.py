"""Device choice: FRAGILE_DEVICE first, then torch.accelerator, then the CPU."""

from __future__ import annotations

import pytest
import torch

from fragile import devices
from fragile.errors import FragileError


def _accelerator(monkeypatch, kind: str | None) -> None:
    """Make torch.accelerator report `kind` (None: no accelerator available)."""
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: kind is not None)
    monkeypatch.setattr(
        torch.accelerator, "current_accelerator",
        lambda check_available=False: torch.device(kind) if kind else torch.device("cuda"),
    )


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(devices.ENV_VAR, raising=False)


@pytest.mark.parametrize("kind", ["cuda", "mps", "xpu"])
def test_the_current_accelerator_is_used_when_the_variable_is_unset(monkeypatch, kind):
    _accelerator(monkeypatch, kind)
    assert devices.pick_device() == torch.device(kind)


def test_no_available_accelerator_means_cpu_even_on_a_cuda_build(monkeypatch):
    # A CUDA build's current_accelerator() says "cuda" on a machine without a GPU.
    _accelerator(monkeypatch, None)
    assert devices.pick_device() == torch.device("cpu")


def test_the_variable_overrides_the_accelerator(monkeypatch):
    _accelerator(monkeypatch, "cuda")
    monkeypatch.setenv(devices.ENV_VAR, "cpu")
    assert devices.pick_device() == torch.device("cpu")


def test_torch_without_torch_accelerator_looks_for_cuda_mps_and_xpu(monkeypatch):
    monkeypatch.delattr(torch, "accelerator")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.xpu, "is_available", lambda: True)
    assert devices.pick_device() == torch.device("xpu")
    monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    assert devices.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.pick_device() == torch.device("cuda")


def test_a_requested_device_that_is_missing_or_not_a_device_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    monkeypatch.setenv(devices.ENV_VAR, "xpu")
    with pytest.raises(FragileError, match="FRAGILE_DEVICE=xpu but xpu is not available here"):
        devices.pick_device()
    monkeypatch.setenv(devices.ENV_VAR, "gpu0")
    with pytest.raises(FragileError, match="FRAGILE_DEVICE='gpu0' is not a device"):
        devices.pick_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(devices.ENV_VAR, "cuda:1")
    assert devices.pick_device() == torch.device("cuda", 1)
