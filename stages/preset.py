"""preset: run (or queue) the DVC experiment of a named preset in presets/ (a command, not a DVC stage).

    fragile preset --list                        # the presets and what each runs
    fragile preset cpu-mnist5k-resnet50          # dvc exp run -n cpu-mnist5k-resnet50 -S ... -S ...
    fragile preset --queue 'paper-*'             # queue the paper's whole grid, then `dvc queue start`
    fragile preset --dry-run paper-mnist-resnet50
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import typer

from fragile.errors import FragileError, reports_errors
from fragile.presets import PRESETS_DIR, available, check, select


@reports_errors
def main(
    names: list[str] = typer.Argument(None, help="Preset names or shell patterns ('paper-*')."),
    queue: bool = typer.Option(False, "--queue", help="Queue the experiments (`dvc exp run --queue`); "
                               "needed for several presets. Start them with `dvc queue start`."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the dvc commands; run nothing."),
    list_: bool = typer.Option(False, "--list", help="List the presets (those matching NAMES) and exit."),
    folder: Path = typer.Option(PRESETS_DIR, "--dir", help="The presets folder."),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="The params the overrides apply to."),
) -> None:
    """Run a preset's params overrides as one named DVC experiment (validated first)."""
    if list_:
        presets = select(names, folder) if names else available(folder)
        width = max((len(p.name) for p in presets), default=0)
        for preset in presets:
            typer.echo(f"{preset.name:<{width}}  {preset.description}")
        return
    if not names:
        raise FragileError("name a preset (fragile preset --list shows them)")
    presets = select(names, folder)
    if len(presets) > 1 and not queue:
        raise FragileError(f"{len(presets)} presets match; add --queue to queue them all (one workspace runs "
                           "one experiment at a time), then `dvc queue start`")
    for preset in presets:  # every preset is checked before the first command runs
        check(preset, params)
    commands = [preset.dvc_command(queue) for preset in presets]
    for command in commands:
        typer.echo(shlex.join(command))
        if dry_run:
            continue
        try:
            code = subprocess.run(command, check=False).returncode
        except FileNotFoundError:
            raise FragileError("dvc is not on PATH; install the project (make install) or activate its venv") from None
        if code != 0:
            raise typer.Exit(code)


if __name__ == "__main__":
    typer.run(main)
