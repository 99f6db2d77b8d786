from __future__ import annotations

import numpy as np
import pytest
import torch

from fragile.attacks import fgsm
from fragile.chance import example_targets
from fragile.comparison import READING_KIND
from fragile.data import Split
from fragile.pgd import pgd
from fragile.sweep import RecordedSweep, batch_seed, fgsm_sweep, pgd_sweep
from fragile.targeting import (
    READINGS,
    DistanceRecorder,
    archive_key,
    following_batchnorm,
    kernel_distances,
    layer_readings,
    targets_fragile,
)


def test_sweep_matches_per_epsilon_fgsm_and_algorithm_1(tiny_model, tiny_split):
    epsilons = [0.0, 0.05, 0.2]
    fragile, null = list(range(0, 64, 2)), list(range(1, 64, 2))
    result = fgsm_sweep(tiny_model, tiny_split.batches(20), epsilons, fragile, null, tiny_model.net.conv1)
    images, labels = next(tiny_split.batches(len(tiny_split)))
    conv = lambda x: tiny_model.net.conv1(tiny_model.normalize(x))  # noqa: E731
    with torch.no_grad():
        assert result.clean_correct == int((tiny_model(images).argmax(1) == labels).sum())
    for i, eps in enumerate(epsilons):
        adv = fgsm(tiny_model, images, labels, eps)
        with torch.no_grad():
            correct = int((tiny_model(adv).argmax(1) == labels).sum())
            targeted = int(targets_fragile(kernel_distances(conv(images), conv(adv)), fragile, null).sum())
        assert result.correct[i] == correct
        assert result.targeted[i] == targeted
    assert result.examples == len(tiny_split)
    assert result.targeted[0] == 0  # ε = 0 moves nothing
    assert result.accuracy(0) == result.clean_accuracy


def test_epsilon_zero_reuses_the_clean_pass_and_records_what_its_own_pass_would(tiny_model, tiny_split,
                                                                                monkeypatch):
    """At ε = 0 FGSM leaves the images as they are (same layout), so the sweep reads the clean
    pass's logits and conv outputs instead of running the model again: one forward pass fewer
    per batch, and every count and per-example reading equal to running that pass."""
    import dataclasses

    import fragile.sweep
    from benchmarks.floor import PassCounter

    fragile_set, null = list(range(0, 64, 2)), list(range(1, 64, 2))
    bn = following_batchnorm(tiny_model, "conv1")

    def sweep():
        with PassCounter().active() as counter:
            result = fgsm_sweep(tiny_model, tiny_split.batches(24), [0.0, 0.1], fragile_set, null,
                                tiny_model.net.conv1, bn=bn)
        return dataclasses.asdict(result), counter.images["forward"]

    reused, reused_passes = sweep()
    monkeypatch.setattr(fragile.sweep, "_unchanged", lambda adversarial, images: False)
    run, run_passes = sweep()
    assert reused_passes == run_passes - len(tiny_split)
    assert reused == run


def test_transfer_uses_the_source_gradient(tiny_model, tiny_split):
    other = type(tiny_model)(tiny_model.net, [0.4], [0.3])  # same weights, other normalisation
    white = fgsm_sweep(other, tiny_split.batches(48), [0.1], [0], [1], other.net.conv1)
    transfer = fgsm_sweep(other, tiny_split.batches(48), [0.1], [0], [1], other.net.conv1, source=tiny_model)
    images, labels = next(tiny_split.batches(48))
    adv = fgsm(tiny_model, images, labels, 0.1)
    with torch.no_grad():
        assert transfer.correct[0] == int((other(adv).argmax(1) == labels).sum())
    assert white.examples == transfer.examples


def test_per_example_outcomes_add_up_to_the_counts_and_relative_is_recorded(tiny_model, tiny_split):
    fragile, null = list(range(0, 64, 2)), list(range(1, 64, 2))
    result = fgsm_sweep(tiny_model, tiny_split.batches(20), [0.0, 0.1], fragile, null, tiny_model.net.conv1)
    assert len(result.outcomes("clean")) == result.examples == len(tiny_split)
    assert result.outcomes("clean").count("1") == result.clean_correct
    for kind in ("correct", "targeted", "targeted_relative"):
        for i in range(2):
            flags = result.outcomes(kind, i)
            assert len(flags) == len(tiny_split)
            assert flags.count("1") == getattr(result, kind)[i]
    assert result.targeted_relative[0] == 0  # ε = 0 moves nothing either way
    images, labels = next(tiny_split.batches(len(tiny_split)))
    conv = lambda x: tiny_model.net.conv1(tiny_model.normalize(x))  # noqa: E731
    with torch.no_grad():
        d = kernel_distances(conv(images), conv(fgsm(tiny_model, images, labels, 0.1)), relative=True)
    assert result.targeted_relative[1] == int(targets_fragile(d, fragile, null).sum())


def test_pgd_sweep_matches_pgd_per_epsilon_and_is_deterministic(tiny_model, tiny_split):
    batch = tiny_split.head(16)
    run = lambda: pgd_sweep(tiny_model, batch.batches(8), [0.0, 0.1], [0], [1], tiny_model.net.conv1,  # noqa: E731
                            steps=2, seed=5)
    first, second = run(), run()
    assert first == second
    assert first.correct[0] == first.clean_correct  # ε = 0 is the clean input
    # Per batch, a generator seeded from the seed and its pixels, drawn ε by ε: the sweep is the plain attack.
    correct = 0
    for images, labels in batch.batches(8):
        generator = torch.Generator().manual_seed(batch_seed(5, images))
        for eps in (0.0, 0.1):
            adv = pgd(tiny_model, images, labels, eps, 2, generator=generator)
            if eps == 0.1:
                with torch.no_grad():
                    correct += int((tiny_model(adv).argmax(1) == labels).sum())
    assert first.correct[1] == correct


def test_pgd_sweep_of_a_later_batch_alone_equals_its_part_of_the_whole_sweep(tiny_model, tiny_split):
    """Random starts depend on the seed and the batch, not on the batches before it, so a shard
    of the examples (several processes) gets the outcomes one process gives those examples."""
    batch = tiny_split.head(16)
    sweep = lambda split: pgd_sweep(tiny_model, split.batches(8), [0.1], [0], [1], None, steps=2, seed=5)  # noqa: E731
    whole, second_half = sweep(batch), sweep(Split(batch.images[8:], batch.labels[8:]))
    assert whole.per_example["correct"][0][8:] == second_half.per_example["correct"][0]
    assert sweep(Split(batch.images[8:], batch.labels[8:])) == second_half
    (first_images, _), (second_images, _) = batch.batches(8)
    assert batch_seed(5, first_images) != batch_seed(5, second_images)  # each batch its own starts


def test_every_reading_is_recorded_per_example_and_the_archive_reproduces_it(tiny_model, tiny_split):
    fragile, null = list(range(0, 64, 2)), list(range(1, 64, 2))
    bn = following_batchnorm(tiny_model, "conv1")
    recorder = DistanceRecorder()
    result = fgsm_sweep(tiny_model, tiny_split.batches(20), [0.0, 0.1], fragile, null, tiny_model.net.conv1,
                        bn=bn, recorder=recorder)
    plain = fgsm_sweep(tiny_model, tiny_split.batches(20), [0.0, 0.1], fragile, null, tiny_model.net.conv1)
    assert (result.correct, result.targeted, result.targeted_relative) == (
        plain.correct, plain.targeted, plain.targeted_relative)
    assert result.readings() == list(READINGS)
    arrays = recorder.arrays()
    images, labels = next(tiny_split.batches(len(tiny_split)))
    expected = layer_readings(tiny_model, "conv1", images, fgsm(tiny_model, images, labels, 0.1))
    for reading in READINGS:
        d = arrays[archive_key(reading, 1)]
        assert d.shape == (len(tiny_split), 64) and d.dtype == np.float32
        torch.testing.assert_close(torch.from_numpy(d), expected[reading], rtol=1e-4, atol=1e-5)
        flags = result.outcomes(READING_KIND.format(reading=reading), 1)
        assert flags == "".join("1" if t else "0" for t in example_targets(d, fragile, null))
        assert result.reading_pct(reading, 0) == 0.0  # ε = 0 moves nothing
    assert result.reading_pct("conv_absolute", 1) == pytest.approx(100 * example_targets(
        arrays[archive_key("conv_absolute", 1)], fragile, null).mean())


def test_shards_of_a_recorded_sweep_merge_into_the_whole(tiny_model, tiny_split):
    fragile, null = [0, 5, 9], [k for k in range(64) if k not in (0, 5, 9)]
    bn = following_batchnorm(tiny_model, "conv1")

    def recorded(split):
        recorder = DistanceRecorder()
        sweep = fgsm_sweep(tiny_model, split.batches(8), [0.1], fragile, null, tiny_model.net.conv1, bn=bn,
                           recorder=recorder)
        return RecordedSweep(sweep, recorder)

    first, rest = Split(tiny_split.images[:16], tiny_split.labels[:16]), Split(tiny_split.images[16:],
                                                                              tiny_split.labels[16:])
    whole, merged = recorded(tiny_split), recorded(first).merge(recorded(rest))
    assert merged.sweep.per_example == whole.sweep.per_example
    for key, array in whole.distances.arrays().items():
        np.testing.assert_allclose(merged.distances.arrays()[key], array, rtol=1e-5, atol=1e-6)
