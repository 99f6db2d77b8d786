from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
from torchvision import datasets

from fragile.data import (
    load_raw,
    load_split,
    make_splits,
    read_manifest,
    stratified_split,
    write_prepared,
)
from fragile.errors import FragileError
from fragile.params import DataParams


def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x0803, n, h, w) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=30, n_test=20, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": _idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": _idx_labels(np.arange(n_test) % 10),
    }
    for name, payload in parts.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return parts


@pytest.mark.parametrize(
    ("dataset", "layout", "gz"),
    [
        ("mnist", "MNIST/raw", False),  # torchvision's own layout
        ("fashion-mnist", "", True),  # Debian's dataset-fashion-mnist: flat .gz files
        ("mnist", "raw", True),
    ],
)
def test_mnist_idx_files_load_through_torchvision(tmp_path, dataset, layout, gz):
    parts = _write_mnist(tmp_path / layout if layout else tmp_path, gz=gz)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    raw = load_raw(DataParams(dataset=dataset, root=str(tmp_path), download=False))
    assert raw.train_images.shape == (30, 1, 28, 28) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (20, 1, 28, 28)
    expected = np.frombuffer(parts["train-images-idx3-ubyte"][16:], dtype=np.uint8).reshape(30, 28, 28)
    assert np.array_equal(raw.train_images[:, 0], expected)
    assert raw.train_labels.tolist() == [i % 10 for i in range(30)]
    assert raw.num_classes == 10
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # the user's folder is untouched


def test_cifar10_pickles_load_through_torchvision(tmp_path, monkeypatch):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name, n in [("data_batch_1", 6), ("data_batch_2", 4), ("test_batch", 5)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        (base / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        batches[name] = (data, labels)
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    md5 = lambda name: hashlib.md5((base / name).read_bytes()).hexdigest()  # noqa: E731
    # torchvision checks every file's md5 against the real archive's: point it at ours.
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[n, md5(n)] for n in ("data_batch_1", "data_batch_2")])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5("batches.meta")})
    raw = load_raw(DataParams(dataset="cifar10", root=str(tmp_path), download=False))
    assert raw.train_images.shape == (10, 3, 32, 32)
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert np.array_equal(raw.train_images[0], first)
    assert raw.test_labels.tolist() == batches["test_batch"][1]


def test_missing_files_offline_name_the_dataset_folder_and_fix(tmp_path):
    with pytest.raises(FragileError) as err:
        load_raw(DataParams(dataset="fashion-mnist", root=str(tmp_path / "nowhere"), download=False))
    message = str(err.value)
    assert "fashion-mnist" in message and "nowhere" in message and "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(FragileError, match="cifar10.*cifar-10-batches-py"):
        load_raw(DataParams(dataset="cifar10", root=str(tmp_path), download=False))


def test_mnist5k_is_the_embedded_default():
    raw = load_raw(DataParams())
    assert raw.train_images.shape == (5000, 1, 28, 28)
    assert np.bincount(raw.train_labels).tolist() == [500] * 10
    assert raw.train_images.max() > 200  # real pixel values, not [0, 1] floats


def test_stratified_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(4), 25)
    rest, held = stratified_split(labels, 0.2, np.random.default_rng(3))
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert sorted(np.concatenate([rest, held]).tolist()) == list(range(100))
    again = stratified_split(labels, 0.2, np.random.default_rng(3))[1]
    assert np.array_equal(held, again)


def test_prepared_folder_round_trip_and_tamper_detection(tmp_path):
    raw = load_raw(DataParams())
    splits = make_splits(raw, DataParams(), seed=0)
    # The default val_fraction 0.2 of the 4,000 digits left after the 1,000 test digits: 800 ranking examples
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3200, 800, 1000]
    manifest = write_prepared(tmp_path, splits, 10, "mnist5k")
    assert manifest["splits"]["test"]["counts_per_class"] == [100] * 10
    loaded = load_split(tmp_path, "val")
    assert np.array_equal(loaded.images, splits["val"].images)
    labels = np.load(tmp_path / "val_labels.npy")
    labels[0] = 11
    np.save(tmp_path / "val_labels.npy", labels)
    with pytest.raises(FragileError, match="val_labels.npy does not match the sha256"):
        load_split(tmp_path, "val")


def test_prepared_arrays_of_the_wrong_shape_or_labels_are_caught(tmp_path):
    from fragile.data import Split

    good = Split(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 2, 3]))
    write_prepared(tmp_path, {"train": good, "val": good, "test": Split(good.images, np.array([0, 1, 2, 12]))}, 4, "x")
    with pytest.raises(FragileError, match="labels outside 0..3"):
        load_split(tmp_path, "test")
    write_prepared(tmp_path, {"train": good, "val": Split(np.zeros((4, 1, 8, 7), np.uint8), good.labels), "test": good}, 4, "x")
    with pytest.raises(FragileError, match=r"expected \(N, 1, 8, 8\) uint8"):
        load_split(tmp_path, "val")


# ---------------------------------------------------------------- imagefolder


def _png(path, pixels: np.ndarray) -> np.ndarray:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _class_folders(root, classes=("cat", "dog", "emu"), per_class=10, shape=(6, 8, 3), seed=0):
    """root/<class>/<i>.png with random pixels; {class: [pixels, ...]} in file-name order."""
    rng = np.random.default_rng(seed)
    return {c: [_png(root / c / f"{i:02d}.png", rng.integers(0, 256, shape, dtype=np.uint8)) for i in range(per_class)]
            for c in classes}


def test_an_image_folder_of_classes_is_one_pool_split_per_class(tmp_path):
    written = _class_folders(tmp_path / "pets")
    params = DataParams(dataset="imagefolder", root=str(tmp_path / "pets"), val_fraction=0.2, test_fraction=0.2)
    raw = load_raw(params)
    assert raw.classes == ("cat", "dog", "emu") and raw.num_classes == 3
    assert raw.train_images.shape == (30, 3, 6, 8) and raw.train_images.dtype == np.uint8  # (N, C, H, W)
    assert raw.train_labels.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert np.array_equal(raw.train_images[11], written["dog"][1].transpose(2, 0, 1))
    splits = make_splits(raw, params, seed=0)
    assert [np.bincount(splits[s].labels).tolist() for s in ("train", "val", "test")] == [[6] * 3, [2] * 3, [2] * 3]
    manifest = write_prepared(tmp_path / "prepared", splits, raw.num_classes, "imagefolder", raw.classes)
    assert read_manifest(tmp_path / "prepared")["classes"] == ["cat", "dog", "emu"] == manifest["classes"]
    assert np.array_equal(load_split(tmp_path / "prepared", "test").images, splits["test"].images)
    again = make_splits(load_raw(params), params, seed=0)
    assert all(np.array_equal(again[s].images, splits[s].images) for s in splits)


def test_train_and_val_folders_give_the_train_pool_and_the_test_split_in_grayscale(tmp_path):
    # ImageNet's layout: root/train and root/val; with no test/ the val/ folder is held out as test.
    for part, n in (("train", 5), ("val", 2)):
        _class_folders(tmp_path / part, classes=("a", "b"), per_class=n, shape=(4, 4), seed=n)
    params = DataParams(dataset="imagefolder", root=str(tmp_path), val_fraction=0.2)
    raw = load_raw(params)
    assert raw.train_images.shape == (10, 1, 4, 4) and raw.test_images.shape == (4, 1, 4, 4)
    assert raw.val_images is None
    splits = make_splits(raw, params, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [8, 2, 4]
    (tmp_path / "test" / "a").mkdir(parents=True)
    _class_folders(tmp_path / "test", classes=("a", "b"), per_class=3, shape=(4, 4))
    raw = load_raw(params)  # train/, val/ and test/: each is its own split
    splits = make_splits(raw, params, seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [10, 4, 6]


def test_one_colour_image_among_grayscale_ones_makes_every_image_rgb(tmp_path):
    _class_folders(tmp_path, classes=("a", "b"), per_class=2, shape=(4, 4))
    gray = np.full((4, 4), 77, np.uint8)
    _png(tmp_path / "a" / "00.png", gray)
    _png(tmp_path / "b" / "colour.png", np.zeros((4, 4, 3), np.uint8))
    raw = load_raw(DataParams(dataset="imagefolder", root=str(tmp_path)))
    assert raw.train_images.shape == (5, 3, 4, 4)
    assert (raw.train_images[0] == 77).all()  # a gray image repeated in R, G and B


def test_images_of_different_sizes_need_data_image_size(tmp_path):
    _class_folders(tmp_path, classes=("a", "b"), per_class=2, shape=(4, 4, 3))
    # 8 wide, 4 high: left half black, right half white.
    _png(tmp_path / "b" / "wide.png", np.repeat(np.repeat([[0, 255]], 4, axis=0), 4, axis=1).astype(np.uint8))
    with pytest.raises(FragileError, match=r"wide.png is 8×4 but the first training image is 4×4; set data.image_size"):
        load_raw(DataParams(dataset="imagefolder", root=str(tmp_path)))
    raw = load_raw(DataParams(dataset="imagefolder", root=str(tmp_path), image_size=4))
    assert raw.train_images.shape == (5, 3, 4, 4)
    # Shorter side already 4: no resampling, the centre 4×4 of the 8×4 image is 2 black and 2 white columns.
    assert raw.train_images[4, 0].tolist() == [[0, 0, 255, 255]] * 4
    small = load_raw(DataParams(dataset="imagefolder", root=str(tmp_path), image_size=2))
    assert small.train_images.shape == (5, 3, 2, 2)


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: None, "data.root .*nowhere is not a folder"),
    (lambda root: (root / "cat").mkdir(parents=True), "has no usable class folders .*Found no valid file"),
    (lambda root: (root / "train" / "cat").mkdir(parents=True), "has train/ but no test/ or val/ beside it"),
    (lambda root: (_class_folders(root / "train", ("cat", "dog"), 1, (4, 4)),
                   _class_folders(root / "val", ("cat", "emu"), 1, (4, 4))),
     r"val and .*train have different class folders \(dog, emu in one only\)"),
    (lambda root: (_class_folders(root, ("cat",), 1, (4, 4)), (root / "cat" / "bad.png").write_bytes(b"no png")),
     "bad.png is not a readable image"),
    (lambda root: _png(root / "cat" / "deep.png", np.zeros((4, 4), np.uint16)),
     "deep.png is a I;16 image; only 8-bit images are read"),
], ids=["no folder", "no images", "no test folder", "other classes", "broken file", "16-bit"])
def test_an_unusable_image_folder_is_one_line_naming_the_problem(tmp_path, make, message):
    root = tmp_path / "nowhere"
    make(root)
    with pytest.raises(FragileError, match=message) as err:
        load_raw(DataParams(dataset="imagefolder", root=str(root)))
    assert "\n" not in str(err.value)
