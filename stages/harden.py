"""harden: filter conv1's null kernels (SVD, Gavish–Donoho τ) and amplify its fragile kernels."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.evaluation import search_noise
from fragile.hardening import harden_model
from fragile.params import load_params
from fragile.ranking import read_sets

SEARCH_BATCH = 250


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to harden (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder (val split, for the noise search)."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    out: Path = typer.Option(..., help="Hardened checkpoint (same format as the original)."),
    report: Path = typer.Option(..., help="JSON: m, n, β, λ, τ, singular values, rank kept, α, σ, noise grid."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads harden.*, epsilon)."),
) -> None:
    """Harden conv1 of one checkpoint (paper Sections 4.1–4.2)."""
    all_params = load_params(params)
    p = all_params.harden
    net, meta = models.load_with_meta(model)
    fragile, null = read_sets(sets)
    device = pick_device()
    grid_rows = []
    sigma = p.noise
    if p.noise_grid:
        val = load_split(data, "val").head(p.search_examples)
        to_device(net, device)
        best, trials = search_noise(
            net, fragile, null, p.noise_grid, all_params.epsilon,
            lambda: val.batches(SEARCH_BATCH), p.threshold, p.norm, device,
        )
        net.cpu()
        sigma = best.sigma
        grid_rows = [
            {"sigma": t.sigma, "fgsm_accuracy_val": t.fgsm_accuracy, "tau": t.report.tau,
             "rank_kept": t.report.rank_kept, "alpha": t.report.alpha}
            for t in trials
        ]
    hardened, result = harden_model(net, fragile, null, sigma, p.threshold, p.norm)
    models.save(out, hardened, {**meta, "hardening": {"sigma": sigma, "threshold": p.threshold, "norm": p.norm}})
    write_json(
        report,
        {
            "checkpoint": str(model),
            "epoch": meta["epoch"],
            "layer": "conv1",
            **result.as_dict(),
            "noise_source": "search" if p.noise_grid else "harden.noise",
            "noise_grid": grid_rows,
            "search_epsilon": all_params.epsilon if p.noise_grid else None,
            "device": device.type,
        },
    )
    typer.echo(
        f"{model}: K is {result.m}×{result.n} (m ≤ n), τ = {result.tau:.4f} (σ = {sigma}), "
        f"{result.above_tau}/{len(result.singular_values)} singular values ≥ τ, rank kept {result.rank_kept}, "
        f"α = {result.alpha:.4f} -> {out}"
    )


if __name__ == "__main__":
    typer.run(main)
