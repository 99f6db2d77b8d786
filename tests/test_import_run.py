"""The train stage's import (model.source: file): the checkpoint, the DVCLive step and run.json."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from fragile import models
from fragile.data import write_prepared
from fragile.errors import FragileError
from fragile.import_run import import_model
from fragile.params import params_from_dict
from fragile.training import evaluate_split


def _params(**model):
    return params_from_dict({"model": {"arch": "resnet18", "stem": "cifar", "source": "file", **model},
                             "train": {"checkpoints": [0], "batch_size": 16}})


@pytest.fixture
def project(tmp_path, tiny_split):
    """Prepared 1-channel data (10 classes) and a cifar-stem resnet18 state_dict saved beside it."""
    write_prepared(tmp_path / "data", {"train": tiny_split, "val": tiny_split, "test": tiny_split}, 10, "mnist5k")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    torch.save({"state_dict": net.state_dict(), "epoch": 30}, tmp_path / "theirs.pt")  # another script's checkpoint
    return tmp_path


def test_the_import_writes_epoch_0_the_dvclive_step_and_run_json(project, tiny_split):
    p = _params(file=str(project / "theirs.pt"), mean=[0.5], std=[0.25])
    said = []
    import_model(project / "data", project / "models", project / "live", p, said.append)
    model, meta = models.load_with_meta(project / "models/epoch_0.pt", expect_classes=10, expect_channels=1)
    assert (meta["epoch"], meta["arch"], meta["stem"], meta["mean"], meta["std"]) == (0, "resnet18", "cifar",
                                                                                       [0.5], [0.25])
    assert meta["dataset"] == "mnist5k" and meta["params"]["model"]["source"] == "file"
    loss, accuracy = evaluate_split(model, tiny_split, 16, torch.device("cpu"))
    logged = json.loads((project / "live/metrics.json").read_text())
    assert logged["val"]["accuracy"] == accuracy == logged["train"]["accuracy"]  # one split serves as all three
    assert logged["val"]["loss"] == pytest.approx(loss)
    assert logged["step"] == 0
    run = json.loads((project / "models/run.json").read_text())
    assert run["device"] == "cpu" and run["imported_from"]["file"] == str(project / "theirs.pt")
    assert "imported resnet18 (cifar stem)" in said[0]


def test_without_model_mean_the_prepared_datas_statistics_are_used(project):
    import_model(project / "data", project / "models", project / "live", _params(file=str(project / "theirs.pt")),
                 lambda _: None)
    manifest = json.loads((project / "data/manifest.json").read_text())
    meta = models.read_checkpoint(project / "models/epoch_0.pt")
    assert (meta["mean"], meta["std"]) == (manifest["mean"], manifest["std"])


def test_weights_for_other_data_are_refused_before_anything_is_written(project):
    p = _params(file=str(project / "theirs.pt"), arch="resnet50")
    with pytest.raises(FragileError, match="holds a resnet18 .* but model.arch is resnet50; set model.arch: resnet18"):
        import_model(project / "data", project / "models", project / "live", p, lambda _: None)
    assert not (project / "models/epoch_0.pt").exists() and not (project / "live").exists()
