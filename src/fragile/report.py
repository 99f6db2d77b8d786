"""The results report (markdown), section by section: every number comes from the stages'
results and metrics files. The paper's published numbers and the rules for comparing them
are fragile.paper's; the report labels them as the paper's and says why one cannot be
compared when the configurations differ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fragile.comparison import Comparison, SweepResult
from fragile.errors import FragileError
from fragile.figures import FIG2, FIG4, fig1_name, fig3_name, figure_names, fragile_sets
from fragile.markdown import (
    epsilon_label,
    kernel_list,
    markdown_table,
    num,
    pct,
    pct_ci,
    pct_value,
    pct_value_ci,
)
from fragile.paper import (
    DATASET_NAMES,
    PAPER_ACCURACY,
    PAPER_FRAGILE_FRACTION,
    PAPER_TARGETING_PCT,
    PAPER_TARGETING_SETTINGS,
    PAPER_TITLE,
    RunConfig,
    agreement,
    caveats,
    differences,
    not_comparable,
    published,
)
from fragile.params import Params
from fragile.report_claims import claims_section
from fragile.report_robustness import epsilon_units_section, flags_ci95, intervals_note, robustness_section
from fragile.results import (
    AttackResult,
    EvaluateResult,
    HardenResult,
    Headline,
    HeadlineBlock,
    RankResult,
    read_checkpoints,
    read_json_object,
    rerun,
)
from fragile.summary import fragile_persistence


@dataclass(frozen=True)
class ReportInputs:
    config: RunConfig
    ranks: Mapping[int, RankResult]
    attacks: Mapping[int, AttackResult]
    hardens: Mapping[int, HardenResult]
    comparisons: Mapping[int, Comparison]  # from each checkpoint's EvaluateResult
    headline: Headline
    training: Mapping[str, Any] | None = None  # dvclive/train/metrics.json
    figures_dir: str = "figures"  # relative to the report
    input_std: tuple[float, ...] = ()  # the models' input std (evaluate): the paper's ε in normalised units


def read_inputs(p: Params, rank_dir: Path, attack_dir: Path, harden_dir: Path, evaluate_dir: Path, metrics: Path,
                training: Path, figures_dir: Path, out: Path) -> ReportInputs:
    """The report's inputs from the stages' outputs; the figures must be drawn already."""
    epochs = tuple(p.train.checkpoints)
    missing = [name for name in figure_names(epochs) if not (figures_dir / f"{name}.png").is_file()]
    if missing:
        raise FragileError(f"{figures_dir} lacks {missing[0]}.png; run the figures stage first (dvc repro figures)")
    headline = Headline.read(metrics)
    absent = [f"epoch_{e}" for e in epochs if e not in headline.checkpoints]
    if absent:
        raise FragileError(f"{metrics} lacks {', '.join(absent)} of train.checkpoints; {rerun(Headline.STAGE)}")
    evaluations = read_checkpoints(EvaluateResult, evaluate_dir, epochs)
    return ReportInputs(
        config=RunConfig(p.data.dataset, p.model.arch, p.model.stem, p.train.epochs, epochs, p.seed,
                         p.model.source),
        ranks=read_checkpoints(RankResult, rank_dir, epochs),
        attacks=read_checkpoints(AttackResult, attack_dir, epochs),
        hardens=read_checkpoints(HardenResult, harden_dir, epochs),
        comparisons={e: r.comparison() for e, r in evaluations.items()},
        headline=headline,
        training=read_json_object(training, "train", ["train", "val"]),
        # markdown links are relative to the report's own folder
        figures_dir=Path(os.path.relpath(figures_dir, out.parent)).as_posix(),
        input_std=tuple(evaluations[epochs[0]].robustness.input_std),
    )


# --- comparison with the paper ---------------------------------------------------------------

def _accuracy_rows(inputs: ReportInputs) -> tuple[list[list[str]], list[str]]:
    """Rows of the paper-vs-ours accuracy table, and one verdict per comparable number."""
    rows, verdicts = [], []
    for paper in PAPER_ACCURACY:
        label = paper.setting.describe()
        fgsm_label = f"{label}: FGSM accuracy at ε = {paper.epsilon:g}"
        gaps = differences(inputs.config, paper.setting)
        if gaps:
            reason = not_comparable(gaps)
            rows.append([f"{label}: clean accuracy", published(paper.clean), "—", reason])
            rows.append([fgsm_label, published(paper.fgsm), "—", reason])
            continue
        attack = inputs.attacks[paper.setting.epochs]
        caveat = "".join(f"; {c}" for c in caveats(inputs.config, paper.setting))
        verdict, detail = agreement(attack.clean_accuracy, paper.clean, attack.examples)
        rows.append([f"{label}: clean accuracy", published(paper.clean), pct(attack.clean_accuracy), detail + caveat])
        verdicts.append(f"{label}, clean accuracy {verdict}")
        if paper.epsilon not in attack.epsilons:
            rows.append([fgsm_label, published(paper.fgsm), "—",
                         f"ε = {paper.epsilon:g} is not on attack.epsilons; add it to compare"])
            continue
        ours = attack.accuracy[attack.epsilons.index(paper.epsilon)]
        verdict, detail = agreement(ours, paper.fgsm, attack.examples)
        rows.append([fgsm_label, published(paper.fgsm), pct(ours), detail + caveat])
        verdicts.append(f"{label}, FGSM accuracy at ε = {paper.epsilon:g} {verdict}")
    return rows, verdicts


def _headline_block(inputs: ReportInputs, epoch: int) -> HeadlineBlock:
    return inputs.headline.checkpoints[epoch]


def _layer(inputs: ReportInputs) -> str:
    return inputs.ranks[inputs.config.checkpoints[0]].layer


def _qualitative_rows(inputs: ReportInputs) -> list[list[str]]:
    eps = inputs.headline.epsilon
    layer = _layer(inputs)
    comparable = [s for s in PAPER_TARGETING_SETTINGS if not differences(inputs.config, s)]
    note = (f"like for like ({comparable[0].describe()})"
            + "".join(f"; {c}" for c in caveats(inputs.config, comparable[0])) if comparable else
            not_comparable(differences(inputs.config, PAPER_TARGETING_SETTINGS[0])) + "; qualitative only")
    if layer != "conv1":
        note += f"; the paper's numbers are for conv1, this run analyses {layer}"
    fractions = ", ".join(f"{pct(_headline_block(inputs, e).kernels.fragile_fraction)} (epoch {e})"
                          for e in inputs.config.checkpoints)
    targeting = ", ".join(f"{pct_value(_headline_block(inputs, e).original['targeting_pct'])} (epoch {e})"
                          for e in inputs.config.checkpoints)
    return [
        [f"fragile kernels |S| as a share of {layer}", published(PAPER_FRAGILE_FRACTION), fractions, note],
        [f"examples whose attack concentrates on S (original model; ours at ε = {eps:g})",
         f"≈{PAPER_TARGETING_PCT:g}%", targeting, note],
    ]


def agreement_line(inputs: ReportInputs) -> str:
    """One plain sentence: do our numbers agree with the paper's, or why they cannot be compared."""
    c = inputs.config
    _, verdicts = _accuracy_rows(inputs)
    eps = inputs.headline.epsilon
    last = c.checkpoints[-1]
    block = _headline_block(inputs, last)
    fraction, targeting = block.kernels.fragile_fraction, block.original["targeting_pct"]
    qualitative = (
        f"Qualitatively, at the last checkpoint (epoch {last}) {pct(fraction)} of {_layer(inputs)}'s kernels are fragile "
        f"(paper: {published(PAPER_FRAGILE_FRACTION)}) and the attack at ε = {eps:g} concentrates on them for "
        f"{pct_value(targeting)} of the examples (paper: ≈{PAPER_TARGETING_PCT:g}%), "
        f"{'a majority as in the paper' if targeting > 50 else 'not a majority, unlike the paper'}."
    )
    if verdicts:
        compared = [p.setting for p in PAPER_ACCURACY if not differences(c, p.setting)]
        caveat = "".join(f" (but {note})" for note in dict.fromkeys(n for s in compared for n in caveats(c, s)))
        return (f"**Does this run agree with the paper?** Where the configuration matches{caveat}: "
                f"{'; '.join(verdicts)}. {qualitative}")
    return (
        f"**Does this run agree with the paper?** Not comparable: this run is {c.describe()}, while the paper's "
        f"accuracies are for {' and '.join(p.setting.describe() for p in PAPER_ACCURACY)}. {qualitative}"
    )


# --- sections --------------------------------------------------------------------------------

def _config_section(inputs: ReportInputs) -> str:
    c = inputs.config
    first = inputs.attacks[c.checkpoints[0]]
    rank = inputs.ranks[c.checkpoints[0]]
    rows = [
        ["dataset", f"{c.dataset} ({DATASET_NAMES.get(c.dataset, c.dataset)})", "CIFAR10 and MNIST"],
        ["architecture", f"{c.arch} ({c.stem} stem)", "ResNet-50 (ResNet-18 and ResNet-101 in Fig. 4)"],
        ["training epochs", "imported (model.file)" if c.source == "file" else c.epochs, "100"],
        ["checkpoints analysed", ", ".join(map(str, c.checkpoints)), "10, 50, 100"],
        ["kernel ranking", f"{rank.examples} {rank.split} examples, drop = {rank.drop}", "not stated"],
        ["FGSM examples per ε", f"{first.examples} test examples", "not stated"],
        ["ε grid", ", ".join(f"{e:g}" for e in first.epsilons), "0.01 (CIFAR10), 0.34 (MNIST), Fig. 2 range"],
        ["headline ε (metrics/headline.json)", f"{inputs.headline.epsilon:g}", "—"],
        ["seed", c.seed, "—"],
    ]
    if inputs.training:
        t = inputs.training
        rows.append(["imported weights (DVCLive)" if c.source == "file" else "after the last epoch (DVCLive)",
                     f"train accuracy {pct(t['train']['accuracy'])}, val accuracy {pct(t['val']['accuracy'])}", "—"])
    return "## Configuration\n\n" + markdown_table(["", "this run", "paper"], rows)


def _paper_section(inputs: ReportInputs) -> str:
    rows, _ = _accuracy_rows(inputs)
    rows += _qualitative_rows(inputs)
    settings = [(p.setting, "clean and FGSM accuracy, Section 3.1") for p in PAPER_ACCURACY]
    settings += [(PAPER_TARGETING_SETTINGS[0], "37% fragile, ≈89% on S, Section 5"),
                 (PAPER_TARGETING_SETTINGS[1], "the same 37% / ≈89%, Conclusion")]
    gaps = [f"- {setting.describe()} ({source}): "
            + ("; ".join([*(detail for _, detail in differences(inputs.config, setting)),
                          *caveats(inputs.config, setting)]) or "same configuration")
            for setting, source in settings]
    examples = inputs.attacks[inputs.config.checkpoints[0]].examples
    gaps.append(f"- examples: the paper does not state how many test examples it attacks; this run attacks "
                f"{examples} per ε (attack.max_examples).")
    return (
        "## The paper's numbers beside ours\n\n"
        + agreement_line(inputs) + "\n\n"
        + markdown_table(["quantity", "paper (published)", "this run", "comparison"], rows) + "\n\n"
        + f"Where the configurations differ (this run: {inputs.config.describe()}):\n\n" + "\n".join(gaps)
        + "\n\n" + epsilon_units_section(inputs.config, inputs.attacks, inputs.input_std)
    ).rstrip()


def _figures_section(inputs: ReportInputs) -> str:
    d, epochs = inputs.figures_dir, inputs.config.checkpoints
    parts = ["## Figures", "",
             f"### Fig. 1: accuracy with each {_layer(inputs)} kernel dropped", "",
             "Fragile kernels S (blue circles) lie below the red mean line, null kernels S' (black stars) "
             "above it; the dashed line is the accuracy with no kernel dropped.", ""]
    parts += [f"![Fig. 1, epoch {e}]({d}/{fig1_name(e)}.png)\n" for e in epochs]
    parts += ["### Fig. 2: FGSM accuracy and targeting across checkpoints", "",
              "Left: accuracy vs ε (linear axis). Right: the share of examples whose attack concentrates on S "
              "(Algorithm 1) vs ε on a log axis; ε = 0 cannot be shown on a log axis and is omitted there "
              "(it moves no kernel, so its share is 0 by definition).", "",
              f"![Fig. 2]({d}/{FIG2}.png)", "",
              f"### Fig. 3: original vs hardened {_layer(inputs)}", "",
              "Left: targeting percentage for the original and the hardened model (white-box) and for the "
              "original's adversarial examples fed to the hardened model (transfer). Right: FGSM accuracy "
              "of the same three.", ""]
    parts += [f"![Fig. 3, epoch {e}]({d}/{fig3_name(e)}.png)\n" for e in epochs]
    always, some = fragile_persistence(fragile_sets(inputs.ranks))
    parts += ["### Fig. 4: kernel drop across checkpoints", "",
              f"Red circles: kernels fragile at every checkpoint ({len(always)}: {kernel_list(always)}). "
              f"Red crosses: fragile at some checkpoints but not all ({len(some)}). {_stability_text(inputs)}", "",
              f"![Fig. 4]({d}/{FIG4}.png)"]
    return "\n".join(parts)


def _stability_text(inputs: ReportInputs) -> str:
    """The Jaccard overlap of S between consecutive checkpoints (metrics/headline.json `stability`)."""
    stability = inputs.headline.stability
    pairs = [(key[len("jaccard_"):].split("_"), value) for key, value in stability.items()
             if key.startswith("jaccard_")]
    if not pairs:
        return "With a single checkpoint there is no overlap between checkpoints to measure."
    return ("Overlap of S between consecutive checkpoints (Jaccard |S_a ∩ S_b| / |S_a ∪ S_b|, `stability` in "
            "metrics/headline.json): " + ", ".join(f"epochs {a} → {b}: {value:.2f}" for (a, b), value in pairs) + ".")


def _attack_ci(inputs: ReportInputs, attack: AttackResult, kind: str, i: int, percent: bool) -> list[float] | None:
    return flags_ci95(attack.per_example[kind][i], percent)


def _accuracy_section(inputs: ReportInputs) -> str:
    epochs = inputs.config.checkpoints
    eps = inputs.attacks[epochs[0]].epsilons
    rows = [[epsilon_label(e)] + [pct_ci(inputs.attacks[ep].accuracy[i],
                                          _attack_ci(inputs, inputs.attacks[ep], "correct", i, False))
                                   for ep in epochs]
            for i, e in enumerate(eps)]
    header, targeting = ["ε"], []
    for ep in epochs:
        header += [f"epoch {ep}: absolute d", f"epoch {ep}: relative d"]
    for i, e in enumerate(eps):
        row = [f"{e:g}"]
        for ep in epochs:
            a = inputs.attacks[ep]
            for kind, values in (("targeted", a.targeting_pct_absolute), ("targeted_relative", a.targeting_pct_relative)):
                row.append(pct_value_ci(values[i], _attack_ci(inputs, a, kind, i, True)))
        targeting.append(row)
    chosen = inputs.attacks[epochs[0]].distance
    return (
        "## Clean and FGSM accuracy (original model, attack_target stage)\n\n"
        + _ci_note(inputs) + "\n\n"
        + markdown_table(["ε"] + [f"epoch {ep}" for ep in epochs], rows)
        + "\n\n## Targeting: examples whose attack concentrates on S (Algorithm 1, original model)\n\n"
        + "Algorithm 1 on absolute distances d_k (the paper) and on relative ones, d_k / ‖f(x)_k‖ "
        + f"(attack.distance = {chosen} feeds attack_target's curve). {RELATIVE_WHY}\n\n"
        + markdown_table(header, targeting)
    )


RELATIVE_WHY = ("Relative distances matter after hardening: amplifying S by α multiplies its absolute d_k by α "
                "for any input change, so absolute distances favour S by construction; relative ones do not.")


def _ci_note(inputs: ReportInputs) -> str:
    return intervals_note()


def _kernels_section(inputs: ReportInputs) -> str:
    always, _ = fragile_persistence(fragile_sets(inputs.ranks))
    rows = []
    for ep in inputs.config.checkpoints:
        r, k = inputs.ranks[ep], _headline_block(inputs, ep).kernels
        rows.append([ep, _measured_pct(r.baseline_accuracy), _measured_pct(r.mean_accuracy), k.fragile, k.null,
                     pct(k.fragile_fraction), len(always)])
    return "## Fragile and null kernels\n\n" + markdown_table(
        ["epoch", "accuracy, nothing dropped", "mean accuracy over drops", "|S|", "|S'|", "fragile fraction",
         "fragile at every checkpoint"], rows)


def _measured_pct(fraction: float | None) -> str:
    """A rank result's measured accuracy; "—" when only the Taylor ranking ran."""
    return "—" if fraction is None else pct(fraction)


def _hardening_section(inputs: ReportInputs) -> str:
    rows, grids = [], []
    for ep in inputs.config.checkpoints:
        h = inputs.hardens[ep]
        rows.append([ep, h.m, h.n, num(h.beta), num(h.lam), num(h.sigma), num(h.tau),
                     f"{h.above_tau} of {len(h.singular_values)}", h.rank_kept, num(h.alpha),
                     h.threshold, h.norm, h.noise_source])
        if h.noise_grid:
            grids.append(f"Epoch {ep} (σ chosen by FGSM accuracy at ε = {h.search_epsilon:g} on val):\n\n"
                         + markdown_table(["σ", "val FGSM accuracy", "τ", "rank kept", "α", "chosen"],
                                          [[num(g.sigma), pct(g.fgsm_accuracy_val), num(g.tau),
                                            g.rank_kept, num(g.alpha), "✓" if g.sigma == h.sigma else ""]
                                           for g in h.noise_grid]))
    grid_text = "\n\n".join(grids) if grids else (
        "No noise search ran: harden.noise_grid is empty, so σ = harden.noise "
        f"({', '.join(num(inputs.hardens[e].sigma) for e in inputs.config.checkpoints)}).")
    table = markdown_table(["epoch", "m", "n", "β = m/n", "λ(β)", "σ", "τ = λ√n σ", "singular values ≥ τ",
                            "rank kept", "α", "threshold", "norm", "σ from"], rows)
    return f"## Hardening (Sections 4.1-4.2)\n\n{table}\n\n### Noise search\n\n{grid_text}"


def _sweep_cell(inputs: ReportInputs, sweep: SweepResult, kind: str, i: int) -> str:
    percent = kind.startswith("targeted")
    value = (sweep.accuracy(i) if kind == "correct" else
             sweep.targeting_pct(i, "relative" if kind == "targeted_relative" else "absolute"))
    ci = flags_ci95(sweep.outcomes(kind, i), percent)
    return pct_value_ci(value, ci) if percent else pct_ci(value, ci)


def _evaluate_section(inputs: ReportInputs) -> str:
    parts = ["## Original vs hardened (evaluate stage, Fig. 3 data)", _ci_note(inputs) + " " + RELATIVE_WHY]
    for ep in inputs.config.checkpoints:
        c = inputs.comparisons[ep]
        cell = lambda sweep, kind, i: _sweep_cell(inputs, sweep, kind, i)  # noqa: E731
        rows = [[epsilon_label(e), cell(c.original, "correct", i), cell(c.hardened, "correct", i),
                 cell(c.transfer, "correct", i), cell(c.original, "targeted", i), cell(c.hardened, "targeted", i),
                 cell(c.transfer, "targeted", i), cell(c.original, "targeted_relative", i),
                 cell(c.hardened, "targeted_relative", i)]
                for i, e in enumerate(c.original.epsilons)]
        parts.append(f"### Epoch {ep} ({c.original.examples} test examples)\n\n" + markdown_table(
            ["ε", "FGSM accuracy: original", "hardened (white-box)", "hardened (transfer)", "on S: original",
             "on S: hardened", "on S: transfer", "on S, relative d: original", "on S, relative d: hardened"], rows))
        if c.pgd_original is not None and c.pgd_hardened is not None:
            o, h = c.pgd_original, c.pgd_hardened
            pgd_rows = [[epsilon_label(e), cell(o, "correct", i), cell(h, "correct", i), cell(o, "targeted", i),
                         cell(h, "targeted", i)] for i, e in enumerate(o.epsilons)]
            parts.append(f"L∞ PGD, white-box against each model (epoch {ep}):\n\n" + markdown_table(
                ["ε", "PGD accuracy: original", "PGD accuracy: hardened", "on S: original", "on S: hardened"],
                pgd_rows))
    return "\n\n".join(parts)


def _headline_section(inputs: ReportInputs) -> str:
    rows = []
    for ep in inputs.config.checkpoints:
        b = _headline_block(inputs, ep)
        o, h = b.original, b.hardened
        acc = lambda block, key: pct_ci(block[key], block.get(f"{key}_ci95")) if key in block else "—"  # noqa: E731
        share = lambda block, key: pct_value_ci(block[key], block.get(f"{key}_ci95"))  # noqa: E731
        rows.append([ep, acc(o, "clean_accuracy"), acc(o, "fgsm_accuracy"), acc(o, "pgd_accuracy"),
                     acc(h, "clean_accuracy"), acc(h, "fgsm_accuracy_whitebox"), acc(h, "fgsm_accuracy_transfer"),
                     acc(h, "pgd_accuracy_whitebox"), share(o, "targeting_pct"), share(h, "targeting_pct"),
                     share(o, "targeting_pct_relative"), share(h, "targeting_pct_relative")])
    eps = inputs.headline.epsilon
    return (f"## Headline at ε = {eps:g} (metrics/headline.json)\n\n" + _ci_note(inputs) + "\n\n"
            + markdown_table(["epoch", "original clean", "original FGSM", "original PGD", "hardened clean",
                              "hardened white-box", "hardened transfer", "hardened PGD", "on S: original",
                              "on S: hardened", "on S, relative d: original", "on S, relative d: hardened"], rows)
            + "\n\n" + robustness_section(inputs.headline, inputs.config.checkpoints))


def build_report(inputs: ReportInputs) -> str:
    """The whole report as markdown (figures linked relative to the report's folder)."""
    sections = [
        f"# Fragile neurons: results report\n\nReproduction of \"{PAPER_TITLE}\". Written by the `report` stage "
        "from results/, metrics/headline.json, dvclive/train/metrics.json and params.yaml; `dvc repro` "
        "regenerates it. Accuracies are percentages of the examples attacked; pp = percentage points.",
        claims_section(inputs.headline, inputs.ranks),
        _config_section(inputs),
        _paper_section(inputs),
        _headline_section(inputs),
        _figures_section(inputs),
        _accuracy_section(inputs),
        _kernels_section(inputs),
        _evaluate_section(inputs),
        _hardening_section(inputs),
    ]
    return "\n\n".join(sections) + "\n"
