"""The screened exact ranking: the exact ranking's counts on the pairs it runs, the unperturbed
outcome on the rest, and the exact ranking itself when every pair runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fragile.data import Split
from fragile.kernel_sets import KernelRanking
from fragile.ranking_exact import rank_layer
from fragile.ranking_hybrid import HybridRanking, compare_hybrid, hybrid_table, rank_hybrid


@pytest.fixture
def labelled(tiny_model, tiny_split):
    """tiny_split labelled by the model itself but for every fifth example: drops then change
    outcomes both ways, and the kernels' counts differ."""
    images, labels = next(tiny_split.batches(len(tiny_split)))
    with torch.no_grad():
        own = tiny_model(images).argmax(1).numpy()
    return Split(tiny_split.images, np.where(np.arange(len(own)) % 5 == 0, labels.numpy(), own))


def _margins(model, split):
    """Per example, true-class logit minus the best other logit (computed independently)."""
    images, labels = next(split.batches(len(split)))
    with torch.no_grad():
        logits = model(images).double()
    true = logits[torch.arange(len(labels)), labels]
    logits[torch.arange(len(labels)), labels] = -math.inf
    return (true - logits.max(1).values).numpy()


@pytest.mark.parametrize(("layer", "drop"), [("conv1", "activation"), ("conv1", "weight"),
                                             ("layer2.0.conv2", "activation")])
def test_with_every_pair_screened_it_is_the_exact_ranking(tiny_model, labelled, layer, drop, one_thread):
    exact = rank_layer(tiny_model, layer, labelled.batches(16), drop)
    hybrid = rank_hybrid(tiny_model, labelled.batches(16), drop, layer=layer, floor=math.inf, pairs_per_pass=100)
    assert hybrid.correct == exact.correct and hybrid.baseline_correct == exact.baseline_correct
    assert hybrid.fragile == exact.fragile and hybrid.null == exact.null
    assert len(set(exact.correct)) > 2 and exact.fragile and exact.null
    assert hybrid.exact_share == 1.0 and hybrid.examples == len(labelled)
    assert compare_hybrid(hybrid, exact)["set_agreement"] == 1.0


@pytest.mark.parametrize("layer", ["conv1", "layer2.0.conv2"])
def test_unscreened_pairs_count_at_the_unperturbed_outcome(tiny_model, labelled, layer, one_thread):
    """With slack 0 the screen runs exactly the examples with |margin| <= floor, for every kernel;
    each kernel's count is then the exact outcomes of those examples plus the unperturbed
    outcomes of the rest, read off the exact ranking's per-example outcomes."""
    margin = _margins(tiny_model, labelled)
    floor = float(np.median(np.abs(margin)))
    near = np.abs(margin) <= floor
    assert 0 < near.sum() < len(near)
    exact = rank_layer(tiny_model, layer, labelled.batches(16))
    hybrid = rank_hybrid(tiny_model, labelled.batches(16), layer=layer, slack=0.0, floor=floor, pairs_per_pass=50,
                         calibrate=False)
    outcomes = exact.example_correct.astype(bool)
    right = margin > 0
    expected = outcomes[near].sum(0) + right[~near].sum()
    assert hybrid.exact_pairs == [int(near.sum())] * outcomes.shape[1]
    assert hybrid.correct == expected.tolist()
    assert hybrid.baseline_correct == exact.baseline_correct == int(right.sum())


def test_a_wider_screen_runs_more_pairs_and_moves_no_count_away(tiny_model, labelled, one_thread):
    """Widening the screen only adds pairs, and a kernel's count can differ from the exact one
    by at most its pairs that did not run."""
    exact = rank_layer(tiny_model, "conv1", labelled.batches(16))
    narrow = rank_hybrid(tiny_model, labelled.batches(16), slack=0.5, floor=0.0, calibrate=False)
    wide = rank_hybrid(tiny_model, labelled.batches(16), slack=3.0, floor=0.5, calibrate=False)
    assert all(n <= w for n, w in zip(narrow.exact_pairs, wide.exact_pairs, strict=True))
    assert sum(narrow.exact_pairs) < sum(wide.exact_pairs)
    for ranking in (narrow, wide):
        gaps = [abs(h - e) for h, e in zip(ranking.correct, exact.correct, strict=True)]
        assert all(g <= len(labelled) - p for g, p in zip(gaps, ranking.exact_pairs, strict=True))


@pytest.mark.parametrize("layer", ["conv1", "layer2.0.conv2"])
def test_calibration_only_adds_pairs_to_the_fixed_screen(tiny_model, labelled, layer, one_thread):
    """The calibrated screen starts from the fixed one and widens it per kernel; its counts
    still differ from the exact ones by at most the pairs that did not run."""
    exact = rank_layer(tiny_model, layer, labelled.batches(16))
    fixed = rank_hybrid(tiny_model, labelled.batches(16), layer=layer, slack=0.5, floor=0.0, calibrate=False)
    calibrated = rank_hybrid(tiny_model, labelled.batches(16), layer=layer, slack=0.5, floor=0.0)
    assert all(f <= c for f, c in zip(fixed.exact_pairs, calibrated.exact_pairs, strict=True))
    assert sum(calibrated.exact_pairs) > sum(fixed.exact_pairs)
    for kernel, (count, pairs) in enumerate(zip(calibrated.correct, calibrated.exact_pairs, strict=True)):
        assert abs(count - exact.correct[kernel]) <= len(labelled) - pairs


def test_a_kernels_slack_is_the_largest_true_to_estimated_move_of_its_pairs_run():
    from fragile.ranking_hybrid import _kernel_slack

    # Rows: examples; columns: kernels. Kernel 0's pairs moved 3.0 and 1.0 against estimates
    # 1.0 and 0.5: beyond the 0.5 floor, 2.5 and 1.0 times the estimate. Kernel 1's moves stay
    # under the floor (the fixed slack 1 stays); kernel 2 moved 1.0 on an estimate of 0, where
    # the first-order change says nothing; kernel 3's big move was not run and does not count.
    moved = torch.tensor([[3.0, 0.2, 1.0, 9.0], [1.0, 0.4, 0.0, 0.0]])
    change = torch.tensor([[1.0, 0.1, 0.0, 1.0], [0.5, 0.2, 0.0, 1.0]])
    ran = torch.tensor([[True, True, True, False], [True, True, True, True]])
    slack = _kernel_slack(moved, change, ran, slack=1.0, floor=0.5)
    assert slack.tolist() == [[2.5, 1.0, math.inf, 1.0]]


def test_merge_adds_the_counts_of_two_shards(tiny_model, labelled, one_thread):
    whole = rank_hybrid(tiny_model, labelled.batches(16), floor=math.inf)
    first, second = labelled.head(32), Split(labelled.images[32:], labelled.labels[32:])
    merged = rank_hybrid(tiny_model, first.batches(16), floor=math.inf).merge(
        rank_hybrid(tiny_model, second.batches(16), floor=math.inf))
    assert merged == whole


def test_sets_follow_the_mean_line_in_whole_counts_and_agreement_counts_kernels():
    # Σc = 40 over K = 4: the mean line is 10; kernel 2 sits on it and stays in S'.
    hybrid = HybridRanking(correct=[8, 12, 10, 10], exact_pairs=[5, 0, 5, 1], examples=20, baseline_correct=14)
    assert hybrid.fragile == [0] and hybrid.null == [1, 2, 3]
    assert hybrid.exact_share == pytest.approx(11 / 80) and hybrid.mean_accuracy == pytest.approx(0.5)
    exact = KernelRanking(correct=[8, 12, 9, 11], loss_sum=[0.0] * 4, examples=20, baseline_correct=14)
    assert exact.fragile == [0, 2]
    comparison = compare_hybrid(hybrid, exact)
    assert comparison["set_agreement"] == 0.75  # kernel 2 is in S only for the exact ranking
    assert comparison["spearman"] == pytest.approx(0.9486832980505138)  # ranks [1, 4, 2.5, 2.5] vs [1, 4, 2, 3]
    table = hybrid_table(hybrid, exact)
    assert list(table.columns) == ["kernel", "accuracy", "exact_pairs", "exact_accuracy", "exact_loss", "set"]
    assert table["set"].tolist() == ["S", "S'", "S'", "S'"]
