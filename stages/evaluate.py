"""evaluate: original vs hardened on the test split, per ε in attack.epsilons (Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile.checkpoint_run import open_checkpoint
from fragile.comparison import comparison_lines, comparison_table
from fragile.errors import reports_errors
from fragile.evaluation import evaluate_checkpoint, reusable_sweep
from fragile.params import load_params
from fragile.results import AttackResult
from fragile.tables import write_csv


@reports_errors
def main(
    model: Path = typer.Option(..., help="Original checkpoint (models/original/epoch_<N>.pt)."),
    hardened: Path = typer.Option(..., help="Hardened checkpoint (models/hardened/epoch_<N>.pt)."),
    data: Path = typer.Option(..., help="Prepared data folder."),
    sets: Path = typer.Option(..., help="The rank stage's JSON with S and S'."),
    attack: Path = typer.Option(..., help="attack_target's JSON of the same checkpoint: its FGSM sweep is the "
                                "original model's when it ran on the same examples, batch size, S and ε."),
    results: Path = typer.Option(..., help="JSON with the counts and per-example outcomes per ε for original, "
                                 "hardened and transfer (FGSM), PGD, and the robustness record (labels, "
                                 "AutoAttack)."),
    curves: Path = typer.Option(..., help="CSV per ε for original, hardened and transfer (dvc plots)."),
    params: Path = typer.Option(..., help="Params file (reads epsilon, attack.*, evaluate.*, seed, analysis.layer)."),
) -> None:
    """Clean, FGSM and PGD (and AutoAttack) accuracy and Algorithm 1 for the original and hardened models, per ε."""
    p = load_params(params)
    run = open_checkpoint("evaluate", model, data, p.analysis.layer, "test", p.evaluate.max_examples,
                          p.evaluate.batch_size, sets=sets)
    if run is None:  # re-run under torchrun, whose processes did the work
        return
    reused = reusable_sweep(AttackResult.read(attack), run, p.attack.epsilons)
    result = evaluate_checkpoint(run, hardened, p, original_sweep=reused)
    if not run.is_main:  # rank 0 writes the outputs
        return
    typer.echo(f"{model}: {result.examples} test examples on {run.where()}; original FGSM sweep "
               + (f"from {attack}" if reused is not None else "run here"))
    comparison = result.comparison()
    write_csv(curves, comparison_table(comparison))
    result.write(results)
    for line in comparison_lines(comparison):
        typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
