"""harden: filter the analysed conv's null kernels (SVD, Gavish–Donoho τ) and amplify its fragile kernels."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.errors import reports_errors
from fragile.harden_run import harden, harden_lines
from fragile.params import load_params


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to harden (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(..., help="Prepared data folder (val split, for the noise search)."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    out: Path = typer.Option(..., help="Hardened checkpoint (same format as the original)."),
    report: Path = typer.Option(..., help="JSON: m, n, β, λ, τ, singular values, rank kept, α, σ, noise grid."),
    params: Path = typer.Option(..., help="Params file (reads harden.*, epsilon, analysis.layer)."),
) -> None:
    """Harden the analysed conv (analysis.layer) of one checkpoint (paper Sections 4.1–4.2)."""
    hardened = harden(model, data, sets, load_params(params))
    models.write_checkpoint(out, hardened.checkpoint)
    hardened.result.write(report)
    for line in harden_lines(hardened.result, out):
        typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
