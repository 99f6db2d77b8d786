"""torchvision ResNets that take pixels in [0, 1], and their checkpoints.

Normalisation is a module inside the model, so attacks perturb raw pixels and ε is in
pixel units. A checkpoint is a plain dict (tensors, numbers, strings, lists) that
`torch.load(weights_only=True)` reads without running any pickled code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fragile.atomic import atomic_path
from fragile.errors import FragileError
from fragile.params import ModelParams

CHECKPOINT_FORMAT = 1


class Normalize(nn.Module):
    """(x - mean) / std per channel; buffers so they travel with the state_dict."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FragileNet(nn.Module):
    """`normalize` then a torchvision ResNet (`net`); layer names are relative to `net`."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def build(
    arch: str,
    num_classes: int,
    in_channels: int,
    mean: list[float],
    std: list[float],
    stem: str = "imagenet",
) -> FragileNet:
    """A randomly initialised torchvision ResNet with conv1 adjusted to the input channels.

    `stem="imagenet"` keeps torchvision's 7×7 stride-2 conv1 (64 kernels) and max-pool, as
    in the paper; `stem="cifar"` is the common small-image variant (3×3 stride-1, no pool).
    """
    from fragile.vision import torchvision  # only stages that build a model pay for torchvision

    tv_models = torchvision().models

    try:
        factory = getattr(tv_models, arch)
    except AttributeError:
        raise FragileError(f"unknown arch '{arch}'; use resnet18, resnet50 or resnet101") from None
    net = factory(weights=None, num_classes=num_classes)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if in_channels != 3 or stem == "cifar":
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return FragileNet(net, mean, std)


def save(path: str | os.PathLike[str], model: FragileNet, meta: dict[str, Any]) -> None:
    """Write a checkpoint atomically: state_dict plus the metadata needed to rebuild it."""
    write_snapshot(path, snapshot(model, meta))


def snapshot(model: FragileNet, meta: dict[str, Any]) -> dict[str, Any]:
    """`model`'s checkpoint as it is now, tensors copied: training may go on while
    `write_snapshot` writes it."""
    return _payload({**meta, "state_dict": model.state_dict()})


def write_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically, with byte-identical output for identical content."""
    write_snapshot(path, _payload(checkpoint))


def _payload(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in checkpoint.items() if k != "state_dict"},
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu().contiguous().clone() for k, v in checkpoint["state_dict"].items()},
    }


def write_snapshot(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        # Saving through a file object fixes the archive's inner name ("archive"); saving to a
        # path would embed the random temporary file name and change the bytes on every run.
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint dict, read with weights_only=True (pickled code is refused, never run)."""
    path = Path(path)
    if not path.is_file():
        raise FragileError(f"checkpoint {path} not found; run the train stage (dvc repro train)")
    if not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else is damaged or not a checkpoint.
        raise FragileError(
            f"checkpoint {path} is truncated or corrupted (not a torch.save archive); "
            "restore it (dvc checkout) or retrain (dvc repro -f train)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise FragileError(
            f"checkpoint {path} was refused: it carries objects other than tensors and plain "
            f"data ({first[:160]}); only load checkpoints written by fragile"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise FragileError(
            f"checkpoint {path} is truncated or corrupted ({type(err).__name__}); "
            "restore it (dvc checkout) or retrain (dvc repro -f train)"
        ) from None
    required = ("arch", "num_classes", "in_channels", "mean", "std", "stem", "epoch", "state_dict")
    if not isinstance(payload, dict) or any(k not in payload for k in required):
        raise FragileError(f"{path} is not a fragile checkpoint (missing keys among {', '.join(required)})")
    check_finite(payload["state_dict"], f"checkpoint {path}")
    return payload


def check_finite(state_dict: dict[str, Any], what: str) -> None:
    """Refuse weights holding NaN or ±inf, naming the first such tensor: analysed, they would
    fail deep inside a later step (an SVD in harden) or give meaningless numbers."""
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise FragileError(f"{what} has a {type(value).__name__} under state_dict key {key!r}, not a tensor")
        if value.is_floating_point() or value.is_complex():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise FragileError(
                    f"{what} has {bad} non-finite value{'s' if bad > 1 else ''} (nan or inf) in {key}; "
                    "the training that wrote it diverged (retrain with a lower train.lr) or the file was altered"
                )


def load(
    path: str | os.PathLike[str],
    expect_arch: str | None = None,
    expect_classes: int | None = None,
    expect_channels: int | None = None,
) -> FragileNet:
    """An eval-mode model taking [0, 1] images, rebuilt from a checkpoint."""
    return load_with_meta(path, expect_arch, expect_classes, expect_channels)[0]


def load_with_meta(
    path: str | os.PathLike[str],
    expect_arch: str | None = None,
    expect_classes: int | None = None,
    expect_channels: int | None = None,
) -> tuple[FragileNet, dict[str, Any]]:
    """(model, checkpoint metadata without the weights)."""
    ckpt = read_checkpoint(path)
    for key, expected in (("arch", expect_arch), ("num_classes", expect_classes), ("in_channels", expect_channels)):
        if expected is not None and ckpt[key] != expected:
            raise FragileError(
                f"checkpoint {path} has {key}={ckpt[key]!r} but {expected!r} was expected; "
                "use a checkpoint trained with the current params or retrain"
            )
    model = build(ckpt["arch"], ckpt["num_classes"], ckpt["in_channels"], ckpt["mean"], ckpt["std"], ckpt["stem"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise FragileError(
            f"checkpoint {path} does not match a {ckpt['arch']} with {ckpt['num_classes']} classes "
            f"({str(err).splitlines()[0]}); it was altered or written by another version"
        ) from None
    return model.eval(), {k: v for k, v in ckpt.items() if k != "state_dict"}


def normalisation(model: ModelParams, manifest: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(mean, std) a model built for this prepared data holds: model.mean / model.std when given,
    else the data's per-channel statistics from its manifest."""
    if not model.mean:
        return list(manifest["mean"]), list(manifest["std"])
    channels = manifest["in_channels"]
    if len(model.mean) != channels:
        raise FragileError(
            f"model.mean and model.std have {len(model.mean)} values but the prepared data has {channels} "
            f"channel{'s' if channels > 1 else ''}; give one value per channel, or [] for the data's statistics"
        )
    return list(model.mean), list(model.std)


def fits_data(manifest: dict[str, Any]) -> dict[str, int]:
    """load()'s expectations for a checkpoint used on a prepared dataset: its class count and
    input channels (a checkpoint trained on other data would fail deep inside a forward pass)."""
    return {"expect_classes": manifest["num_classes"], "expect_channels": manifest["in_channels"]}


def conv_layer(model: FragileNet, name: str = "conv1") -> nn.Conv2d:
    """The named convolution of the ResNet (names relative to `model.net`; the shortcut
    convolutions `layerI.J.downsample.0` count too)."""
    layers = {n: m for n, m in model.net.named_modules() if isinstance(m, nn.Conv2d)}
    if name not in layers:
        raise _unknown_layer(name, list(layers))
    return layers[name]


def conv_weight_key(state_dict: dict[str, torch.Tensor], name: str = "conv1") -> str:
    """The state_dict key of the named convolution's weight, without building the model
    (a torchvision ResNet's only 4-d weights are its convolutions)."""
    names = [k[len("net."):-len(".weight")] for k, v in state_dict.items()
             if k.startswith("net.") and k.endswith(".weight") and v.ndim == 4]
    if name not in names:
        raise _unknown_layer(name, names)
    return f"net.{name}.weight"


def _unknown_layer(name: str, names: list[str]) -> FragileError:
    return FragileError(f"no conv layer '{name}' in this model (analysis.layer); valid names: {', '.join(names)}")
