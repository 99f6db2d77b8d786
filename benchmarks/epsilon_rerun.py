"""`python -m benchmarks.epsilon_rerun`: cost of `dvc exp run -S epsilon=...` as a share of a full repro.

In a throw-away clone of this project (its own DVC cache): a full `dvc repro`, then
`dvc exp run -S epsilon=<another value>` repeated on alternating values; writes
benchmarks/EPSILON_RERUN.md. Target: 15% or less of the full repro.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import load_average, machine
from fragile.atomic import write_text
from fragile.params import load_params

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path) -> tuple[float, str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="fragile bench", GIT_AUTHOR_EMAIL="bench@fragile.invalid",
               GIT_COMMITTER_NAME="fragile bench", GIT_COMMITTER_EMAIL="bench@fragile.invalid")
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def _stages(output: str) -> list[str]:
    return sorted(line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epsilon_rerun", description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="experiments timed (alternating ε values)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "EPSILON_RERUN.md")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    others = [e for e in params.attack.epsilons if e not in (0.0, params.epsilon)][:2] or [params.epsilon / 2]
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="fragile-eps-") as tmp:
        repo = Path(tmp) / "repo"
        _run(["git", "clone", "-q", str(ROOT), str(repo)], cwd=Path(tmp))
        _run(["dvc", "config", "--local", "cache.dir", str(Path(tmp) / "cache")], cwd=repo)
        full, out = _run(["dvc", "repro", "--force"], cwd=repo)
        full_stages = _stages(out)
        _run(["git", "add", "-A"], cwd=repo)
        _run(["git", "commit", "-qm", "bench baseline", "--allow-empty"], cwd=repo)
        runs = []
        for i in range(args.repeats):
            eps = others[i % len(others)]
            seconds, out = _run(["dvc", "exp", "run", "-S", f"epsilon={eps}"], cwd=repo)
            runs.append((eps, seconds, _stages(out)))
    shares = [s / full for _, s, _ in runs]
    lines = [
        "# `dvc exp run -S epsilon=...` vs a full `dvc repro`",
        "",
        "- machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()),
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}; load average before: {load_before}",
        "- command: `python -m benchmarks.epsilon_rerun` (default params.yaml, a fresh clone with its own DVC cache)",
        f"- full `dvc repro --force`: {full:.1f} s, stages run: {len(full_stages)}",
        "",
        "| ε | seconds | share of the full repro | stages run |",
        "|---|---|---|---|",
        *[f"| {eps:g} | {s:.1f} | {s / full:.1%} | {', '.join(st)} |" for eps, s, st in runs],
        "",
        f"Share min / median / max: {min(shares):.1%} / {statistics.median(shares):.1%} / {max(shares):.1%}"
        f" (target ≤ 15%).",
        "",
    ]
    write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
