"""The project's DVC plot templates (.dvc/plots/) render through `dvc plots show`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CSV = """epsilon,accuracy,low,high,series
0,0.90,0.85,0.95,original
0.1,0.50,0.40,0.60,original
0,0.88,0.80,0.93,hardened
0.1,0.60,0.50,0.70,hardened
"""


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_series_band_draws_a_line_and_a_95_percent_band_per_series(tmp_path):
    _run("git", "init", "-q", cwd=tmp_path)
    _run(sys.executable, "-m", "dvc", "init", "-q", cwd=tmp_path)
    (tmp_path / ".dvc" / "plots").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".dvc" / "plots" / "series_band.json", tmp_path / ".dvc" / "plots" / "series_band.json")
    (tmp_path / "accuracy.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n  - accuracy.csv:\n      template: series_band\n      x: epsilon\n      y: accuracy\n"
        "      title: Accuracy vs eps\n      y_label: accuracy\n",
        encoding="utf-8",
    )
    shown = json.loads(_run(sys.executable, "-m", "dvc", "plots", "show", "--json", cwd=tmp_path))
    (plot,) = shown["data"]["accuracy.csv"]
    spec = plot["content"]
    assert "<DVC_METRIC" not in json.dumps(spec)  # every anchor filled
    assert spec["title"] == "Accuracy vs eps" and spec["encoding"]["x"]["field"] == "epsilon"
    assert spec["encoding"]["color"]["field"] == "series"
    band, line = spec["layer"]
    assert band["mark"]["type"] == "errorband"
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("low", "high")
    assert line["mark"]["type"] == "line" and line["encoding"]["y"]["field"] == "accuracy"
    rows = spec["data"]["values"]
    assert {(r["series"], float(r["epsilon"]), float(r["low"]), float(r["high"])) for r in rows} == {
        ("original", 0.0, 0.85, 0.95), ("original", 0.1, 0.40, 0.60),
        ("hardened", 0.0, 0.80, 0.93), ("hardened", 0.1, 0.50, 0.70)}
