"""The setup rank, attack_target and evaluate share: one checkpoint, its conv, S and S', the examples."""

from __future__ import annotations

import dataclasses

import pytest

import fake_results as fake
from fragile import models
from fragile.checkpoint_run import open_checkpoint
from fragile.data import write_prepared
from fragile.errors import FragileError
from fragile.layout import checkpoint_file


@pytest.fixture
def checkpoint(tmp_path, tiny_model, tiny_split):
    write_prepared(tmp_path / "data", {"train": tiny_split, "val": tiny_split, "test": tiny_split}, 10, "mnist5k")
    path = tmp_path / checkpoint_file(4)
    models.save(path, tiny_model, {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "mean": [0.5],
                                   "std": [0.25], "stem": "imagenet", "epoch": 4})
    rank = fake.rank(4)
    dataclasses.replace(rank, fragile=list(range(0, 64, 2)), null=list(range(1, 64, 2))).write(tmp_path / "s.json")
    return path


def test_one_process_gets_the_model_its_conv_the_sets_and_every_example(tmp_path, checkpoint, monkeypatch):
    monkeypatch.delenv("FRAGILE_NPROC", raising=False)
    run = open_checkpoint("attack_target", checkpoint, tmp_path / "data", "conv1", "test", 40, 16,
                          sets=tmp_path / "s.json")
    assert run is not None and run.is_main and run.where() == "cpu"
    assert run.epoch == 4 and run.conv is run.model.net.conv1
    assert run.fragile == list(range(0, 64, 2)) and run.null == list(range(1, 64, 2))
    assert len(run.part) == 40 and [len(y) for _, y in run.batches()] == [16, 16, 8]
    assert run.combine("count", lambda advance: len(run.part)) == 40  # one process: the result itself
    peer = run.load_peer(checkpoint)
    assert peer is not run.model and next(peer.parameters()).device == run.device


def test_a_rank_result_of_another_layer_fails_before_any_work(tmp_path, checkpoint):
    with pytest.raises(FragileError, match="ranks 64 kernels of conv1, but analysis.layer is layer1.0.conv2"):
        open_checkpoint("evaluate", checkpoint, tmp_path / "data", "layer1.0.conv2", "test", 40, 16,
                        sets=tmp_path / "s.json")
    with pytest.raises(FragileError, match="no conv layer 'layer9.conv1'"):
        open_checkpoint("rank", checkpoint, tmp_path / "data", "layer9.conv1", "val", 40, 16)
