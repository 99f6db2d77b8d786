"""One checkpoint set up for an analysis stage (rank, attack_target, evaluate), in this process.

`open_checkpoint` does what those stages share, in this order: re-run the command under
torchrun when FRAGILE_NPROC asks for several processes; load the checkpoint (it must fit
the prepared data); find the analysed conv (an unknown name fails before any work); read S
and S' of the rank result (they must split exactly that conv's kernels); take the first
`max_examples` of the split; join the process group and take this process's shard of whole
batches. `CheckpointRun.combine` then runs a computation on the shard, with a progress bar,
and merges the processes' results; rank 0 (`is_main`) writes the outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from fragile import distributed, models
from fragile.data import Split, load_split, read_manifest
from fragile.devices import pick_device, to_device
from fragile.progress import progress_bar
from fragile.results import read_kernel_sets

M = TypeVar("M", bound=distributed.Mergeable)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class CheckpointRun:
    checkpoint: Path
    model: models.FragileNet  # on `device`, in eval mode
    meta: dict[str, Any]  # the checkpoint's metadata (arch, epoch, ...)
    layer: str  # analysis.layer
    conv: nn.Conv2d  # that conv of `model`
    sets: tuple[list[int], list[int]] | None  # (S, S') when a rank result was given
    part: Split  # this process's batches (all of them alone)
    batch_size: int
    examples: int  # over all processes
    device: torch.device
    ctx: distributed.Context

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def fragile(self) -> list[int]:
        return self._sets()[0]

    @property
    def null(self) -> list[int]:
        return self._sets()[1]

    def _sets(self) -> tuple[list[int], list[int]]:
        if self.sets is None:
            raise ValueError("this run was opened without a rank result")  # a bug, not user input
        return self.sets

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    def where(self) -> str:
        """"cpu", or "cuda:0, rank 0 of 4 (nccl)" under torchrun."""
        return distributed.describe(self.device, self.ctx)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A fresh pass over this process's batches."""
        return self.part.batches(self.batch_size)

    def combine(self, task: str, compute: Callable[[Progress], M], passes: int = 1, note: str = "") -> M:
        """`compute(progress)` on this process's shard under a progress bar ("<task> epoch_N.pt
        (<note>)" over `passes` passes of the shard), merged over the processes."""
        label = f"{task} {self.checkpoint.name}" + (f" ({note})" if note else "")
        with progress_bar(label, passes * len(self.part)) as advance:
            return distributed.combine(self.part, lambda: compute(advance))

    def load_peer(self, path: str | os.PathLike[str]) -> models.FragileNet:
        """Another checkpoint of the same architecture, classes and input channels (the hardened
        model), on this run's device."""
        peer = models.load(path, expect_arch=self.meta["arch"], expect_classes=self.meta["num_classes"],
                           expect_channels=self.meta["in_channels"])
        to_device(peer, self.device)
        return peer


def open_checkpoint(stage: str, checkpoint: str | os.PathLike[str], data: str | os.PathLike[str], layer: str,
                    split: str, max_examples: int, batch_size: int,
                    sets: str | os.PathLike[str] | None = None) -> CheckpointRun | None:
    """The checkpoint set up for `stage` on the first `max_examples` of the `split` split; None
    when this call re-ran the stage under torchrun (the caller returns: those processes did
    the work)."""
    if distributed.relaunch(stage):  # FRAGILE_NPROC > 1: this command again, under torchrun
        return None
    data = Path(data)
    model, meta = models.load_with_meta(checkpoint, **models.fits_data(read_manifest(data)))
    conv = models.conv_layer(model, layer)  # an unknown name fails here, before any work
    kernel_sets = read_kernel_sets(sets, layer, conv.out_channels) if sets is not None else None
    examples = load_split(data, split).head(max_examples)
    device, ctx = distributed.start(pick_device())
    to_device(model, device)
    return CheckpointRun(checkpoint=Path(checkpoint), model=model, meta=meta, layer=layer, conv=conv,
                         sets=kernel_sets, part=distributed.shard(examples, batch_size, ctx), batch_size=batch_size,
                         examples=len(examples), device=device, ctx=ctx)
