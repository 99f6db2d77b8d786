"""Reading the stages' JSON results, with errors that name the stage to rerun."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fragile.errors import FragileError


def read_result(path: str | os.PathLike[str], stage: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object at `path`, which the `stage` stage wrote and which must hold `keys`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FragileError(f"{path} not found; run the {stage} stage first (dvc repro {stage})") from None
    except json.JSONDecodeError:
        raise FragileError(f"{path} is not valid JSON; rerun the {stage} stage (dvc repro -f {stage})") from None
    if not isinstance(data, dict):
        raise FragileError(f"{path} is not a JSON object; rerun the {stage} stage (dvc repro -f {stage})")
    missing = [key for key in keys if key not in data]
    if missing:
        raise FragileError(f"{path} lacks {', '.join(missing)}; it is older than this code: "
                           f"rerun the {stage} stage (dvc repro -f {stage})")
    return data
