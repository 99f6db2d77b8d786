"""Algorithm 1 (adversarial targeting): does the attack move the fragile kernels more?

For layer f_L, d_k = ‖f_L(x)_k − f_L(x')_k‖₂ over kernel k's feature map; S_f and S_n are
the means of d over the fragile set S and the null set S'; an example "targets S" when
S_f > S_n. Pure tensor math; `capture_output` is the only bridge to a model.

The relative distance d_k / ‖f_L(x)_k‖₂ removes each kernel's scale: hardening multiplies
the fragile kernels by α > 1, which multiplies their absolute d_k by α for any attack, so
absolute distances favour S after hardening by construction; relative ones do not.

Where f_L is read (`OUTPUTS`, `analysis.output`): the paper's words are the conv's own output
("conv"). A ResNet conv has no bias and a BatchNorm follows it, so a kernel's raw scale is
arbitrary: scaling W_k by s and the BatchNorm's running mean by s and variance by s² leaves the
network unchanged but scales the conv reading's d_k by s. The output after that BatchNorm
("bn", eval statistics) and after its ReLU ("relu") are what the next layer sees, and do not
change under that rescaling. `reading_distances` gives all six readings (3 outputs × 2
distances) from the one captured conv output of the clean and the adversarial images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fragile.errors import FragileError

if TYPE_CHECKING:
    from fragile.models import FragileNet


DISTANCES = ("absolute", "relative")
OUTPUTS = ("conv", "bn", "relu")
# Every (output, distance) pair by name; the conv ones are what the sweeps have always reported.
READINGS = tuple(f"{output}_{distance}" for output in OUTPUTS for distance in DISTANCES)


def reading_name(output: str, distance: str) -> str:
    """The name of one reading, e.g. ("bn", "relative") -> "bn_relative" (a key of READINGS)."""
    if output not in OUTPUTS or distance not in DISTANCES:
        raise ValueError(f"unknown reading ({output!r}, {distance!r}); outputs {OUTPUTS}, distances {DISTANCES}")
    return f"{output}_{distance}"


def kernel_distances(clean: torch.Tensor, adversarial: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """(B, K) Euclidean distance per example and kernel between (B, K, H, W) layer outputs;
    `relative` divides by the clean map's norm (a map that is all zero counts as norm `tiny`,
    so an unmoved dead kernel has distance 0, and a map the attack wakes from all zero gets a
    huge, possibly infinite, relative distance: after a ReLU that happens)."""
    distances = (clean - adversarial).flatten(2).norm(dim=2)
    if relative:
        distances = distances / clean.flatten(2).norm(dim=2).clamp_min(torch.finfo(distances.dtype).tiny)
    return distances


def targets_fragile(
    distances: torch.Tensor, fragile: Sequence[int], null: Sequence[int]
) -> torch.Tensor:
    """(B,) bool: S_f > S_n per example (a tie is not an attack on S)."""
    s_f = distances[:, list(fragile)].mean(dim=1)
    s_n = distances[:, list(null)].mean(dim=1)
    return s_f > s_n


@contextlib.contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the layer's output (detached) on every forward pass while active."""
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        yield outputs
    finally:
        handle.remove()


def following_batchnorm(model: FragileNet, layer: str) -> nn.BatchNorm2d:
    """The BatchNorm that normalises the named conv's output: conv1 -> bn1,
    layerI.J.convK -> layerI.J.bnK, layerI.J.downsample.0 -> layerI.J.downsample.1."""
    from fragile.models import conv_layer

    conv_layer(model, layer)  # an unknown name fails here, naming the valid ones
    prefix, _, leaf = layer.rpartition(".")
    if leaf.startswith("conv"):
        bn_name = (prefix + "." if prefix else "") + "bn" + leaf[len("conv"):]
    else:
        bn_name = f"{prefix}.{int(leaf) + 1}" if leaf.isdigit() else ""
    bn = dict(model.net.named_modules()).get(bn_name)
    if not isinstance(bn, nn.BatchNorm2d):
        raise FragileError(f"no BatchNorm follows '{layer}' (analysis.layer); use analysis.output: conv for it")
    return bn


def layer_outputs(conv_output: torch.Tensor, bn: nn.BatchNorm2d) -> dict[str, torch.Tensor]:
    """{"conv": the conv's output, "bn": BatchNorm with its running (eval) statistics applied to
    it, "relu": relu of that}, whatever mode `bn` is in."""
    normalised = F.batch_norm(
        conv_output, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, momentum=0.0, eps=bn.eps
    )
    return {"conv": conv_output, "bn": normalised, "relu": torch.relu(normalised)}


class CleanReadings:
    """The clean side of every reading for one batch: the conv's output through `bn` (when
    given) and each map's norm, computed once and compared with every ε's adversarial output.
    The arithmetic (and memory layout) is that of `kernel_distances`, so the distances are
    bit-identical to computing both sides afresh for each ε."""

    def __init__(self, clean_conv: torch.Tensor, bn: nn.BatchNorm2d | None) -> None:
        self._bn = bn
        with torch.no_grad():
            self._outputs = layer_outputs(clean_conv, bn) if bn is not None else {"conv": clean_conv}
            self._norms = {output: map_.flatten(2).norm(dim=2) for output, map_ in self._outputs.items()}

    def distances(self, adversarial_conv: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, K) distances for every reading (keys in READINGS order) to the adversarial output."""
        with torch.no_grad():
            adversarial = layer_outputs(adversarial_conv, self._bn) if self._bn is not None else {"conv": adversarial_conv}
            out = {}
            for output, clean in self._outputs.items():
                absolute = (clean - adversarial[output]).flatten(2).norm(dim=2)
                out[reading_name(output, "absolute")] = absolute
                out[reading_name(output, "relative")] = absolute / self._norms[output].clamp_min(
                    torch.finfo(absolute.dtype).tiny)
            return out


def reading_distances(
    clean_conv: torch.Tensor, adversarial_conv: torch.Tensor, bn: nn.BatchNorm2d | None
) -> dict[str, torch.Tensor]:
    """(B, K) distances for every reading (keys in READINGS order) from the analysed conv's
    output on the clean and on the adversarial images. `bn=None` gives the conv readings alone.
    The conv readings are exactly `kernel_distances` of the conv outputs. A sweep over many ε
    keeps one `CleanReadings` per batch instead."""
    return CleanReadings(clean_conv, bn).distances(adversarial_conv)


def layer_readings(
    model: FragileNet, layer: str, clean_images: torch.Tensor, adversarial_images: torch.Tensor
) -> dict[str, torch.Tensor]:
    """`reading_distances` for `model`'s named conv: one eval-mode forward of the clean and one
    of the adversarial images, the conv's output captured on each."""
    from fragile.attacks import eval_mode
    from fragile.models import conv_layer

    conv, bn = conv_layer(model, layer), following_batchnorm(model, layer)
    with eval_mode(model), torch.no_grad(), capture_output(conv) as outputs:
        model(clean_images)
        model(adversarial_images)
    return reading_distances(outputs[0], outputs[1], bn)


def archive_key(reading: str, epsilon_index: int) -> str:
    """Name of one (examples × kernels) distance matrix in a checkpoint's distance archive."""
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; one of {READINGS}")
    return f"{reading}.eps{epsilon_index}"


class DistanceRecorder:
    """Each batch's (B, K) distances per reading and ε, kept in example order for a checkpoint's
    distance archive (`fragile.npz.write_npz(path, recorder.arrays())`)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {}

    def add(self, epsilon_index: int, distances: dict[str, torch.Tensor]) -> None:
        for reading, batch in distances.items():
            self._parts.setdefault(archive_key(reading, epsilon_index), []).append(
                batch.detach().to("cpu", torch.float32).numpy()
            )

    def merge(self, other: DistanceRecorder) -> DistanceRecorder:
        """This recorder's batches, then `other`'s (the next examples, another process's shard)."""
        merged = DistanceRecorder()
        for key in sorted(self._parts.keys() | other._parts.keys()):
            merged._parts[key] = [*self._parts.get(key, []), *other._parts.get(key, [])]
        return merged

    def arrays(self) -> dict[str, np.ndarray]:
        """archive_key -> (n_examples, K) float32."""
        return {key: np.concatenate(parts) for key, parts in self._parts.items()}


# --- Is a reading just the kernels' scale? -------------------------------------------------


def kernel_weight_norms(weight: torch.Tensor) -> np.ndarray:
    """(K,) Frobenius norm of each kernel of a (K, C, kh, kw) conv weight, in float64."""
    return weight.detach().double().flatten(1).norm(dim=1).cpu().numpy()


def bn_scaled_weight_norms(weight: torch.Tensor, bn: nn.BatchNorm2d) -> np.ndarray:
    """(K,) ‖W_k‖·|γ_k|/√(running_var_k + eps): the factor by which the BatchNorm output moves
    per unit of the raw kernel's output, i.e. the scale that the bn reading still carries."""
    gain = (bn.weight.detach().double().abs() / torch.sqrt(bn.running_var.detach().double() + bn.eps)).cpu().numpy()
    return kernel_weight_norms(weight) * gain


def norm_distance_spearman(weight_norms: np.ndarray, distances: np.ndarray) -> float | None:
    """Spearman correlation between each kernel's weight norm and its mean distance over the
    examples ((n_examples, K) `distances`); None when undefined (a constant side, or a mean that
    is not a number). Near 1: the reading mostly ranks kernels by their raw scale."""
    from scipy import stats

    means = np.asarray(distances, dtype=np.float64).mean(axis=0)
    norms = np.asarray(weight_norms, dtype=np.float64)
    if np.isnan(means).any() or np.ptp(norms) == 0 or len(set(means.tolist())) < 2:
        return None
    return float(stats.spearmanr(norms, means).statistic)


def set_weight_norms(weight_norms: np.ndarray, fragile: Sequence[int], null: Sequence[int]) -> tuple[float, float]:
    """(mean weight norm over S, mean over S'): S_f > S_n can come from S's kernels being larger."""
    norms = np.asarray(weight_norms, dtype=np.float64)
    return float(norms[list(fragile)].mean()), float(norms[list(null)].mean())
