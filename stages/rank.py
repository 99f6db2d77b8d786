"""rank: nodal dropout of the analysed conv (analysis.layer, default conv1) on one checkpoint →
fragile kernels S and null kernels S' (rank.method: ablation, taylor or hybrid; see fragile.ranking)."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile.checkpoint_run import open_checkpoint
from fragile.errors import reports_errors
from fragile.npz import write_npz
from fragile.params import load_params
from fragile.ranking import rank_checkpoint, summary_line
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Checkpoint to rank (models/original/epoch_<N>.pt)."),
    data: Path = typer.Option(..., help="Prepared data folder."),
    kernels_csv: Path = typer.Option(..., "--kernels", help="Per-kernel CSV: kernel, accuracy, loss (ablation) "
                                     "and/or score (taylor), or accuracy, exact_pairs (hybrid), set."),
    sets: Path = typer.Option(..., help="JSON with S, S', the mean line and counts."),
    outcomes: Path = typer.Option(..., help="Compressed .npz: `correct`, examples × kernels, 1 = the example is "
                                  "right with that kernel dropped (exact ranking; empty for taylor or hybrid alone)."),
    params: Path = typer.Option(..., help="Params file (reads rank.*, seed, analysis.layer, "
                                "analysis.rank_bootstrap)."),
) -> None:
    """Drop each kernel of the analysed conv in turn and split the kernels into fragile S and null S'."""
    p = load_params(params)
    run = open_checkpoint("rank", model, data, p.analysis.layer, p.rank.split, p.rank.max_examples,
                          p.rank.batch_size)
    if run is None:  # re-run under torchrun, whose processes did the work
        return
    ranked = rank_checkpoint(run, p.rank, p.analysis.rank_bootstrap, p.seed)
    if not run.is_main:  # rank 0 writes the outputs
        return
    write_csv(kernels_csv, ranked.table)
    ranked.result.write(sets)
    write_npz(outcomes, ranked.archive)
    typer.echo(summary_line(ranked.result, run.where()))


if __name__ == "__main__":
    typer.run(main)
