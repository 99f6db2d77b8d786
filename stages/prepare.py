"""prepare: load the dataset, split train/val/test with the seed, write arrays + manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from fragile.atomic import atomic_dir
from fragile.data import load_raw, make_splits, write_prepared
from fragile.errors import reports_errors
from fragile.params import load_params


@reports_errors
def main(
    out: Path = typer.Option(..., help="Folder for the prepared arrays and manifest.json."),
    params: Path = typer.Option(..., help="Params file (reads seed, data.*)."),
) -> None:
    """Prepare the dataset named by data.dataset into train/val/test arrays."""
    p = load_params(params)
    raw = load_raw(p.data)
    splits = make_splits(raw, p.data, p.seed)
    with atomic_dir(out) as tmp:
        manifest = write_prepared(tmp, splits, raw.num_classes, p.data.dataset)
    counts = ", ".join(f"{name} {entry['count']}" for name, entry in manifest["splits"].items())
    typer.echo(f"prepared {p.data.dataset}: {counts} -> {out}")


if __name__ == "__main__":
    typer.run(main)
