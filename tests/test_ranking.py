from __future__ import annotations

import pytest
import torch

from fragile.errors import FragileError
from fragile.ranking import KernelRanking, drop_point, rank_by_hooks, rank_conv1, ranking_table


@pytest.mark.parametrize("drop", ["activation", "weight"])
def test_fast_ranking_equals_the_naive_hook_loop(tiny_model, tiny_split, drop):
    fast = rank_conv1(tiny_model, tiny_split.batches(16), drop=drop)
    naive = rank_by_hooks(tiny_model, tiny_split.batches(16), drop_point(tiny_model, "conv1", drop), 64)
    assert fast.accuracy == naive.accuracy
    assert fast.loss == pytest.approx(naive.loss, rel=1e-4, abs=1e-5)
    assert fast.baseline_accuracy == naive.baseline_accuracy
    assert fast.examples == naive.examples == len(tiny_split)


def test_weight_drop_equals_zeroing_the_kernel_weights(tiny_model, tiny_split):
    ranking = rank_conv1(tiny_model, tiny_split.batches(48), drop="weight")
    images, labels = next(tiny_split.batches(48))
    k = 5
    with torch.no_grad():
        tiny_model.net.conv1.weight[k] = 0
        logits = tiny_model(images)
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert ranking.loss[k] == pytest.approx(loss, rel=1e-4)


def test_ranking_covers_every_kernel_once_with_disjoint_sets(tiny_model, tiny_split):
    ranking = rank_conv1(tiny_model, tiny_split.batches(16))
    assert len(ranking.accuracy) == 64
    fragile, null = set(ranking.fragile), set(ranking.null)
    assert not fragile & null
    assert fragile | null == set(range(64))
    mean = ranking.mean_accuracy
    assert all(ranking.accuracy[k] < mean for k in fragile)
    assert all(ranking.accuracy[k] >= mean for k in null)
    table = ranking_table(ranking)
    assert table["kernel"].tolist() == list(range(64))
    assert (table["set"] == "S").sum() == len(fragile)


def test_sets_split_at_the_mean_line():
    ranking = KernelRanking(accuracy=[0.5, 0.9, 0.7, 0.9], loss=[0.0] * 4, examples=10, baseline_accuracy=0.9)
    assert ranking.mean_accuracy == pytest.approx(0.75)
    assert ranking.fragile == [0, 2]
    assert ranking.null == [1, 3]


def test_all_kernels_equal_is_a_clear_error():
    ranking = KernelRanking(accuracy=[0.8] * 8, loss=[0.1] * 8, examples=10, baseline_accuracy=0.8)
    assert ranking.fragile == []
    with pytest.raises(FragileError, match="S or S' is empty"):
        ranking.check_sets()


def test_drop_point_pairs_convs_with_their_batchnorm(tiny_model):
    net = tiny_model.net
    assert drop_point(tiny_model, "conv1", "activation") is net.bn1
    assert drop_point(tiny_model, "layer2.0.conv2", "activation") is net.layer2[0].bn2
    assert drop_point(tiny_model, "layer2.0.downsample.0", "activation") is net.layer2[0].downsample[1]
    assert drop_point(tiny_model, "conv1", "weight") is net.conv1


# --- rank.method: taylor ---------------------------------------------------------------------

from fragile.ranking import TaylorRanking, compare_rankings, rank_taylor, taylor_table  # noqa: E402


def _mean_loss_from_stem(model, hidden, labels):
    from fragile.ranking import _rest

    return torch.nn.functional.cross_entropy(_rest(model, hidden), labels)


@pytest.mark.parametrize("drop", ["activation", "weight"])
def test_taylor_score_is_the_first_order_change_in_loss(tiny_model, tiny_split, drop):
    """score[k] equals the directional derivative of the mean loss as channel k of the stem's
    output moves towards its dropped value, measured by a central finite difference in float64."""
    from fragile.ranking import _stem, dropped_channel_value

    model = tiny_model.double()
    images, labels = next(tiny_split.batches(len(tiny_split)))
    images = images.double()
    taylor = rank_taylor(model, [(images, labels)], drop=drop)
    fill = dropped_channel_value(model, drop).double()
    with torch.no_grad():
        hidden = _stem(model, images)
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


def test_taylor_sets_split_at_the_mean_score():
    taylor = TaylorRanking(score=[0.3, -0.1, 0.05, 0.2], examples=4, baseline_loss=1.0)
    assert taylor.mean_score == pytest.approx(0.1125)
    assert taylor.fragile == [0, 3]  # their drop raises the loss more than the mean
    assert taylor.null == [1, 2]
    with pytest.raises(FragileError, match="same Taylor score"):
        TaylorRanking(score=[0.1] * 4, examples=4, baseline_loss=1.0).check_sets()


def test_comparison_with_the_exact_ranking():
    exact = KernelRanking(accuracy=[0.5, 0.9, 0.7, 0.8], loss=[2.0, 0.5, 1.0, 0.7], examples=10,
                          baseline_accuracy=0.9)
    agreeing = TaylorRanking(score=[0.9, 0.0, 0.4, 0.2], examples=10, baseline_loss=0.4)
    assert compare_rankings(agreeing, exact) == {"spearman": 1.0, "spearman_loss": 1.0, "set_agreement": 1.0}
    reversed_ = TaylorRanking(score=[0.0, 0.9, 0.2, 0.4], examples=10, baseline_loss=0.4)
    result = compare_rankings(reversed_, exact)
    assert result["spearman"] == pytest.approx(-1.0)
    assert result["set_agreement"] == 0.0  # exact S = {0, 2}, taylor S = {1, 3}
    table = taylor_table(agreeing, exact)
    assert list(table.columns) == ["kernel", "score", "accuracy", "loss", "set"]
    assert table["set"].tolist() == ["S", "S'", "S", "S'"]


# --- any conv layer (analysis.layer) ---------------------------------------------------------

from fragile.ranking import rank_layer  # noqa: E402


@pytest.mark.parametrize(("layer", "drop"), [("layer2.0.conv2", "activation"), ("layer2.0.downsample.0", "weight")])
def test_deeper_layer_ranking_equals_zeroing_each_channel_with_a_hook(tiny_model, tiny_split, layer, drop):
    """The reference is `rank_by_hooks`'s per-kernel hook (whole network from the input), for
    kernels at the edges of the stacked groups (48 per pass); a full hook loop over 128 kernels
    would dominate the test's time."""
    few = tiny_split.head(10)
    fast = rank_layer(tiny_model, layer, few.batches(5), drop=drop, kernels_per_pass=48)
    assert len(fast.accuracy) == tiny_model.net.get_submodule(layer).out_channels == 128
    point = drop_point(tiny_model, layer, drop)
    images, labels = next(few.batches(10))
    for k in (0, 1, 47, 48, 95, 96, 127):
        def zero_channel(_m, _i, out, k=k):
            out = out.clone()
            out[:, k] = 0
            return out

        handle = point.register_forward_hook(zero_channel)
        try:
            with torch.no_grad():
                logits = tiny_model(images)
        finally:
            handle.remove()
        assert fast.accuracy[k] == int((logits.argmax(1) == labels).sum()) / len(labels)
        assert fast.loss[k] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-4)
    with torch.no_grad():
        assert fast.baseline_accuracy == int((tiny_model(images).argmax(1) == labels).sum()) / len(labels)
    assert len(set(fast.loss)) > 64  # each stacked copy dropped its own kernel


def test_rank_layer_takes_the_conv1_fast_path(tiny_model, tiny_split):
    few = tiny_split.head(8)
    assert rank_layer(tiny_model, "conv1", few.batches(8)) == rank_conv1(tiny_model, few.batches(8))


def test_deeper_weight_drop_equals_zeroing_the_kernel_weights(tiny_model, tiny_split):
    few = tiny_split.head(8)
    ranking = rank_layer(tiny_model, "layer2.0.conv1", few.batches(8), drop="weight")
    images, labels = next(few.batches(8))
    k = 9
    with torch.no_grad():
        tiny_model.net.layer2[0].conv1.weight[k] = 0
        loss = torch.nn.functional.cross_entropy(tiny_model(images), labels).item()
    assert ranking.loss[k] == pytest.approx(loss, rel=1e-4)


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


def test_an_unknown_layer_lists_the_valid_conv_names(tiny_model, tiny_split):
    with pytest.raises(FragileError, match=r"no conv layer 'layer2.0.bn1'.*valid names: conv1, layer1.0.conv1, .*"
                                           r"layer2.0.downsample.0, .*layer4.1.conv2$"):
        rank_layer(tiny_model, "layer2.0.bn1", tiny_split.batches(16))


def test_read_sets_refuses_a_ranking_of_another_layer(tmp_path):
    import json

    from fragile.ranking import read_sets

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"layer": "conv1", "fragile": [0, 2], "null": [1, 3]}))
    assert read_sets(path) == read_sets(path, "conv1", 4) == ([0, 2], [1, 3])
    with pytest.raises(FragileError, match="ranks 4 kernels of conv1, but analysis.layer is layer1.0.conv1"):
        read_sets(path, "layer1.0.conv1", 4)
    with pytest.raises(FragileError, match="with 64 kernels; rerun rank"):
        read_sets(path, "conv1", 64)
