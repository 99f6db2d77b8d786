"""Run by torchrun from tests/test_distributed.py: the train, rank, attack_target and evaluate
stages in one set of processes (one launch: every process start costs the torch import).

usage: python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_stages.py WORK
WORK holds data/, params.yaml and single/models/epoch_2.pt (used as the "hardened" model:
evaluate needs a second checkpoint of the same architecture); outputs go to WORK/dist/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.distributed as dist

from stages import attack_target, evaluate, rank, train


def main(work: Path) -> None:
    data, params, out = work / "data", work / "params.yaml", work / "dist"
    train.main(data=data, models_dir=out / "models", live=out / "live", params=params, resume_dir=out / "resume")
    checkpoint = out / "models" / "epoch_2.pt"
    dist.barrier()  # each stage reads what rank 0 wrote in the one before (DVC runs them one by one)
    rank.main(model=checkpoint, data=data, kernels_csv=out / "rank.csv", sets=out / "rank.json",
              outcomes=out / "rank.npz", params=params)
    dist.barrier()
    attack_target.main(model=checkpoint, data=data, sets=out / "rank.json", curve=out / "attack.csv",
                       summary=out / "attack.json", distances=out / "attack.npz", params=params)
    evaluate.main(model=checkpoint, hardened=work / "single" / "models" / "epoch_2.pt", data=data,
                  sets=out / "rank.json", attack=out / "attack.json", results=out / "evaluate.json", curves=out / "evaluate.csv", params=params)
    # Leave together: a process that tears down gloo while the other still writes its outputs
    # was seen to abort ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
