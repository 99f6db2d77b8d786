"""aggregate: mean ± std over seeds of the finished experiments (a command, not a DVC stage).

    dvc exp run --queue -S seed=0,1,2 && dvc queue start -j 2
    fragile aggregate                      # markdown tables on stdout
    fragile aggregate --out seeds.csv      # and the long table as CSV
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from fragile.aggregate import METRICS_FILE, aggregate, finished_runs, markdown, parse_show
from fragile.errors import FragileError, reports_errors
from fragile.tables import write_csv


@reports_errors
def main(
    source: Path = typer.Option(None, "--from", help="A saved `dvc exp show --json` output; default: run it here."),
    out: Path = typer.Option(None, help="Also write the long table (group, metric, n, mean, std, seeds) as CSV."),
    baseline: bool = typer.Option(False, "--baseline/--no-baseline", help="Count the baseline commit as a run too."),
    metrics_file: str = typer.Option(METRICS_FILE, "--metrics-file", help="Which metrics file to aggregate."),
    match: list[str] = typer.Option([], "--match", help="Only metrics matching this shell pattern, e.g. "
                                    "'claims.*.code' (repeatable)."),
) -> None:
    """Group finished experiments by every param except seed; print mean ± std (n) per metric."""
    if source is not None:
        try:
            text, where = source.read_text(encoding="utf-8"), str(source)
        except FileNotFoundError:
            raise FragileError(f"{source} not found; save one with `dvc exp show --json > {source}`") from None
    else:
        text, where = _exp_show(), "`dvc exp show --json`"
    table = aggregate(finished_runs(parse_show(text, where), metrics_file, baseline), match)
    typer.echo(markdown(table), nl=False)
    if out is not None:
        write_csv(out, table)


def _exp_show() -> str:
    try:
        result = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FragileError("dvc is not on PATH; install it or pass --from FILE") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise FragileError(f"`dvc exp show --json` failed ({last}); run it inside the project or pass --from FILE")
    return result.stdout


if __name__ == "__main__":
    typer.run(main)
