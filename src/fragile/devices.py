"""Device choice: `FRAGILE_DEVICE` when set, else torch's current accelerator (CUDA, MPS, XPU,
...), else the CPU.

The device is deliberately not a tracked param: moving a run to a GPU does not by itself
invalidate the pipeline.
"""

from __future__ import annotations

import os

import torch

from fragile.errors import FragileError

ENV_VAR = "FRAGILE_DEVICE"


def pick_device() -> torch.device:
    wanted = os.environ.get(ENV_VAR, "").strip()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError:
            raise FragileError(f"{ENV_VAR}={wanted!r} is not a device; use cpu, cuda, cuda:1, mps or xpu") from None
        if device.type != "cpu" and not _available(device.type):
            raise FragileError(f"{ENV_VAR}={wanted} but {device.type} is not available here; unset it or use cpu")
        return device
    return default_device()


def default_device() -> torch.device:
    """torch.accelerator's device (torch >= 2.6) when one is available, else the CPU; older
    torch releases look for CUDA, MPS and XPU themselves."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        # A CUDA build names "cuda" as its accelerator even on a machine without a GPU:
        # is_available() says whether there is one.
        current = accelerator.current_accelerator() if accelerator.is_available() else None
        return torch.device(current.type) if current is not None else torch.device("cpu")
    for kind in ("cuda", "mps", "xpu"):
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")


def _available(kind: str) -> bool:
    if kind == "mps":
        return torch.backends.mps.is_available()
    backend = getattr(torch, kind, None)  # torch.cuda, torch.xpu, ...
    return bool(backend is not None and hasattr(backend, "is_available") and backend.is_available())


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model for inference or training; channels_last is about 2x faster for these
    ResNets on CPU and the preferred layout for tensor cores on CUDA."""
    return model.to(device=device, memory_format=torch.channels_last)


def batch_to(images: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return images.to(device=device, memory_format=torch.channels_last)
