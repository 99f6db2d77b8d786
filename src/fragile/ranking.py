"""Reading the kernel sets S and S' of a rank stage result."""

from __future__ import annotations

import os

from fragile.errors import FragileError


def read_sets(path: "str | os.PathLike[str]", layer: str | None = None,
              kernels: int | None = None) -> tuple[list[int], list[int]]:
    """(S, S') from a rank stage's JSON; with `layer` and `kernels`, they must split exactly the
    kernels 0..kernels-1 of that layer (a rank result of another layer or model is refused)."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fragile, null = [int(k) for k in data["fragile"]], [int(k) for k in data["null"]]
    except FileNotFoundError:
        raise FragileError(f"{path} not found; run the rank stage first (dvc repro rank)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise FragileError(f"{path} is not a rank stage output (needs 'fragile' and 'null' lists); rerun rank") from None
    if not fragile or not null or set(fragile) & set(null):
        raise FragileError(f"{path} must hold two non-empty, disjoint kernel sets; rerun rank")
    ranked = data.get("layer", "conv1")
    if layer is not None and (ranked != layer or sorted(fragile + null) != list(range(kernels or 0))):
        raise FragileError(f"{path} ranks {len(fragile + null)} kernels of {ranked}, but analysis.layer is {layer} "
                           f"with {kernels} kernels; rerun rank (dvc repro rank)")
    return fragile, null
