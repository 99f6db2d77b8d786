"""The report's opening section: does the paper hold? One row per claim (C1–C5) with the paper's
value, ours with its interval and the verdict, then C2 and C4 on every Algorithm 1 reading, the
kernels' weight norms, and how sure S is (ranking bootstrap, overlap by chance). Every number
comes from metrics/headline.json (`claims`, `readings`, `kernel_norms`, `stability`, written
by fragile.claims_summary) and the rank results (`p_fragile`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fragile.claims_summary import BY_CONSTRUCTION, PAPER_READING, READINGS
from fragile.markdown import markdown_table
from fragile.results import Headline, RankResult

CLAIM_IDS = ("C1", "C2", "C3", "C4", "C5")
SURE = 0.95  # a kernel whose bootstrap P(in S) is at least this (or at most 1 − this) counts as sure


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"


def _interval(interval: Sequence[float] | None, points: bool = False) -> str:
    if interval is None:
        return ""
    if points:
        return f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"
    return f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _ours(claim_id: str, row: Mapping[str, Any]) -> str:
    """Our value in the claim's unit: a share (C1, C2), a count (C3), a change in points (C4, C5)."""
    if row.get("ours") is None:
        return "—"
    if claim_id == "C3":
        return f"{row['ours']:g} kernels"
    if claim_id in ("C4", "C5"):
        return f"{100 * row['ours']:+.1f} pp" + _interval(row.get("interval"), points=True)
    return _pct(row["ours"]) + _interval(row.get("interval"))


def _ours_cell(claim_id: str, row: Mapping[str, Any]) -> str:
    checkpoints = row.get("checkpoints")
    if checkpoints is None:
        return _ours(claim_id, row)
    return "; ".join(f"{key.replace('_', ' ')}: {_ours(claim_id, r)}" for key, r in checkpoints.items())


def claims_table(claims: Mapping[str, Any]) -> str:
    rows = [[claim_id, claims[claim_id]["statement"], claims[claim_id]["paper"], _ours_cell(claim_id, claims[claim_id]),
             f"**{claims[claim_id]['verdict']}**", claims[claim_id]["reason"]] for claim_id in CLAIM_IDS]
    return markdown_table(["claim", "statement", "paper", "ours", "verdict", "why"], rows)


def readings_table(headline: Headline) -> str:
    """C2 and C4 on every reading, with what each reading shows by construction."""
    claims, readings = headline.claims, headline.readings
    epochs = [key for key in readings if key.startswith("epoch_")]
    rows = []
    for reading in READINGS:
        c2, c4 = claims["C2_readings"][reading], claims["C4_readings"][reading]
        shares = "; ".join(
            f"{e.replace('_', ' ')}: {_pct(readings[e][reading]['share'])}"
            + _interval(readings[e][reading].get("share_ci95"))
            + (f" (chance {_pct(readings[e][reading]['chance_median'])}, percentile "
               f"{readings[e][reading]['percentile']:.1f}, p = {_p(readings[e][reading]['p_value'])})"
               if "p_value" in readings[e][reading] else "")
            for e in epochs)
        label = reading + (" (the paper's)" if reading == PAPER_READING else "")
        rows.append([label, BY_CONSTRUCTION[reading], shares or "—", c2["verdict"], _ours_cell("C4", c4),
                     c4["verdict"]])
    return markdown_table(["reading", "holds by construction", "C2: examples attacking S (95% CI; chance)",
                           "C2", "C4: hardened − original on S, same x'", "C4"], rows)


def norms_table(headline: Headline) -> str:
    rows = []
    for key, block in headline.kernel_norms.items():
        spearman = ", ".join(f"{r} {_rho(block['spearman_weight_norm'].get(r))}" for r in READINGS)
        rows.append([key.replace("_", " "), f"{block['weight_norm_fragile']:.3g} vs {block['weight_norm_null']:.3g}",
                     f"{block['bn_weight_norm_fragile']:.3g} vs {block['bn_weight_norm_null']:.3g}", spearman])
    return markdown_table(["checkpoint", "mean ‖W_k‖: S vs S'", "mean ‖W_k‖·|γ_k|/σ_k: S vs S'",
                           "Spearman of ‖W_k‖ with the kernel's mean distance"], rows)


def _rho(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def uncertainty_text(headline: Headline, ranks: Mapping[int, RankResult]) -> str:
    """The ranking bootstrap per checkpoint and the overlap of S against chance."""
    stability = headline.stability
    lines = []
    for epoch, rank in ranks.items():
        if rank.p_fragile is None:
            lines.append(f"- ranking at epoch {epoch}: no bootstrap (analysis.rank_bootstrap is 0, or S came from "
                         "the Taylor ranking)")
            continue
        sure_in = sum(p >= SURE for p in rank.p_fragile)
        sure_out = sum(p <= 1 - SURE for p in rank.p_fragile)
        low, high = rank.fragile_share_ci95 or (None, None)
        lines.append(f"- ranking at epoch {epoch}: |S| = {len(rank.fragile)} of {len(rank.p_fragile)}; over resampled ranking "
                     f"examples |S|/n spans {_pct(low)} to {_pct(high)} (95%); {sure_in} kernels are in S in ≥ "
                     f"{SURE:.0%} of resamples, {sure_out} in ≤ {1 - SURE:.0%}, "
                     f"{len(rank.p_fragile) - sure_in - sure_out} in between")
    pairs = [key[len("jaccard_"):] for key in stability if key.startswith("jaccard_")]
    for pair in pairs:
        a, b = pair.split("_")
        lines.append(f"- epochs {a} → {b}: Jaccard of S {stability[f'jaccard_{pair}']:.2f}; random sets of the same "
                     f"sizes give {stability[f'expected_jaccard_{pair}']:.2f} on average (hypergeometric), "
                     f"p = {_p(stability[f'overlap_p_{pair}'])} for an overlap this large")
    lines.append(f"- fragile at every checkpoint: {stability['always_fragile_count']} kernels; chance expects "
                 f"{stability['always_fragile_expected']:.2f} (p = {_p(stability['always_fragile_p'])})")
    return "\n".join(lines)


def probability_table(ranks: Mapping[int, RankResult]) -> str:
    """Each kernel's bootstrap probability of being in S, one column per checkpoint."""
    shown = {epoch: rank for epoch, rank in ranks.items() if rank.p_fragile is not None}
    if not shown:
        return ""
    kernels = len(next(iter(shown.values())).p_fragile or [])
    rows = [[k] + [f"{rank.p_fragile[k]:.2f}{' (S)' if k in rank.fragile else ''}"  # type: ignore[index]
                   for rank in shown.values()] for k in range(kernels)]
    return markdown_table(["kernel"] + [f"P(in S), epoch {e}" for e in shown], rows)


def claims_section(headline: Headline, ranks: Mapping[int, RankResult]) -> str:
    """The report's first section."""
    claims = headline.claims
    reading, eps = claims["reading"], claims["epsilon"]
    parts = [
        "## Does the paper hold? Claims C1–C5",
        f"Read at ε = {eps:g} on the reading {reading} (analysis.output × attack.distance; the paper's is "
        f"{PAPER_READING}); C2, C4 and C5 per checkpoint, a claim's verdict being the checkpoints' when they "
        "agree and inconclusive when they differ. agree: the paper's effect is there, significant (and, for a "
        "number, near the paper's); disagree: our estimate does not point the paper's way; inconclusive: the "
        "rest. Intervals are 95%: C1's and C2's exact (Clopper–Pearson; C1 over the checkpoints' kernels, C2 "
        "over the examples), C4's and C5's Newcombe's interval for a paired difference with the exact McNemar "
        "test. C2 is judged against random kernel sets of |S| (chance baseline), C3 against "
        "independent random sets of the same sizes, C4 on the original's adversarial examples x' fed to both "
        "models, C5 white-box. Numbers: `claims` in metrics/headline.json (code 1 agree, 0 inconclusive, "
        "−1 disagree).",
        claims_table(claims),
        "### C2 and C4 on every Algorithm 1 reading",
        "Readings: where d_k is taken (conv: the conv's raw output, the paper's words; bn: after its "
        "BatchNorm, eval statistics; relu: after BatchNorm and ReLU, what the next layer sees) and how "
        "(absolute, or relative to the clean map's norm). A ResNet conv has no bias and a BatchNorm follows "
        "it, so a kernel's raw scale is arbitrary: the conv reading's absolute d_k grows with ‖W_k‖ while "
        "the network does not change. Hardening multiplies S by α > 1, which raises S's absolute d_k by "
        "construction; relative readings are free of both.",
        readings_table(headline),
        "### Is a reading the kernels' scale?",
        "If S's kernels are larger, S_f > S_n follows on the conv reading without the attack aiming at them. "
        "Mean weight norm over S and S', raw and through the BatchNorm (the scale the bn reading still "
        "carries), and the Spearman correlation between each kernel's ‖W_k‖ and its mean distance at ε "
        "(`kernel_norms` in metrics/headline.json).",
        norms_table(headline),
        "### How sure is S?",
        "S comes from a finite ranking sample: the ranking bootstrap redraws its examples "
        "(analysis.rank_bootstrap) and recomputes S by the mean line. Overlaps between checkpoints are set "
        "against independent random sets of the same sizes.",
        uncertainty_text(headline, ranks),
    ]
    table = probability_table(ranks)
    if table:
        parts += ["Each kernel's probability of being in S over the resamples ((S): in S on all examples):", table]
    return "\n\n".join(parts)

