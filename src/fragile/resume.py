"""Resume state of the train stage: what an interrupted run needs to continue exactly.

DVC deletes a stage's outputs (models/original/, dvclive/train/) before it reruns the
stage, so the state lives in a folder that DVC does not manage and git and DVC ignore
(the train stage's --resume-dir, under .fragile/). After every epoch but the last (when training ends
the folder is removed) it holds:

- `state.pt`: model (or, at an epoch with a checkpoint, the name of that checkpoint, which
  holds the same weights), optimizer and scheduler state dicts, the last completed epoch, the
  torch/CUDA/numpy/python RNG states, the metrics of every completed epoch (so DVCLive's
  files can be rewritten) and a fingerprint of everything that determines training;
- `epoch_<N>.pt`: a hard link to (or a copy of) every checkpoint saved so far, put back
  into models/original/ on resume (DVC has deleted them).

The data order is not stored: epoch e's order is `epoch_order(seed, e)`, a pure function
of the seed (in the fingerprint) and the epoch. Everything is read with
`torch.load(weights_only=True)`, so a state file carrying pickled code is refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import random
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fragile.atomic import atomic_path
from fragile.errors import FragileError
from fragile.models import read_checkpoint

STATE_FILE = "state.pt"
STATE_FORMAT = 1


@dataclass(frozen=True)
class Fingerprint:
    """What determines the trained weights: params, the prepared data and the training code."""

    params: dict[str, Any]  # seed, model.*, train.*
    data_sha256: str  # of the prepared data's manifest.json (which holds every array's sha256)
    code_sha256: str  # of the training code (a changed training loop is a different run)

    @property
    def digest(self) -> str:
        blob = json.dumps(
            {"params": self.params, "data": self.data_sha256, "code": self.code_sha256}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "data_sha256": self.data_sha256, "code_sha256": self.code_sha256}

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Human-readable list of what differs from a stored fingerprint dict."""
        diffs = [
            f"{key} {_short(old)} -> {_short(new)}"
            for key, old, new in _flat_diff(other.get("params", {}), self.params)
        ]
        if other.get("data_sha256") != self.data_sha256:
            diffs.append("the prepared data changed")
        if other.get("code_sha256") != self.code_sha256:
            diffs.append("the training code changed")
        return diffs


def make_fingerprint(params: dict[str, Any], manifest_path: Path, code_files: list[Path]) -> Fingerprint:
    code = hashlib.sha256()
    for path in code_files:
        code.update(Path(path).read_bytes())
    return Fingerprint(params, hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(), code.hexdigest())


# ---------------------------------------------------------------- RNG states


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain data (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# ---------------------------------------------------------------- the state folder


@dataclass(frozen=True)
class ResumeState:
    epoch: int  # last completed epoch
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    history: list[dict[str, float]]  # one EpochMetrics dict per completed epoch


class ResumeFolder:
    """The state folder of one stage; every file in it is written atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    def checkpoint(self, name: str) -> Path:
        return self.path / name

    @staticmethod
    def snapshot(
        fingerprint: Fingerprint,
        epoch: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        history: list[dict[str, float]],
        weights_in: str | None = None,
    ) -> dict[str, Any]:
        """The state as it is now, copied: training may go on changing it while `write` runs.

        `weights_in` names a checkpoint of this epoch kept in the folder: the state then points
        to its weights instead of storing them a second time.
        """
        weights = {"model_checkpoint": weights_in} if weights_in else {"model": model.state_dict()}
        return copy.deepcopy({
            "format": STATE_FORMAT,
            "fingerprint": fingerprint.digest,
            "fingerprint_inputs": fingerprint.as_dict(),
            "epoch": epoch,
            **weights,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": capture_rng(),
            "history": history,
        })

    def write(self, snapshot: dict[str, Any]) -> None:
        with atomic_path(self.state_file) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(snapshot, fh)

    def keep_checkpoint(self, checkpoint: Path) -> None:
        """Keep a checkpoint just saved in the folder (DVC deletes the original on rerun).

        A hard link costs no copy and is safe: checkpoints are replaced by rename, never
        rewritten in place. Where links are not possible (another filesystem), a copy.
        """
        with atomic_path(self.checkpoint(checkpoint.name)) as tmp:
            tmp.unlink()
            try:
                os.link(checkpoint, tmp)
            except OSError:
                shutil.copyfile(checkpoint, tmp)

    def restore_checkpoints(self, names: list[str], models_dir: Path) -> list[Path]:
        """Put the kept checkpoints back into models_dir; a missing one means the state is unusable."""
        restored = []
        for name in names:
            source = self.checkpoint(name)
            if not source.is_file():
                raise FileNotFoundError(source)
            with atomic_path(models_dir / name) as tmp:
                shutil.copyfile(source, tmp)
            restored.append(models_dir / name)
        return restored

    def load(self, fingerprint: Fingerprint) -> tuple[ResumeState | None, str | None]:
        """(state, None) for a usable state; (None, why it is not used) otherwise; (None, None)
        when there is no state at all."""
        self._remove_stale_temporaries()
        path = self.state_file
        if not path.is_file():
            return None, None
        try:
            if not zipfile.is_zipfile(path):
                raise ValueError("not a torch.save archive")
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return None, f"ignoring {path}: it carries objects other than tensors and plain data (refused)"
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
            return None, f"ignoring {path}: it is unreadable ({type(err).__name__})"
        if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
            return None, f"ignoring {path}: written by another version of fragile"
        if payload.get("fingerprint") != fingerprint.digest:
            diffs = fingerprint.differences(payload.get("fingerprint_inputs") or {})
            what = "; ".join(diffs[:3]) + ("; ..." if len(diffs) > 3 else "") if diffs else "other settings"
            return None, f"ignoring {path}: it was saved for other params or data ({what})"
        model = payload.get("model")
        if model is None:
            kept = self.checkpoint(str(payload.get("model_checkpoint")))
            try:
                model = read_checkpoint(kept)["state_dict"]
            except FragileError:
                return None, f"ignoring {path}: the checkpoint holding its weights ({kept}) is missing or unreadable"
        return (
            ResumeState(
                epoch=int(payload["epoch"]),
                model=model,
                optimizer=payload["optimizer"],
                scheduler=payload["scheduler"],
                rng=payload["rng"],
                history=list(payload["history"]),
            ),
            None,
        )

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _remove_stale_temporaries(self) -> None:
        """A process killed mid-write leaves its `.name.*.tmp` behind; nothing reads them."""
        if self.path.is_dir():
            for tmp in self.path.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _flat_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _flat_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:21] + "..."
