"""attack_target: FGSM ε-sweep on one checkpoint and Algorithm 1 (does the attack target S?)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.ranking import read_sets
from fragile.sweep import fgsm_sweep
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to attack (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    curve: Path = typer.Option(..., help="CSV per ε: epsilon, accuracy, targeting_pct."),
    summary: Path = typer.Option(..., help="JSON summary of the sweep."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads attack.*, analysis.layer)."),
) -> None:
    """Accuracy under FGSM and the share of examples whose attack concentrates on S, per ε."""
    all_params = load_params(params)
    p, layer = all_params.attack, all_params.analysis.layer
    net, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    conv = models.conv_layer(net, layer)  # an unknown name fails here, before any attack
    fragile, null = read_sets(sets, layer, conv.out_channels)
    split = load_split(data, "test").head(p.max_examples)
    device = pick_device()
    to_device(net, device)
    with progress_bar(f"attack {model.name}", len(split)) as advance:
        result = fgsm_sweep(
            net, split.batches(p.batch_size), p.epsilons, fragile, null, conv,
            device=device, progress=advance,
        )
    write_csv(curve, pd.DataFrame(result.rows()))
    write_json(
        summary,
        {
            "checkpoint": str(model),
            "epoch": meta["epoch"],
            "layer": layer,
            "examples": result.examples,
            "clean_accuracy": result.clean_accuracy,
            "epsilons": result.epsilons,
            "accuracy": [result.accuracy(i) for i in range(len(result.epsilons))],
            "targeting_pct": [result.targeting_pct(i) for i in range(len(result.epsilons))],
            "device": device.type,
        },
    )
    for row in result.rows():
        typer.echo(f"ε={row['epsilon']:<6g} accuracy {row['accuracy']:.4f}  attack on S {row['targeting_pct']:.1f}%")


if __name__ == "__main__":
    typer.run(main)
