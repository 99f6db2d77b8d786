from __future__ import annotations

import pytest

from fragile.errors import FragileError


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
