"""The `fragile` console script: every pipeline stage as a subcommand.

A stage module is imported only when its command runs (or help is asked for), so
`fragile report` does not pay for torch and `fragile train` not for matplotlib: DVC starts
one process per stage, and imports are most of a small stage's time.
"""

from __future__ import annotations

import importlib

import click
import typer
from typer.core import TyperGroup

STAGES = ("prepare", "train", "rank", "attack_target", "harden", "evaluate", "summarize", "figures", "report",
          "aggregate", "preset")  # aggregate and preset drive experiments; they are not DVC stages


def stage_command(name: str) -> click.Command:
    module = importlib.import_module(f"stages.{name}")
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(module.main)
    command = typer.main.get_command(single)
    command.name = name
    return command


class StageGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(STAGES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return stage_command(cmd_name) if cmd_name in STAGES else None


app = typer.Typer(
    cls=StageGroup,
    help="fragile: fragile/null kernels, FGSM targeting (Algorithm 1) and conv1 hardening. "
    "Each command is one DVC stage; `dvc repro` runs them all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Without a callback, typer would treat a one-command app as that command."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
