"""The headline's claims blocks: every Algorithm 1 reading against its chance baseline, the
kernels' weight norms, the overlap of S by chance, and a verdict for each of the paper's claims.

summarize calls `claims_blocks` with each checkpoint's rank result, evaluate's comparison and
attack_target's distance archive (results/attack/epoch_N.npz, `fragile.sweep.attack_checkpoint`),
and `stability_by_chance` with the ranks. Every number is computed here from those; the
verdict rules are fragile.claims'. The result goes into metrics/headline.json as `readings`,
`kernel_norms` and `claims` (verdict codes: 1 agree, 0 inconclusive, −1 disagree).

The claims are read at one ε: the headline `epsilon` when it is on attack.epsilons, else the
grid's ε nearest to it (the archive holds the grid only; `claims_epsilon`). C2 and C4 are read on every reading;
the top rows use analysis.output × attack.distance (conv × absolute is the paper's). C2, C4
and C5 are judged per checkpoint; a claim's overall verdict is the checkpoints' when they
agree and inconclusive when they differ. C1 and C3 use all checkpoints at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fragile.bootstrap import outcomes
from fragile.chance import ChanceBaseline, chance_baseline, example_targets
from fragile.claims import (
    AGREE,
    DISAGREE,
    INCONCLUSIVE,
    PAPER,
    PAPER_TARGETING_SHARE,
    STATEMENTS,
    Claim,
    fragile_share_claim,
    hardening_accuracy_claim,
    hardening_targeting_claim,
    mcnemar_p_value,
    persistence_claim,
    targeting_claim,
)
from fragile.comparison import READING_KIND, Comparison
from fragile.intervals import paired, share_of
from fragile.overlap import pair_overlap, persistence
from fragile.params import Params
from fragile.results import RankResult

VERDICT_CODES = {AGREE: 1, INCONCLUSIVE: 0, DISAGREE: -1}
READINGS = tuple(f"{o}_{d}" for o in ("conv", "bn", "relu") for d in ("absolute", "relative"))  # fragile.targeting
PAPER_READING = "conv_absolute"
# What a reading shows by construction, whatever the attack does (see docs/method.md).
BY_CONSTRUCTION = {
    "conv_absolute": "kernel scale: d_k grows with ‖W_k‖; α: hardening multiplies S's d_k by α",
    "conv_relative": "none (each kernel's scale divides out)",
    "bn_absolute": "α: hardening scales S before BatchNorm's fixed statistics, so S's d_k grow by α",
    "bn_relative": "none",
    "relu_absolute": "α, in part (the ReLU clips what the BatchNorm passes)",
    "relu_relative": "none",
}


def epoch_key(epoch: int) -> str:
    return f"epoch_{epoch}"


def claims_epsilon(epsilon: float, grid: Sequence[float]) -> int:
    """Index of `epsilon` on `grid`, or of the grid's ε nearest to it: ε = 0 only when the grid
    has nothing else (it moves no kernel, so nothing can target S), the larger of two as near."""
    candidates = [i for i in range(len(grid)) if grid[i] > 0] or list(range(len(grid)))
    return min(candidates, key=lambda i: (abs(grid[i] - epsilon), -grid[i]))


def archive_distances(archive: Mapping[str, np.ndarray], reading: str, index: int) -> np.ndarray:
    """The (examples × kernels) distances of `reading` at ε index `index` (fragile.targeting.archive_key)."""
    return np.asarray(archive[f"{reading}.eps{index}"], dtype=np.float64)


def reading_summary(distances: np.ndarray, fragile: Sequence[int], null: Sequence[int], subsets: int,
                    seed: int) -> tuple[dict[str, Any], ChanceBaseline | None, list[float]]:
    """One reading at one ε: the share of examples attacking S, its exact (Clopper–Pearson) 95%
    interval (never of width 0, also at 0 of n), and its chance baseline (None when `subsets` is 0)."""
    flags = example_targets(distances, fragile, null)
    exact = share_of(flags)
    interval = [round(exact.low, 6), round(exact.high, 6)]
    block: dict[str, Any] = {"share": float(flags.mean()), "share_ci95": interval}
    baseline = chance_baseline(distances, fragile, null, subsets, seed) if subsets > 0 else None
    if baseline is not None:
        block.update({key: baseline.to_dict()[key] for key in
                      ("chance_median", "chance_low", "chance_high", "percentile", "p_value")})
    return block, baseline, interval


def _spearman(norms: np.ndarray, distances: np.ndarray) -> float | None:
    from fragile.targeting import norm_distance_spearman  # torch comes with it; only summarize pays

    return norm_distance_spearman(norms, distances)


def checkpoint_readings(archive: Mapping[str, np.ndarray], rank: RankResult, index: int, subsets: int,
                        seed: int, alpha: float = 0.05,
                        tolerance: float = 0.10) -> tuple[dict[str, Any], dict[str, Any], dict[str, Claim]]:
    """(readings block, kernel-norms block, C2 per reading) of one checkpoint at ε index `index`;
    each reading's block also has its share, percentile and p-value at every ε (`by_epsilon`)."""
    grid = [float(e) for e in archive["epsilons"]]
    readings: dict[str, Any] = {}
    claims: dict[str, Claim] = {}
    spearman: dict[str, Any] = {}
    spearman_bn: dict[str, Any] = {}
    for reading in READINGS:
        by_eps: dict[str, list[Any]] = {"epsilon": grid, "share": [], "percentile": [], "p_value": []}
        summaries = [reading_summary(archive_distances(archive, reading, i), rank.fragile, rank.null, subsets, seed)
                     for i in range(len(grid))]
        for each, each_baseline, _ in summaries:
            by_eps["share"].append(each["share"])
            by_eps["percentile"].append(each_baseline.percentile if each_baseline else None)
            by_eps["p_value"].append(each_baseline.p_value if each_baseline else None)
        block, baseline, interval = summaries[index]  # the claims' ε: computed once, above
        distances = archive_distances(archive, reading, index)
        readings[reading] = {**block, "by_epsilon": by_eps}
        scope = f"epoch {rank.epoch}, ε = {grid[index]:g}, {reading}"
        claims[reading] = (targeting_claim(baseline, tuple(interval), scope, alpha, tolerance)
                           if baseline is not None else
                           Claim("C2", STATEMENTS["C2"], PAPER["C2"], PAPER_TARGETING_SHARE, block["share"],
                                 tuple(interval), INCONCLUSIVE,
                                 "no chance baseline (analysis.chance_subsets: 0)", scope))
        spearman[reading] = _spearman(archive["weight_norm"], distances)
        spearman_bn[reading] = _spearman(archive["bn_weight_norm"], distances)
    norms = {}
    for name in ("weight_norm", "bn_weight_norm"):
        values = np.asarray(archive[name], dtype=np.float64)
        norms[f"{name}_fragile"] = float(values[rank.fragile].mean())
        norms[f"{name}_null"] = float(values[rank.null].mean())
    return readings, {**norms, "spearman_weight_norm": spearman, "spearman_bn_weight_norm": spearman_bn}, claims


def hardening_claims(comparison: Comparison, index: int, epoch: int, alpha: float) -> tuple[dict[str, Claim], Claim]:
    """(C4 per reading, C5) of one checkpoint at ε index `index`. C4 reads Algorithm 1 on the
    original's FGSM examples x' fed to the original (white-box) and to the hardened model
    (transfer): the same x' for both. C5: white-box FGSM accuracy of each model."""
    eps = comparison.original.epsilons[index]
    c4: dict[str, Claim] = {}
    for reading in READINGS:
        kind = READING_KIND.format(reading=reading)
        before = comparison.original.outcomes(kind, index)
        after = comparison.transfer.outcomes(kind, index)
        scope = f"epoch {epoch}, ε = {eps:g}, {reading}, transferred x'"
        if not before or not after:
            c4[reading] = Claim("C4", STATEMENTS["C4"], PAPER["C4"], None, None, None, INCONCLUSIVE,
                                "evaluate recorded no outcomes on this reading", scope)
            continue
        first, second = outcomes(before), outcomes(after)
        change = paired(first, second)  # Newcombe's interval for the paired difference
        c4[reading] = hardening_targeting_claim(float(first.mean()), float(second.mean()),
                                                mcnemar_p_value(first, second), (change.low, change.high),
                                                scope, alpha)
    before = comparison.original.outcomes("correct", index)
    after = comparison.hardened.outcomes("correct", index)
    change = paired(outcomes(before), outcomes(after))
    c5 = hardening_accuracy_claim(comparison.original.accuracy(index), comparison.hardened.accuracy(index),
                                  mcnemar_p_value(outcomes(before), outcomes(after)), (change.low, change.high),
                                  f"epoch {epoch}, ε = {eps:g}, white-box FGSM", alpha)
    return c4, c5


def claim_row(claim: Claim, full: bool = True) -> dict[str, Any]:
    """A claim as plain JSON with its verdict code; without the statement and the paper's value
    when not `full` (a checkpoint's row under a combined claim, which holds them)."""
    row = {**claim.to_dict(), "code": VERDICT_CODES[claim.verdict]}
    if not full:
        for key in ("id", "statement", "paper", "paper_value"):
            row.pop(key)
    return row


def combined_row(per_checkpoint: Mapping[int, Claim]) -> dict[str, Any]:
    """One claim judged at several checkpoints: their verdict when all agree, else inconclusive."""
    claims = list(per_checkpoint.values())
    first = claims[0]
    verdicts = {c.verdict for c in claims}
    verdict = first.verdict if len(verdicts) == 1 else INCONCLUSIVE
    reason = "; ".join(f"epoch {e}: {c.reason}" for e, c in per_checkpoint.items())
    if len(verdicts) > 1:
        reason = "checkpoints differ: " + reason
    return {"id": first.id, "statement": first.statement, "paper": first.paper, "paper_value": first.paper_value,
            "verdict": verdict, "code": VERDICT_CODES[verdict], "reason": reason,
            "checkpoints": {epoch_key(e): claim_row(c, full=False) for e, c in per_checkpoint.items()}}


def claims_blocks(p: Params, ranks: Mapping[int, RankResult], comparisons: Mapping[int, Comparison],
                  archives: Mapping[int, Mapping[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """The headline's `readings`, `kernel_norms` and `claims` for the checkpoints of `ranks`
    (training order); a checkpoint without an archive gets C2 inconclusive and no readings."""
    a = p.analysis
    chosen = f"{a.output}_{p.attack.distance}"
    epochs = sorted(ranks)
    grid = comparisons[epochs[0]].original.epsilons
    index = claims_epsilon(p.epsilon, grid)
    eps = grid[index]
    readings: dict[str, Any] = {"epsilon": eps, "reading": chosen}
    norms: dict[str, Any] = {}
    c2: dict[str, dict[int, Claim]] = {r: {} for r in READINGS}
    c4: dict[str, dict[int, Claim]] = {r: {} for r in READINGS}
    c5: dict[int, Claim] = {}
    for epoch in epochs:
        rank = ranks[epoch]
        archive = archives.get(epoch)
        if archive is not None:
            block, norm_block, claims = checkpoint_readings(
                archive, rank, claims_epsilon(eps, list(archive["epsilons"])), a.chance_subsets, p.seed,
                a.significance, a.claim_tolerance)
            readings[epoch_key(epoch)], norms[epoch_key(epoch)] = block, norm_block
        else:
            claims = {r: Claim("C2", STATEMENTS["C2"], PAPER["C2"], PAPER_TARGETING_SHARE, None, None, INCONCLUSIVE,
                               "no distance archive for this checkpoint", f"epoch {epoch}") for r in READINGS}
        for reading, claim in claims.items():
            c2[reading][epoch] = claim
        c4_epoch, c5[epoch] = hardening_claims(comparisons[epoch], comparisons[epoch].original.at(eps), epoch,
                                               a.significance)
        for reading, claim in c4_epoch.items():
            c4[reading][epoch] = claim
    kernels = len(ranks[epochs[0]].fragile) + len(ranks[epochs[0]].null)
    c1 = fragile_share_claim([len(ranks[e].fragile) for e in epochs], kernels,
                             f"{p.analysis.layer}, epochs {', '.join(map(str, epochs))}", a.significance)
    c3 = persistence_claim(persistence([ranks[e].fragile for e in epochs], kernels),
                           f"{p.analysis.layer}, epochs {', '.join(map(str, epochs))}", a.significance)
    claims_block: dict[str, Any] = {
        "epsilon": eps, "reading": chosen,
        "C1": claim_row(c1), "C2": combined_row(c2[chosen]), "C3": claim_row(c3), "C4": combined_row(c4[chosen]),
        "C5": combined_row(c5),
        "C2_readings": {r: combined_row(c2[r]) for r in READINGS},
        "C4_readings": {r: combined_row(c4[r]) for r in READINGS},
    }
    return {"readings": readings, "kernel_norms": norms, "claims": claims_block}


def stability_by_chance(ranks: Mapping[int, RankResult]) -> dict[str, Any]:
    """Beside the observed overlaps of S: for each consecutive pair the Jaccard that independent
    random sets of the same sizes give on average (`expected_jaccard_<a>_<b>`) and the
    hypergeometric p-value of the observed overlap (`overlap_p_<a>_<b>`); the count of kernels
    fragile at every checkpoint that chance expects (`always_fragile_expected`) and its exact
    p-value (`always_fragile_p`)."""
    epochs = sorted(ranks)
    kernels = len(ranks[epochs[0]].fragile) + len(ranks[epochs[0]].null)
    out: dict[str, Any] = {}
    for a, b in zip(epochs, epochs[1:]):
        pair = pair_overlap(ranks[a].fragile, ranks[b].fragile, kernels)
        out[f"expected_jaccard_{a}_{b}"] = pair.expected_jaccard
        out[f"overlap_p_{a}_{b}"] = pair.p_value
    result = persistence([ranks[e].fragile for e in epochs], kernels)
    out["always_fragile_expected"] = result.expected
    out["always_fragile_p"] = result.p_value
    return out


def claims_lines(claims: Mapping[str, Any]) -> list[str]:
    """One line per claim: its id, verdict and reason (summarize's console output)."""
    return [f"{key} {claims[key]['verdict']}: {claims[key]['reason']}" for key in ("C1", "C2", "C3", "C4", "C5")]
