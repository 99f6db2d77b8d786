"""attack_target: FGSM ε-sweep on one checkpoint and Algorithm 1 (does the attack target S?),
and L∞ PGD on attack.pgd_epsilons next to it (the stronger attack, same Algorithm 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from fragile.checkpoint_run import open_checkpoint
from fragile.errors import reports_errors
from fragile.npz import write_npz
from fragile.params import load_params
from fragile.sweep import attack_checkpoint, attack_lines
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to attack (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(..., help="Prepared data folder."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    curve: Path = typer.Option(..., help="CSV per ε: epsilon, accuracy, targeting_pct (by attack.distance)."),
    summary: Path = typer.Option(..., help="JSON summary of the sweep."),
    distances: Path = typer.Option(..., help="Compressed .npz: every Algorithm 1 reading's examples × kernels "
                                   "FGSM distances per ε, and each kernel's weight norm."),
    params: Path = typer.Option(..., help="Params file (reads attack.*, seed, analysis.layer)."),
) -> None:
    """Accuracy under FGSM and the share of examples whose attack concentrates on S, per ε."""
    p = load_params(params)
    run = open_checkpoint("attack_target", model, data, p.analysis.layer, "test", p.attack.max_examples,
                          p.attack.batch_size, sets=sets)
    if run is None:  # re-run under torchrun, whose processes did the work
        return
    result, archive = attack_checkpoint(run, p.attack, p.seed)
    if not run.is_main:  # rank 0 writes the outputs
        return
    typer.echo(f"{model}: {result.examples} test examples on {run.where()}")
    write_csv(curve, pd.DataFrame(result.curve_rows()))
    result.write(summary)
    write_npz(distances, archive)
    for line in attack_lines(result):
        typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
