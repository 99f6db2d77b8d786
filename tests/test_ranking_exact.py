"""The exact ranking: the fast stacked passes give the counts of zeroing each kernel in turn."""

from __future__ import annotations

import pytest
import torch

from benchmarks.reference_ranking import rank_by_hooks
from fragile.errors import FragileError
from fragile.kernel_drop import drop_point
from fragile.kernel_sets import ranking_table
from fragile.ranking_exact import rank_conv1, rank_layer


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
    total = sum(ranking.correct)  # the mean line in whole counts: K·c_k < Σc puts k in S
    assert all(64 * ranking.correct[k] < total for k in fragile)
    assert all(64 * ranking.correct[k] >= total for k in null)
    table = ranking_table(ranking)
    assert table["kernel"].tolist() == list(range(64))
    assert (table["set"] == "S").sum() == len(fragile)


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


def test_an_unknown_layer_lists_the_valid_conv_names(tiny_model, tiny_split):
    with pytest.raises(FragileError, match=r"no conv layer 'layer2.0.bn1'.*valid names: conv1, layer1.0.conv1, .*"
                                           r"layer2.0.downsample.0, .*layer4.1.conv2$"):
        rank_layer(tiny_model, "layer2.0.bn1", tiny_split.batches(16))


@pytest.mark.parametrize("layer", ["conv1", "layer2.0.conv2"])
def test_rankings_of_two_shards_merge_into_the_ranking_of_both(tiny_model, tiny_split, layer):
    whole = rank_layer(tiny_model, layer, tiny_split.head(16).batches(8))
    first = rank_layer(tiny_model, layer, tiny_split.head(8).batches(8))
    second = rank_layer(tiny_model, layer, list(tiny_split.head(16).batches(8))[1:])
    merged = first.merge(second)
    assert merged.correct == whole.correct and merged.baseline_correct == whole.baseline_correct
    assert merged.examples == whole.examples == 16
    assert merged.loss_sum == pytest.approx(whole.loss_sum, rel=1e-12)
