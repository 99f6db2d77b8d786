"""CSV outputs with fixed float formatting, written atomically (byte-stable across runs)."""

from __future__ import annotations

import os

import pandas as pd

from fragile.atomic import atomic_open


def write_csv(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    with atomic_open(path) as fh:
        table.to_csv(fh, index=False, float_format="%.6g", lineterminator="\n")
