"""The report: its numbers come from the results and metrics files, and it says when the paper is comparable."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from scipy import stats

import fake_results as fake
from fragile.figures import figure_names
from fragile.paper import RunConfig
from fragile.report import ReportInputs, build_report
from stages import report as report_stage

EPOCHS = (1, 2)


def inputs(config: RunConfig | None = None, epochs: tuple[int, ...] = EPOCHS, **changes) -> ReportInputs:
    base = dict(
        config=config or RunConfig("mnist5k", "resnet18", "imagenet", max(epochs), epochs, 0),
        ranks={e: fake.rank(e) for e in epochs},
        attacks={e: fake.attack(e) for e in epochs},
        hardens={e: fake.harden(e) for e in epochs},
        comparisons={e: fake.comparison(e) for e in epochs},
        headline=fake.headline_metrics(epochs),
        training={"train": {"accuracy": 0.91}, "val": {"accuracy": 0.88}},
    )
    return ReportInputs(**{**base, **changes})


def _row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def test_an_imported_model_is_described_as_imported_not_by_training_epochs():
    # (the fakes number checkpoints from 1; an import's is epoch 0, which the report does not treat apart)
    text = build_report(inputs(RunConfig("imagefolder", "resnet50", "imagenet", 2, (1,), 0, source="file"), (1,)))
    assert _row(text, "training epochs") == "| training epochs | imported (model.file) | 100 |"
    assert _row(text, "imported weights (DVCLive)").startswith("| imported weights (DVCLive) | train accuracy 91.0%")


def test_tables_show_accuracy_per_epsilon_per_checkpoint_and_kernel_counts():
    text = build_report(inputs())
    a1, a2 = fake.attack(1), fake.attack(2)
    assert re.match(rf"\| 0 \(clean\) \| {100 * a1.accuracy[0]:.1f}% \[[\d.]+, [\d.]+\] \| "
                    rf"{100 * a2.accuracy[0]:.1f}% \[", _row(text, "0 (clean)"))
    r1 = fake.rank(1)
    kernels = fake.headline_metrics(EPOCHS).checkpoints[1].kernels
    assert re.search(rf"\| 1 \| 70.0% \| {100 * r1.mean_accuracy:.1f}% \| {kernels.fragile} \| "
                     rf"{kernels.null} \| {100 * kernels.fragile_fraction:.1f}% \|", text)
    assert "| 1 | 5 | 49 | 0.102 | 1.6 | 0.015 | 0.5 | 4 of 5 | 4 | 1.25 | truncate | spectral | harden.noise |" in text
    assert "No noise search ran" in text


def test_changing_a_metric_changes_the_report():
    before = build_report(inputs())
    attacks = {e: fake.attack(e) for e in EPOCHS}
    attacks[2].accuracy[2] = 0.4321
    after = build_report(inputs(attacks=attacks))
    assert "43.2%" in after and "43.2%" not in before
    headline = fake.headline_metrics(EPOCHS)
    headline.checkpoints[2].hardened["fgsm_accuracy_transfer"] = 0.1234
    assert "12.3%" in build_report(inputs(headline=headline))


def test_noise_grid_rows_and_the_chosen_sigma():
    text = build_report(inputs(hardens={e: fake.harden(e, grid=True) for e in EPOCHS}))
    assert "σ chosen by FGSM accuracy at ε = 0.1 on val" in text
    assert "| 0.02 | 42.0% | 0.2 | 4 | 1.1 | ✓ |" in text
    assert "| 0.01 | 41.0% | 0.1 | 4 | 1.1 |  |" in text


def test_the_papers_numbers_are_labelled_and_a_different_configuration_is_not_comparable():
    text = build_report(inputs())
    for published in ("75.87%", "58.88%", "99.42%", "79.4%", "37%", "≈89%"):
        assert published in text
    assert "paper (published)" in text
    line = next(row for row in text.splitlines() if row.startswith("**Does this run agree with the paper?**"))
    assert "Not comparable" in line and "resnet18" in line and "mnist5k" in line
    assert "not comparable: architecture, dataset, epochs differ" in text
    assert "mnist5k (a 5,000-digit MNIST subset) vs CIFAR10" in text
    assert "not comparable: architecture, epochs differ" in text  # the MNIST pair: the digits are MNIST's
    assert "vs 10; the number of training images differs: a 5,000-digit MNIST subset" in text


def test_the_mnist_subset_is_compared_with_mnist_and_names_the_training_images_as_the_difference():
    config = RunConfig("mnist5k", "resnet50", "imagenet", 100, (10, 50, 100), 0)
    text = build_report(inputs(config, (10, 50, 100)))
    line = next(row for row in text.splitlines() if row.startswith("**Does this run agree with the paper?**"))
    assert "ResNet-50, MNIST, 100 epochs, clean accuracy disagrees" in line  # ours 70.0% vs 99.42%
    assert "(but the number of training images differs" in line
    row = _row(text, "ResNet-50, MNIST, 100 epochs: clean accuracy")
    assert "disagrees" in row and "a 5,000-digit MNIST subset vs all of MNIST's" in row
    # Sec. 5's 37 % and ≈89 % are for ResNet-50 / MNIST / 10 epochs
    assert _row(text, "fragile kernels \\|S\\| as a share of conv1").endswith(
        "| like for like (ResNet-50, MNIST, 10 epochs); the number of training images differs: a 5,000-digit "
        "MNIST subset vs all of MNIST's |")


def test_a_matching_configuration_is_compared_within_sampling_error():
    config = RunConfig("cifar10", "resnet50", "imagenet", 100, (100,), 0)
    sweep = fake.sweep([0.0, 0.01], 760, [760, 500], [0, 900], examples=1000)
    attack = dataclasses.replace(fake.attack(100), examples=1000, clean_accuracy=0.76, epsilons=[0.0, 0.01],
                                 accuracy=[0.76, 0.50], targeting_pct=[0.0, 90.0], targeting_pct_absolute=[0.0, 90.0],
                                 targeting_pct_relative=[0.0, 45.0], per_example=sweep.per_example)
    comparison = fake.comparison(100)
    comparison = dataclasses.replace(comparison, **{name: fake.sweep([0.0, 0.01], 150, [150, 100], [0, 120])
                                                    for name in ("original", "hardened", "transfer")})
    text = build_report(inputs(config, (100,), attacks={100: attack}, comparisons={100: comparison}))
    line = next(row for row in text.splitlines() if row.startswith("**Does this run agree with the paper?**"))
    assert "clean accuracy agrees" in line  # 76.0% vs 75.87%, 2 SE ≈ 2.7 pp
    assert "FGSM accuracy at ε = 0.01 disagrees" in line  # 50.0% vs 58.88%
    assert "-8.9 pp" in text
    assert "not comparable: dataset differs" in text  # the MNIST pair


def test_a_matching_configuration_without_the_papers_epsilon_says_what_to_add():
    config = RunConfig("mnist", "resnet50", "imagenet", 100, (1, 100), 0)
    text = build_report(inputs(config, (1, 100)))
    assert "ε = 0.34 is not on attack.epsilons; add it to compare" in text
    assert "ResNet-50, MNIST, 100 epochs, clean accuracy disagrees" in text  # ours 70.0% vs 99.42%


def test_figures_are_embedded_by_relative_path():
    text = build_report(inputs())
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == [f"figures/{name}.png" for name in figure_names(EPOCHS)]


def _run_stage(root):
    report_stage.main(root / "results/rank", root / "results/attack", root / "results/harden",
                      root / "results/evaluate", root / "metrics/headline.json", root / "dvclive/train/metrics.json",
                      root / "report/figures", root / "report/report.md", root / "params.yaml")
    return (root / "report/report.md").read_text(encoding="utf-8")


def _fake_figures(root, epochs):
    (root / "report/figures").mkdir(parents=True)
    for name in figure_names(epochs):
        (root / f"report/figures/{name}.png").write_bytes(b"")


def test_the_stage_reads_its_numbers_from_the_metrics_files(tmp_path):
    fake.write_results(tmp_path, EPOCHS)
    _fake_figures(tmp_path, EPOCHS)
    before = _run_stage(tmp_path)
    assert "![Fig. 2](figures/fig2_attack.png)" in before
    path = tmp_path / "metrics/headline.json"
    metrics = json.loads(path.read_text())
    metrics["epoch_1"]["original"]["targeting_pct"] = 12.3456
    metrics["epoch_2"]["kernels"]["fragile_fraction"] = 0.777
    path.write_text(json.dumps(metrics))
    after = _run_stage(tmp_path)
    assert "12.3% (epoch 1)" in after and "12.3% (epoch 1)" not in before
    assert "77.7% of conv1's kernels are fragile" in after
    path = tmp_path / "results/harden/epoch_2.json"
    harden = json.loads(path.read_text())
    harden["alpha"] = 1.987654
    path.write_text(json.dumps(harden))
    assert "| 1.988 |" in _run_stage(tmp_path)
    # the real files' per-example outcomes give the per-ε tables their intervals (analysis.bootstrap)
    fake.write_json(tmp_path / "params.yaml", {**fake.params(EPOCHS), "analysis": {"bootstrap": 50}})
    assert re.search(r"\| 0 \(clean\) \| 75\.0% \[[\d.]+, [\d.]+\] \|", _run_stage(tmp_path))


def test_the_stage_needs_the_figures_first(tmp_path, capsys):
    fake.write_results(tmp_path, EPOCHS)
    with pytest.raises(SystemExit) as exit_info:
        _run_stage(tmp_path)
    assert exit_info.value.code == 2
    assert "run the figures stage first" in capsys.readouterr().err


def _with_pgd(epochs: tuple[int, ...] = EPOCHS, resamples: int = 200) -> dict:
    """Report inputs whose evaluate results hold per-example outcomes and PGD (test_summary's)."""
    from fragile.summary import headline
    from test_summary import comparison as masked

    comparisons = {1: masked(hardened_fgsm=60, hardened_pgd=20), 2: masked(hardened_fgsm=60, hardened_pgd=40)}
    blocks = {e: headline(comparisons[e], 0.1, fake.rank(e), fake.harden(e), resamples, 0,
                          record=fake.robustness(100)) for e in epochs}
    return dict(comparisons=comparisons,
                headline=dataclasses.replace(fake.headline_metrics(epochs), checkpoints=blocks))


def test_the_report_names_gradient_masking_only_where_pgd_takes_the_gain_away():
    text = build_report(inputs(**_with_pgd()))
    epoch_1 = next(line for line in text.splitlines() if line.startswith("- epoch 1:"))
    epoch_2 = next(line for line in text.splitlines() if line.startswith("- epoch 2:"))
    assert "**masking suspected** (PGD; PGD 10 steps, 1 restart(s))" in epoch_1 and "FGSM gain +20.0 pp [" in epoch_1
    assert "**robust gain**" in epoch_2 and "PGD gain +20.0 pp [" in epoch_2
    assert "Newcombe" in text and "McNemar" in text and "Clopper-Pearson exact" in text


def test_tables_carry_intervals_relative_targeting_and_pgd():
    text = build_report(inputs(**_with_pgd()))
    assert "on S, relative d: hardened" in text and "RELATIVE" not in text
    assert "PGD accuracy: original" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0.1 | 40.0% ["))  # evaluate, ε = 0.1
    low, high = map(float, re.search(r"40\.0% \[([\d.]+), ([\d.]+)\]", row).groups())
    exact = stats.binomtest(40, 100).proportion_ci(method="exact")  # Clopper–Pearson
    assert (low, high) == (round(100 * exact.low, 1), round(100 * exact.high, 1))
    assert build_report(inputs(**_with_pgd(resamples=0))).count("40.0% [") == text.count("40.0% [")  # exact: no resampling


def test_kernel_stability_and_the_analysed_layer_are_reported():
    text = build_report(inputs())
    s1, s2 = set(fake.rank(1).fragile), set(fake.rank(2).fragile)
    assert f"epochs 1 → 2: {len(s1 & s2) / len(s1 | s2):.2f}" in text
    assert f"Red circles: kernels fragile at every checkpoint ({len(s1 & s2)}:" in text
    assert "no overlap between checkpoints to measure" in build_report(inputs(epochs=(2,)))
    ranks = {e: fake.rank(e, layer="layer2.0.conv2") for e in EPOCHS}
    deeper = build_report(inputs(ranks=ranks))
    assert "### Fig. 1: accuracy with each layer2.0.conv2 kernel dropped" in deeper
    assert "the paper's numbers are for conv1, this run analyses layer2.0.conv2" in deeper
    assert "conv1 kernel" not in deeper
