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
