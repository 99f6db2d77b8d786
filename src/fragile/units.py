"""Two readings of the paper's ε, whose units the paper does not state.

Our attacks take ε in pixel units of images scaled to [0, 1]. The paper's MNIST FGSM result
(79.4 % at ε = 0.34) is implausible in pixel units for an undefended ResNet-50, but an L∞ step
of 0.34 on inputs normalised by (x − mean)/std is 0.34 × 0.3081 ≈ 0.105 in pixel units. The
report shows both readings.

With several channels, a normalised ε is a per-channel pixel radius ε·std_c (an L∞ box, not a
ball). The single pixel ε reported is ε·min(std): the largest pixel-unit L∞ ball inside that box,
so an attack at that ε stays within the paper's threat model on every channel. The per-channel
radii are kept too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PAPER_EPSILON_UNITS = "units not stated in the paper"
CHANNEL_RULE = "ε × min(std): the largest pixel L∞ ball inside the normalised one"


@dataclass(frozen=True)
class EpsilonReadings:
    """The paper's ε read as pixel units (as stated) and as normalised units (in pixels)."""

    stated: float
    if_pixels: float
    if_normalised: float  # in pixel units, by CHANNEL_RULE
    if_normalised_per_channel: tuple[float, ...]
    rule: str = CHANNEL_RULE
    note: str = PAPER_EPSILON_UNITS

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["if_normalised_per_channel"] = list(self.if_normalised_per_channel)
        return out


def normalised_to_pixels(epsilon: float, std: Sequence[float]) -> float:
    """A normalised-unit ε in pixel units, ε × min(std) (module docstring); `std` is the
    dataset's per-channel standard deviation in [0, 1] units (manifest.json "std")."""
    return min(_per_channel(epsilon, std))


def epsilon_readings(epsilon: float, std: Sequence[float]) -> EpsilonReadings:
    """The paper's `epsilon` in pixel units under both readings."""
    per_channel = _per_channel(epsilon, std)
    return EpsilonReadings(epsilon, epsilon, min(per_channel), per_channel)


def _per_channel(epsilon: float, std: Sequence[float]) -> tuple[float, ...]:
    if len(std) == 0:
        raise ValueError("std needs one value per channel")
    if any(not s > 0 for s in std):
        raise ValueError(f"every channel's std must be > 0, got {list(std)}")
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    return tuple(epsilon * s for s in std)
