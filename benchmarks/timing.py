"""Interleaved repeats (A, B, A, B, ...) so that each ratio compares runs taken under the same
machine load, and min/median/max summaries of the per-repeat ratios."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: dict[str, Callable[[], object]] | None = None
) -> dict[str, list[float]]:
    """Seconds per repeat for each case, after one untimed warm-up round (allocator, lazy
    imports, thread pools): of the cases themselves, or of cheaper stand-ins (`warmup`, e.g.
    the same call on one batch) where a full round would cost too much."""
    for fn in (warmup if warmup is not None else cases).values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class Ratio:
    """baseline time / our time per repeat: above 1 means we are faster."""

    name: str
    values: list[float]
    target: float | None = None

    @classmethod
    def of(cls, name: str, baseline: list[float], ours: list[float], target: float | None = None) -> Ratio:
        return cls(name, [b / o for b, o in zip(baseline, ours, strict=True)], target)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self) -> str:
        return f"{min(self.values):.2f}× / {self.median:.2f}× / {max(self.values):.2f}×"

    def verdict(self) -> str:
        if self.target is None:
            return "—"
        return f"≥ {self.target:g}×: " + ("met" if self.median >= self.target else "**not met**")


def seconds_cell(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def machine() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    try:
        import torchattacks

        attacks_version = torchattacks.__version__
    except ImportError:  # pragma: no cover - a dev dependency
        attacks_version = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchattacks": attacks_version,
        "numpy": numpy.__version__,
        "os": platform.platform(),
        "load": load,
    }


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds used by the whole machine and by this process with its children, so a run
    can tell how much of the machine other processes took. (The load average cannot: the
    benchmark's own threads raise it.)"""

    machine_busy: float
    ours: float
    wall: float

    @classmethod
    def now(cls) -> CpuClock:
        import resource

        own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for field in ("ru_utime", "ru_stime"))
        return cls(_machine_busy_seconds(), own, time.monotonic())

    def others_share(self, later: CpuClock) -> float | None:
        """Share of the machine's CPU capacity that other processes used between two readings
        (None where /proc/stat is not there)."""
        if self.machine_busy < 0 or later.machine_busy < 0 or later.wall <= self.wall:
            return None
        others = (later.machine_busy - self.machine_busy) - (later.ours - self.ours)
        return max(0.0, others) / ((later.wall - self.wall) * (os.cpu_count() or 1))


def _machine_busy_seconds() -> float:
    """Busy CPU seconds of all cores since boot from /proc/stat (-1 elsewhere): every state but
    idle and iowait."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return -1.0
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")
