"""Item 4: the train stage's images per second against a bare PyTorch loop.

The stage runs in this process (`stages.train.main`: DVCLive logging, progress bar,
checkpoints, resume state) on the default run's training config (train.epochs epochs,
checkpoints at train.checkpoints) over a prepared copy of the first N training images (all
of them by default). The bare loop builds the same model, draws the same batches in the same
order with the same optimizer and scheduler, and evaluates the validation split after every
epoch like the stage does; its training steps alone are timed too, so both ratios are
reported.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.timing import Ratio, interleaved
from fragile import models
from fragile.data import load_split, read_manifest, write_prepared
from fragile.devices import batch_to, to_device
from fragile.params import Params
from fragile.reproducibility import seed_everything
from fragile.training import epoch_order, make_optimizer, make_scheduler
from stages.train import main as train_stage


def bare_loop(data: Path, params: Params, device: torch.device, timings: dict[str, float]) -> None:
    manifest = read_manifest(data)
    train, val = load_split(data, "train"), load_split(data, "val")
    seed_everything(params.seed)
    model = models.build(params.model.arch, manifest["num_classes"], manifest["in_channels"], manifest["mean"],
                         manifest["std"], params.model.stem)
    to_device(model, device)
    optimizer = make_optimizer(model, params.train)
    scheduler = make_scheduler(optimizer, params.train)
    bs = params.train.batch_size
    timings["train"] = 0.0
    for epoch in range(1, params.train.epochs + 1):
        order = epoch_order(params.seed, epoch, len(train))
        start = time.perf_counter()
        model.train()
        for first in range(0, (len(order) // bs) * bs, bs):
            idx = order[first : first + bs]
            images = batch_to(torch.from_numpy(train.images[idx]).float().div_(255), device)
            labels = torch.from_numpy(train.labels[idx]).to(device)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        timings["train"] += time.perf_counter() - start
        scheduler.step()
        model.eval()
        with torch.no_grad():
            for images, labels in val.batches(500):
                model(batch_to(images, device))


def run(data: Path, params_path: Path, images: int, repeats: int) -> dict[str, object]:
    device = torch.device("cpu")
    from fragile.params import load_params

    params = load_params(params_path)
    with tempfile.TemporaryDirectory(prefix="fragile-bench-train-") as tmp:
        work = Path(tmp)
        manifest = read_manifest(data)
        splits = {name: load_split(data, name) for name in ("train", "val", "test")}
        if images:
            splits["train"] = splits["train"].head(images)
        write_prepared(work / "data", splits, manifest["num_classes"], manifest["dataset"])
        shutil.copyfile(params_path, work / "params.yaml")
        bare_train: list[float] = []

        def bare() -> None:
            timings: dict[str, float] = {}
            bare_loop(work / "data", params, device, timings)
            bare_train.append(timings["train"])

        def stage() -> None:
            train_stage(data=work / "data", models_dir=work / "models", live=work / "live",
                        params=work / "params.yaml", resume_dir=work / "resume")

        import dvclive  # noqa: F401 - the stage's one lazy import, kept out of its first timing

        # Warm-up: both paths once on a one-batch copy of the data.
        write_prepared(work / "warm", {**splits, "train": splits["train"].head(params.train.batch_size)},
                       manifest["num_classes"], manifest["dataset"])
        warm = {
            "bare": lambda: bare_loop(work / "warm", params, device, {}),
            "stage": lambda: train_stage(data=work / "warm", models_dir=work / "models", live=work / "live",
                                         params=work / "params.yaml", resume_dir=work / "resume"),
        }
        times = interleaved({"bare loop": bare, "train stage": stage}, repeats, warm)
    usable = (len(splits["train"]) // params.train.batch_size) * params.train.batch_size * params.train.epochs
    return {
        "times": times,
        "images_per_s": {name: [usable / t for t in values] for name, values in times.items()},
        "ratios": [
            Ratio.of("train stage vs bare loop with its validation pass (images/s)", times["bare loop"],
                     times["train stage"], 0.95),
            Ratio.of("train stage vs bare loop, training steps only (images/s)", bare_train, times["train stage"]),
        ],
        "images": len(splits["train"]),
        "epochs": params.train.epochs,
        "checkpoints": list(params.train.checkpoints),
        "batch_size": params.train.batch_size,
    }
