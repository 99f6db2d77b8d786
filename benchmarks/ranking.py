"""Items 2 and 3: exact ranking against the naive hook loop, and the Taylor estimate and the
screened exact ranking (rank.method hybrid) against the exact ranking (time, Spearman
correlation, S/S' agreement)."""

from __future__ import annotations

from benchmarks.reference_ranking import rank_by_hooks
from benchmarks.timing import Ratio, interleaved
from fragile.data import Split
from fragile.kernel_drop import drop_point
from fragile.kernel_sets import compare_rankings
from fragile.models import FragileNet
from fragile.params import RankParams
from fragile.ranking_exact import rank_conv1
from fragile.ranking_hybrid import HybridRanking, compare_hybrid, rank_hybrid
from fragile.ranking_taylor import rank_taylor


def run(model: FragileNet, split: Split, batch_size: int, drop: str, repeats: int,
        full: Split | None = None, rank: RankParams | None = None) -> dict[str, object]:
    """Timings on `split`; Spearman and set agreement on `full` (the whole rank split) when the
    timings used fewer examples, since the sets depend on the examples. The hybrid ranking's
    screen is `rank`'s (rank.hybrid_slack, rank.hybrid_floor)."""
    rank = rank or RankParams()

    def hybrid(examples: Split) -> HybridRanking:
        return rank_hybrid(model, examples.batches(batch_size), drop, slack=rank.hybrid_slack,
                           floor=rank.hybrid_floor, calibrate=rank.hybrid_calibrate)

    point = drop_point(model, "conv1", drop)
    channels = model.net.conv1.out_channels
    cases = {
        "naive hook loop": lambda: rank_by_hooks(model, split.batches(batch_size), point, channels),
        "exact (rank_conv1)": lambda: rank_conv1(model, split.batches(batch_size), drop),
        "taylor (rank_taylor)": lambda: rank_taylor(model, split.batches(batch_size), drop),
        "hybrid (rank_hybrid)": lambda: hybrid(split),
    }
    one = split.head(8)  # warm-up: one small batch
    warmup = {
        "naive": lambda: rank_by_hooks(model, one.batches(batch_size), point, channels),
        "exact": lambda: rank_conv1(model, one.batches(batch_size), drop),
        "taylor": lambda: rank_taylor(model, one.batches(batch_size), drop),
        "hybrid": lambda: hybrid(one),
    }
    times = interleaved(cases, repeats, warmup)
    naive = rank_by_hooks(model, split.batches(batch_size), point, channels)
    exact = rank_conv1(model, split.batches(batch_size), drop)
    taylor = rank_taylor(model, split.batches(batch_size), drop)
    compared = exact, taylor, hybrid(split)
    if full is not None and len(full) != len(split):
        compared = (rank_conv1(model, full.batches(batch_size), drop), rank_taylor(model, full.batches(batch_size), drop),
                    hybrid(full))
    return {
        "times": times,
        "ratios": [
            Ratio.of("exact ranking vs naive hook loop", times["naive hook loop"], times["exact (rank_conv1)"], 1.15),
            Ratio.of("taylor vs exact ranking", times["exact (rank_conv1)"], times["taylor (rank_taylor)"], 15),
            Ratio.of("hybrid vs exact ranking", times["exact (rank_conv1)"], times["hybrid (rank_hybrid)"], 5),
        ],
        "identical_accuracy": exact.accuracy == naive.accuracy,
        "comparison": compare_rankings(compared[1], compared[0]),
        "hybrid_comparison": {**compare_hybrid(compared[2], compared[0]), "exact_share": compared[2].exact_share},
        "compared_examples": compared[0].examples,
        "sizes": {"exact S": len(compared[0].fragile), "taylor S": len(compared[1].fragile),
                  "hybrid S": len(compared[2].fragile), "kernels": channels},
        "examples": exact.examples,
        "exact_sets": (compared[0].fragile, compared[0].null),
    }
