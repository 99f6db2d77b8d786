"""report: report.md with the figures, the results tables and the paper's numbers beside ours."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile.atomic import write_text
from fragile.errors import reports_errors
from fragile.figures import figure_names
from fragile.params import load_params
from fragile.report import build_report, read_inputs


@reports_errors
def main(
    rank_dir: Path = typer.Option(..., help="Folder of the rank stage's epoch_<N>.json."),
    attack_dir: Path = typer.Option(..., help="Folder of the attack_target stage's epoch_<N>.json."),
    harden_dir: Path = typer.Option(..., help="Folder of the harden stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(..., help="Folder of the evaluate stage's epoch_<N>.json."),
    metrics: Path = typer.Option(..., help="The summarize stage's headline metrics."),
    training: Path = typer.Option(..., help="DVCLive's final training metrics."),
    figures_dir: Path = typer.Option(..., "--figures", help="The figures stage's PNG folder."),
    out: Path = typer.Option(..., help="The markdown report (figures linked relative to it)."),
    params: Path = typer.Option(..., help="Params file (reads data.dataset, model.arch, model.stem, "
                                "train.epochs, train.checkpoints, seed)."),
) -> None:
    """Write the results report from the results and metrics files."""
    inputs = read_inputs(load_params(params), rank_dir, attack_dir, harden_dir, evaluate_dir, metrics, training,
                         figures_dir, out)
    write_text(out, build_report(inputs))
    typer.echo(f"report -> {out} ({len(figure_names(inputs.config.checkpoints))} figures from {figures_dir})")


if __name__ == "__main__":
    typer.run(main)
