"""Paper-scale memory check, run as a child process: `python -m benchmarks.paper_scale`.

resnet101 (ImageNet stem) with CIFAR-10-shaped splits held in memory the way the stages hold
them (uint8: 50,000 train and 10,000 test images of 3×32×32), then the library calls of the
train, rank, attack and evaluate stages. The parent reads this process's peak RSS.

The time is bounded by running each call only as long as its largest allocation needs, at
the stages' default batch sizes: one training step of train.batch_size; the exact ranking on
16 examples (it stacks kernels into passes of about 1,000 images whatever the example count,
so its peak does not grow with it) and the Taylor ranking on 16; the FGSM sweep on one full
attack.batch_size batch with one ε (every further ε is one more no-grad forward pass, freed
before the next); evaluate (two models, three sweeps) on 16 examples.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from fragile.data import Split
from fragile.evaluation import compare
from fragile.hardening import harden_model
from fragile.models import build
from fragile.params import AttackParams, RankParams, TrainParams
from fragile.ranking_exact import rank_conv1
from fragile.ranking_taylor import rank_taylor
from fragile.sweep import fgsm_sweep
from fragile.training import make_optimizer, train_one_epoch


def synthetic(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))


def main() -> None:
    device = torch.device("cpu")
    torch.manual_seed(0)
    train, test = synthetic(50_000, 0), synthetic(10_000, 1)
    model = build("resnet101", 10, 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26], "imagenet").to(
        memory_format=torch.channels_last
    )
    tp, rp, ap = TrainParams(), RankParams(), AttackParams()
    start = time.perf_counter()
    train_one_epoch(model, train.head(tp.batch_size), make_optimizer(model, tp), tp.batch_size, 0, 1, device)
    print(f"  train: one step of {tp.batch_size} in {time.perf_counter() - start:.1f} s", flush=True)
    model.eval()
    start = time.perf_counter()
    ranking = rank_conv1(model, test.head(16).batches(rp.batch_size), device=device)
    rank_taylor(model, test.head(16).batches(rp.batch_size), device=device)
    print(f"  rank (ablation + taylor, 16 examples): {time.perf_counter() - start:.1f} s", flush=True)
    fragile, null = ranking.fragile or [0], ranking.null or [1]
    start = time.perf_counter()
    batch = test.head(ap.batch_size).batches(ap.batch_size)
    fgsm_sweep(model, batch, [0.1], fragile, null, model.net.conv1, device=device)
    print(f"  attack: one batch of {ap.batch_size} in {time.perf_counter() - start:.1f} s", flush=True)
    hardened, _ = harden_model(model, fragile, null, 0.015)
    start = time.perf_counter()
    compare(model, hardened, lambda: test.head(16).batches(16), [0.1], fragile, null, device)
    print(f"  evaluate (16 examples): {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
