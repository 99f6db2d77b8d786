"""figures: the paper's Figs. 1-4 as PNGs, with the plotted data as CSV beside them.

Fig. 1 and Fig. 3 are drawn once per checkpoint, Fig. 2 and Fig. 4 once across the checkpoints.
Each folder is replaced as a whole, so a checkpoint dropped from train.checkpoints leaves no
stale image behind.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import figures
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.results import AttackResult, EvaluateResult, RankResult, read_checkpoints


@reports_errors
def main(
    rank_dir: Path = typer.Option(..., help="Folder of the rank stage's epoch_<N>.json."),
    attack_dir: Path = typer.Option(..., help="Folder of the attack_target stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(..., help="Folder of the evaluate stage's epoch_<N>.json."),
    out: Path = typer.Option(..., help="Folder for the PNG figures (dvc plots)."),
    data_out: Path = typer.Option(..., "--data-out", help="Folder for the data behind each figure (CSV)."),
    params: Path = typer.Option(..., help="Params file (reads train.checkpoints, model.arch, data.dataset)."),
) -> None:
    """Draw Figs. 1-4 from the per-checkpoint results."""
    p = load_params(params)
    epochs = p.train.checkpoints
    ranks = read_checkpoints(RankResult, rank_dir, epochs)
    attacks = read_checkpoints(AttackResult, attack_dir, epochs)
    comparisons = {e: r.comparison() for e, r in read_checkpoints(EvaluateResult, evaluate_dir, epochs).items()}
    figures.draw_all(ranks, attacks, comparisons, f"{p.model.arch}, {p.data.dataset}", out, data_out)
    always, some = figures.fragile_persistence(figures.fragile_sets(ranks))
    typer.echo(f"{len(figures.figure_names(epochs))} figures -> {out}, their data -> {data_out}; "
               f"{len(always)} kernels fragile at every checkpoint, {len(some)} at some")


if __name__ == "__main__":
    typer.run(main)
