"""File names inside the folders the stages share, defined once.

Folders and per-checkpoint files are given to each stage on its command line (dvc.yaml's
`cmd`); a stage that reads or writes many files in one folder builds their names here.
dvc.yaml spells the same names for DVC's outs and deps, and tests/test_layout.py checks
that the two agree.
"""

from __future__ import annotations

CHECKPOINT = "epoch_{epoch}.pt"  # models/original/, models/hardened/ (and kept in the resume folder)
RESULT = "epoch_{epoch}.json"  # results/<stage>/ of the per-checkpoint stages
ARCHIVE = "epoch_{epoch}.npz"  # results/rank/, results/attack/: per-example matrices (fragile.npz)
RUN_INFO = "run.json"  # beside the checkpoints: the device and process count that trained them

# summarize's plot data (dvc plots), in its --plots folder
ACCURACY_PLOT = "accuracy_vs_epsilon.csv"
TARGETING_PLOT = "targeting_vs_epsilon.csv"
KERNEL_DROP_PLOT = "kernel_drop.csv"
PLOTS = (ACCURACY_PLOT, TARGETING_PLOT, KERNEL_DROP_PLOT)


def checkpoint_file(epoch: int) -> str:
    return CHECKPOINT.format(epoch=epoch)


def result_file(epoch: int) -> str:
    return RESULT.format(epoch=epoch)


def archive_file(epoch: int) -> str:
    return ARCHIVE.format(epoch=epoch)
