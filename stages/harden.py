"""harden: filter the analysed conv's null kernels (SVD, Gavish–Donoho τ) and amplify its fragile kernels."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.atomic import write_json
from fragile.errors import reports_errors
from fragile.hardening import harden_weight
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
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads harden.*, epsilon, analysis.layer)."),
) -> None:
    """Harden the analysed conv (analysis.layer) of one checkpoint (paper Sections 4.1–4.2)."""
    all_params = load_params(params)
    p, layer = all_params.harden, all_params.analysis.layer
    checkpoint = models.read_checkpoint(model)
    key = models.conv_weight_key(checkpoint["state_dict"], layer)  # an unknown name fails before any work
    weight = checkpoint["state_dict"][key]
    fragile, null = read_sets(sets, layer, weight.shape[0])
    sigma, grid_rows, device_type = p.noise, [], "cpu"
    if p.noise_grid:
        sigma, grid_rows, device_type = _search(model, data, fragile, null, all_params)
    new_weight, result = harden_weight(weight, fragile, null, sigma, p.threshold, p.norm)
    hardened = {**checkpoint, "state_dict": {**checkpoint["state_dict"], key: new_weight},
                "hardening": {"sigma": sigma, "threshold": p.threshold, "norm": p.norm, "layer": layer}}
    models.write_checkpoint(out, hardened)
    write_json(
        report,
        {
            "checkpoint": str(model),
            "epoch": checkpoint["epoch"],
            "layer": layer,
            **result.as_dict(),
            "noise_source": "search" if p.noise_grid else "harden.noise",
            "noise_grid": grid_rows,
            "search_epsilon": all_params.epsilon if p.noise_grid else None,
            "device": device_type,
        },
    )
    typer.echo(
        f"{model}: {layer}: K is {result.m}×{result.n} (m ≤ n), τ = {result.tau:.4f} (σ = {sigma}), "
        f"{result.above_tau}/{len(result.singular_values)} singular values ≥ τ, rank kept {result.rank_kept}, "
        f"α = {result.alpha:.4f} -> {out}"
    )


def _search(model: Path, data: Path, fragile: list[int], null: list[int], all_params) -> tuple[float, list[dict], str]:  # noqa: ANN001
    """The noise-level search needs the whole network; only then are torchvision and data loaded."""
    from fragile.data import load_split, read_manifest
    from fragile.devices import pick_device, to_device
    from fragile.evaluation import search_noise

    p = all_params.harden
    net = models.load(model, **models.fits_data(read_manifest(data)))
    val = load_split(data, "val").head(p.search_examples)
    device = pick_device()
    to_device(net, device)
    best, trials = search_noise(
        net, fragile, null, p.noise_grid, all_params.epsilon,
        lambda: val.batches(SEARCH_BATCH), p.threshold, p.norm, device, layer=all_params.analysis.layer,
    )
    rows = [
        {"sigma": t.sigma, "fgsm_accuracy_val": t.fgsm_accuracy, "tau": t.report.tau,
         "rank_kept": t.report.rank_kept, "alpha": t.report.alpha}
        for t in trials
    ]
    typer.echo("noise search: " + ", ".join(f"σ={r['sigma']:g} → {r['fgsm_accuracy_val']:.4f}" for r in rows))
    return best.sigma, rows, device.type


if __name__ == "__main__":
    typer.run(main)
