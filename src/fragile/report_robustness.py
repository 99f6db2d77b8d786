"""The report's robustness sections, from metrics/headline.json (fragile.robustness_summary):
the hardened-vs-original gains with the method behind each number, AutoAttack per component,
the sanity checks per model, the three-way masking verdict, and the paper's FGSM numbers
under both readings of its ε (pixel, or normalised units converted by the model's input std).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fragile.autoattack import COMPONENTS, GRADIENT_FREE
from fragile.bootstrap import outcomes
from fragile.intervals import CLOPPER_PEARSON
from fragile.markdown import markdown_table, pct, pct_ci, signed_pp
from fragile.paper import (
    PAPER_ACCURACY,
    PaperAccuracy,
    RunConfig,
    agreement,
    caveats,
    differences,
    not_comparable,
    published,
)
from fragile.results import AttackResult, Headline
from fragile.robustness_summary import component_key, share_ci95
from fragile.units import PAPER_EPSILON_UNITS, epsilon_readings

GAINS = (
    ("clean", "clean (no attack)"),
    ("fgsm_whitebox", "FGSM, white-box"),
    ("fgsm_transfer", "FGSM transferred from the original (hardened) vs white-box (original)"),
    ("pgd_whitebox", "L∞ PGD, white-box"),
    ("autoattack", "AutoAttack (final)"),
)


def flags_ci95(flags: str, percent: bool = False) -> list[float] | None:
    """The exact Clopper–Pearson 95% interval of the share of '1's in a per-example string
    (percent: in percent); None when no outcomes were stored."""
    if not flags:
        return None
    return share_ci95(int(outcomes(flags).sum()), len(flags), 100.0 if percent else 1.0)


def intervals_note() -> str:
    return (f"In brackets: exact 95% intervals ({CLOPPER_PEARSON}) of each share of the attacked examples; "
            "they never shrink to a point at 0% or 100%.")


def robustness_section(headline: Headline, epochs: Sequence[int]) -> str:
    """Gains, AutoAttack, sanity checks and the verdict, per checkpoint at the headline ε."""
    eps = headline.epsilon
    parts = [f"### Hardened minus original at ε = {eps:g}", "",
             "Paired on the same examples: each gain's 95% interval is Newcombe's (1998, method 10) for a "
             "difference of paired shares, its p-value the exact McNemar test on the discordant pairs (examples "
             "right under one model only); a gain counts when p < 0.05 in the hardened model's favour. "
             "Methods, as `methods` in metrics/headline.json:", ""]
    parts += [f"- {kind}: {text}" for kind, text in headline.methods.items()]
    parts += ["", gains_table(headline, epochs)]
    autoattack = autoattack_table(headline, epochs)
    if autoattack:
        parts += ["", f"### AutoAttack at ε = {eps:g}", "", autoattack]
    parts += ["", f"### Sanity checks (evaluate's examples, ε grids of FGSM and PGD, AutoAttack at ε = {eps:g})", "",
              sanity_tables(headline, epochs), "", verdict_paragraph(headline, epochs)]
    return "\n".join(parts)


def gains_table(headline: Headline, epochs: Sequence[int]) -> str:
    rows = []
    for ep in epochs:
        g = headline.checkpoints[ep].gain
        for key, label in GAINS:
            if key not in g:
                continue
            rows.append([ep, label, signed_pp(g[key], g.get(f"{key}_ci95")), f"{g[key + '_mcnemar_p']:.3g}",
                         "yes" if g[f"{key}_gain"] else "no"])
    return markdown_table(["epoch", "attack", "gain [Newcombe 95%]", "McNemar p", "significant gain"], rows)


def autoattack_table(headline: Headline, epochs: Sequence[int]) -> str:
    """Running robust accuracy after each component (AutoAttack's own reporting), per model;
    empty when AutoAttack did not run."""
    rows = []
    for ep in epochs:
        b = headline.checkpoints[ep]
        if "autoattack_accuracy" not in b.original:
            continue
        for component in COMPONENTS:
            key = component_key(component)
            rows.append([ep, f"after {component}" + (" (gradient-free)" if component == GRADIENT_FREE else ""),
                         _share(b.original, key), _share(b.hardened, key)])
        rows.append([ep, "**robust accuracy (final)**", _share(b.original, "autoattack_accuracy"),
                     _share(b.hardened, "autoattack_accuracy")])
    if not rows:
        return ""
    return ("torchattacks' AutoAttack (L∞, standard: APGD-CE, APGD-T, FAB-T, Square), each component on the "
            "examples the earlier ones left correct. " + intervals_note() + "\n\n"
            + markdown_table(["epoch", "accuracy", "original", "hardened"], rows))


def sanity_tables(headline: Headline, epochs: Sequence[int]) -> str:
    parts = []
    for ep in epochs:
        s = headline.checkpoints[ep].sanity
        by_model = {model: {c["name"]: c for c in s.get(model, [])} for model in ("original", "hardened")}
        names = list(dict.fromkeys([*by_model["original"], *by_model["hardened"]]))
        rows = [[name, _check_cell(by_model["original"].get(name)), _check_cell(by_model["hardened"].get(name))]
                for name in names]
        text = f"Epoch {ep}: {s.get('failed', 0)} failed.\n\n" + markdown_table(["check", "original", "hardened"], rows)
        if s.get("not_run"):
            text += "\n\nNot run: " + "; ".join(s["not_run"]) + "."
        parts.append(text)
    return "\n\n".join(parts)


def verdict_paragraph(headline: Headline, epochs: Sequence[int]) -> str:
    """One line per checkpoint: the three-way verdict, its reason and the smallest detectable gain."""
    lines = [f"**Real robustness or gradient masking?** At ε = {headline.epsilon:g}, against the strongest attack "
             "run. \"robust gain\": the strong attack's paired gain is significant (McNemar); \"masking suspected\": "
             "the FGSM gain is significant and exceeds the strong attack's per example (one-sided sign test), or a "
             "sanity check failed; \"inconclusive\" otherwise, with the smallest gain these examples could detect. "
             "A PGD of fewer than 10 steps gives no verdict."]
    for ep in epochs:
        m = headline.checkpoints[ep].masking
        line = f"- epoch {ep}: **{m['verdict']}** ({m['strong_attack']}"
        if m["strong_attack"] != "none":
            line += f"; PGD {m['pgd_steps']} steps, {m['pgd_restarts']} restart(s)"
        line += f"): {m['reason']}."
        square = [name for name in m.get("failed_checks", []) if GRADIENT_FREE in name]
        if square:
            line += (f" Masking sign: {GRADIENT_FREE} (gradient-free) breaks examples that the gradient attacks left "
                     f"correct ({', '.join(square)}).")
        lines.append(line)
    return "\n".join(lines)


def epsilon_units_section(config: RunConfig, attacks: Mapping[int, AttackResult], input_std: Sequence[float]) -> str:
    """The paper's FGSM accuracies beside ours at both readings of its ε: as pixel units, and as
    normalised units converted to pixels by the model's input std (fragile.units)."""
    if not input_std:
        return ""
    rows = [_reading_row(config, attacks, input_std, paper) for paper in PAPER_ACCURACY]
    std = ", ".join(f"{s:g}" for s in input_std)
    return ("### The paper's ε under both readings\n\n"
            f"The paper gives ε without units ({PAPER_EPSILON_UNITS}). Read as pixel units of [0, 1] images it is "
            f"used as is; read as units of the normalised input (x − mean)/std it is ε × std in pixels, with this "
            f"run's input std ({std}; several channels: the smallest). Ours: FGSM accuracy of the original model "
            "(attack_target) at that ε.\n\n"
            + markdown_table(["setting", "paper ε", "paper FGSM", "as pixels", "ours", "as normalised → pixels",
                              "ours", "comparison"], rows))


def _reading_row(config: RunConfig, attacks: Mapping[int, AttackResult], std: Sequence[float],
                 paper: PaperAccuracy) -> list[str]:
    readings = epsilon_readings(paper.epsilon, std)
    attack = attacks.get(paper.setting.epochs) or attacks[config.checkpoints[-1]]
    gaps = differences(config, paper.setting)
    cells, verdicts = [], []
    for name, eps in (("pixel", readings.if_pixels), ("normalised", readings.if_normalised)):
        found = next((i for i, e in enumerate(attack.epsilons) if abs(e - eps) < 5e-4), None)
        if found is None:
            cells += [f"{eps:.3g}", "— (not on attack.epsilons)"]
            continue
        ours = attack.accuracy[found]
        cells += [f"{eps:.3g}", pct(ours)]
        if not gaps:
            verdict, detail = agreement(ours, paper.fgsm, attack.examples)
            verdicts.append(f"{name} reading: {detail}")
    comparison = not_comparable(gaps) if gaps else "; ".join(
        [*(verdicts or ["add either ε to attack.epsilons"]), *caveats(config, paper.setting)])
    return [paper.setting.describe(), f"{paper.epsilon:g}", published(paper.fgsm), *cells,
            f"{comparison}; {PAPER_EPSILON_UNITS}"]


def _share(block: Mapping[str, Any], key: str) -> str:
    return pct_ci(block[key], block.get(f"{key}_ci95")) if key in block else "—"


def _check_cell(check: Mapping[str, Any] | None) -> str:
    if check is None:
        return "—"
    return f"{'pass' if check['passed'] else '**FAIL**'}: {check['reason']}"
