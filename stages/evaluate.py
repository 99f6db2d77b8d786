"""evaluate: original vs hardened on the test split; headline metrics at `epsilon`, curves per ε."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split
from fragile.devices import pick_device, to_device
from fragile.errors import FragileError, reports_errors
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
    harden_report: Path = typer.Option(..., help="The harden stage's JSON (τ, α, rank kept)."),
    metrics: Path = typer.Option(..., help="Headline metrics JSON (dvc metrics)."),
    curves: Path = typer.Option(..., help="CSV per ε for original, hardened and transfer (dvc plots)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads epsilon, attack.epsilons, evaluate.*)."),
) -> None:
    """Clean and FGSM accuracy and Algorithm 1 for the original and hardened models."""
    all_params = load_params(params)
    p = all_params.evaluate
    epsilon = all_params.epsilon
    epsilons = sorted(set(all_params.attack.epsilons) | {epsilon})
    original, meta = models.load_with_meta(model)
    hard = models.load(
        hardened, expect_arch=meta["arch"], expect_classes=meta["num_classes"], expect_channels=meta["in_channels"]
    )
    fragile, null = read_sets(sets)
    try:
        harden_info = json.loads(harden_report.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise FragileError(f"{harden_report} is missing or not JSON; rerun the harden stage") from None
    split = load_split(data, "test").head(p.max_examples)
    device = pick_device()
    to_device(original, device)
    to_device(hard, device)
    with progress_bar(f"evaluate {model.name}", 3 * len(split)) as advance:
        result = compare(
            original, hard, lambda: split.batches(p.batch_size), epsilons, fragile, null, device, advance
        )
    at = epsilons.index(epsilon)
    headline = {
        "epsilon": epsilon,
        "epoch": meta["epoch"],
        "examples": result.original.examples,
        "original": {
            "clean_accuracy": result.original.clean_accuracy,
            "fgsm_accuracy": result.original.accuracy(at),
            "targeting_pct": result.original.targeting_pct(at),
        },
        "hardened": {
            "clean_accuracy": result.hardened.clean_accuracy,
            "fgsm_accuracy_whitebox": result.hardened.accuracy(at),
            "fgsm_accuracy_transfer": result.transfer.accuracy(at),
            "targeting_pct": result.hardened.targeting_pct(at),
            "targeting_pct_transfer": result.transfer.targeting_pct(at),
        },
        "kernels": {
            "fragile": len(fragile),
            "null": len(null),
            "fragile_fraction": len(fragile) / (len(fragile) + len(null)),
        },
        "harden": {
            "sigma": harden_info["sigma"],
            "tau": harden_info["tau"],
            "alpha": harden_info["alpha"],
            "rank_kept": harden_info["rank_kept"],
        },
    }
    rows = pd.DataFrame(
        {
            "epsilon": epsilons,
            "original_accuracy": [result.original.accuracy(i) for i in range(len(epsilons))],
            "hardened_whitebox_accuracy": [result.hardened.accuracy(i) for i in range(len(epsilons))],
            "hardened_transfer_accuracy": [result.transfer.accuracy(i) for i in range(len(epsilons))],
            "original_targeting_pct": [result.original.targeting_pct(i) for i in range(len(epsilons))],
            "hardened_targeting_pct": [result.hardened.targeting_pct(i) for i in range(len(epsilons))],
            "transfer_targeting_pct": [result.transfer.targeting_pct(i) for i in range(len(epsilons))],
        }
    )
    write_csv(curves, rows)
    write_json(metrics, headline)
    o, h = headline["original"], headline["hardened"]
    typer.echo(
        f"epoch {meta['epoch']} at ε={epsilon}: original clean {o['clean_accuracy']:.4f} fgsm {o['fgsm_accuracy']:.4f} "
        f"on-S {o['targeting_pct']:.1f}% | hardened clean {h['clean_accuracy']:.4f} "
        f"white-box {h['fgsm_accuracy_whitebox']:.4f} transfer {h['fgsm_accuracy_transfer']:.4f} "
        f"on-S {h['targeting_pct']:.1f}% ({device.type})"
    )


if __name__ == "__main__":
    typer.run(main)
