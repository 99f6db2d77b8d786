"""Item 5: peak resident memory of each stage of the default run, and a paper-scale check.

Each stage runs as its own process (the dvc.yaml command, foreach expanded) and its peak RSS
comes from the kernel's rusage for that process alone (`os.wait4`, see `run_measured`). The paper-scale check runs
resnet101 on CIFAR-10-shaped synthetic data (a 50,000-image train split and a 10,000-image
test split held in memory) through the train, rank, attack and evaluate library calls in a
child process (see benchmarks/paper_scale.py for what bounds its time).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


@dataclass(frozen=True)
class Peak:
    name: str
    rss_bytes: int
    seconds: float


# A process's peak RSS (ru_maxrss) starts from its parent's at fork and survives exec, so a
# child of this (large) process would report at least our own peak. A small launcher process
# in between forks the command instead and reports the rusage of that grandchild alone.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "proc = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(proc.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, float, str]:
    """(peak RSS in bytes, seconds, output) of one child process."""
    with tempfile.TemporaryDirectory(prefix="fragile-rss-") as tmp:
        report = Path(tmp) / "maxrss"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *argv], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - start
        output = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{output[-2000:]}")
        return int(report.read_text()) * 1024, seconds, output  # ru_maxrss is in KiB on Linux


def stage_commands(dvc_yaml: Path, params_yaml: Path) -> list[tuple[str, str]]:
    """(name, command) for every stage in dvc.yaml order, `foreach` expanded over its list."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load(params_yaml.read_text(encoding="utf-8"))
    commands = []
    for name, stage in stages.items():
        if "foreach" not in stage:
            commands.append((name, stage["cmd"]))
            continue
        section, _, key = stage["foreach"].strip("${}").partition(".")
        for item in params[section][key]:
            commands.append((f"{name}@{item}", stage["do"]["cmd"].replace("${item}", str(item))))
    return commands


def default_run(workdir: Path) -> list[Peak]:
    """Run the default pipeline stage by stage in `workdir` (a scratch copy of params and
    dvc.yaml; outputs land there), measuring each stage's peak RSS.

    Training is cut to one epoch with one checkpoint to bound the time: every tensor shape
    (data, model, batch) is the default's, and nothing accumulates across epochs, so each
    stage's peak is the default run's.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", workdir / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"].update(epochs=1, checkpoints=[1])
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    fragile = [sys.executable, "-m", "fragile.cli"]
    peaks = []
    for name, cmd in stage_commands(workdir / "dvc.yaml", workdir / "params.yaml"):
        argv = shlex.split(cmd)
        assert argv[0] == "fragile", cmd
        rss, seconds, _ = run_measured(fragile + argv[1:], workdir, env)
        print(f"  {name}: peak RSS {rss / 2**20:.0f} MiB, {seconds:.1f} s", flush=True)
        peaks.append(Peak(name, rss, seconds))
    return peaks


def paper_scale() -> Peak:
    """Peak RSS of the paper-scale child (`benchmarks.paper_scale`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    rss, seconds, output = run_measured([sys.executable, "-m", "benchmarks.paper_scale"], ROOT, env)
    print(output.rstrip(), flush=True)
    print(f"  paper scale: peak RSS {rss / 2**20:.0f} MiB, {seconds:.1f} s", flush=True)
    return Peak("paper scale: resnet101, CIFAR-10-shaped splits", rss, seconds)
