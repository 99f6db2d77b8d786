"""Headline metrics at the top-level `epsilon`, one block per checkpoint (dvc metrics), the
combined plot data, and the stability of the fragile set S across checkpoints.

The summarize stage reads the per-ε counts that evaluate wrote; only an `epsilon` that is
not on the attack.epsilons grid is computed here (three FGSM attacks at that single ε, see
`fgsm_off_grid`). So `dvc exp run -S epsilon=...` reruns summarize, harden and evaluate (for
PGD at the new ε), not attack_target's sweeps. PGD is not computed here: it costs `attack.pgd_steps` gradients per example, so
it runs once, in evaluate, on attack.pgd_grid (which holds `epsilon`: evaluate reads it), and
the headline carries PGD, AutoAttack when it ran, the sanity checks and the masking verdict
(fragile.robustness_summary). Shares get exact Clopper–Pearson intervals, hardened-vs-original
gains Newcombe intervals and exact McNemar p-values (`Headline.methods` names them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fragile.claims_summary import claims_blocks, claims_lines, stability_by_chance
from fragile.comparison import Comparison, SweepResult
from fragile.intervals import share
from fragile.layout import ACCURACY_PLOT, KERNEL_DROP_PLOT, TARGETING_PLOT, checkpoint_file
from fragile.params import Params
from fragile.results import (
    EvaluateResult,
    HardenResult,
    HardenSummary,
    Headline,
    HeadlineBlock,
    KernelCounts,
    RankResult,
    RobustnessRecord,
)
from fragile.robustness_summary import (
    METHODS,
    add_autoattack,
    add_gain,
    autoattack_results,
    masking_block,
    sanity_block,
    share_ci95,
)

# (epoch, its rank result) -> FGSM original, hardened and transfer at `epsilon` alone
OffGridAttack = Callable[[int, RankResult], Comparison]

class _Block(dict):
    """A headline block whose shares get a `<name>_ci95: [low, high]` sibling (exact
    Clopper–Pearson). `dvc metrics diff` skips lists, so the diff stays one row per number."""

    def __init__(self, resamples: int, seed: int) -> None:
        super().__init__()
        self.resamples, self.seed = resamples, seed

    def share(self, name: str, sweep: SweepResult, kind: str, i: int | None = None) -> None:
        percent = kind.startswith("targeted")
        if kind == "clean":
            value, count = sweep.clean_accuracy, sweep.clean_correct
        elif kind == "correct":
            value, count = sweep.accuracy(i), sweep.correct[i]
        else:
            value = sweep.targeting_pct(i, "relative" if kind == "targeted_relative" else "absolute")
            count = (sweep.targeted_relative if kind == "targeted_relative" else sweep.targeted)[i]
        self[name] = value
        self[f"{name}_ci95"] = share_ci95(count, sweep.examples, 100.0 if percent else 1.0)


def headline(comparison: Comparison, epsilon: float, rank: RankResult, harden: HardenResult,
             resamples: int = 0, seed: int = 0, record: RobustnessRecord | None = None,
             curves: Comparison | None = None) -> HeadlineBlock:
    """Readable names for `dvc metrics diff`: clean, FGSM, PGD (and AutoAttack) accuracy,
    targeting (absolute and relative distances), |S|, τ, α, each share with its exact interval,
    the hardened-minus-original gains with Newcombe intervals and McNemar p-values, the sanity
    checks on evaluate's grids (`curves`; `comparison` when None) and the masking verdict from
    evaluate's `record` (the gain gap's bootstrap takes `resamples` and `seed`)."""
    at = comparison.original.at(epsilon)
    original, hardened, transfer = comparison.original, comparison.hardened, comparison.transfer
    fragile, null = len(rank.fragile), len(rank.null)
    o, h = _Block(resamples, seed), _Block(resamples, seed)
    o.share("clean_accuracy", original, "clean")
    o.share("fgsm_accuracy", original, "correct", at)
    o.share("targeting_pct", original, "targeted", at)
    o.share("targeting_pct_relative", original, "targeted_relative", at)
    h.share("clean_accuracy", hardened, "clean")
    h.share("fgsm_accuracy_whitebox", hardened, "correct", at)
    h.share("fgsm_accuracy_transfer", transfer, "correct", at)
    h.share("targeting_pct", hardened, "targeted", at)
    h.share("targeting_pct_relative", hardened, "targeted_relative", at)
    h.share("targeting_pct_transfer", transfer, "targeted", at)
    h.share("targeting_pct_transfer_relative", transfer, "targeted_relative", at)
    gain = _Block(resamples, seed)
    add_gain(gain, "clean", original.outcomes("clean"), hardened.outcomes("clean"))
    _gain(gain, "fgsm_whitebox", original, hardened, at)
    add_gain(gain, "fgsm_transfer", original.outcomes("correct", at), transfer.outcomes("correct", at))
    pgd_o, pgd_h = comparison.pgd_original, comparison.pgd_hardened
    if pgd_o is not None and pgd_h is not None and epsilon in pgd_o.epsilons:
        p_at = pgd_o.at(epsilon)
        o.share("pgd_accuracy", pgd_o, "correct", p_at)
        o.share("pgd_targeting_pct", pgd_o, "targeted", p_at)
        h.share("pgd_accuracy_whitebox", pgd_h, "correct", p_at)
        h.share("pgd_targeting_pct", pgd_h, "targeted", p_at)
        _gain(gain, "pgd_whitebox", pgd_o, pgd_h, p_at)
    attacked = autoattack_results(record, epsilon)
    add_autoattack(o, h, gain, attacked)
    sanity, checks = sanity_block(curves or comparison, comparison, epsilon, record, attacked)
    return HeadlineBlock(
        examples=original.examples,
        original=dict(o),
        hardened=dict(h),
        gain=dict(gain),
        kernels=KernelCounts(fragile=fragile, null=null, fragile_fraction=fragile / (fragile + null)),
        harden=HardenSummary(sigma=harden.sigma, tau=harden.tau, alpha=harden.alpha, rank_kept=harden.rank_kept),
        masking=masking_block(comparison, epsilon, record, attacked, checks, resamples, seed),
        sanity=sanity,
    )


def _gain(block: _Block, name: str, original: SweepResult, hardened: SweepResult, i: int) -> None:
    """Hardened minus original accuracy at ε index i, its Newcombe interval, McNemar p-value
    and whether it is a significant gain."""
    add_gain(block, name, original.outcomes("correct", i), hardened.outcomes("correct", i))


def _band(successes: int, examples: int, scale: float = 1.0) -> dict[str, float]:
    """The exact (Clopper–Pearson) 95% interval of successes/examples, as the `series_band`
    plot template's low and high columns."""
    interval = share(successes, examples)
    return {"low": scale * interval.low, "high": scale * interval.high}


def accuracy_series(comparisons: dict[int, Comparison]) -> pd.DataFrame:
    """Long format (epsilon, accuracy, low, high, series) for the `series_band` plot template,
    low and high the 95% interval; PGD (white-box, on its own ε grid) as "... PGD" series beside FGSM's."""
    rows = []
    for epoch, c in comparisons.items():
        pgd = (("original PGD", c.pgd_original), ("hardened PGD", c.pgd_hardened)) if c.pgd_original else ()
        for label, sweep in (("original", c.original), ("hardened white-box", c.hardened),
                             ("hardened transfer", c.transfer), *pgd):
            rows += [{"epsilon": eps, "accuracy": sweep.accuracy(i), **_band(sweep.correct[i], sweep.examples),
                      "series": f"epoch {epoch} {label}"} for i, eps in enumerate(sweep.epsilons)]
    return pd.DataFrame(rows, columns=["epsilon", "accuracy", "low", "high", "series"])


def targeting_series(comparisons: dict[int, Comparison]) -> pd.DataFrame:
    rows = []
    for epoch, c in comparisons.items():
        for label, sweep in (("original", c.original), ("hardened", c.hardened)):
            for distance, suffix in (("absolute", ""), ("relative", " (relative d)")):
                counts = sweep.targeted_relative if distance == "relative" else sweep.targeted
                rows += [{"epsilon": eps, "targeting_pct": sweep.targeting_pct(i, distance),
                          **_band(counts[i], sweep.examples, 100.0),
                          "series": f"epoch {epoch} {label}{suffix}"} for i, eps in enumerate(sweep.epsilons)]
    return pd.DataFrame(rows, columns=["epsilon", "targeting_pct", "low", "high", "series"])


def kernel_drop_series(ranks: Mapping[int, RankResult]) -> pd.DataFrame:
    """Measured accuracy per dropped kernel; a checkpoint ranked by rank.method: taylor alone
    has no measured accuracy (`accuracy` is None) and contributes no rows."""
    rows = []
    for epoch, rank in ranks.items():
        if rank.accuracy is None:
            continue
        rows += [{"kernel": k, "accuracy": acc, "series": f"epoch {epoch}"} for k, acc in enumerate(rank.accuracy)]
    return pd.DataFrame(rows, columns=["kernel", "accuracy", "series"])


def fragile_persistence(fragile: Mapping[int, Sequence[int]]) -> tuple[list[int], list[int]]:
    """(kernels fragile at every checkpoint, kernels fragile at some but not all), from S of
    each checkpoint: the red circles and crosses of the paper's Fig. 4."""
    sets = [set(s) for s in fragile.values()]
    if not sets:
        return [], []
    always = set.intersection(*sets)
    return sorted(always), sorted(set.union(*sets) - always)


def kernel_stability(fragile: Mapping[int, Sequence[int]]) -> dict[str, Any]:
    """How stable S (`fragile`, per checkpoint) is across training: `jaccard_<a>_<b>` = |S_a ∩ S_b| / |S_a ∪ S_b| for each
    pair of consecutive checkpoints a < b, and the kernels fragile at every checkpoint.

    With a single checkpoint there is no pair (no Jaccard keys) and every kernel of its S is
    "fragile at every checkpoint".
    """
    epochs = sorted(fragile)
    out: dict[str, Any] = {"checkpoints": epochs}
    for a, b in zip(epochs, epochs[1:]):
        s_a, s_b = set(fragile[a]), set(fragile[b])
        # The rank stage never writes an empty S, so the union is non-empty; two empty sets are equal.
        out[f"jaccard_{a}_{b}"] = len(s_a & s_b) / len(s_a | s_b) if s_a | s_b else 1.0
    always, _ = fragile_persistence({e: fragile[e] for e in epochs})
    out["always_fragile"] = always
    out["always_fragile_count"] = len(always)
    return out


def summarize(p: Params, ranks: Mapping[int, RankResult], hardens: Mapping[int, HardenResult],
              evaluations: Mapping[int, EvaluateResult], off_grid: OffGridAttack,
              say: Callable[[str], None],
              archives: Mapping[int, Mapping[str, np.ndarray]] | None = None) -> tuple[Headline, dict[str, pd.DataFrame]]:
    """The headline at `epsilon` for every checkpoint in train.checkpoints and the combined plot
    data ({file name: table}); `off_grid` attacks a checkpoint when `epsilon` is not on
    evaluate's grid. Each checkpoint's headline is told through `say`. `archives`: attack_target's
    distance archive per checkpoint, for the readings and claims blocks (fragile.claims_summary)."""
    blocks: dict[int, HeadlineBlock] = {}
    curves: dict[int, Comparison] = {}
    for epoch in p.train.checkpoints:
        curves[epoch] = comparison = evaluations[epoch].comparison()
        if comparison.pgd_original is not None and p.epsilon not in comparison.pgd_original.epsilons:
            say(f"epoch {epoch}: evaluate ran no PGD at ε={p.epsilon}; rerun evaluate (dvc repro) for the "
                "masking verdict at this ε")
        if p.epsilon not in comparison.original.epsilons:
            say(f"epoch {epoch}: ε={p.epsilon} is not in attack.epsilons; attacking at it now")
            extra = off_grid(epoch, ranks[epoch])
            comparison = dataclasses.replace(comparison, original=extra.original, hardened=extra.hardened,
                                             transfer=extra.transfer)
        blocks[epoch] = block = headline(comparison, p.epsilon, ranks[epoch], hardens[epoch], p.analysis.bootstrap,
                                         p.seed, record=evaluations[epoch].robustness, curves=curves[epoch])
        for line in headline_lines(epoch, p.epsilon, block):
            say(line)
    stability = kernel_stability({epoch: rank.fragile for epoch, rank in ranks.items()})
    stability.update(stability_by_chance(ranks))
    pairs = ", ".join(f"{k[len('jaccard_'):].replace('_', '→')}: {v:.3f}" for k, v in stability.items()
                      if k.startswith("jaccard_"))
    say(f"{p.analysis.layer}: {stability['always_fragile_count']} kernels fragile at every checkpoint"
        + (f"; Jaccard of S between consecutive checkpoints {pairs}" if pairs else ""))
    plots = {ACCURACY_PLOT: accuracy_series(curves), TARGETING_PLOT: targeting_series(curves),
             KERNEL_DROP_PLOT: kernel_drop_series(ranks)}
    claims = claims_blocks(p, ranks, curves, archives or {})
    for line in claims_lines(claims["claims"]):
        say(line)
    return Headline(epsilon=p.epsilon, checkpoints=blocks, layer=p.analysis.layer, stability=stability,
                    methods=METHODS, **claims), plots


def headline_lines(epoch: int, epsilon: float, block: HeadlineBlock) -> list[str]:
    o, h = block.original, block.hardened
    lines = [f"epoch {epoch} at ε={epsilon}: original clean {o['clean_accuracy']:.4f} FGSM {o['fgsm_accuracy']:.4f}"
             f" on-S {o['targeting_pct']:.1f}% | hardened clean {h['clean_accuracy']:.4f}"
             f" white-box {h['fgsm_accuracy_whitebox']:.4f} transfer {h['fgsm_accuracy_transfer']:.4f}"
             f" on-S {h['targeting_pct']:.1f}%"]
    if "pgd_accuracy" in o:
        g = block.gain
        lines.append(f"epoch {epoch} at ε={epsilon}: PGD original {o['pgd_accuracy']:.4f} hardened"
                     f" {h['pgd_accuracy_whitebox']:.4f} | gain FGSM {g['fgsm_whitebox']:+.4f}"
                     f" (McNemar p {g['fgsm_whitebox_mcnemar_p']:.3g}) PGD {g['pgd_whitebox']:+.4f}"
                     f" (McNemar p {g['pgd_whitebox_mcnemar_p']:.3g})")
    lines.append(f"epoch {epoch} at ε={epsilon}: {block.masking['verdict']}: {block.masking['reason']}; "
                 f"sanity checks failed: {block.sanity['failed']}")
    return lines


def fgsm_off_grid(original_models: str | os.PathLike[str], hardened_models: str | os.PathLike[str],
                  data: str | os.PathLike[str], p: Params) -> OffGridAttack:
    """FGSM original, hardened and transfer at `epsilon` alone, on the checkpoints of an epoch
    in these folders; torch and the models are loaded only when it is called."""
    def attack(epoch: int, rank: RankResult) -> Comparison:
        from fragile.evaluation import fgsm_at_epsilon

        return fgsm_at_epsilon(Path(original_models) / checkpoint_file(epoch),
                               Path(hardened_models) / checkpoint_file(epoch), Path(data), rank.fragile, rank.null,
                               p.epsilon, p.evaluate, p.analysis.layer)

    return attack
