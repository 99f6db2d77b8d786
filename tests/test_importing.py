"""Weights trained elsewhere become fragile checkpoints that models.load reads, or a one-line error."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from fragile import importing, models
from fragile.errors import FragileError

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _cifar_resnet18() -> nn.Module:
    """A torchvision resnet18 with the small-image stem another script would train: 1 input
    channel, 3×3 stride-1 conv1, no max-pool, 10 classes."""
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so they must travel
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _normalised(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    net = _cifar_resnet18()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(net.state_dict(), path)
    return net, path


def test_a_torchvision_imagenet_resnet50_state_dict_imports_with_its_normalisation(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval()  # randomly initialised: nothing downloads
    weights = tmp_path / "resnet50.pt"
    torch.save(net.state_dict(), weights)
    out = tmp_path / "epoch_0.pt"
    importing.import_weights(weights, out, IMAGENET_MEAN, IMAGENET_STD, arch="resnet50", stem="imagenet",
                             expect_classes=1000, expect_channels=3, meta={"dataset": "imagefolder"})
    model, meta = models.load_with_meta(out, expect_arch="resnet50", expect_classes=1000, expect_channels=3)
    assert {k: meta[k] for k in ("arch", "stem", "num_classes", "in_channels", "epoch", "dataset")} == {
        "arch": "resnet50", "stem": "imagenet", "num_classes": 1000, "in_channels": 3, "epoch": 0,
        "dataset": "imagefolder"}
    assert meta["mean"] == IMAGENET_MEAN and meta["std"] == IMAGENET_STD
    x = torch.rand(2, 3, 64, 64)  # fragile models take [0, 1] pixels and normalise inside
    with torch.no_grad():
        assert torch.allclose(model(x), net(_normalised(x, IMAGENET_MEAN, IMAGENET_STD)), atol=1e-5)
    # Same input, same bytes; and the file is the format the train stage writes.
    again = tmp_path / "again.pt"
    importing.import_weights(weights, again, IMAGENET_MEAN, IMAGENET_STD, meta={"dataset": "imagefolder"})
    assert again.read_bytes() == out.read_bytes()
    assert list(torch.load(out, weights_only=True)["state_dict"]) == list(model.state_dict())


def test_torchvisions_own_file_layout_without_batchnorm_counters_imports(tmp_path):
    # torchvision's published ImageNet files predate BatchNorm's num_batches_tracked.
    net = torchvision.models.resnet50(num_classes=3).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "w.pt")
    checkpoint = importing.import_checkpoint(tmp_path / "w.pt", IMAGENET_MEAN, IMAGENET_STD)
    assert checkpoint["arch"] == "resnet50"
    assert int(checkpoint["state_dict"]["net.bn1.num_batches_tracked"]) == 0


def test_a_one_channel_cifar_stem_resnet18_imports_and_loads(tmp_path, resnet18_file):
    net, path = resnet18_file
    out = tmp_path / "epoch_0.pt"
    meta = importing.import_weights(path, out, [0.5], [0.25])
    assert (meta["arch"], meta["stem"], meta["in_channels"], meta["num_classes"]) == ("resnet18", "cifar", 1, 10)
    model = models.load(out, expect_channels=1, expect_classes=10)
    assert isinstance(model.net.maxpool, nn.Identity) and model.net.conv1.stride == (1, 1)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), net(_normalised(x, [0.5], [0.25])), atol=1e-5)


@pytest.mark.parametrize(("wrap", "zip_format"), [
    (lambda sd: {"state_dict": sd, "epoch": 90, "best_acc1": 0.71}, True),
    (lambda sd: {"model": sd, "args": {"lr": 0.1}}, True),
    (lambda sd: {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer_state_dict": {}}, True),
    (lambda sd: sd, False),
], ids=["under state_dict", "under model", "DDP under model_state_dict", "pre-1.6 torch.save format"])
def test_a_checkpoint_dict_from_another_script_gives_the_same_weights(tmp_path, resnet18_file, wrap, zip_format):
    net, path = resnet18_file
    torch.save(wrap(net.state_dict()), tmp_path / "ckpt.pt", _use_new_zipfile_serialization=zip_format)
    plain = importing.import_checkpoint(path, [0.5], [0.25])["state_dict"]
    wrapped = importing.import_checkpoint(tmp_path / "ckpt.pt", [0.5], [0.25])["state_dict"]
    assert list(wrapped) == list(plain)
    assert all(torch.equal(wrapped[k], plain[k]) for k in plain)


def _broken(sd: dict, change: str) -> dict:
    sd = dict(sd)
    if change == "missing":
        del sd["layer4.1.bn2.weight"]
    elif change == "unexpected":
        sd["fc2.weight"] = torch.zeros(2, 2)
    elif change == "shape":
        sd["layer1.0.conv2.weight"] = torch.zeros(64, 64, 5, 5)
    return sd


@pytest.mark.parametrize(("change", "message"), [
    ("missing", r"does not match a torchvision resnet18 \(cifar stem, 1 input channel, 10 classes\): "
                r"missing key 'layer4.1.bn2.weight'$"),
    ("unexpected", r"unexpected key 'fc2.weight'$"),
    ("shape", r"'layer1.0.conv2.weight' has shape \(64, 64, 5, 5\), expected \(64, 64, 3, 3\)$"),
])
def test_a_state_dict_that_does_not_fit_names_the_first_key_that_differs(tmp_path, resnet18_file, change, message):
    net, _ = resnet18_file
    torch.save(_broken(net.state_dict(), change), tmp_path / "w.pt")
    with pytest.raises(FragileError, match=message) as err:
        importing.import_checkpoint(tmp_path / "w.pt", [0.5], [0.25])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "resnet50"}, "holds a resnet18 .* but model.arch is resnet50; set model.arch: resnet18"),
    ({"stem": "imagenet"}, r"has the cifar stem \(a 3×3 conv1\) but model.stem is imagenet; set model.stem: cifar"),
    ({"expect_classes": 100}, "has 10 classes but the prepared data has 100"),
    ({"expect_channels": 3}, "has 1 input channels but the prepared data has 3"),
    ({"mean": [0.5, 0.5, 0.5], "std": [0.2] * 3}, "takes 1 input channels but model.mean / model.std have 3 / 3"),
])
def test_weights_that_do_not_fit_the_params_or_the_data_are_refused_by_key(resnet18_file, kwargs, message):
    _, path = resnet18_file
    normalisation = {"mean": kwargs.pop("mean", [0.5]), "std": kwargs.pop("std", [0.25])}
    with pytest.raises(FragileError, match=message):
        importing.import_checkpoint(path, **normalisation, **kwargs)


def test_a_missing_key_under_another_arch_names_what_the_asked_for_arch_lacks(tmp_path, resnet18_file):
    net, _ = resnet18_file
    torch.save(_broken(net.state_dict(), "missing"), tmp_path / "w.pt")
    with pytest.raises(FragileError, match="does not match a torchvision resnet50 .*: missing key 'layer1.0.conv3.weight'"):
        importing.import_checkpoint(tmp_path / "w.pt", [0.5], [0.25], arch="resnet50")


def test_a_non_finite_weight_is_refused_naming_the_tensor(tmp_path, resnet18_file):
    net, _ = resnet18_file
    sd = net.state_dict()
    sd["layer2.0.conv1.weight"] = sd["layer2.0.conv1.weight"].clone()
    sd["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(FragileError, match=r"1 non-finite value \(nan or inf\) in layer2.0.conv1.weight"):
        importing.import_checkpoint(tmp_path / "w.pt", [0.5], [0.25])


class _Code:
    def __reduce__(self):
        return (print, ("ran",))


@pytest.mark.parametrize(("payload", "message"), [
    ({"model": "see elsewhere", "epoch": 3}, "neither a state_dict nor a checkpoint dict holding one under "
                                             "state_dict, model, model_state_dict"),
    ([1, 2, 3], "holds a list, not a state_dict of tensors"),
    ({"fc.weight": torch.zeros(10, 512)}, "does not hold a torchvision ResNet: missing key 'conv1.weight'"),
    ({"conv1.weight": torch.zeros(64, 3, 5, 5), "fc.weight": torch.zeros(10, 512)},
     "has a 5×5 conv1; fragile builds the 7×7 .imagenet. and 3×3 .cifar. stems"),
    ({"state_dict": {}, "hook": _Code()}, "was refused: it carries objects other than tensors"),
])
def test_files_that_are_not_resnet_weights_are_refused_in_one_line(tmp_path, payload, message):
    torch.save(payload, tmp_path / "w.pt")
    with pytest.raises(FragileError, match=message):
        importing.import_checkpoint(tmp_path / "w.pt", [0.5], [0.25])


def test_a_missing_file_or_a_folder_names_model_file(tmp_path):
    with pytest.raises(FragileError, match="model.file .*nope.pt not found"):
        importing.import_checkpoint(tmp_path / "nope.pt", [0.5], [0.25])
    with pytest.raises(FragileError, match="is a folder; point model.file at the weights file"):
        importing.import_checkpoint(tmp_path, [0.5], [0.25])
    (tmp_path / "text.pt").write_text("not torch")
    with pytest.raises(FragileError, match="is not a readable torch.save file"):
        importing.import_checkpoint(tmp_path / "text.pt", [0.5], [0.25])
