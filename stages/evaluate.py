"""evaluate: original vs hardened on the test split, per ε in attack.epsilons (Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.comparison import comparison_counts, comparison_table
from fragile.evaluation import compare
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
    results: Path = typer.Option(..., help="JSON with the counts per ε for original, hardened and transfer."),
    curves: Path = typer.Option(..., help="CSV per ε for original, hardened and transfer (dvc plots)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads attack.epsilons, evaluate.*, analysis.layer)."),
) -> None:
    """Clean and FGSM accuracy and Algorithm 1 for the original and hardened models, per ε."""
    all_params = load_params(params)
    p = all_params.evaluate
    epsilons = list(all_params.attack.epsilons)
    original, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    hard = models.load(
        hardened, expect_arch=meta["arch"], expect_classes=meta["num_classes"], expect_channels=meta["in_channels"]
    )
    layer = all_params.analysis.layer
    conv = models.conv_layer(original, layer)  # an unknown name fails here, before any attack
    fragile, null = read_sets(sets, layer, conv.out_channels)
    split = load_split(data, "test").head(p.max_examples)
    device = pick_device()
    to_device(original, device)
    to_device(hard, device)
    with progress_bar(f"evaluate {model.name}", 3 * len(split)) as advance:
        result = compare(original, hard, lambda: split.batches(p.batch_size), epsilons, fragile, null, device, advance,
                         layer=layer)
    write_csv(curves, comparison_table(result))
    write_json(results, {"checkpoint": str(model), "epoch": meta["epoch"], "layer": layer, **comparison_counts(result),
                         "device": device.type})
    for row in comparison_table(result).itertuples():
        typer.echo(
            f"ε={row.epsilon:<6g} accuracy original {row.original_accuracy:.4f} hardened {row.hardened_whitebox_accuracy:.4f}"
            f" transfer {row.hardened_transfer_accuracy:.4f} | on S original {row.original_targeting_pct:.1f}%"
            f" hardened {row.hardened_targeting_pct:.1f}%"
        )


if __name__ == "__main__":
    typer.run(main)
