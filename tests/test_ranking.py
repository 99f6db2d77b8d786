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
