from __future__ import annotations

import pytest
import torch

from fragile import models
from fragile.errors import FragileError

META = {"arch": "resnet18", "stem": "imagenet", "num_classes": 10, "in_channels": 1,
        "mean": [0.5], "std": [0.25], "epoch": 1, "dataset": "test"}


def test_build_adjusts_conv1_and_keeps_the_imagenet_stem():
    model = models.build("resnet18", 10, 1, [0.5], [0.25])
    conv1 = model.net.conv1
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride) == (1, 64, (7, 7), (2, 2))
    assert isinstance(model.net.maxpool, torch.nn.MaxPool2d)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    rgb = models.build("resnet50", 10, 3, [0.5] * 3, [0.25] * 3)
    assert rgb.net.conv1.in_channels == 3 and rgb.net.fc.in_features == 2048
    small = models.build("resnet18", 10, 3, [0.5] * 3, [0.25] * 3, stem="cifar")
    assert small.net.conv1.kernel_size == (3, 3) and isinstance(small.net.maxpool, torch.nn.Identity)


def test_normalisation_lives_inside_the_model():
    model = models.build("resnet18", 10, 1, [0.5], [0.25]).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - 0.5) / 0.25))


def test_checkpoint_round_trip(tmp_path, tiny_model):
    path = tmp_path / "ckpt.pt"
    models.save(path, tiny_model, META)
    loaded, meta = models.load_with_meta(path)
    assert not loaded.training
    assert meta["epoch"] == 1 and "state_dict" not in meta
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), tiny_model(x))


def test_a_truncated_checkpoint_is_reported_by_name(tmp_path, tiny_model):
    path = tmp_path / "ckpt.pt"
    models.save(path, tiny_model, META)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(FragileError, match=f"checkpoint {path} is truncated or corrupted"):
        models.load(path)


def test_a_checkpoint_of_another_architecture_or_class_count_is_refused(tmp_path, tiny_model):
    path = tmp_path / "ckpt.pt"
    models.save(path, tiny_model, META)
    with pytest.raises(FragileError, match="arch='resnet18' but 'resnet50' was expected"):
        models.load(path, expect_arch="resnet50")
    with pytest.raises(FragileError, match="num_classes=10 but 100 was expected"):
        models.load(path, expect_classes=100)
    payload = torch.load(path, weights_only=True)
    payload["num_classes"] = 7  # metadata that does not match the weights
    torch.save(payload, path)
    with pytest.raises(FragileError, match="does not match a resnet18 with 7 classes"):
        models.load(path)


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


def test_a_checkpoint_carrying_pickled_code_is_refused_and_the_code_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({**META, "state_dict": {}, "extra": _Payload()}, path)
    with pytest.raises(FragileError, match="was refused"):
        models.load(path)
    assert not (tmp_path / "PWNED").exists()
    # The payload is real: an unrestricted load does run it.
    torch.load(path, weights_only=False)
    assert (tmp_path / "PWNED").read_text() == "ran"


def test_a_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(FragileError, match="not found; run the train stage"):
        models.load(tmp_path / "missing.pt")


def test_conv_layer_lookup(tiny_model):
    assert models.conv_layer(tiny_model) is tiny_model.net.conv1
    with pytest.raises(FragileError, match="valid names: conv1, layer1.0.conv1"):
        models.conv_layer(tiny_model, "conv9")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_with_one_non_finite_weight_is_refused_naming_the_tensor(tmp_path, tiny_model, bad):
    # Before, harden met it as a traceback from linalg.svd.
    path = tmp_path / "ckpt.pt"
    state = tiny_model.state_dict()
    state["net.layer3.1.bn1.running_var"][5] = bad
    models.write_checkpoint(path, {**META, "state_dict": state})
    with pytest.raises(FragileError, match=r"ckpt.pt has 1 non-finite value \(nan or inf\) in "
                                           r"net.layer3.1.bn1.running_var; .*lower train.lr") as err:
        models.load(path)
    assert "\n" not in str(err.value)
    with pytest.raises(FragileError, match="non-finite"):
        models.read_checkpoint(path)  # the one reader: harden and the resume state go through it too


def test_normalisation_is_the_params_or_else_the_datas_statistics():
    from fragile.params import ModelParams

    manifest = {"in_channels": 3, "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}
    assert models.normalisation(ModelParams(), manifest) == ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    imagenet = ModelParams(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert models.normalisation(imagenet, manifest) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with pytest.raises(FragileError, match="model.mean and model.std have 3 values but the prepared data has 1 channel;"):
        models.normalisation(imagenet, {**manifest, "in_channels": 1})
