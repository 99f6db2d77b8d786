"""rank: nodal dropout of the analysed conv (analysis.layer, default conv1) on one checkpoint → fragile kernels S and null kernels S'.

rank.method: ablation (exact; per-kernel `accuracy` and `loss`) or taylor (first-order
estimate; per-kernel `score`, and `accuracy`/`mean_accuracy` are null unless rank.compare
also ran the exact ranking). rank.compare: true computes both methods and records their
Spearman correlation and S/S' agreement under `comparison`; S and S' come from rank.method.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fragile import distributed, models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.errors import reports_errors
from fragile.params import load_params
from fragile.progress import progress_bar
from fragile.kernel_sets import compare_rankings, ranking_table, taylor_table
from fragile.ranking_exact import rank_layer
from fragile.ranking_taylor import rank_taylor
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to rank (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(Path("data/prepared"), help="Prepared data folder."),
    kernels_csv: Path = typer.Option(..., "--kernels", help="Per-kernel CSV: kernel, accuracy, loss (ablation) and/or score (taylor), set."),
    sets: Path = typer.Option(..., help="JSON with S, S', the mean line and counts."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads rank.*, analysis.layer)."),
) -> None:
    """Drop each kernel of the analysed conv in turn and split the kernels into fragile S and null S'."""
    all_params = load_params(params)
    p, layer = all_params.rank, all_params.analysis.layer
    if distributed.relaunch("rank"):  # FRAGILE_NPROC > 1: this command again, under torchrun
        return
    net, meta = models.load_with_meta(model, **models.fits_data(read_manifest(data)))
    models.conv_layer(net, layer)  # an unknown name fails here, before any ranking
    split = load_split(data, p.split).head(p.max_examples)
    device, ctx = distributed.start(pick_device())
    to_device(net, device)
    part = distributed.shard(split, p.batch_size, ctx)  # this process's batches (all of them alone)
    batches = lambda: part.batches(p.batch_size)  # noqa: E731 - a fresh iterator per method
    exact = taylor = None
    if p.method == "ablation" or p.compare:
        with progress_bar(f"rank {model.name} (ablation)", len(part)) as advance:
            exact = distributed.combine(
                part, lambda: rank_layer(net, layer, batches(), p.drop, device=device, progress=advance))
    if p.method == "taylor" or p.compare:
        with progress_bar(f"rank {model.name} (taylor)", len(part)) as advance:
            taylor = distributed.combine(
                part, lambda: rank_taylor(net, batches(), p.drop, device=device, progress=advance, layer=layer))
    chosen = exact if p.method == "ablation" else taylor
    assert chosen is not None
    chosen.check_sets()
    if not ctx.is_main:  # rank 0 writes the outputs
        return
    if exact is not None and p.method == "ablation":  # the table's sets come from the method in use
        table = ranking_table(exact)
        if taylor is not None:
            table.insert(3, "score", taylor.score)
    else:
        assert taylor is not None
        table = taylor_table(taylor, exact)
    write_csv(kernels_csv, table)
    summary = {
        "checkpoint": str(model),
        "epoch": meta["epoch"],
        "layer": layer,
        "split": p.split,
        "drop": p.drop,
        "method": p.method,
        "examples": chosen.examples,
        "baseline_accuracy": exact.baseline_accuracy if exact else None,
        "mean_accuracy": exact.mean_accuracy if exact else None,
        "num_fragile": len(chosen.fragile),
        "num_null": len(chosen.null),
        "fragile": chosen.fragile,
        "null": chosen.null,
        "accuracy": exact.accuracy if exact else None,
        "device": device.type,
    }
    if taylor is not None:
        summary.update(score=taylor.score, mean_score=taylor.mean_score, baseline_loss=taylor.baseline_loss)
    if exact is not None and taylor is not None:
        summary["comparison"] = compare_rankings(taylor, exact)
    write_json(sets, summary)
    line = f"{model}: {layer}, {p.method}: |S| = {len(chosen.fragile)}, |S'| = {len(chosen.null)}"
    if exact is not None:
        line += f", mean drop accuracy {exact.mean_accuracy:.4f} (baseline {exact.baseline_accuracy:.4f})"
    if "comparison" in summary:
        c = summary["comparison"]
        line += f", taylor vs exact: Spearman {c['spearman']:.3f}, same set {c['set_agreement']:.0%}"
    typer.echo(line + f", {chosen.examples} {p.split} examples on {distributed.describe(device, ctx)}")


if __name__ == "__main__":
    typer.run(main)
