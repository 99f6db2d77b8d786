"""Hardening a conv layer (Sections 4.1–4.2): filter the null kernels, amplify the fragile ones.

K = the null kernels' weights, flattened and stacked (|S'| × C·kh·kw); K = UΣVᵀ. With the
matrix read so that m ≤ n, β = m/n and τ = λ(β)·√n·σ (Gavish–Donoho, known noise σ).
`truncate` (default) zeroes singular values below τ — Gavish & Donoho's hard threshold;
`clamp` reads the paper's Eq. 4 literally, σᵢ ← min(σᵢ, τ). K̃ = UΣ̃Vᵀ replaces the null
kernels and the fragile kernels are multiplied by α = 1 + ‖K − K̃‖ (spectral or Frobenius).
All math is float64 and device-agnostic.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from fragile.models import FragileNet, conv_layer, conv_weight_key


def gavish_donoho_lambda(beta: float) -> float:
    """λ(β) of Gavish & Donoho (2014) for a known noise level; λ(1) = 4/√3."""
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    return math.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + math.sqrt(beta**2 + 14 * beta + 1)))


def threshold_tau(shape: tuple[int, int], sigma: float) -> tuple[float, int, int, float, float]:
    """(τ, m, n, β, λ) for a matrix of `shape`, taken so that m ≤ n."""
    m, n = sorted(shape)
    beta = m / n
    lam = gavish_donoho_lambda(beta)
    return lam * math.sqrt(n) * sigma, m, n, beta, lam


def filter_singular_values(values: torch.Tensor, tau: float, mode: str) -> torch.Tensor:
    if mode == "truncate":
        return torch.where(values >= tau, values, torch.zeros_like(values))
    if mode == "clamp":
        return torch.clamp(values, max=tau)
    raise ValueError(f"unknown threshold mode {mode!r}")


def matrix_norm(matrix: torch.Tensor, norm: str) -> float:
    if norm == "spectral":
        return float(torch.linalg.matrix_norm(matrix, ord=2)) if matrix.numel() else 0.0
    if norm == "fro":
        return float(torch.linalg.matrix_norm(matrix, ord="fro"))
    raise ValueError(f"unknown norm {norm!r}")


def _numerical_rank(values: torch.Tensor, m: int, n: int) -> int:
    """Singular values above the usual round-off tolerance (as numpy.linalg.matrix_rank)."""
    if values.numel() == 0 or float(values.max()) == 0.0:
        return 0
    tol = max(m, n) * torch.finfo(values.dtype).eps * float(values.max())
    return int((values > tol).sum())


@dataclass(frozen=True)
class HardenReport:
    m: int
    n: int
    beta: float
    lam: float
    tau: float
    sigma: float
    threshold: str
    norm: str
    singular_values: list[float]
    filtered_singular_values: list[float]
    above_tau: int  # singular values ≥ τ
    rank_kept: int  # rank of K̃
    alpha: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def harden_weight(
    weight: torch.Tensor,
    fragile: Sequence[int],
    null: Sequence[int],
    sigma: float,
    threshold: str = "truncate",
    norm: str = "spectral",
) -> tuple[torch.Tensor, HardenReport]:
    """A new (K, C, kh, kw) weight with null kernels filtered and fragile kernels amplified."""
    w = weight.detach().to(torch.float64)
    null_idx = torch.as_tensor(list(null), dtype=torch.long)
    fragile_idx = torch.as_tensor(list(fragile), dtype=torch.long)
    k_null = w[null_idx].reshape(len(null_idx), -1)
    tau, m, n, beta, lam = threshold_tau(tuple(k_null.shape), sigma)
    u, s, vh = torch.linalg.svd(k_null, full_matrices=False)
    s_filtered = filter_singular_values(s, tau, threshold)
    k_tilde = (u * s_filtered) @ vh
    alpha = 1.0 + matrix_norm(k_null - k_tilde, norm)
    out = w.clone()
    out[null_idx] = k_tilde.reshape(w[null_idx].shape)
    out[fragile_idx] = alpha * w[fragile_idx]
    report = HardenReport(
        m=m,
        n=n,
        beta=beta,
        lam=lam,
        tau=tau,
        sigma=sigma,
        threshold=threshold,
        norm=norm,
        singular_values=[float(v) for v in s],
        filtered_singular_values=[float(v) for v in s_filtered],
        above_tau=int((s >= tau).sum()),
        rank_kept=_numerical_rank(s_filtered, m, n),
        alpha=alpha,
    )
    return out.to(weight.dtype), report


def harden_model(
    model: FragileNet,
    fragile: Sequence[int],
    null: Sequence[int],
    sigma: float,
    threshold: str = "truncate",
    norm: str = "spectral",
    layer: str = "conv1",
) -> tuple[FragileNet, HardenReport]:
    """A hardened deep copy of `model`; the original is left untouched."""
    hardened = copy.deepcopy(model)
    conv = conv_layer(hardened, layer)
    new_weight, report = harden_weight(conv.weight, fragile, null, sigma, threshold, norm)
    with torch.no_grad():
        conv.weight.copy_(new_weight)
    return hardened, report


def harden_checkpoint(
    checkpoint: dict[str, Any],
    layer: str,
    fragile: Sequence[int],
    null: Sequence[int],
    sigma: float,
    threshold: str = "truncate",
    norm: str = "spectral",
) -> tuple[dict[str, Any], HardenReport]:
    """A copy of a checkpoint dict (`models.read_checkpoint`) with the named conv hardened and
    the settings recorded under "hardening"; the other weights are the same tensors."""
    state = checkpoint["state_dict"]
    key = conv_weight_key(state, layer)
    new_weight, report = harden_weight(state[key], fragile, null, sigma, threshold, norm)
    hardened = {**checkpoint, "state_dict": {**state, key: new_weight},
                "hardening": {"sigma": sigma, "threshold": threshold, "norm": norm, "layer": layer}}
    return hardened, report
