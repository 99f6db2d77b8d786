"""The first-order (Taylor) ranking: each score is the derivative of the loss as the kernel's
channel moves to its dropped value."""

from __future__ import annotations

import pytest
import torch

from fragile.kernel_drop import after_stem, drop_point, dropped_channel_value, stem
from fragile.ranking_taylor import rank_taylor


def _mean_loss_from_stem(model, hidden, labels):
    return torch.nn.functional.cross_entropy(after_stem(model, hidden), labels)


@pytest.mark.parametrize("drop", ["activation", "weight"])
def test_taylor_score_is_the_first_order_change_in_loss(tiny_model, tiny_split, drop):
    """score[k] equals the directional derivative of the mean loss as channel k of the stem's
    output moves towards its dropped value, measured by a central finite difference in float64."""
    model = tiny_model.double()
    images, labels = next(tiny_split.batches(len(tiny_split)))
    images = images.double()
    taylor = rank_taylor(model, [(images, labels)], drop=drop)
    fill = dropped_channel_value(model, drop).double()
    with torch.no_grad():
        hidden = stem(model, images)
        h = 1e-7  # float64: small enough that no ReLU in the rest of the network changes side
        for k in (0, 7, 33, 63):
            direction = torch.zeros_like(hidden)
            direction[:, k] = fill[k] - hidden[:, k]
            up = _mean_loss_from_stem(model, hidden + h * direction, labels)
            down = _mean_loss_from_stem(model, hidden - h * direction, labels)
            assert taylor.score[k] == pytest.approx(float((up - down) / (2 * h)), rel=1e-5, abs=1e-9)
    assert taylor.examples == len(tiny_split)


def test_taylor_score_is_a_mean_over_examples_independent_of_batching(tiny_model, tiny_split):
    whole = rank_taylor(tiny_model, tiny_split.batches(48))
    batched = rank_taylor(tiny_model, tiny_split.batches(7))
    assert batched.score == pytest.approx(whole.score, rel=1e-4, abs=1e-6)
    assert batched.baseline_loss == pytest.approx(whole.baseline_loss, rel=1e-5)


@pytest.mark.parametrize("drop", ["activation", "weight"])
def test_deeper_taylor_score_is_the_first_order_change_in_loss(tiny_model, tiny_split, drop):
    """At the drop point of layer2.0.conv2 (its BN output, before the residual addition, or
    the conv output), score[k] is the derivative of the mean loss as channel k is scaled to 0."""
    layer = "layer2.0.conv2"
    model = tiny_model.double()
    images, labels = next(tiny_split.batches(12))
    images = images.double()
    taylor = rank_taylor(model, [(images, labels)], drop=drop, layer=layer)
    point = drop_point(model, layer, drop)
    h = 1e-7

    def loss_with_channel_scaled(k, factor):
        def scale(_m, _i, out):
            out = out.clone()
            out[:, k] *= factor
            return out

        handle = point.register_forward_hook(scale)
        try:
            with torch.no_grad():
                return float(torch.nn.functional.cross_entropy(model(images), labels))
        finally:
            handle.remove()

    for k in (0, 17, 127):  # moving a_k towards 0 by h·a_k: (1 - h)·a_k
        derivative = (loss_with_channel_scaled(k, 1 - h) - loss_with_channel_scaled(k, 1 + h)) / (2 * h)
        assert taylor.score[k] == pytest.approx(derivative, rel=1e-5, abs=1e-9)
    assert len(taylor.score) == 128


def test_taylor_rankings_of_two_shards_merge_into_the_ranking_of_both(tiny_model, tiny_split):
    batches = list(tiny_split.head(16).batches(8))
    whole = rank_taylor(tiny_model, batches)
    merged = rank_taylor(tiny_model, batches[:1]).merge(rank_taylor(tiny_model, batches[1:]))
    assert merged.examples == whole.examples == 16
    assert merged.score == pytest.approx(whole.score, rel=1e-9, abs=1e-12)
    assert merged.baseline_loss == pytest.approx(whole.baseline_loss, rel=1e-12)
