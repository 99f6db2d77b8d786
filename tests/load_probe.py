"""Peak memory of rank, attack and evaluate over a CIFAR-10-shaped test split of N images.

    python tests/load_probe.py --examples 10000      # the paper-scale check (CIFAR-10 test set)

Builds a prepared folder with N random 3x32x32 images (shapes only), then runs the library
calls the rank / attack_target / evaluate stages make, on CPU. For each call it prints, as
JSON, by how much the peak resident memory rose above the memory in use before the call
(Linux: the peak is reset through /proc/self/clear_refs). A streaming implementation rises
by the same amount whatever N is; only loading the split itself grows with N (N·3 KB).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PEAK_RESET = Path("/proc/self/clear_refs")


def peak_reset_available() -> bool:
    try:
        PEAK_RESET.write_text("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _heap_returns_large_blocks() -> None:
    """Serve every block over 128 KiB with its own mmap, unmapped when freed (glibc).

    Otherwise glibc keeps freed tensor buffers in a fragmented heap, and the resident peak
    creeps up by a few MiB over the first batches whatever the code does; with this the
    peak measures the memory really in use.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _release_free_memory() -> None:
    """Give freed heap back to the OS first, so every call starts from the same footing."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the measurement is only less tight


def measure(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, peak rise in MiB above the resident memory before the call, seconds)."""
    _release_free_memory()
    PEAK_RESET.write_text("5")  # VmHWM := VmRSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    result = call()
    return result, (_status_kb("VmHWM") - before) / 1024, time.perf_counter() - start


def run(examples: int, batch_size: int, epsilons: list[float], rank_examples: int | None = None) -> dict[str, Any]:
    import torch

    from fragile.data import Split, load_split, write_prepared
    from fragile.evaluation import compare
    from fragile.hardening import harden_model
    from fragile.models import build
    from fragile.ranking_exact import rank_conv1
    from fragile.sweep import fgsm_sweep

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    rng = np.random.default_rng(0)
    small = Split(rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), np.arange(20) % 10)
    with tempfile.TemporaryDirectory(prefix="fragile-load-") as folder:
        # Written in chunks so that the probe's own setup stays small next to the calls.
        test = np.lib.format.open_memmap(Path(folder) / "scratch.npy", "w+", np.uint8, (examples, 3, 32, 32))
        for start in range(0, examples, 1000):
            test[start : start + 1000] = rng.integers(0, 256, test[start : start + 1000].shape, dtype=np.uint8)
        write_prepared(Path(folder), {"train": small, "val": small, "test": Split(test, np.arange(examples) % 10)},
                       10, "cifar10-shaped")
        del test
        model = build("resnet18", 10, 3, [0.5] * 3, [0.25] * 3).eval()
        fragile, null = list(range(32)), list(range(32, 64))
        hardened, _ = harden_model(model, fragile, null, sigma=0.015)
        rows: dict[str, Any] = {"examples": examples, "batch_size": batch_size, "epsilons": epsilons}
        split, rows["load_mib"], rows["load_s"] = measure(lambda: load_split(Path(folder), "test"))

        def batches():  # noqa: ANN202
            return split.batches(batch_size)

        calls = {
            # Ranking costs 65 forward passes per image; rank.max_examples caps it in the pipeline.
            "rank": lambda: rank_conv1(model, split.head(rank_examples or examples).batches(batch_size),
                                       "activation", device=cpu),
            "attack": lambda: fgsm_sweep(model, batches(), epsilons, fragile, null, model.net.conv1, device=cpu),
            "evaluate": lambda: compare(model, hardened, batches, epsilons, fragile, null, cpu),
        }
        for name, call in calls.items():
            _, rows[f"{name}_mib"], rows[f"{name}_s"] = measure(call)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--rank-examples", type=int, default=None, help="Examples to rank (default: all).")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.1])
    args = parser.parse_args(argv)
    _heap_returns_large_blocks()
    if not peak_reset_available():
        sys.exit("this probe needs Linux's /proc/self/clear_refs to reset the peak memory")
    print(json.dumps(run(args.examples, args.batch_size, args.epsilons, args.rank_examples)))


if __name__ == "__main__":
    main()
