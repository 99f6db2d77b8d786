from __future__ import annotations

import torch

from fragile.attacks import fgsm
from fragile.sweep import fgsm_sweep
from fragile.targeting import kernel_distances, targets_fragile


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


def test_transfer_uses_the_source_gradient(tiny_model, tiny_split):
    other = type(tiny_model)(tiny_model.net, [0.4], [0.3])  # same weights, other normalisation
    white = fgsm_sweep(other, tiny_split.batches(48), [0.1], [0], [1], other.net.conv1)
    transfer = fgsm_sweep(other, tiny_split.batches(48), [0.1], [0], [1], other.net.conv1, source=tiny_model)
    images, labels = next(tiny_split.batches(48))
    adv = fgsm(tiny_model, images, labels, 0.1)
    with torch.no_grad():
        assert transfer.correct[0] == int((other(adv).argmax(1) == labels).sum())
    assert white.examples == transfer.examples
