"""The harden stage's work: σ from harden.noise or the noise search, then the analysed conv of
one checkpoint hardened (paper Sections 4.1–4.2) and the hardening recorded.

Only the noise search needs the whole network and the data; without a grid, hardening is
arithmetic on the checkpoint's weights, and torchvision is never imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fragile import models
from fragile.hardening import harden_checkpoint
from fragile.params import Params
from fragile.results import HardenResult, NoiseTrialRow, read_kernel_sets


@dataclass(frozen=True)
class Hardened:
    checkpoint: dict[str, Any]  # the hardened checkpoint, for models.write_checkpoint
    result: HardenResult  # results/harden/epoch_N.json


def harden(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str], sets: str | os.PathLike[str],
           p: Params) -> Hardened:
    """Harden analysis.layer of `checkpoint` with the S and S' of the rank result `sets`."""
    layer, h = p.analysis.layer, p.harden
    original = models.read_checkpoint(checkpoint)
    key = models.conv_weight_key(original["state_dict"], layer)  # an unknown name fails before any work
    fragile, null = read_kernel_sets(sets, layer, original["state_dict"][key].shape[0])
    sigma, device = h.noise, "cpu"
    grid: list[NoiseTrialRow] = []
    if h.noise_grid:
        from fragile.evaluation import search_noise_on_val  # the whole network, torchvision and the data

        sigma, grid, device = search_noise_on_val(Path(checkpoint), Path(data), fragile, null, p)
    hardened, report = harden_checkpoint(original, layer, fragile, null, sigma, h.threshold, h.norm)
    result = HardenResult(
        checkpoint=str(checkpoint), epoch=original["epoch"], layer=layer, **report.as_dict(),
        noise_source="search" if h.noise_grid else "harden.noise", noise_grid=grid,
        search_epsilon=p.epsilon if h.noise_grid else None, device=device,
    )
    return Hardened(hardened, result)


def harden_lines(result: HardenResult, out: str | os.PathLike[str]) -> list[str]:
    """The noise search's accuracies (when it ran) and the hardening in one line."""
    lines = []
    if result.noise_grid:
        lines.append("noise search: " + ", ".join(f"σ={r.sigma:g} → {r.fgsm_accuracy_val:.4f}"
                                                  for r in result.noise_grid))
    lines.append(f"{result.checkpoint}: {result.layer}: K is {result.m}×{result.n} (m ≤ n), τ = {result.tau:.4f} "
                 f"(σ = {result.sigma}), {result.above_tau}/{len(result.singular_values)} singular values ≥ τ, "
                 f"rank kept {result.rank_kept}, α = {result.alpha:.4f} -> {out}")
    return lines
