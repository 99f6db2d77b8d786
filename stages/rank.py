"""rank: nodal dropout of conv1 on one checkpoint → fragile kernels S and null kernels S'."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.ranking import rank_conv1, ranking_table
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to rank (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    kernels_csv: Path = typer.Option(..., "--kernels", help="Per-kernel CSV: kernel, accuracy, loss, set."),
    sets: Path = typer.Option(..., help="JSON with S, S', the mean line and counts."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads rank.*)."),
) -> None:
    """Drop each conv1 kernel in turn and split the kernels into fragile S and null S'."""
    p = load_params(params).rank
    net, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    split = load_split(data, p.split).head(p.max_examples)
    device = pick_device()
    to_device(net, device)
    with progress_bar(f"rank {model.name}", len(split)) as advance:
        ranking = rank_conv1(net, split.batches(p.batch_size), p.drop, device=device, progress=advance)
    ranking.check_sets()
    write_csv(kernels_csv, ranking_table(ranking))
    write_json(
        sets,
        {
            "checkpoint": str(model),
            "epoch": meta["epoch"],
            "layer": "conv1",
            "split": p.split,
            "drop": p.drop,
            "examples": ranking.examples,
            "baseline_accuracy": ranking.baseline_accuracy,
            "mean_accuracy": ranking.mean_accuracy,
            "num_fragile": len(ranking.fragile),
            "num_null": len(ranking.null),
            "fragile": ranking.fragile,
            "null": ranking.null,
            "accuracy": ranking.accuracy,
            "device": device.type,
        },
    )
    typer.echo(
        f"{model}: |S| = {len(ranking.fragile)}, |S'| = {len(ranking.null)}, mean drop accuracy "
        f"{ranking.mean_accuracy:.4f} (baseline {ranking.baseline_accuracy:.4f}, {ranking.examples} {p.split} examples)"
    )


if __name__ == "__main__":
    typer.run(main)
