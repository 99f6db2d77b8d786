"""train: a torchvision ResNet on the prepared data, checkpoints at train.checkpoints."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.reproducibility import seed_everything
from fragile.training import train_epochs


def checkpoint_path(models_dir: Path, epoch: int) -> Path:
    return models_dir / f"epoch_{epoch}.pt"


@reports_errors
def main(
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    models_dir: Path = typer.Option(Path("models/original"), "--models", help="Folder for epoch_<N>.pt checkpoints."),
    live: Path = typer.Option(Path("dvclive/train"), help="DVCLive folder for per-epoch metrics."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads seed, model.*, train.*)."),
) -> None:
    """Train model.arch and save a checkpoint at every epoch in train.checkpoints."""
    from dvclive import Live

    p = load_params(params)
    manifest = read_manifest(data)
    train_split, val_split = load_split(data, "train"), load_split(data, "val")
    device = pick_device()
    typer.echo(f"training {p.model.arch} on {manifest['dataset']} ({len(train_split)} images) on {device}")
    seed_everything(p.seed)
    model = models.build(
        p.model.arch, manifest["num_classes"], manifest["in_channels"], manifest["mean"], manifest["std"], p.model.stem
    )
    meta = {
        "arch": p.model.arch,
        "stem": p.model.stem,
        "num_classes": manifest["num_classes"],
        "in_channels": manifest["in_channels"],
        "mean": manifest["mean"],
        "std": manifest["std"],
        "dataset": manifest["dataset"],
        "params": {"seed": p.seed, "model": p.as_dict()["model"], "train": p.as_dict()["train"]},
    }
    models_dir.mkdir(parents=True, exist_ok=True)
    with Live(dir=str(live), save_dvc_exp=False, dvcyaml=None) as logger:
        for m in train_epochs(
            model, train_split, val_split, p.train, p.seed, device, progress=progress_bar
        ):
            logger.log_metric("train/loss", m.train_loss)
            logger.log_metric("train/accuracy", m.train_accuracy)
            logger.log_metric("val/loss", m.val_loss)
            logger.log_metric("val/accuracy", m.val_accuracy)
            logger.log_metric("learning_rate", m.learning_rate)
            logger.next_step()
            typer.echo(
                f"epoch {m.epoch}/{p.train.epochs}: train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f}"
                f" | val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f}"
            )
            if m.epoch in p.train.checkpoints:
                models.save(checkpoint_path(models_dir, m.epoch), model, {**meta, "epoch": m.epoch})


if __name__ == "__main__":
    typer.run(main)
