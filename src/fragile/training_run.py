"""The train stage's work: train model.arch on the prepared data, save a checkpoint at every
epoch in train.checkpoints, log each epoch to DVCLive, and keep a resume state.

An interrupted run (Ctrl-C, a killed process, a reboot) resumes from its last completed
epoch on the next run, with the weights an uninterrupted run would have: see fragile.resume
for what is kept and where. With several processes (train.nproc), rank 0 alone reads and
writes the resume state, the checkpoints, DVCLive and run.json; the others get the resumed
state from it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fragile import distributed, models, resume, training
from fragile.atomic import write_json
from fragile.background import ordered_writes
from fragile.data import MANIFEST, load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.layout import RUN_INFO, checkpoint_file
from fragile.params import Params
from fragile.progress import progress_bar
from fragile.reproducibility import seed_everything
from fragile.training import EpochMetrics, make_optimizer, make_scheduler, train_epochs, training_subset

Say = Callable[[str], None]


def train(data: Path, models_dir: Path, live: Path, resume_dir: Path, p: Params, say: Say) -> None:
    """Checkpoints in `models_dir`, DVCLive metrics in `live`, the resume state in `resume_dir`
    (removed when training ends)."""
    from dvclive import Live

    manifest = read_manifest(data)
    train_split = training_subset(load_split(data, "train"), p.train.max_examples, p.seed)
    val_split = load_split(data, "val")
    device, ctx = distributed.start(pick_device())
    distributed.check_training(p.train.batch_size, len(train_split), p.train.sync_bn, device, ctx)
    say(f"training {p.model.arch} on {manifest['dataset']} ({len(train_split)} images)"
        f" on {distributed.describe(device, ctx)}")
    seed_everything(p.seed)
    model = models.build(
        p.model.arch, manifest["num_classes"], manifest["in_channels"], manifest["mean"], manifest["std"], p.model.stem
    )
    run_params = {"seed": p.seed, "model": p.as_dict()["model"], "train": p.as_dict()["train"]}
    meta = {
        "arch": p.model.arch,
        "stem": p.model.stem,
        "num_classes": manifest["num_classes"],
        "in_channels": manifest["in_channels"],
        "mean": manifest["mean"],
        "std": manifest["std"],
        "dataset": manifest["dataset"],
        "params": run_params,
    }
    to_device(model, device)
    optimizer = make_optimizer(model, p.train)
    scheduler = make_scheduler(optimizer, p.train)
    fingerprint = resume.make_fingerprint(
        run_params, Path(data) / MANIFEST, [Path(inspect.getfile(m)) for m in (training, models, resume)]
        + [Path(__file__)],
    )
    folder = resume.ResumeFolder(resume_dir)
    if ctx.is_main:
        models_dir.mkdir(parents=True, exist_ok=True)
        # The device is recorded here, not in the checkpoints: their bytes must not depend on it.
        write_json(models_dir / RUN_INFO, {"device": device.type, "processes": ctx.world_size})
    history, start = distributed.on_main(
        lambda: _resume(folder, fingerprint, p.train.checkpoints, models_dir, model, optimizer, scheduler, say)
    )
    distributed.broadcast_training_state(model, optimizer, scheduler)
    wrapped = distributed.wrap_for_training(model, device, p.train.sync_bn, ctx)

    # DVC deletes dvclive/train with the other outputs before a rerun, so the metrics of the
    # epochs already done are logged again from the resume state: the files end up the same
    # as an uninterrupted run's, and the step count continues at the resumed epoch.
    # Checkpoints and resume states are copied at the epoch's end and written in the
    # background, in order, while the next epoch trains; the block ends when all are on disk.
    live_logger = Live(dir=str(live), save_dvc_exp=False, dvcyaml=None) if ctx.is_main else contextlib.nullcontext()
    with live_logger as logger, ordered_writes() as later:
        for past in history:
            log_epoch(logger, EpochMetrics(**past))
        for m in train_epochs(
            model, train_split, val_split, p.train, p.seed, device, start_epoch=start,
            optimizer=optimizer, scheduler=scheduler, progress=progress_bar if ctx.is_main else None,
            wrapped=wrapped, rank=ctx.rank, world_size=ctx.world_size,
        ):
            log_epoch(logger, m)
            if not ctx.is_main:
                continue
            say(f"epoch {m.epoch}/{p.train.epochs}: train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f}"
                f" | val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f}")
            path = models_dir / checkpoint_file(m.epoch)
            if m.epoch in p.train.checkpoints:
                later.submit(models.write_snapshot, path, models.snapshot(model, {**meta, "epoch": m.epoch}))
            history.append(m.as_dict())
            if m.epoch < p.train.epochs:  # after the last epoch the state would only be removed
                kept = path.name if m.epoch in p.train.checkpoints else None
                if kept:
                    later.submit(folder.keep_checkpoint, path)
                # Written last: a state for epoch N implies its checkpoints are already kept.
                later.submit(folder.write, folder.snapshot(fingerprint, m.epoch, model, optimizer, scheduler, history,
                                                           weights_in=kept))
    if ctx.is_main:
        folder.clear()


def log_epoch(logger: Any, m: EpochMetrics) -> None:
    if logger is None:  # not rank 0 of several processes: rank 0 alone logs
        return
    logger.log_metric("train/loss", m.train_loss)
    logger.log_metric("train/accuracy", m.train_accuracy)
    logger.log_metric("val/loss", m.val_loss)
    logger.log_metric("val/accuracy", m.val_accuracy)
    logger.log_metric("learning_rate", m.learning_rate)
    logger.next_step()


def _resume(
    folder: resume.ResumeFolder,
    fingerprint: resume.Fingerprint,
    checkpoints: tuple[int, ...],
    models_dir: Path,
    model: models.FragileNet,
    optimizer: Any,
    scheduler: Any,
    say: Say,
) -> tuple[list[dict[str, float]], int]:
    """(metrics history, first epoch to train), restoring the state when a usable one exists."""
    state, why_not = folder.load(fingerprint)
    if why_not:
        say(f"{why_not}; training from epoch 1")
    if state is None:
        return [], 1
    done = [checkpoint_file(e) for e in checkpoints if e <= state.epoch]
    try:
        folder.restore_checkpoints(done, models_dir)
    except FileNotFoundError as missing:
        say(f"ignoring {folder.state_file}: its checkpoint {missing} is missing; training from epoch 1")
        return [], 1
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    resume.restore_rng(state.rng)
    restored = f", checkpoints {', '.join(done)} restored" if done else ""
    say(f"resuming from epoch {state.epoch} (state in {folder.path}{restored})")
    return state.history, state.epoch + 1
