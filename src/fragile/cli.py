"""The `fragile` console script: every pipeline stage as a subcommand."""

from __future__ import annotations

import typer

from stages import attack_target, evaluate, figures, harden, prepare, rank, report, summarize, train

app = typer.Typer(
    help="fragile: fragile/null kernels, FGSM targeting (Algorithm 1) and conv1 hardening. "
    "Each command is one DVC stage; `dvc repro` runs them all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("prepare")(prepare.main)
app.command("train")(train.main)
app.command("rank")(rank.main)
app.command("attack_target")(attack_target.main)
app.command("harden")(harden.main)
app.command("evaluate")(evaluate.main)
app.command("summarize")(summarize.main)
app.command("figures")(figures.main)
app.command("report")(report.main)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
