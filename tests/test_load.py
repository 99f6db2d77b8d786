"""Load: rank, attack and evaluate stream over the examples, so their memory does not grow
with the size of the split (a scaled-down version of the 10,000-image CIFAR-10 check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("load_probe.py")
BATCH = 32
TOLERANCE_MIB = 4.0  # measured growth from 2 to 8 batches: under 1 MiB for each call


def _probe(examples: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(PROBE), "--examples", str(examples), "--rank-examples", str(examples // 3),
         "--batch-size", str(BATCH), "--epsilons", "0.1"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-memory reset")
def test_memory_of_rank_attack_and_evaluate_does_not_grow_with_the_examples():
    small, large = _probe(2 * BATCH), _probe(6 * BATCH)  # 2 vs 6 batches of 3x32x32 images (rank: 1 vs 2)
    for call in ("rank", "attack", "evaluate"):
        growth = large[f"{call}_mib"] - small[f"{call}_mib"]
        assert growth < TOLERANCE_MIB, f"{call}: peak {small[f'{call}_mib']:.1f} -> {large[f'{call}_mib']:.1f} MiB"
