"""The benchmarked paths give identical results (the timings themselves are not tested)."""

from __future__ import annotations

import sys

import pytest
import torch
import torchattacks

from benchmarks.memory import run_measured, stage_commands
from benchmarks.sweep import identical_examples, torchattacks_curve
from benchmarks.timing import Ratio, interleaved
from fragile.attacks import gradient_sign, perturb
from fragile.sweep import fgsm_sweep

EPSILONS = [0.0, 0.01, 0.05, 0.1, 0.3]


def test_torchattacks_fgsm_equals_our_perturbation_at_every_epsilon(tiny_model, tiny_split):
    images, labels = next(tiny_split.batches(len(tiny_split)))
    sign = gradient_sign(tiny_model, images, labels)
    for eps in EPSILONS:
        theirs = torchattacks.FGSM(tiny_model, eps=eps)(images, labels)
        assert torch.equal(perturb(images, sign, eps), theirs), eps
    assert identical_examples(tiny_model, tiny_split, 16, EPSILONS) == (15, 15)


def test_the_sweep_and_the_torchattacks_curve_count_the_same(tiny_model, tiny_split):
    fragile, null = list(range(0, 64, 3)), [k for k in range(64) if k % 3]
    ours = fgsm_sweep(tiny_model, tiny_split.batches(16), EPSILONS, fragile, null, tiny_model.net.conv1)
    theirs = torchattacks_curve(tiny_model, tiny_split, 16, EPSILONS, fragile, null)
    assert (ours.clean_correct, ours.correct, ours.targeted) == (theirs.clean_correct, theirs.correct, theirs.targeted)
    accuracy_only = fgsm_sweep(tiny_model, tiny_split.batches(16), EPSILONS, fragile, null, None)
    assert accuracy_only.correct == ours.correct and accuracy_only.targeted == [0] * len(EPSILONS)


def test_interleaved_timing_and_ratios():
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2)
    assert calls == ["a", "b"] * 3  # one warm-up round, then A, B, A, B
    assert [len(v) for v in times.values()] == [2, 2]
    ratio = Ratio.of("x", [3.0, 4.0, 9.0], [1.0, 2.0, 3.0], target=2.5)
    assert ratio.values == [3.0, 2.0, 3.0] and ratio.median == 3.0
    assert ratio.verdict().endswith("met") and "not" not in ratio.verdict()


def test_stage_commands_expand_foreach(tmp_path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  a:\n    cmd: fragile a\n  b:\n    foreach: ${train.checkpoints}\n    do:\n"
        "      cmd: fragile b --n ${item}\n"
    )
    (tmp_path / "params.yaml").write_text("train:\n  checkpoints: [1, 3]\n")
    assert stage_commands(tmp_path / "dvc.yaml", tmp_path / "params.yaml") == [
        ("a", "fragile a"), ("b@1", "fragile b --n 1"), ("b@3", "fragile b --n 3")
    ]


def test_peak_rss_is_the_childs_own(tmp_path):
    small, _, _ = run_measured([sys.executable, "-c", "pass"], tmp_path)
    big, _, out = run_measured([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"], tmp_path)
    assert out.strip() == "ok"
    assert big - small > 250 * 2**20
    with pytest.raises(RuntimeError, match="failed"):
        run_measured([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)


def test_the_training_benchmark_runs_the_stage_and_the_bare_loop_on_the_same_batches(tmp_path, monkeypatch):
    import numpy as np

    from benchmarks import training
    from fragile.data import Split, write_prepared

    monkeypatch.chdir(tmp_path)  # DVCLive looks for a DVC repo from the working directory
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 1, 16, 16), dtype=np.uint8), (np.arange(n) % 4).astype(np.int64))

    write_prepared(tmp_path / "data", {"train": split(20), "val": split(8), "test": split(8)}, 4, "synthetic")
    (tmp_path / "params.yaml").write_text("train: {epochs: 2, checkpoints: [1, 2], batch_size: 8}\n")
    result = training.run(tmp_path / "data", tmp_path / "params.yaml", images=0, repeats=1)
    assert (result["images"], result["epochs"], result["checkpoints"]) == (20, 2, [1, 2])
    # 2 full batches of 8 per epoch, over 2 epochs; one timing per case and a ratio from them.
    assert result["images_per_s"]["train stage"][0] == 32 / result["times"]["train stage"][0]
    assert [len(r.values) for r in result["ratios"]] == [1, 1]


def test_other_processes_share_of_the_cpu_leaves_out_our_own_use(monkeypatch):
    from benchmarks.timing import CpuClock

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # 10 busy seconds on the machine in 5 s of wall time, 4 of them ours: 6 / (5 s × 2 cores).
    assert CpuClock(100.0, 2.0, 0.0).others_share(CpuClock(110.0, 6.0, 5.0)) == 0.6
    assert CpuClock(100.0, 2.0, 0.0).others_share(CpuClock(103.0, 6.0, 5.0)) == 0.0  # clock skew: not negative
    assert CpuClock(-1.0, 0.0, 0.0).others_share(CpuClock(-1.0, 1.0, 1.0)) is None


def test_the_cpu_clock_sees_this_process_burn_cpu():
    import time as _time

    from benchmarks.timing import CpuClock

    first = CpuClock.now()
    end = _time.process_time() + 0.3
    while _time.process_time() < end:
        pass
    later = CpuClock.now()
    assert later.ours - first.ours >= 0.29
    # The machine's busy time includes ours (to the kernel's tick of 10 ms per reading).
    assert later.machine_busy - first.machine_busy >= later.ours - first.ours - 0.05
