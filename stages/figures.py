"""figures: the paper's Figs. 1-4 as PNGs, with the plotted data as CSV beside them.

Fig. 1 and Fig. 3 are drawn once per checkpoint, Fig. 2 and Fig. 4 once across the checkpoints.
Each folder is replaced as a whole, so a checkpoint dropped from train.checkpoints leaves no
stale image behind.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from matplotlib.figure import Figure

from fragile import figures
from fragile.atomic import atomic_dir
from fragile.comparison import comparison_from_counts, comparison_table
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.results import read_result
from fragile.tables import write_csv

RANK_KEYS = ("accuracy", "fragile", "null", "mean_accuracy", "baseline_accuracy")
ATTACK_KEYS = ("epsilons", "accuracy", "targeting_pct", "clean_accuracy")
EVALUATE_KEYS = ("epsilons", "examples", "original", "hardened", "transfer")


@reports_errors
def main(
    rank_dir: Path = typer.Option(Path("results/rank"), help="Folder of the rank stage's epoch_<N>.json."),
    attack_dir: Path = typer.Option(Path("results/attack"), help="Folder of the attack_target stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(Path("results/evaluate"), help="Folder of the evaluate stage's epoch_<N>.json."),
    out: Path = typer.Option(Path("report/figures"), help="Folder for the PNG figures (dvc plots)."),
    data_out: Path = typer.Option(Path("report/data"), "--data-out", help="Folder for the data behind each figure (CSV)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads train.checkpoints, model.arch, data.dataset)."),
) -> None:
    """Draw Figs. 1-4 from the per-checkpoint results."""
    p = load_params(params)
    context = f"{p.model.arch}, {p.data.dataset}"
    epochs = list(p.train.checkpoints)
    ranks = {e: read_result(rank_dir / f"epoch_{e}.json", "rank", RANK_KEYS) for e in epochs}
    attacks = {e: read_result(attack_dir / f"epoch_{e}.json", "attack_target", ATTACK_KEYS) for e in epochs}
    comparisons = {e: comparison_from_counts(read_result(evaluate_dir / f"epoch_{e}.json", "evaluate", EVALUATE_KEYS))
                   for e in epochs}
    with atomic_dir(out) as png_dir, atomic_dir(data_out) as csv_dir:
        def draw(name: str, figure: Figure, table: pd.DataFrame) -> None:
            figures.save_png(figure, png_dir / f"{name}.png")
            write_csv(csv_dir / f"{name}.csv", table)

        for epoch in epochs:
            draw(figures.fig1_name(epoch), figures.kernel_drop_figure(ranks[epoch], epoch, context),
                 figures.kernel_drop_table(ranks[epoch]))
            draw(figures.fig3_name(epoch), figures.hardening_figure(comparisons[epoch], epoch, context,
                                                                    figures.layer_name(ranks[epoch])),
                 comparison_table(comparisons[epoch]))
        draw(figures.FIG2, figures.attack_figure(attacks, context), figures.attack_table(attacks))
        draw(figures.FIG4, figures.persistence_figure(ranks, context), figures.persistence_table(ranks))
    always, some = figures.fragile_persistence(ranks)
    typer.echo(f"{len(figures.figure_names(epochs))} figures -> {out}, their data -> {data_out}; "
               f"{len(always)} kernels fragile at every checkpoint, {len(some)} at some")


if __name__ == "__main__":
    typer.run(main)
