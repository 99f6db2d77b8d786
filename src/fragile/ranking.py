"""The rank stage's work: rank the analysed conv's kernels of one checkpoint by rank.method
and split them into fragile kernels S and null kernels S'.

rank.method: ablation (exact, `ranking_exact`; per-kernel accuracy and loss) or taylor
(first-order estimate, `ranking_taylor`; per-kernel score, and no measured accuracy unless
rank.compare also ran the exact ranking). rank.compare: true computes both methods and
records their Spearman correlation and S/S' agreement; S and S' come from rank.method.
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
    if result.comparison is not None:
        c = result.comparison
        line += f", taylor vs exact: Spearman {c['spearman']:.3f}, same set {c['set_agreement']:.0%}"
    return line + f", {result.examples} {result.split} examples on {where}"
