"""The screened exact ranking (rank.method hybrid) against the exact ranking, per checkpoint:
S/S' agreement, Spearman, the share of drops run, and the speed ratio, timed side by side
(exact, hybrid, exact, hybrid, ... after a one-batch warm-up) in one process.

    python -m benchmarks.hybrid_ranking --data data/prepared --examples 800 \\
        models/original/epoch_2.pt models/original/epoch_5.pt models/original/epoch_10.pt

Prints one line per checkpoint; `--repeats` (default 1) times each method that often.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

from benchmarks.timing import Ratio, machine
from fragile import models
from fragile.data import Split, load_split, read_manifest
from fragile.kernel_sets import KernelRanking
from fragile.params import RankParams
from fragile.ranking_exact import rank_conv1
from fragile.ranking_hybrid import HybridRanking, compare_hybrid, rank_hybrid


def compare(model: models.FragileNet, split: Split, batch_size: int, repeats: int,
            rank: RankParams) -> dict[str, object]:
    """Seconds per repeat of each method (interleaved), and the hybrid's agreement with the
    exact ranking on `split`."""
    def exact_run(examples: Split) -> KernelRanking:
        return rank_conv1(model, examples.batches(batch_size), rank.drop)

    def hybrid_run(examples: Split) -> HybridRanking:
        return rank_hybrid(model, examples.batches(batch_size), rank.drop, slack=rank.hybrid_slack,
                           floor=rank.hybrid_floor, calibrate=rank.hybrid_calibrate)

    exact_run(split.head(8)), hybrid_run(split.head(8))  # warm-up: allocator, thread pools
    times: dict[str, list[float]] = {"exact": [], "hybrid": []}
    results: dict[str, KernelRanking | HybridRanking] = {}
    for _ in range(repeats):
        for name, fn in (("exact", exact_run), ("hybrid", hybrid_run)):  # type: ignore[assignment]
            start = time.perf_counter()
            results[name] = fn(split)
            times[name].append(time.perf_counter() - start)
    exact, hybrid = results["exact"], results["hybrid"]
    assert isinstance(exact, KernelRanking) and isinstance(hybrid, HybridRanking)
    return {
        "times": times, "ratio": Ratio.of("hybrid vs exact", times["exact"], times["hybrid"], 5),
        **compare_hybrid(hybrid, exact), "exact_share": hybrid.exact_share,
        "sizes": (len(exact.fragile), len(hybrid.fragile), len(exact.correct)),
        "count_gap": sum(abs(h - e) for h, e in zip(hybrid.correct, exact.correct, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/prepared"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--examples", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--slack", type=float, default=RankParams.hybrid_slack)
    parser.add_argument("--floor", type=float, default=RankParams.hybrid_floor)
    parser.add_argument("--no-calibrate", action="store_true", help="a fixed slack for every kernel")
    args = parser.parse_args()
    rank = RankParams(hybrid_slack=args.slack, hybrid_floor=args.floor, hybrid_calibrate=not args.no_calibrate)
    split = load_split(args.data, args.split).head(args.examples)
    fits = models.fits_data(read_manifest(args.data))
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {machine()['cpu']}; {len(split)} {args.split} "
          f"examples, slack {args.slack:g}{' calibrated per kernel' if rank.hybrid_calibrate else ''}, floor "
          f"{args.floor:g}, {args.repeats} repeat(s)", flush=True)
    for checkpoint in args.checkpoints:
        model, meta = models.load_with_meta(checkpoint, **fits)
        model.eval()
        c = compare(model, split, args.batch_size, args.repeats, rank)
        exact_s, hybrid_s, kernels = c["sizes"]
        print(f"{checkpoint} ({meta['arch']}): same set {c['set_agreement']:.1%} of {kernels} kernels "
              f"(|S| exact {exact_s}, hybrid {hybrid_s}), Spearman {c['spearman']:.4f}, "
              f"count gap {c['count_gap']}, {c['exact_share']:.1%} of drops run; "
              f"exact {min(c['times']['exact']):.1f} s, hybrid {min(c['times']['hybrid']):.1f} s, "
              f"speed ratio {c['ratio'].cell()}", flush=True)


if __name__ == "__main__":
    main()
