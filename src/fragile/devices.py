"""Device choice: CUDA, else Apple MPS, else CPU; `FRAGILE_DEVICE` overrides.

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
            raise FragileError(f"{ENV_VAR}={wanted!r} is not a device; use cpu, cuda, cuda:1 or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise FragileError(f"{ENV_VAR}={wanted} but CUDA is not available here; unset it or use cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise FragileError(f"{ENV_VAR}={wanted} but MPS is not available here; unset it or use cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model for inference or training; channels_last is about 2x faster for these
    ResNets on CPU and the preferred layout for tensor cores on CUDA."""
    return model.to(device=device, memory_format=torch.channels_last)


def batch_to(images: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return images.to(device=device, memory_format=torch.channels_last)
