"""attack_target: FGSM ε-sweep on one checkpoint and Algorithm 1 (does the attack target S?),
and L∞ PGD on attack.pgd_epsilons next to it (the stronger attack, same Algorithm 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from fragile import distributed, models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.ranking import read_sets
from fragile.sweep import fgsm_sweep, pgd_sweep
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to attack (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    curve: Path = typer.Option(..., help="CSV per ε: epsilon, accuracy, targeting_pct (by attack.distance)."),
    summary: Path = typer.Option(..., help="JSON summary of the sweep."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads attack.*, seed, analysis.layer)."),
) -> None:
    """Accuracy under FGSM and the share of examples whose attack concentrates on S, per ε."""
    all_params = load_params(params)
    p, layer = all_params.attack, all_params.analysis.layer
    if distributed.relaunch("attack_target"):  # FRAGILE_NPROC > 1: this command again, under torchrun
        return
    net, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    conv = models.conv_layer(net, layer)  # an unknown name fails here, before any attack
    fragile, null = read_sets(sets, layer, conv.out_channels)
    split = load_split(data, "test").head(p.max_examples)
    device, ctx = distributed.start(pick_device())
    to_device(net, device)
    part = distributed.shard(split, p.batch_size, ctx)  # this process's batches (all of them alone)
    with progress_bar(f"attack {model.name}", len(part)) as advance:
        result = distributed.combine(part, lambda: fgsm_sweep(
            net, part.batches(p.batch_size), p.epsilons, fragile, null, conv,
            device=device, progress=advance,
        ))
    pgd = None
    if p.pgd_epsilons:
        with progress_bar(f"attack {model.name} (PGD)", len(part)) as advance:
            pgd = distributed.combine(part, lambda: pgd_sweep(
                net, part.batches(p.batch_size), p.pgd_epsilons, fragile, null, conv, p.pgd_steps, p.pgd_step_size,
                all_params.seed, device=device, progress=advance,
            ))
    if not ctx.is_main:  # rank 0 writes the outputs
        return
    typer.echo(f"{model}: {result.examples} test examples on {distributed.describe(device, ctx)}")
    write_csv(curve, pd.DataFrame(result.rows(p.distance)))
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
            "distance": p.distance,  # which d_k targeting_pct uses; both are recorded below
            "targeting_pct": [result.targeting_pct(i, p.distance) for i in range(len(result.epsilons))],
            "targeting_pct_absolute": [result.targeting_pct(i) for i in range(len(result.epsilons))],
            "targeting_pct_relative": [result.targeting_pct(i, "relative") for i in range(len(result.epsilons))],
            "device": device.type,
            "per_example": result.per_example,  # '0'/'1' outcome strings for the report's bootstrap
            "pgd": None if pgd is None else {
                "epsilons": pgd.epsilons,
                "steps": p.pgd_steps,
                "step_size": p.pgd_step_size,
                "accuracy": [pgd.accuracy(i) for i in range(len(pgd.epsilons))],
                "targeting_pct": [pgd.targeting_pct(i, p.distance) for i in range(len(pgd.epsilons))],
                "targeting_pct_absolute": [pgd.targeting_pct(i) for i in range(len(pgd.epsilons))],
                "targeting_pct_relative": [pgd.targeting_pct(i, "relative") for i in range(len(pgd.epsilons))],
                "per_example": pgd.per_example,
            },
        },
    )
    for row in result.rows(p.distance):
        typer.echo(f"ε={row['epsilon']:<6g} accuracy {row['accuracy']:.4f}  attack on S {row['targeting_pct']:.1f}%"
                   f" ({p.distance} distances)")
    for row in pgd.rows(p.distance) if pgd is not None else []:
        typer.echo(f"PGD ε={row['epsilon']:<6g} accuracy {row['accuracy']:.4f}  attack on S {row['targeting_pct']:.1f}%"
                   f" ({p.pgd_steps} steps, {p.distance} distances)")


if __name__ == "__main__":
    typer.run(main)
