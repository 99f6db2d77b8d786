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
of all processes are summed (`combine`). Float sums (per-kernel mean loss, Taylor scores) are
added in rank order: the same from run to run, equal to one process's up to float64 rounding.
Only rank 0 writes outputs.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fragile.data import Split
from fragile.errors import FragileError

NPROC_VAR = "FRAGILE_NPROC"
TORCHRUN_ARGS_VAR = "FRAGILE_TORCHRUN_ARGS"
LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")

T = TypeVar("T")


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


def combine(part: Split, compute: Callable[[], T]) -> T:
    """`compute()` on this process's shard, summed over the processes (the result alone when
    there is one process). A process with an empty shard contributes nothing."""
    if not (dist.is_available() and dist.is_initialized()):
        return compute()
    parts = [p for p in gather(compute() if len(part) else None) if p is not None]
    if not parts:
        raise FragileError("no examples to evaluate; raise max_examples")
    return _sum(parts)


def _sum(parts: list[Any]) -> Any:
    from fragile.comparison import Comparison, SweepResult
    from fragile.ranking import KernelRanking, TaylorRanking

    first = parts[0]
    if first is None or isinstance(first, SweepResult):
        return None if first is None else SweepResult(
            list(first.epsilons),
            sum(p.examples for p in parts),
            sum(p.clean_correct for p in parts),
            [sum(c) for c in zip(*(p.correct for p in parts))],
            [sum(t) for t in zip(*(p.targeted for p in parts))],
            [sum(t) for t in zip(*(p.targeted_relative for p in parts))],
            _concatenated([p.per_example for p in parts]),
        )
    if isinstance(first, Comparison):
        return Comparison(*(_sum([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Comparison)))
    n = sum(p.examples for p in parts)
    if isinstance(first, KernelRanking):
        # accuracy * examples rounds back to the exact integer count; mean * examples gives back
        # a float64 sum up to rounding, and sum() adds the ranks in order, the same every run.
        correct = [sum(round(p.accuracy[k] * p.examples) for p in parts) for k in range(len(first.accuracy))]
        loss = [sum(p.loss[k] * p.examples for p in parts) for k in range(len(first.loss))]
        base = sum(round(p.baseline_accuracy * p.examples) for p in parts)
        return KernelRanking(accuracy=[c / n for c in correct], loss=[s / n for s in loss], examples=n,
                             baseline_accuracy=base / n)
    if isinstance(first, TaylorRanking):
        score = [sum(p.score[k] * p.examples for p in parts) for k in range(len(first.score))]
        return TaylorRanking(score=[s / n for s in score], examples=n,
                             baseline_loss=sum(p.baseline_loss * p.examples for p in parts) / n)
    raise TypeError(f"no reduction for {type(first).__name__}")  # a bug, not user input


def _concatenated(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-example outcome strings of the shards, joined in rank order (= example order)."""
    joined: dict[str, Any] = {}
    for kind, value in outcomes[0].items():
        if isinstance(value, str):
            joined[kind] = "".join(o[kind] for o in outcomes)
        else:
            joined[kind] = ["".join(o[kind][i] for o in outcomes) for i in range(len(value))]
    return joined

