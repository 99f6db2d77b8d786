"""`make gpu-check` (`python -m benchmarks.gpu_check`): is this machine ready for the paper's grid?

A short run shaped like the paper-cifar10-resnet50 preset (its params, with ResNet-50, AutoAttack
and PGD at both readings of ε) on a synthetic CIFAR-shaped image folder (3×32×32, 10 classes, a
few hundred PNGs in a temporary folder, read by data.dataset imagefolder): `dvc repro attack_target
evaluate` in a throw-away copy of the project with FRAGILE_DEVICE set, so that train, rank, attack_target,
harden and evaluate all run. Every one of them records its device (models/original/run.json,
the results' `device` field): each must be the checked device. Then the training step and the
FGSM sweep are timed in this process on CIFAR-shaped batches, and their images/s printed.

Without a CUDA device it says so in one line and exits 1. `--device cpu` runs the same check on
the CPU (the test suite does, with a tiny config through --set).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml

from fragile.data import Split
from fragile.devices import to_device
from fragile.errors import FragileError
from fragile.models import build
from fragile.params import Params, params_from_dict
from fragile.presets import apply, load_preset
from fragile.sweep import fgsm_sweep
from fragile.training import make_optimizer, train_one_epoch

ROOT = Path(__file__).resolve().parent.parent
PRESET = "paper-cifar10-resnet50"
SHAPE = (3, 32, 32)
CLASSES = 10
SATURATION, NOISE = 0.3, 40.0  # close colours in noise: the model learns some, not all, so kernels matter
# What `dvc repro` needs of the project (tests/pipeline_repo.py copies the same).
PROJECT = ("dvc.yaml", "stages", "src", "models/import", ".dvc/plots", ".dvcignore")
DEVICE_RECORDS = ("results/rank", "results/attack", "results/harden", "results/evaluate")
# evaluate does not read attack_target's results: both are named, and train, rank and harden run
# as their dependencies.
TARGETS = ("attack_target", "evaluate")


def no_cuda_message() -> str:
    return ("gpu-check: no CUDA device found (torch.cuda.is_available() is false); run it on a machine with an "
            "NVIDIA GPU and a CUDA build of torch, or pass --device cpu")


def synthetic_imagefolder(folder: Path, images: int, seed: int = 0) -> None:
    """`images` RGB PNGs of SHAPE in folder/<class>/, each class a colour of its own plus noise
    (learnable, so training is not a no-op)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    # Evenly spaced hues: a few steps of training tell them apart, so the ranking that follows
    # sees kernels that matter (an untrained model's kernels all leave it at chance).
    colours = np.array([colorsys.hsv_to_rgb(c / CLASSES, SATURATION, 0.6) for c in range(CLASSES)]) * 255
    for i in range(images):
        label = i % CLASSES
        noise = rng.normal(0, NOISE, size=(SHAPE[1], SHAPE[2], 3))
        pixels = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
        (folder / f"class_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"class_{label}" / f"{i:05d}.png")


def smoke_params(data_root: Path, epochs: int, sets: Sequence[str]) -> dict:
    """params.yaml with the preset's overrides, then the smoke run's (the synthetic folder,
    `epochs` epochs with one checkpoint, train.lr 0.005), then `sets` (KEY=VALUE, YAML values)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw = apply(raw, load_preset(ROOT / "presets" / f"{PRESET}.yaml").overrides)
    # A gentler learning rate: in a few dozen steps BatchNorm's running statistics must catch up
    # with the weights, or the model in eval mode sits at chance and the ranking finds no S.
    raw = apply(raw, {"data.dataset": "imagefolder", "data.root": str(data_root), "data.download": False,
                      "train.epochs": epochs, "train.checkpoints": [epochs], "train.lr": 0.005})
    extra = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise FragileError(f"--set {item!r} is not KEY=VALUE")
        extra[key] = yaml.safe_load(value)
    raw = apply(raw, extra)
    params_from_dict(raw, source="the gpu-check params")
    return raw


def make_project(repo: Path, params: dict) -> None:
    repo.mkdir(parents=True)
    # First: `dvc init` refuses a folder whose .dvc/ exists, and .dvc/plots is copied in.
    _run(["dvc", "init", "-q", "--no-scm"], repo, {})
    _run(["dvc", "config", "core.analytics", "false"], repo, {})
    for name in PROJECT:
        source, dest = ROOT / name, repo / name
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                            dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def recorded_devices(repo: Path, checkpoints: Sequence[int]) -> dict[str, str]:
    """The device each device-using stage recorded, by file."""
    files = ["models/original/run.json"]
    files += [f"{folder}/epoch_{n}.json" for folder in DEVICE_RECORDS for n in checkpoints]
    out = {}
    for name in files:
        path = repo / name
        out[name] = json.loads(path.read_text(encoding="utf-8")).get("device", "none") if path.is_file() else "missing"
    return out


def on_device(recorded: str, kind: str) -> bool:
    """Whether a recorded device ("cuda", "cuda:0", "cuda:1, rank 1 of 2 (nccl)") is of `kind`."""
    return recorded.split(",")[0].split(":")[0].strip() == kind


def throughput(params: Params, device: torch.device, images: int, repeats: int = 2) -> dict[str, float]:
    """images/s of train_one_epoch (train.batch_size) and of fgsm_sweep over attack.epsilons
    (attack.batch_size; one image attacked at one ε counts one), best of `repeats` after a warm-up."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (images, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, images))
    torch.manual_seed(params.seed)
    model = to_device(build(params.model.arch, CLASSES, SHAPE[0], [0.5] * 3, [0.25] * 3, params.model.stem), device)
    optimizer = make_optimizer(model, params.train)
    batch = params.train.batch_size
    trained = (images // batch) * batch or images

    def train() -> None:
        train_one_epoch(model, split, optimizer, batch, params.seed, 1, device)

    def attack() -> None:
        model.eval()
        fgsm_sweep(model, split.batches(params.attack.batch_size), params.attack.epsilons, [0], [1],
                   model.net.conv1, device=device)

    return {"train": trained / _best_time(train, device, repeats),
            "fgsm_sweep": images * len(params.attack.epsilons) / _best_time(attack, device, repeats)}


def _best_time(step, device: torch.device, repeats: int) -> float:
    step()  # warm-up: cuDNN's algorithm search, allocator growth
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(args: list[str], cwd: Path, extra_env: dict[str, str]) -> str:
    environ = dict(os.environ, **extra_env)
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    out = subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(args)}` failed ({out.returncode}):\n{tail}")
    return out.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="the device to check (default cuda; cpu for a test)")
    parser.add_argument("--images", type=int, default=400, help="synthetic images in the smoke run")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs of the smoke run")
    parser.add_argument("--bench-images", type=int, default=2048, help="images timed for the images/s")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="another params override on top of the preset's (repeatable)")
    parser.add_argument("--keep", type=Path, help="build the smoke project here and keep it")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(no_cuda_message(), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fragile-gpu-check-") as tmp:
        base = args.keep or Path(tmp)
        try:
            raw = smoke_params(base / "images", args.epochs, args.sets)
        except FragileError as err:
            print(f"gpu-check: {err}", file=sys.stderr)
            return 2
        params = params_from_dict(raw)
        synthetic_imagefolder(base / "images", args.images)
        repo = base / "repo"
        try:
            make_project(repo, raw)
        except RuntimeError as err:
            print(f"gpu-check: {err}", file=sys.stderr)
            return 1
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"gpu-check on {device} ({name}): {PRESET} shape, {params.model.arch}, {args.images} synthetic "
              f"{'×'.join(map(str, SHAPE))} images, {args.epochs} epochs")
        start = time.perf_counter()
        try:
            _run(["dvc", "repro", *TARGETS], repo, {"FRAGILE_DEVICE": args.device})
        except RuntimeError as err:
            print(f"gpu-check: {err}", file=sys.stderr)
            return 1
        print(f"dvc repro {' '.join(TARGETS)}: {time.perf_counter() - start:.1f} s")
        devices = recorded_devices(repo, params.train.checkpoints)
        wrong = {name: found for name, found in devices.items() if not on_device(found, device.type)}
        for name, found in devices.items():
            print(f"  {name}: {found}{'' if name not in wrong else f'  (expected {device.type})'}")
        rates = throughput(params, device, args.bench_images)
        print(f"train: {rates['train']:.0f} images/s (batch {params.train.batch_size}); FGSM sweep: "
              f"{rates['fgsm_sweep']:.0f} images/s ({len(params.attack.epsilons)} ε, batch {params.attack.batch_size})")
    if wrong:
        print(f"gpu-check: {len(wrong)} stage output(s) not on {device.type}: {', '.join(sorted(wrong))}",
              file=sys.stderr)
        return 1
    print(f"gpu-check: every stage ran on {device.type}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
