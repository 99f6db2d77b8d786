"""The train stage's work when model.source is file: import model.file's weights instead of
training, as the one checkpoint (epoch 0) the later stages analyse.

The checkpoint is what training would have written (fragile.importing), so rank, attack_target,
harden, evaluate, figures and report run on it unchanged. DVCLive gets one step: the imported
weights' loss and accuracy on the training subset and the validation split, so the report's
"after the last epoch" row and `dvc metrics diff` describe the imported model as they would a
trained one. run.json records the device that measured them and where the weights came from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fragile import models
from fragile.atomic import write_json
from fragile.data import load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.importing import IMPORTED_EPOCH, import_weights
from fragile.layout import RUN_INFO, checkpoint_file
from fragile.params import Params
from fragile.training import evaluate_split, training_subset

Say = Callable[[str], None]


def import_model(data: Path, models_dir: Path, live: Path, p: Params, say: Say) -> None:
    """models_dir/epoch_0.pt from model.file, its DVCLive step in `live`, and run.json."""
    from dvclive import Live

    manifest = read_manifest(data)
    mean, std = models.normalisation(p.model, manifest)
    run_params = {"seed": p.seed, "model": p.as_dict()["model"], "train": p.as_dict()["train"]}
    out = models_dir / checkpoint_file(IMPORTED_EPOCH)
    models_dir.mkdir(parents=True, exist_ok=True)
    meta = import_weights(
        p.model.file, out, mean, std, arch=p.model.arch, stem=p.model.stem,
        meta={"dataset": manifest["dataset"], "params": run_params}, **models.fits_data(manifest),
    )
    say(f"imported {meta['arch']} ({meta['stem']} stem) from {p.model.file} as {out}")
    device = pick_device()
    model = to_device(models.load(out, **models.fits_data(manifest)), device)
    train_split = training_subset(load_split(data, "train"), p.train.max_examples, p.seed)
    measured = {name: evaluate_split(model, split, p.train.batch_size, device)
                for name, split in (("train", train_split), ("val", load_split(data, "val")))}
    with Live(dir=str(live), save_dvc_exp=False, dvcyaml=None) as logger:
        for name, (loss, accuracy) in measured.items():
            logger.log_metric(f"{name}/loss", loss)
            logger.log_metric(f"{name}/accuracy", accuracy)
        logger.next_step()
    say(f"imported weights: train loss {measured['train'][0]:.4f} acc {measured['train'][1]:.4f}"
        f" | val loss {measured['val'][0]:.4f} acc {measured['val'][1]:.4f} (on {device})")
    # The device is recorded here, not in the checkpoint: its bytes must not depend on it.
    write_json(models_dir / RUN_INFO, {"device": device.type, "processes": 1,
                                       "imported_from": meta["imported_from"]})

