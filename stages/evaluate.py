"""evaluate: original vs hardened on the test split, per ε in attack.epsilons (Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import distributed, models
from fragile.atomic import write_json
from fragile.comparison import comparison_counts, comparison_table, pgd_table
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.evaluation import PgdSettings, compare
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.ranking import read_sets
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Original checkpoint (models/original/epoch_<N>.pt)."),
    hardened: Path = typer.Option(..., help="Hardened checkpoint (models/hardened/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    results: Path = typer.Option(..., help="JSON with the counts and per-example outcomes per ε for original, "
                                 "hardened and transfer (FGSM) and PGD."),
    curves: Path = typer.Option(..., help="CSV per ε for original, hardened and transfer (dvc plots)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads attack.*, evaluate.*, seed, analysis.layer)."),
) -> None:
    """Clean, FGSM and PGD accuracy and Algorithm 1 for the original and hardened models, per ε."""
    all_params = load_params(params)
    if distributed.relaunch("evaluate"):  # FRAGILE_NPROC > 1: this command again, under torchrun
        return
    p, a = all_params.evaluate, all_params.attack
    epsilons = list(a.epsilons)
    pgd = PgdSettings(list(a.pgd_epsilons), a.pgd_steps, a.pgd_step_size, all_params.seed)
    original, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    hard = models.load(
        hardened, expect_arch=meta["arch"], expect_classes=meta["num_classes"], expect_channels=meta["in_channels"]
    )
    layer = all_params.analysis.layer
    conv = models.conv_layer(original, layer)  # an unknown name fails here, before any attack
    fragile, null = read_sets(sets, layer, conv.out_channels)
    split = load_split(data, "test").head(p.max_examples)
    device, ctx = distributed.start(pick_device())
    to_device(original, device)
    to_device(hard, device)
    part = distributed.shard(split, p.batch_size, ctx)  # this process's batches (all of them alone)
    sweeps = 3 + (2 if pgd.epsilons else 0)
    with progress_bar(f"evaluate {model.name}", sweeps * len(part)) as advance:
        result = distributed.combine(part, lambda: compare(
            original, hard, lambda: part.batches(p.batch_size), epsilons, fragile, null, device, advance, pgd=pgd,
            layer=layer,
        ))
    if not ctx.is_main:  # rank 0 writes the outputs
        return
    typer.echo(f"{model}: {result.original.examples} test examples on {distributed.describe(device, ctx)}")
    write_csv(curves, comparison_table(result))
    write_json(results, {"checkpoint": str(model), "epoch": meta["epoch"], "layer": layer, **comparison_counts(result),
                         "device": device.type})
    for row in comparison_table(result).itertuples():
        typer.echo(
            f"ε={row.epsilon:<6g} accuracy original {row.original_accuracy:.4f} hardened {row.hardened_whitebox_accuracy:.4f}"
            f" transfer {row.hardened_transfer_accuracy:.4f} | on S original {row.original_targeting_pct:.1f}%"
            f" hardened {row.hardened_targeting_pct:.1f}%"
        )
    for row in pgd_table(result).itertuples():
        typer.echo(f"PGD ε={row.epsilon:<6g} accuracy original {row.original_pgd_accuracy:.4f}"
                   f" hardened {row.hardened_pgd_accuracy:.4f}")


if __name__ == "__main__":
    typer.run(main)
