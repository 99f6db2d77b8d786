"""report: report.md with the figures, the results tables and the paper's numbers beside ours."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from fragile.atomic import write_text
from fragile.comparison import comparison_from_counts
from fragile.errors import FragileError, reports_errors
from fragile.figures import figure_names
from fragile.params import load_params
from fragile.report import ReportInputs, RunConfig, build_report
from fragile.results import read_result

RANK_KEYS = ("accuracy", "fragile", "null", "mean_accuracy", "baseline_accuracy", "examples", "split", "drop")
ATTACK_KEYS = ("epsilons", "accuracy", "targeting_pct", "clean_accuracy", "examples")
HARDEN_KEYS = ("m", "n", "beta", "lam", "tau", "sigma", "singular_values", "above_tau", "rank_kept", "alpha",
               "threshold", "norm", "noise_source", "noise_grid", "search_epsilon")
EVALUATE_KEYS = ("epsilons", "examples", "original", "hardened", "transfer")


@reports_errors
def main(
    rank_dir: Path = typer.Option(Path("results/rank"), help="Folder of the rank stage's epoch_<N>.json."),
    attack_dir: Path = typer.Option(Path("results/attack"), help="Folder of the attack_target stage's epoch_<N>.json."),
    harden_dir: Path = typer.Option(Path("results/harden"), help="Folder of the harden stage's epoch_<N>.json."),
    evaluate_dir: Path = typer.Option(Path("results/evaluate"), help="Folder of the evaluate stage's epoch_<N>.json."),
    metrics: Path = typer.Option(Path("metrics/headline.json"), help="The summarize stage's headline metrics."),
    training: Path = typer.Option(Path("dvclive/train/metrics.json"), help="DVCLive's final training metrics."),
    figures_dir: Path = typer.Option(Path("report/figures"), "--figures", help="The figures stage's PNG folder."),
    out: Path = typer.Option(Path("report/report.md"), help="The markdown report (figures linked relative to it)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (reads data.dataset, model.arch, model.stem, "
                                "train.epochs, train.checkpoints, seed, analysis.bootstrap)."),
) -> None:
    """Write the results report from the results and metrics files."""
    p = load_params(params)
    epochs = tuple(p.train.checkpoints)
    missing = [name for name in figure_names(epochs) if not (figures_dir / f"{name}.png").is_file()]
    if missing:
        raise FragileError(f"{figures_dir} lacks {missing[0]}.png; run the figures stage first (dvc repro figures)")
    headline = read_result(metrics, "summarize", ["epsilon", *(f"epoch_{e}" for e in epochs)])
    inputs = ReportInputs(
        config=RunConfig(p.data.dataset, p.model.arch, p.model.stem, p.train.epochs, epochs, p.seed),
        ranks={e: read_result(rank_dir / f"epoch_{e}.json", "rank", RANK_KEYS) for e in epochs},
        attacks={e: read_result(attack_dir / f"epoch_{e}.json", "attack_target", ATTACK_KEYS) for e in epochs},
        hardens={e: read_result(harden_dir / f"epoch_{e}.json", "harden", HARDEN_KEYS) for e in epochs},
        comparisons={e: comparison_from_counts(read_result(evaluate_dir / f"epoch_{e}.json", "evaluate",
                                                           EVALUATE_KEYS)) for e in epochs},
        headline=headline,
        training=read_result(training, "train", ["train", "val"]),
        # markdown links are relative to the report's own folder
        figures_dir=Path(os.path.relpath(figures_dir, out.parent)).as_posix(),
        bootstrap=p.analysis.bootstrap,
    )
    write_text(out, build_report(inputs))
    typer.echo(f"report -> {out} ({len(figure_names(epochs))} figures from {figures_dir})")


if __name__ == "__main__":
    typer.run(main)
