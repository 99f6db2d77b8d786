"""Where and how dropping a kernel acts on the network (nodal dropout, Section 3.3).

Dropping kernel k zeroes its output channel after the conv's BatchNorm for the rest of the
network (`drop="activation"`, the default; see `drop_point`) or zeroes its weights so that
the channel carries only what BatchNorm adds (`drop="weight"`). The network is cut into a
part that does not depend on which kernel is dropped (`stem`, or `split_at_block`'s
prefix), computed once per batch, and the rest, run per kernel; the exact
(`ranking_exact`) and first-order (`ranking_taylor`) rankings share these cuts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fragile.errors import FragileError
from fragile.models import FragileNet

Layer = Callable[[torch.Tensor], torch.Tensor]


def stem(model: FragileNet, images: torch.Tensor) -> torch.Tensor:
    """normalise, conv1, bn1, relu, max-pool: the same whichever conv1 kernel is dropped."""
    net = model.net
    return net.maxpool(net.relu(net.bn1(net.conv1(model.normalize(images)))))


def after_stem(model: FragileNet, hidden: torch.Tensor) -> torch.Tensor:
    """The network's logits from the stem's output."""
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


def split_at_block(model: FragileNet, layer: str) -> tuple[Layer, Layer]:
    """(prefix, rest): model(x) == rest(prefix(x)), where `prefix` ends just before the residual
    block holding `layer` (just after `normalize` for the stem's conv1), so it does not depend
    on which of the layer's kernels is dropped."""
    net = model.net
    pieces: list[tuple[str, Layer]] = [
        ("", lambda x: net.maxpool(net.relu(net.bn1(net.conv1(x))))),  # the stem
        *((f"{name}.{i}.", block) for name in ("layer1", "layer2", "layer3", "layer4")
          for i, block in enumerate(getattr(net, name))),
        ("fc", lambda x: net.fc(torch.flatten(net.avgpool(x), 1))),
    ]
    start = next((i for i, (prefix, _) in enumerate(pieces) if prefix and layer.startswith(prefix)), 0)

    def run(x: torch.Tensor, part: list[tuple[str, Layer]]) -> torch.Tensor:
        for _, piece in part:
            x = piece(x)
        return x

    return (lambda x: run(model.normalize(x), pieces[:start])), (lambda x: run(x, pieces[start:]))


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


def drop_site(model: FragileNet, layer: str, drop: str) -> tuple[torch.Tensor, Layer, Layer, nn.Module | None]:
    """(fill, prefix, rest, point) of a first-order pass that sets `layer`'s kernels: the value a
    dropped channel takes, the network up to where the drop acts and after it, and for a deeper
    layer the module whose output is hooked (None for conv1, whose drop acts after the stem)."""
    if layer == "conv1":
        return (dropped_channel_value(model, drop), lambda x: stem(model, x), lambda h: after_stem(model, h), None)
    channels = model.net.get_submodule(layer).out_channels
    prefix, rest = split_at_block(model, layer)
    return torch.zeros(channels), prefix, rest, drop_point(model, layer, drop)
