"""train: a torchvision ResNet on the prepared data, checkpoints at train.checkpoints; with
model.source: file, model.file's weights imported as the one checkpoint, epoch 0, instead.

An interrupted run resumes from its last completed epoch on the next `dvc repro`, with the
weights an uninterrupted run would have (fragile.training_run, fragile.resume).
"""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import distributed
from fragile.errors import reports_errors
from fragile.import_run import import_model
from fragile.params import load_params
from fragile.training_run import train


@reports_errors
def main(
    data: Path = typer.Option(..., help="Prepared data folder."),
    models_dir: Path = typer.Option(..., "--models", help="Folder for the epoch_<N>.pt checkpoints."),
    live: Path = typer.Option(..., help="DVCLive folder for per-epoch metrics."),
    params: Path = typer.Option(..., help="Params file (reads seed, model.*, train.*)."),
    resume_dir: Path = typer.Option(..., help="Folder for the resume state (outside DVC's outputs; removed when "
                                    "training ends)."),
) -> None:
    """Train model.arch and save a checkpoint at every epoch in train.checkpoints (or import model.file)."""
    p = load_params(params)
    if p.model.source == "file":  # weights trained elsewhere: nothing to train
        import_model(data, models_dir, live, p, say=typer.echo)
        return
    if distributed.relaunch("train", p.train.nproc):  # train.nproc > 1: this command again, under torchrun
        return
    train(data, models_dir, live, resume_dir, p, say=typer.echo)


if __name__ == "__main__":
    typer.run(main)
