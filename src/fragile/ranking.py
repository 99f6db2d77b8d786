"""The rank stage's work: rank the analysed conv's kernels of one checkpoint by rank.method
and split them into fragile kernels S and null kernels S'.

rank.method: ablation (exact, `ranking_exact`; per-kernel accuracy and loss), taylor
(first-order estimate, `ranking_taylor`; per-kernel score, and no measured accuracy unless
rank.compare also ran the exact ranking) or hybrid (screened exact drops, `ranking_hybrid`;
per-kernel accuracy, no loss and no per-example outcomes). rank.compare: true computes the
exact ranking and the fast one (Taylor for ablation) and records their Spearman correlation
and S/S' agreement; S and S' come from rank.method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fragile.checkpoint_run import CheckpointRun
from fragile.kernel_sets import KernelRanking, TaylorRanking, compare_rankings, ranking_table, taylor_table
from fragile.overlap import RankingBootstrap, bootstrap_ranking
from fragile.params import RankParams
from fragile.ranking_exact import rank_layer
from fragile.ranking_hybrid import HybridRanking, compare_hybrid, hybrid_table, rank_hybrid
from fragile.ranking_taylor import rank_taylor
from fragile.results import RankResult


@dataclass(frozen=True)
class Ranked:
    result: RankResult  # results/rank/epoch_N.json
    table: pd.DataFrame  # per kernel: accuracy and loss and/or score, and the set (results/rank/epoch_N.csv)
    # results/rank/epoch_N.npz: `correct` (examples × kernels, 1 = right with that kernel dropped)
    # when the exact ranking ran; empty otherwise
    archive: dict[str, np.ndarray] = field(default_factory=dict)


def rank_checkpoint(run: CheckpointRun, p: RankParams, resamples: int = 0, seed: int = 0) -> Ranked:
    """The kernels of `run`'s conv ranked on its examples; an empty S or S' is an error. With
    `resamples` > 0 and the exact ranking choosing S, a seeded bootstrap of its examples gives
    each kernel's probability of being in S (analysis.rank_bootstrap)."""
    exact = taylor = None
    if p.method == "hybrid":
        hybrid = run.combine("rank", lambda advance: rank_hybrid(
            run.model, run.batches(), p.drop, device=run.device, progress=advance, layer=run.layer,
            slack=p.hybrid_slack, floor=p.hybrid_floor, calibrate=p.hybrid_calibrate), note="hybrid")
        return _hybrid_ranked(run, p, hybrid)
    if p.method == "ablation" or p.compare:
        exact = run.combine("rank", lambda advance: rank_layer(
            run.model, run.layer, run.batches(), p.drop, device=run.device, progress=advance), note="ablation")
    if p.method == "taylor" or p.compare:
        taylor = run.combine("rank", lambda advance: rank_taylor(
            run.model, run.batches(), p.drop, device=run.device, progress=advance, layer=run.layer), note="taylor")
    chosen = exact if p.method == "ablation" else taylor
    assert chosen is not None
    chosen.check_sets()
    outcomes = exact.example_correct if exact is not None else None
    boot = None
    if outcomes is not None and p.method == "ablation" and resamples > 0:
        boot = bootstrap_ranking(outcomes, resamples, seed)
    archive = {"correct": outcomes} if outcomes is not None else {}
    return Ranked(_result(run, p, chosen, exact, taylor, boot), _table(p, exact, taylor), archive)


def _hybrid_ranked(run: CheckpointRun, p: RankParams, hybrid: HybridRanking) -> Ranked:
    """The screened ranking's S; the exact ranking too with rank.compare. The screened ranking
    has no per-example outcomes (the unscreened pairs never ran), so there is no ranking
    bootstrap; the archive holds the exact ranking's outcomes when rank.compare ran it."""
    hybrid.check_sets()
    exact = None
    if p.compare:
        exact = run.combine("rank", lambda advance: rank_layer(
            run.model, run.layer, run.batches(), p.drop, device=run.device, progress=advance), note="ablation")
    result = RankResult(
        checkpoint=str(run.checkpoint), epoch=run.epoch, layer=run.layer, split=p.split, drop=p.drop,
        method=p.method, examples=hybrid.examples, baseline_accuracy=hybrid.baseline_accuracy,
        mean_accuracy=hybrid.mean_accuracy, num_fragile=len(hybrid.fragile), num_null=len(hybrid.null),
        fragile=hybrid.fragile, null=hybrid.null, accuracy=hybrid.accuracy, device=run.device.type,
        comparison=compare_hybrid(hybrid, exact) if exact else None, exact_share=hybrid.exact_share,
    )
    archive = {"correct": exact.example_correct} if exact is not None and exact.example_correct is not None else {}
    return Ranked(result, hybrid_table(hybrid, exact), archive)


def _result(run: CheckpointRun, p: RankParams, chosen: KernelRanking | TaylorRanking,
            exact: KernelRanking | None, taylor: TaylorRanking | None,
            boot: RankingBootstrap | None = None) -> RankResult:
    return RankResult(
        checkpoint=str(run.checkpoint), epoch=run.epoch, layer=run.layer, split=p.split, drop=p.drop,
        method=p.method, examples=chosen.examples,
        baseline_accuracy=exact.baseline_accuracy if exact else None,
        mean_accuracy=exact.mean_accuracy if exact else None,
        num_fragile=len(chosen.fragile), num_null=len(chosen.null), fragile=chosen.fragile, null=chosen.null,
        accuracy=exact.accuracy if exact else None, device=run.device.type,
        score=taylor.score if taylor else None, mean_score=taylor.mean_score if taylor else None,
        baseline_loss=taylor.baseline_loss if taylor else None,
        comparison=compare_rankings(taylor, exact) if exact and taylor else None,
        p_fragile=boot.probability if boot else None,
        fragile_share_ci95=[boot.fragile_share_low, boot.fragile_share_high] if boot else None,
    )


def _table(p: RankParams, exact: KernelRanking | None, taylor: TaylorRanking | None) -> pd.DataFrame:
    """The per-kernel table; its sets come from the method in use."""
    if exact is not None and p.method == "ablation":
        table = ranking_table(exact)
        if taylor is not None:
            table.insert(3, "score", taylor.score)
        return table
    assert taylor is not None
    return taylor_table(taylor, exact)


def summary_line(result: RankResult, where: str) -> str:
    line = f"{result.checkpoint}: {result.layer}, {result.method}: |S| = {result.num_fragile}, |S'| = {result.num_null}"
    if result.accuracy is not None:
        line += f", mean drop accuracy {result.mean_accuracy:.4f} (baseline {result.baseline_accuracy:.4f})"
    if result.exact_share is not None:
        line += f", {result.exact_share:.1%} of drops run exactly"
    if result.comparison is not None:
        c = result.comparison
        fast = "hybrid" if result.method == "hybrid" else "taylor"
        line += f", {fast} vs exact: Spearman {c['spearman']:.3f}, same set {c['set_agreement']:.0%}"
    return line + f", {result.examples} {result.split} examples on {where}"
