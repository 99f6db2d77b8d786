"""Several processes, one result: torchrun launch, process groups, shards and exact reductions.

How a stage gets several processes:
- train: `train.nproc` > 1 (a tracked param: it changes how BatchNorm sees a batch);
- rank, attack_target, evaluate: the environment variable `FRAGILE_NPROC` > 1 (not a param:
  the results are the same as one process's, so moving a run to more GPUs invalidates nothing).

A stage asked for N processes that is not already under a launcher re-runs its own command
line under torchrun (`python -m torch.distributed.run --nproc-per-node N`), `--standalone` on
one machine, or with the rendezvous settings in `FRAGILE_TORCHRUN_ARGS` across machines
(e.g. "--nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint host0:29500 --rdzv-id run1").
So the same `dvc.yaml` command serves one process, N GPUs and several nodes. A process started
by torchrun (or any launcher that sets WORLD_SIZE/RANK/LOCAL_RANK) joins the process group:
NCCL on CUDA, gloo otherwise.

Evaluation stages split their examples into whole batches per process (`shard`): every batch
is the batch one process would have seen, so its integer counts are the same, and the counts
of all processes are merged by the result types themselves (`combine` calls their `merge`).
Float sums (per-kernel losses, Taylor scores) are added in rank order: the same from run to
run, equal to one process's up to float64 rounding.
Only rank 0 writes outputs.
"""

from __future__ import annotations

import atexit
import functools
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
import torch.distributed as dist

from fragile.data import Split
from fragile.errors import FragileError

NPROC_VAR = "FRAGILE_NPROC"
TORCHRUN_ARGS_VAR = "FRAGILE_TORCHRUN_ARGS"
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")

T = TypeVar("T")
M = TypeVar("M", bound="Mergeable")


@dataclass(frozen=True)
class Context:
    """This process's place among the processes of one stage run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Started by torchrun or another launcher that sets the env:// rendezvous variables."""
    return "WORLD_SIZE" in os.environ


def context() -> Context:
    if not launched():
        return Context()
    try:
        rank, world, local = (int(os.environ.get(name, "0")) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        values = ", ".join(f"{n}={os.environ.get(n)!r}" for n in LAUNCHER_VARS)
        raise FragileError(f"the launcher's variables are not integers ({values}); start the stage with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise FragileError(f"RANK={rank} is outside WORLD_SIZE={world}; start the stage with torchrun")
    return Context(rank=rank, world_size=world, local_rank=local)


# ---------------------------------------------------------------- launching


def requested_processes(nproc: int | None = None) -> int:
    """`nproc` when given (train.nproc), else FRAGILE_NPROC (default 1)."""
    if nproc is not None:
        return nproc
    raw = os.environ.get(NPROC_VAR, "").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise FragileError(f"{NPROC_VAR}={raw!r} must be a whole number of processes per machine, e.g. 2")
    return int(raw)


def torchrun_command(nproc: int, target: list[str]) -> list[str]:
    """`python -m torch.distributed.run` with N processes per node; standalone (one machine)
    unless FRAGILE_TORCHRUN_ARGS gives the rendezvous for several."""
    try:
        rendezvous = shlex.split(os.environ.get(TORCHRUN_ARGS_VAR, ""))
    except ValueError as err:
        raise FragileError(f"{TORCHRUN_ARGS_VAR} is not a valid argument list ({err}); quote it like a shell line") from None
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            *(rendezvous or ["--standalone"]), *target]


def relaunch(stage: str, nproc: int | None = None) -> bool:
    """Re-run this stage's command under torchrun when more than one process is asked for and
    none is running yet. True when it did (the caller returns); exits with torchrun's status
    when a process failed."""
    n = requested_processes(nproc)
    if n <= 1 or launched():
        return False
    argv = sys.argv
    if len(argv) > 1 and argv[1] == stage:  # fragile <stage> ...
        args = argv[2:]
    elif argv[0].endswith(f"{stage}.py"):  # python stages/<stage>.py ...
        args = argv[1:]
    else:
        raise FragileError(f"{n} processes need the stage started as `fragile {stage} ...`; "
                           f"unset {NPROC_VAR} or set the process count to 1")
    status = subprocess.run(torchrun_command(n, ["-m", "fragile.cli", stage, *args]), check=False).returncode
    if status != 0:
        raise SystemExit(status)
    return True


def start(device: torch.device) -> tuple[torch.device, Context]:
    """Join the process group when launched (once per process); CUDA processes take the GPU of
    their local rank unless the device names one."""
    ctx = context()
    if not ctx.distributed:
        return device, ctx
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return device, ctx


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def describe(device: torch.device, ctx: Context) -> str:
    """"cpu", or "cuda:0, rank 0 of 4 (nccl)" under torchrun."""
    if not ctx.distributed:
        return str(device)
    return f"{device}, rank {ctx.rank} of {ctx.world_size} ({dist.get_backend()})"


# ---------------------------------------------------------------- sharing between processes


def gather(value: T) -> list[T]:
    """Every process's `value`, in rank order (just [value] alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def on_main(compute: Callable[[], T]) -> T:
    """`compute()` on rank 0 only, its result given to every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return compute()
    box = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_training_state(model: torch.nn.Module, optimizer: Any, scheduler: Any) -> None:
    """Give every process rank 0's weights, optimizer (momentum) and scheduler state, e.g. after
    rank 0 alone resumed an interrupted run."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    box = [(model.state_dict(), optimizer.state_dict(), scheduler.state_dict()) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    if dist.get_rank() != 0:
        weights, opt, sched = box[0]  # type: ignore[misc]
        model.load_state_dict(weights)
        optimizer.load_state_dict(opt)
        scheduler.load_state_dict(sched)


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over processes, in float64 (exact for counts below 2**53)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.cpu().tolist()


# ---------------------------------------------------------------- training


def check_training(batch_size: int, examples: int, sync_bn: bool, device: torch.device, ctx: Context) -> None:
    """Each process takes an equal slice of every global batch of train.batch_size."""
    if not ctx.distributed:
        return
    if batch_size % ctx.world_size:
        raise FragileError(f"train.batch_size {batch_size} must be a multiple of the {ctx.world_size} training "
                           "processes (each takes an equal slice of every batch)")
    if examples < batch_size:
        raise FragileError(f"{ctx.world_size} training processes need at least one full batch "
                           f"(train.batch_size {batch_size}), the training split has {examples} images")
    if sync_bn and device.type != "cuda":
        raise FragileError("train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel); set it false here")


def wrap_for_training(model: torch.nn.Module, device: torch.device, sync_bn: bool, ctx: Context) -> torch.nn.Module:
    """DistributedDataParallel around `model` (gradients averaged over the processes), with
    SyncBatchNorm when asked; `model` itself alone. The BatchNorm modules are swapped in
    place, so `model.state_dict()` keeps its keys and checkpoints load as plain BatchNorm."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# ---------------------------------------------------------------- evaluation


def shard(split: Split, batch_size: int, ctx: Context) -> Split:
    """This process's contiguous run of whole batches of `split.batches(batch_size)`; processes
    get numbers of batches that differ by at most one (none when there are fewer batches)."""
    if not ctx.distributed:
        return split
    batches = -(-len(split) // batch_size)
    first = batches * ctx.rank // ctx.world_size * batch_size
    last = batches * (ctx.rank + 1) // ctx.world_size * batch_size
    return Split(split.images[first:last], split.labels[first:last])


class Mergeable(Protocol):
    """A result that merges with the same result computed on the next examples (exact counts
    and sums, never means)."""

    def merge(self: M, other: M) -> M: ...


def combine(part: Split, compute: Callable[[], M]) -> M:
    """`compute()` on this process's shard, merged over the processes in rank order (the result
    alone when there is one process). A process with an empty shard contributes nothing."""
    if not (dist.is_available() and dist.is_initialized()):
        return compute()
    parts = [p for p in gather(compute() if len(part) else None) if p is not None]
    if not parts:
        raise FragileError("no examples to evaluate; raise max_examples")
    return functools.reduce(lambda total, p: total.merge(p), parts)
