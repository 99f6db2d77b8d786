from __future__ import annotations

import pytest

from fragile.summary import fragile_persistence, kernel_stability


def _ranks(*fragile_sets):
    return {epoch: {"fragile": sorted(s)} for epoch, s in fragile_sets}


def test_jaccard_between_consecutive_checkpoints_and_the_always_fragile_kernels():
    ranks = _ranks((50, {1, 2, 3, 4}), (10, {1, 2, 5}), (100, {2, 4}))  # out of order on purpose
    stability = kernel_stability(ranks)
    assert stability["checkpoints"] == [10, 50, 100]
    assert stability["jaccard_10_50"] == pytest.approx(2 / 5)  # {1, 2} of {1, 2, 3, 4, 5}
    assert stability["jaccard_50_100"] == pytest.approx(2 / 4)  # {2, 4} of {1, 2, 3, 4}
    assert "jaccard_10_100" not in stability  # consecutive pairs only
    assert stability["always_fragile"] == [2] and stability["always_fragile_count"] == 1
    assert fragile_persistence(ranks) == ([2], [1, 3, 4, 5])


def test_identical_and_disjoint_sets():
    assert kernel_stability(_ranks((1, {0, 7}), (2, {0, 7})))["jaccard_1_2"] == 1.0
    disjoint = kernel_stability(_ranks((1, {0}), (2, {1})))
    assert disjoint["jaccard_1_2"] == 0.0 and disjoint["always_fragile"] == []


def test_a_single_checkpoint_has_no_pairs_and_its_whole_set_is_always_fragile():
    stability = kernel_stability(_ranks((3, {5, 1, 9})))
    assert stability == {"checkpoints": [3], "always_fragile": [1, 5, 9], "always_fragile_count": 3}
