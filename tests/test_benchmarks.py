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


# --- the compute floor (benchmarks/floor.py) ---------------------------------------------------


def test_counted_passes_of_an_fgsm_sweep_are_one_gradient_and_one_forward_per_nonzero_epsilon_and_the_clean(
        tiny_model, tiny_split):
    from benchmarks.floor import PassCounter

    fragile, null = list(range(0, 64, 3)), [k for k in range(64) if k % 3]
    counter = PassCounter()
    with counter.active():
        fgsm_sweep(tiny_model, tiny_split.batches(16), EPSILONS, fragile, null, tiny_model.net.conv1)
    n, forwards = len(tiny_split), 1 + sum(eps != 0 for eps in EPSILONS)  # ε = 0 reads the clean pass
    assert 0.0 in EPSILONS and forwards == len(EPSILONS)
    assert dict(counter.images) == {"input_grad": n, "forward": n * forwards}
    assert dict(counter.batches) == {("input_grad", 16): n, ("forward", 16): n * forwards}
    with counter.active():  # transfer: the gradient from another model; counts add up
        fgsm_sweep(tiny_model, tiny_split.batches(20), EPSILONS, fragile, null, None, source=tiny_model)
    assert dict(counter.images) == {"input_grad": 2 * n, "forward": 2 * n * forwards}
    assert counter.batches["forward", 8] == 8 * forwards  # 48 = 20 + 20 + 8


def test_full_pgd_counts_a_gradient_per_step_and_example_and_early_stop_no_more(tiny_model, tiny_split):
    from benchmarks.floor import PassCounter
    from fragile.pgd import pgd

    images, labels = next(tiny_split.batches(32))
    full, early = PassCounter(), PassCounter()
    with full.active():
        pgd(tiny_model, images, labels, 0.5, steps=4, generator=torch.Generator().manual_seed(0), early_stop=False)
    with early.active():
        pgd(tiny_model, images, labels, 0.5, steps=4, generator=torch.Generator().manual_seed(0))
    assert dict(full.images) == {"input_grad": 4 * 32}
    assert set(early.images) == {"input_grad"} and 32 <= early.images["input_grad"] < 4 * 32


def test_the_exact_ranking_counts_one_stem_and_a_post_stem_pass_per_kernel_and_the_baseline(tiny_model, tiny_split):
    from benchmarks.floor import PassCounter
    from fragile.ranking_exact import rank_conv1

    counter = PassCounter()
    with counter.active():
        rank_conv1(tiny_model, tiny_split.head(32).batches(16), kernels_per_pass=10)
    assert dict(counter.images) == {"stem": 32, "post_stem": 32 * (64 + 1)}
    # per batch of 16: the baseline (16), six passes of 10 kernels (160), one of 4 (64)
    assert dict(counter.batches) == {("stem", 16): 32, ("post_stem", 16): 32, ("post_stem", 160): 12 * 160,
                                     ("post_stem", 64): 2 * 64}


def test_training_counts_its_steps_and_the_validation_forwards(tiny_model, tiny_split):
    from benchmarks.floor import PassCounter
    from fragile.params import TrainParams
    from fragile.training import make_optimizer, train_one_epoch

    counter = PassCounter()
    with counter.active():
        train_one_epoch(tiny_model, tiny_split, make_optimizer(tiny_model, TrainParams()), 20, 0, 1,
                        torch.device("cpu"))
    assert dict(counter.images) == {"train": 40}  # the last partial batch (8) is dropped
    tiny_model.eval()


def test_every_timed_pass_is_one_pass_of_its_own_kind(tiny_model, tiny_split):
    """What the floor times per kind is exactly what the counter counts as that kind."""
    from benchmarks.floor import KINDS, PassCounter, pass_function
    from fragile.params import TrainParams

    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    for kind in KINDS:
        fn = pass_function(tiny_model, kind, tiny_split, 12, TrainParams())
        counter = PassCounter()
        with counter.active():
            fn()
        assert dict(counter.images) == {kind: 12}, kind
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the training step ran on a copy


def test_floor_arithmetic_and_modal_batch():
    from collections import Counter

    from benchmarks.floor import floor_seconds, modal_batch, per_image_seconds

    assert floor_seconds({"train": 10, "forward": 4}, {"train": 0.5, "forward": 0.25, "stem": 9.0}) == 6.0
    with pytest.raises(ValueError, match="stem"):
        floor_seconds({"stem": 1}, {"train": 0.5})
    batches = Counter({("forward", 250): 750, ("forward", 100): 100, ("forward", 500): 500, ("train", 32): 64})
    assert modal_batch(batches, "forward") == 250 and modal_batch(batches, "train") == 32
    calls = []
    times = per_image_seconds(lambda: calls.append(__import__("time").sleep(0.01)), 10, budget=0.0, warmup=1)
    assert len(times) == 3 and len(calls) == 4 and all(t >= 0.001 for t in times)


def test_the_quick_floor_counts_every_stage_of_the_run_by_its_formula(tmp_path, monkeypatch):
    """The stages' own commands in-process on the tiny config: the counts follow from the params."""
    from benchmarks import floor

    monkeypatch.chdir(tmp_path)
    params = floor.quick_params()
    result = floor.run(tmp_path / "run", params, walls=False, budget=0.0, say=lambda _: None, quick=True)
    counts = {s["stage"]: s["images"] for s in result["stages"]}
    n = floor.QUICK_SPLITS
    a, epochs = params["attack"], params["train"]["epochs"]
    grid = sorted({*a["pgd_epsilons"], params["epsilon"], a["sanity_epsilon"]})
    fgsm_forwards = 1 + sum(eps != 0 for eps in a["epsilons"])  # the clean pass serves ε = 0
    assert counts["train"] == {"train": epochs * (n["train"] // 32) * 32, "forward": epochs * n["val"]}
    assert counts["rank@1"] == {"stem": n["val"], "post_stem": n["val"] * (64 + 1)}
    assert counts["attack_target@1"] == {"input_grad": n["test"], "forward": n["test"] * fgsm_forwards}
    evaluate = counts["evaluate@1"]
    # two FGSM sweeps (hardened, transfer: the original's is attack_target's), then PGD on the grid
    # against both models
    assert 0 not in grid
    assert evaluate["forward"] == 2 * n["test"] * fgsm_forwards + 2 * n["test"] * (1 + len(grid))
    # PGD (early stop): each (model, ε) takes every example's first gradient, at most pgd_steps each
    pgd_gradients = evaluate["input_grad"] - 2 * n["test"]
    assert 2 * len(grid) * n["test"] <= pgd_gradients <= 2 * len(grid) * a["pgd_steps"] * n["test"]
    for stage in ("harden@1", "summarize", "figures", "report"):
        assert counts[stage] == {}, stage
    assert set(result["kinds"]) == {"train", "forward", "input_grad", "stem", "post_stem"}
    per_image = {k: t["median"] for k, t in result["kinds"].items()}
    for s in result["stages"]:
        assert s["floor_s"] == pytest.approx(sum(n_ * per_image[k] for k, n_ in s["images"].items()))
    assert "Stage processes not run" in "\n".join(floor.lines(result))


def test_stage_walls_time_each_command_as_its_own_process(tmp_path):
    from benchmarks.floor import stage_walls

    walls = stage_walls(tmp_path, [("help", ["report", "--help"]), ("help again", ["report", "--help"])],
                        say=lambda _: None)
    assert [w["stage"] for w in walls] == ["help", "help again"]
    assert all(w["wall_s"] > 0 and w["rss_bytes"] > 0 for w in walls)
    assert walls[1]["start_s"] >= walls[0]["start_s"] + walls[0]["wall_s"]


def test_repeated_stage_walls_keep_each_stages_shortest_run(tmp_path):
    from benchmarks.floor import stage_walls

    (wall,) = stage_walls(tmp_path, [("help", ["report", "--help"])], say=lambda _: None, repeats=2)
    assert len(wall["walls_s"]) == 2
    assert wall["wall_s"] == min(wall["walls_s"])


# --- PGD against torchattacks (benchmarks/pgd.py) ------------------------------------------------


class _Flat(torch.nn.Module):
    """Constant logits with a zero gradient: PGD's steps cannot move, so its result is its start."""

    def forward(self, x):
        return x.flatten(1)[:, :10] * 0


def test_the_shared_start_is_the_one_the_pipeline_draws(tiny_split):
    from benchmarks.pgd import start
    from fragile.pgd import pgd
    from fragile.sweep import batch_seed

    images, labels = next(tiny_split.batches(16))
    generator = torch.Generator().manual_seed(batch_seed(3, images))
    drawn = pgd(_Flat(), images, labels, 0.1, steps=1, generator=generator, early_stop=False)
    assert torch.equal(start(images, 0.1, 3), drawn)
    assert not torch.equal(drawn, images)


def test_ours_and_torchattacks_pgd_are_bit_identical_where_the_projection_rounds_exactly(tiny_model, tiny_split):
    """Pixels, ε and step on a 2⁻⁸ grid: every sum is exact in float32, so the two projections
    cannot round apart, and any other difference (start, step, sign, order) would show."""
    from benchmarks.pgd import ours, start, theirs
    from fragile.devices import batch_to

    images, labels = next(tiny_split.batches(16))  # 16 examples: torchattacks' mean loss scales by 2⁻⁴, exactly
    images = batch_to(torch.from_numpy(tiny_split.images[:16]).float() / 256, None)
    x0 = (start(images, 2**-3, 0) * 256).round_() / 256
    a, b = theirs(tiny_model, x0, labels, 2**-3, 4, 2**-5), ours(tiny_model, x0, labels, 2**-3, 4, 2**-5, False)
    assert torch.equal(a, b)
    assert not torch.equal(a, x0) and (a - x0).abs().max() <= 2**-3


def test_the_pgd_benchmark_compares_the_same_attack_on_the_same_examples(tiny_model, tiny_split):
    from benchmarks.pgd import lines, run

    result = run(tiny_model, tiny_split, 16, 0.1, 3, 0.0, 0, repeats=1)
    agreement = result["agreement"]
    assert (agreement.batches, agreement.examples) == (3, 48) and agreement.same_attack
    accuracy = result["robust_accuracy"]
    assert accuracy["torchattacks PGD"] == accuracy["ours, early_stop=False"]
    assert accuracy["ours, early_stop=True"] <= accuracy["ours, early_stop=False"]
    assert [r.target for r in result["ratios"]] == [1.0, None]
    assert "**the same attack**" in "\n".join(lines(result))
