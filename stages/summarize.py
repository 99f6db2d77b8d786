"""summarize: headline metrics at `epsilon` for every checkpoint, and the combined plot data.

It reads the per-ε counts that evaluate wrote; only an `epsilon` off the attack.epsilons grid
is attacked here with FGSM (see fragile.summary); evaluate runs PGD at `epsilon` for the
masking verdict, so `dvc exp run -S epsilon=...` reruns harden, evaluate and this stage.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fragile.errors import reports_errors
from fragile.layout import archive_file
from fragile.npz import read_npz
from fragile.params import load_params
from fragile.results import EvaluateResult, HardenResult, RankResult, read_checkpoints
from fragile.summary import fgsm_off_grid, summarize
from fragile.tables import write_csv


@reports_errors
def main(
    rank_dir: Path = typer.Option(..., help="Folder of the rank stage's epoch_<N>.json."),
    harden_dir: Path = typer.Option(..., help="Folder of the harden stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(..., help="Folder of the evaluate stage's epoch_<N>.json."),
    attack_dir: Path = typer.Option(..., help="Folder of the attack_target stage's epoch_<N>.npz (distances)."),
    original_models: Path = typer.Option(..., help="Folder of the original epoch_<N>.pt (used only for an off-grid ε)."),
    hardened_models: Path = typer.Option(..., help="Folder of the hardened epoch_<N>.pt (used only for an off-grid ε)."),
    data: Path = typer.Option(..., help="Prepared data folder (used only for an off-grid ε)."),
    metrics: Path = typer.Option(..., help="Headline metrics JSON (dvc metrics)."),
    plots_dir: Path = typer.Option(..., "--plots", help="Folder for the combined plot data (dvc plots)."),
    params: Path = typer.Option(..., help="Params file (reads epsilon, seed, train.checkpoints, evaluate.*, "
                                "attack.distance, analysis.*)."),
) -> None:
    """Collect the headline numbers at `epsilon` for every checkpoint."""
    p = load_params(params)
    epochs = p.train.checkpoints
    headline, plots = summarize(
        p, read_checkpoints(RankResult, rank_dir, epochs), read_checkpoints(HardenResult, harden_dir, epochs),
        read_checkpoints(EvaluateResult, evaluate_dir, epochs),
        off_grid=fgsm_off_grid(original_models, hardened_models, data, p), say=typer.echo,
        archives={epoch: read_npz(attack_dir / archive_file(epoch)) for epoch in epochs},
    )
    for name, table in plots.items():
        write_csv(plots_dir / name, table)
    headline.write(metrics)


if __name__ == "__main__":
    typer.run(main)
