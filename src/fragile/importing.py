"""Trained weights from elsewhere as a fragile checkpoint.

The input is a torchvision ResNet's state_dict (torchvision's own ImageNet weights, or any
script's `torch.save(model.state_dict(), path)`), or a checkpoint dict holding one under
`state_dict`, `model` or `model_state_dict`; a `module.` prefix (DataParallel,
DistributedDataParallel) is dropped. It is read with `torch.load(weights_only=True)`: pickled
code is refused, never run. The architecture comes from the keys and shapes, the class count
from `fc.weight`, the input channels from `conv1.weight`, the stem from conv1's kernel (7×7:
imagenet, 3×3: cifar, which fragile builds without the max-pool).

The weights carry no normalisation, and fragile models take [0, 1] pixels with their
normalisation inside: the caller gives the per-channel mean and std the weights were trained
with (model.mean / model.std; models.normalisation falls back to the prepared data's
statistics). The result is what models.write_checkpoint writes, with epoch 0.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fragile import models
from fragile.errors import FragileError
from fragile.params import ARCHS

STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict")
IMPORTED_EPOCH = 0  # train.checkpoints is [0] when model.source is file
_STEM_BY_KERNEL = {7: "imagenet", 3: "cifar"}
_CONV1 = {"imagenet": "7×7", "cifar": "3×3"}
_BATCH_COUNTER = ".num_batches_tracked"


@dataclass(frozen=True)
class ResNetLayout:
    arch: str
    stem: str
    in_channels: int
    num_classes: int


def import_checkpoint(
    path: str | os.PathLike[str],
    mean: list[float],
    std: list[float],
    arch: str | None = None,
    stem: str | None = None,
    expect_classes: int | None = None,
    expect_channels: int | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fragile checkpoint dict (models.write_checkpoint's input) of the weights in `path`.

    `arch` and `stem` (model.arch, model.stem), when given, must be what the weights are;
    `expect_classes` and `expect_channels` are the prepared data's. `meta` adds fields
    (dataset, params) as the train stage records them.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    layout = infer_layout(state_dict, path)
    if stem is not None and stem != layout.stem:
        raise FragileError(f"model.file {path} has the {layout.stem} stem (a {_CONV1[layout.stem]} conv1) but "
                           f"model.stem is {stem}; set model.stem: {layout.stem}")
    if arch is not None and arch != layout.arch:
        if not _mismatch(state_dict, layout):
            raise FragileError(f"model.file {path} holds a {layout.arch} ({_describe(layout)}) but model.arch "
                               f"is {arch}; set model.arch: {layout.arch}")
        layout = dataclasses.replace(layout, arch=arch)  # neither fits: name what differs from the asked-for one
    state_dict = _with_batch_counters(state_dict, layout)
    check_matches(state_dict, layout, path)
    for what, expected, found in (("classes", expect_classes, layout.num_classes),
                                  ("input channels", expect_channels, layout.in_channels)):
        if expected is not None and expected != found:
            raise FragileError(
                f"model.file {path} has {found} {what} but the prepared data has {expected}; "
                "import weights trained for this data (or fine-tune them elsewhere first)"
            )
    if len(mean) != layout.in_channels or len(std) != layout.in_channels:
        raise FragileError(
            f"model.file {path} takes {layout.in_channels} input channels but model.mean / model.std have "
            f"{len(mean)} / {len(std)} values; give one per channel"
        )
    models.check_finite(state_dict, f"model.file {path}")
    normalize = models.Normalize(mean, std).state_dict()
    weights = {f"normalize.{k}": v for k, v in normalize.items()}
    for key in reference_shapes(layout):  # the order a trained FragileNet's state_dict has
        value = state_dict[key]
        weights[f"net.{key}"] = value.float() if value.is_floating_point() else value
    return {
        **(meta or {}),
        "arch": layout.arch,
        "stem": layout.stem,
        "num_classes": layout.num_classes,
        "in_channels": layout.in_channels,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "epoch": IMPORTED_EPOCH,
        "imported_from": {"file": str(path), "sha256": _sha256(path)},
        "state_dict": weights,
    }


def import_weights(
    path: str | os.PathLike[str], out: str | os.PathLike[str], mean: list[float], std: list[float], **kwargs: Any
) -> dict[str, Any]:
    """Write `path`'s weights as the fragile checkpoint `out` (atomically); its metadata."""
    checkpoint = import_checkpoint(path, mean, std, **kwargs)
    models.write_checkpoint(out, checkpoint)
    return {k: v for k, v in checkpoint.items() if k != "state_dict"}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ResNet weights in `path`: a state_dict, or the one a checkpoint dict holds."""
    if path.is_dir():
        raise FragileError(f"model.file {path} is a folder; point model.file at the weights file to import")
    if not path.is_file():
        raise FragileError(f"model.file {path} not found; set model.file to the weights file to import")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse the user's file is the same answer: not loadable
        raise _unreadable(path, err) from None
    if isinstance(payload, dict) and not _is_state_dict(payload):
        held = [k for k in STATE_DICT_KEYS if isinstance(payload.get(k), dict) and _is_state_dict(payload[k])]
        if not held:
            raise FragileError(
                f"model.file {path} is neither a state_dict nor a checkpoint dict holding one under "
                f"{', '.join(STATE_DICT_KEYS)} (its keys: {', '.join(map(str, list(payload)[:6]))})"
            )
        payload = payload[held[0]]
    if not isinstance(payload, dict) or not payload:
        raise FragileError(f"model.file {path} holds a {type(payload).__name__}, not a state_dict of tensors")
    if all(str(k).startswith("module.") for k in payload):
        payload = {k[len("module."):]: v for k, v in payload.items()}
    return payload


def _unreadable(path: Path, err: Exception) -> FragileError:
    # weights_only names what it refused ("Unsupported global: GLOBAL numpy..."); anything else
    # (junk, a truncated file) is simply unreadable.
    refused = re.search(r"Unsupported (global|class)[^.\n]*", str(err)) if isinstance(err, pickle.UnpicklingError) else None
    if refused:
        return FragileError(
            f"model.file {path} was refused: it carries objects other than tensors and plain data "
            f"({refused.group(0)}); save the weights alone: torch.save(model.state_dict(), path)"
        )
    return FragileError(f"model.file {path} is not a readable torch.save file ({type(err).__name__})")


def infer_layout(state_dict: dict[str, torch.Tensor], path: Path) -> ResNetLayout:
    """Stem, input channels and class count from conv1 and fc; the architecture is the one of
    resnet18/50/101 whose keys the weights have (the closest one, for the error)."""
    for key, ndim in (("conv1.weight", 4), ("fc.weight", 2)):
        if key not in state_dict:
            raise FragileError(f"model.file {path} does not hold a torchvision ResNet: missing key '{key}'")
        if state_dict[key].ndim != ndim:
            raise FragileError(f"model.file {path}: '{key}' has shape {tuple(state_dict[key].shape)}, "
                               f"not the {ndim}-d weight of a torchvision ResNet")
    conv1 = state_dict["conv1.weight"]
    kernel = conv1.shape[-1]
    if kernel not in _STEM_BY_KERNEL or conv1.shape[-2] != kernel:
        raise FragileError(
            f"model.file {path} has a {conv1.shape[-2]}×{kernel} conv1; fragile builds the 7×7 (imagenet) "
            "and 3×3 (cifar) stems"
        )
    base = {"stem": _STEM_BY_KERNEL[kernel], "in_channels": conv1.shape[1], "num_classes": state_dict["fc.weight"].shape[0]}
    candidates = [ResNetLayout(arch=a, **base) for a in ARCHS]
    return min(candidates, key=lambda layout: len(set(reference_shapes(layout)) ^ set(state_dict)))


def check_matches(state_dict: dict[str, torch.Tensor], layout: ResNetLayout, path: Path) -> None:
    """One line naming the first missing or unexpected key, or the first shape that differs."""
    problem = _mismatch(state_dict, layout)
    if problem:
        raise FragileError(f"model.file {path} does not match a torchvision {layout.arch} ({_describe(layout)}): "
                           f"{problem}")


def _mismatch(state_dict: dict[str, torch.Tensor], layout: ResNetLayout) -> str | None:
    reference = reference_shapes(layout)
    missing = [k for k in reference if k not in state_dict and not k.endswith(_BATCH_COUNTER)]
    unexpected = [k for k in state_dict if k not in reference]
    for kind, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            return f"{kind} key '{keys[0]}'" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
    for key, shape in reference.items():
        if key in state_dict and tuple(state_dict[key].shape) != shape:
            return f"'{key}' has shape {tuple(state_dict[key].shape)}, expected {shape}"
    return None


def _with_batch_counters(state_dict: dict[str, torch.Tensor], layout: ResNetLayout) -> dict[str, torch.Tensor]:
    """Older state_dicts (torchvision's own ImageNet files among them) lack BatchNorm's
    num_batches_tracked; BatchNorm itself loads them as 0, and so does this."""
    missing = [k for k in reference_shapes(layout) if k.endswith(_BATCH_COUNTER) and k not in state_dict]
    return {**state_dict, **{k: torch.tensor(0, dtype=torch.long) for k in missing}}


@functools.lru_cache(maxsize=None)
def reference_shapes(layout: ResNetLayout) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the torchvision ResNet fragile builds for `layout`, in state_dict
    order, relative to FragileNet.net. Built on the meta device: no memory, no initialisation.
    (Cached: callers must not change the dict.)"""
    with torch.device("meta"):
        model = models.build(layout.arch, layout.num_classes, layout.in_channels,
                             [0.0] * layout.in_channels, [1.0] * layout.in_channels, layout.stem)
    return {k: tuple(v.shape) for k, v in model.net.state_dict().items()}


def _describe(layout: ResNetLayout) -> str:
    return (f"{layout.stem} stem, {layout.in_channels} input channel{'s' if layout.in_channels > 1 else ''}, "
            f"{layout.num_classes} classes")


def _is_state_dict(value: dict[Any, Any]) -> bool:
    return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
