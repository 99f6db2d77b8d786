"""summarize: headline metrics at `epsilon` for every checkpoint, and the combined plot data.

It reads the per-ε counts that evaluate wrote; only an `epsilon` that is not on the
attack.epsilons grid is computed here (three FGSM attacks at that single ε). So
`dvc exp run -S epsilon=...` reruns this stage (and harden) instead of the sweeps. PGD is
not computed here: it costs `attack.pgd_steps` gradients per example, so it runs once, in
evaluate, on attack.pgd_epsilons, and the headline carries PGD (and the gradient-masking
verdict) when `epsilon` is on that grid.
Confidence intervals are a seeded bootstrap over evaluate's per-example outcomes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from fragile.atomic import write_json
from fragile.comparison import Comparison, comparison_from_counts
from fragile.errors import FragileError, reports_errors
from fragile.params import Params, load_params
from fragile.results import read_result as _read
from fragile.summary import accuracy_series, headline, kernel_drop_series, kernel_stability, targeting_series
from fragile.tables import write_csv


def _at_epsilon(epoch: int, models_dir: Path, data: Path, sets: dict[str, Any], p: Params) -> Comparison:
    """FGSM original, hardened and transfer at the single ε that attack.epsilons lacks."""
    from fragile import models
    from fragile.data import load_split
    from fragile.devices import pick_device, to_device
    from fragile.evaluation import compare

    original = models.load(models_dir / "original" / f"epoch_{epoch}.pt")
    hardened = models.load(models_dir / "hardened" / f"epoch_{epoch}.pt")
    split = load_split(data, "test").head(p.evaluate.max_examples)
    device = pick_device()
    to_device(original, device)
    to_device(hardened, device)
    return compare(original, hardened, lambda: split.batches(p.evaluate.batch_size), [p.epsilon],
                   sets["fragile"], sets["null"], device, layer=p.analysis.layer)


def _fill_in_epsilon(comparison: Comparison, epoch: int, models_dir: Path, data: Path, sets: dict[str, Any],
                     p: Params) -> Comparison:
    """`comparison`, with FGSM at `epsilon` computed now when evaluate's grid lacks it."""
    if comparison.pgd_original is not None and p.epsilon not in comparison.pgd_original.epsilons:
        typer.echo(f"epoch {epoch}: ε={p.epsilon} is not in attack.pgd_epsilons, so the headline has no PGD "
                   "at it; add it there to check for gradient masking at this ε")
    if p.epsilon in comparison.original.epsilons:
        return comparison
    typer.echo(f"epoch {epoch}: ε={p.epsilon} is not in attack.epsilons; attacking at it now")
    extra = _at_epsilon(epoch, models_dir, data, sets, p)
    return dataclasses.replace(comparison, original=extra.original, hardened=extra.hardened, transfer=extra.transfer)


@reports_errors
def main(
    rank_dir: Path = typer.Option(Path("results/rank"), help="Folder of the rank stage's epoch_<N>.json."),
    harden_dir: Path = typer.Option(Path("results/harden"), help="Folder of the harden stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(Path("results/evaluate"), help="Folder of the evaluate stage's epoch_<N>.json."),
    models_dir: Path = typer.Option(Path("models"), "--models", help="Folder with original/ and hardened/ checkpoints."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder (used only for an off-grid ε)."),
    metrics: Path = typer.Option(Path("metrics/headline.json"), help="Headline metrics JSON (dvc metrics)."),
    plots_dir: Path = typer.Option(Path("plots"), "--plots", help="Folder for the combined plot data (dvc plots)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads epsilon, seed, train.checkpoints, "
                                "evaluate.*, analysis.layer, analysis.bootstrap)."),
) -> None:
    """Collect the headline numbers at `epsilon` for every checkpoint."""
    p = load_params(params)
    out: dict[str, Any] = {"epsilon": p.epsilon}
    curves: dict[int, Comparison] = {}
    all_sets: dict[int, dict[str, Any]] = {}
    for epoch in p.train.checkpoints:
        name = f"epoch_{epoch}.json"
        sets = _read(rank_dir / name, "rank")
        harden = _read(harden_dir / name, "harden")
        comparison = comparison_from_counts(_read(evaluate_dir / name, "evaluate"))
        if p.analysis.bootstrap and not comparison.original.outcomes("clean"):
            raise FragileError(f"{evaluate_dir / name} has no per-example outcomes for the bootstrap; rerun the "
                               f"evaluate stage (dvc repro -f evaluate@{epoch}) or set analysis.bootstrap: 0")
        curves[epoch], all_sets[epoch] = comparison, sets
        comparison = _fill_in_epsilon(comparison, epoch, models_dir, data, sets, p)
        block = headline(comparison, p.epsilon, sets, harden, p.analysis.bootstrap, p.seed)
        out[f"epoch_{epoch}"] = block
        o, h = block["original"], block["hardened"]
        typer.echo(
            f"epoch {epoch} at ε={p.epsilon}: original clean {o['clean_accuracy']:.4f} FGSM {o['fgsm_accuracy']:.4f}"
            f" on-S {o['targeting_pct']:.1f}% | hardened clean {h['clean_accuracy']:.4f}"
            f" white-box {h['fgsm_accuracy_whitebox']:.4f} transfer {h['fgsm_accuracy_transfer']:.4f}"
            f" on-S {h['targeting_pct']:.1f}%"
        )
        if "pgd_accuracy" in o:
            g = block["gain"]
            typer.echo(f"epoch {epoch} at ε={p.epsilon}: PGD original {o['pgd_accuracy']:.4f} hardened"
                       f" {h['pgd_accuracy_whitebox']:.4f} | gain FGSM {g['fgsm_whitebox']:+.4f}"
                       f" PGD {g['pgd_whitebox']:+.4f}{' (gradient masking signature)' if g['gradient_masking'] else ''}")
    write_csv(plots_dir / "accuracy_vs_epsilon.csv", accuracy_series(curves))
    write_csv(plots_dir / "targeting_vs_epsilon.csv", targeting_series(curves))
    write_csv(plots_dir / "kernel_drop.csv", kernel_drop_series(all_sets))
    out["layer"] = p.analysis.layer
    out["stability"] = stability = kernel_stability(all_sets)
    pairs = ", ".join(f"{k[len('jaccard_'):].replace('_', '→')}: {v:.3f}" for k, v in stability.items()
                      if k.startswith("jaccard_"))
    typer.echo(f"{p.analysis.layer}: {stability['always_fragile_count']} kernels fragile at every checkpoint"
               + (f"; Jaccard of S between consecutive checkpoints {pairs}" if pairs else ""))
    write_json(metrics, out)


if __name__ == "__main__":
    typer.run(main)
