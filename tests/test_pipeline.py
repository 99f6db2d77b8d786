"""End to end: `dvc repro` of a tiny config in a temporary git repo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import copy_repo
from fragile import models
from fragile.chance import example_targets
from fragile.npz import read_npz
from fragile.targeting import READINGS, archive_key
from pipeline_repo import sh


@pytest.fixture(scope="module")
def repo(reproduced_repo, tmp_path_factory) -> Path:
    return copy_repo(reproduced_repo, tmp_path_factory.mktemp("pipeline") / "repo")


def test_every_declared_output_exists(repo):
    expected = [
        "data/prepared/manifest.json",
        "models/original/epoch_1.pt",
        "models/hardened/epoch_1.pt",
        "dvclive/train/metrics.json",
        "results/rank/epoch_1.json",
        "results/rank/epoch_1.csv",
        "results/rank/epoch_1.npz",
        "results/attack/epoch_1.json",
        "results/attack/epoch_1.csv",
        "results/attack/epoch_1.npz",
        "results/harden/epoch_1.json",
        "results/evaluate/epoch_1.json",
        "results/evaluate/epoch_1.csv",
        "metrics/headline.json",
        "report/report.md",
        "report/figures/fig1_kernel_drop_epoch_1.png",
        "report/figures/fig2_attack.png",
        "report/figures/fig3_hardening_epoch_1.png",
        "report/figures/fig4_kernel_persistence.png",
        "report/data/fig2_attack.csv",
    ]
    missing = [p for p in expected if not (repo / p).is_file()]
    assert not missing


def test_metrics_are_sane(repo):
    headline = json.loads((repo / "metrics/headline.json").read_text())
    assert headline["epsilon"] == 0.1
    metrics = headline["epoch_1"]
    accuracies = [
        metrics["original"]["clean_accuracy"], metrics["original"]["fgsm_accuracy"],
        metrics["hardened"]["clean_accuracy"], metrics["hardened"]["fgsm_accuracy_whitebox"],
        metrics["hardened"]["fgsm_accuracy_transfer"],
    ]
    assert all(0 <= a <= 1 for a in accuracies)
    assert 0 <= metrics["original"]["targeting_pct"] <= 100
    assert metrics["kernels"]["fragile"] + metrics["kernels"]["null"] == 64
    assert metrics["original"]["clean_accuracy"] > 0.3  # one epoch on real digits learns something
    assert metrics["harden"]["alpha"] >= 1
    # PGD at the headline ε (on attack.pgd_epsilons), intervals around every share, the gains
    assert 0 <= metrics["original"]["pgd_accuracy"] <= metrics["original"]["fgsm_accuracy"] + 0.1
    for side in ("original", "hardened"):
        for key, value in metrics[side].items():
            if not key.endswith("_ci95"):
                low, high = metrics[side][f"{key}_ci95"]
                assert low <= value <= high, key
    for name in ("fgsm_whitebox", "pgd_whitebox"):
        assert 0 <= metrics["gain"][f"{name}_mcnemar_p"] <= 1
        low, high = metrics["gain"][f"{name}_ci95"]
        assert low <= metrics["gain"][name] <= high and low < high
    assert metrics["masking"]["verdict"] in {"robust gain", "masking suspected", "inconclusive", "robust loss"}
    assert metrics["masking"]["strong_attack"] == "PGD" and metrics["masking"]["pgd_steps"] >= 10
    assert metrics["sanity"]["original"] and metrics["sanity"]["hardened"]
    assert "Clopper-Pearson" in headline["methods"]["shares"] and "McNemar" in headline["methods"]["gains"]
    evaluate = json.loads((repo / "results/evaluate/epoch_1.json").read_text())
    assert evaluate["pgd"]["epsilons"] == [0.1, 0.5]  # attack.pgd_epsilons, epsilon and attack.sanity_epsilon
    assert len(evaluate["original"]["per_example"]["clean"]) == evaluate["examples"]
    assert len(evaluate["robustness"]["labels"]) == evaluate["examples"]
    report = (repo / "report/report.md").read_text()
    assert "units not stated in the paper" in report and "| check | original | hardened |" in report
    widths = [(float(a), float(b)) for a, b in re.findall(r"\[([+-]?[\d.]+), ([+-]?[\d.]+)\]", report)]
    assert widths and all(a < b for a, b in widths)  # no interval collapses to a point, 0/n included


def test_rank_outputs_cover_every_kernel(repo):
    sets = json.loads((repo / "results/rank/epoch_1.json").read_text())
    assert sorted(sets["fragile"] + sets["null"]) == list(range(64))
    table = pd.read_csv(repo / "results/rank/epoch_1.csv")
    assert table["kernel"].tolist() == list(range(64))
    assert set(table["set"]) == {"S", "S'"}
    assert table["accuracy"].between(0, 1).all()


def test_attack_curve_and_hardened_checkpoint(repo):
    curve = pd.read_csv(repo / "results/attack/epoch_1.csv")
    assert curve["epsilon"].tolist() == [0.0, 0.1, 0.2]
    assert curve["targeting_pct"].iloc[0] == 0  # ε = 0 moves no kernel
    # PGD next to FGSM on the same examples: attack_target's PGD on the original is evaluate's
    attack = json.loads((repo / "results/attack/epoch_1.json").read_text())
    evaluate = json.loads((repo / "results/evaluate/epoch_1.json").read_text())
    assert attack["pgd"]["epsilons"] == [0.1] and attack["pgd"]["steps"] == yaml.safe_load((repo / "params.yaml").read_text())["attack"]["pgd_steps"]
    assert attack["pgd"]["accuracy"][0] == evaluate["pgd"]["original"]["correct"][0] / evaluate["examples"]
    assert 0 <= attack["pgd"]["accuracy"][0] <= curve["accuracy"].iloc[1]  # PGD at least as strong as FGSM here
    original = models.load(repo / "models/original/epoch_1.pt")
    hardened = models.load(repo / "models/hardened/epoch_1.pt")
    assert not torch.equal(original.net.conv1.weight, hardened.net.conv1.weight)
    assert torch.equal(original.net.fc.weight, hardened.net.fc.weight)


def test_dvc_sees_a_clean_pipeline_and_metrics(repo):
    status = sh("dvc", "status", "--json", cwd=repo)
    assert json.loads(status.stdout) == {}
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=repo).stdout)
    assert "epoch_1" in json.dumps(shown) and "fgsm_accuracy_whitebox" in json.dumps(shown)
    plots = json.loads(sh("dvc", "plots", "show", "--json", cwd=repo).stdout)["data"]
    assert plots["report/figures/fig2_attack.png"][0]["type"] == "image"
    again = sh("dvc", "repro", cwd=repo)
    assert "Running stage" not in again.stdout


def test_changing_epsilon_reruns_only_what_reads_it(repo):
    """Last in this module: it edits the repo's params. ε = 0.05 is off the [0, 0.1, 0.2] grid,
    so summarize attacks at it with FGSM; evaluate runs PGD at it for the masking verdict;
    prepare, train, rank and attack_target do not run."""
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("epsilon: 0.1\n", "epsilon: 0.05\n", 1))
    out = sh("dvc", "repro", cwd=repo).stdout
    ran = sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage"))
    # evaluate's results change (PGD at the new ε), so figures redraws from them; the report shows the new headline
    assert ran == ["evaluate@1", "figures", "harden@1", "report", "summarize"]
    headline = json.loads((repo / "metrics/headline.json").read_text())
    assert headline["epsilon"] == 0.05
    assert 0 <= headline["epoch_1"]["hardened"]["fgsm_accuracy_transfer"] <= 1
    assert "fgsm_accuracy_ci95" in headline["epoch_1"]["original"]
    # evaluate runs PGD at the headline ε whatever attack.pgd_epsilons holds
    assert 0 <= headline["epoch_1"]["hardened"]["pgd_accuracy_whitebox"] <= 1
    assert json.loads((repo / "results/evaluate/epoch_1.json").read_text())["pgd"]["epsilons"] == [0.05, 0.1, 0.5]
    assert f"- epoch 1: **{headline['epoch_1']['masking']['verdict']}**" in (repo / "report/report.md").read_text()


def test_layer_and_kernel_stability_in_the_metrics(repo):
    headline = json.loads((repo / "metrics/headline.json").read_text())
    sets = json.loads((repo / "results/rank/epoch_1.json").read_text())
    assert headline["layer"] == sets["layer"] == "conv1"
    # one checkpoint: no pair to compare, and its whole S counts as fragile at every checkpoint
    assert headline["stability"] == {"checkpoints": [1], "always_fragile": sorted(sets["fragile"]),
                                     "always_fragile_count": len(sets["fragile"]),
                                     "always_fragile_expected": float(len(sets["fragile"])), "always_fragile_p": 1.0}


def test_the_claims_the_readings_and_their_archives(repo):
    headline = json.loads((repo / "metrics/headline.json").read_text())
    claims = headline["claims"]
    assert claims["reading"] == "conv_absolute" and claims["epsilon"] == 0.1
    assert {claims[c]["code"] for c in ("C1", "C2", "C3", "C4", "C5")} <= {-1, 0, 1}
    assert claims["C3"]["verdict"] == "inconclusive"  # one checkpoint: nothing to persist across
    readings = headline["readings"]["epoch_1"]
    distances = read_npz(repo / "results/attack/epoch_1.npz")
    sets = json.loads((repo / "results/rank/epoch_1.json").read_text())
    for reading in READINGS:
        assert 0 <= readings[reading]["percentile"] <= 100 and 0 < readings[reading]["p_value"] <= 1
        d = distances[archive_key(reading, 1)]
        assert d.shape == (40, 64)
        assert readings[reading]["share"] == example_targets(d, sets["fragile"], sets["null"]).mean()
    attack = json.loads((repo / "results/attack/epoch_1.json").read_text())
    assert attack["readings"]["conv_absolute"][1] == pytest.approx(100 * readings["conv_absolute"]["share"])
    assert set(headline["kernel_norms"]["epoch_1"]["spearman_weight_norm"]) == set(READINGS)
    correct = read_npz(repo / "results/rank/epoch_1.npz")["correct"]
    assert correct.shape == (100, 64) and correct.sum(axis=0).tolist() == [
        round(a * 100) for a in sets["accuracy"]]
    assert len(sets["p_fragile"]) == 64
    report = (repo / "report/report.md").read_text()
    assert report.split("\n## ")[1].startswith("Does the paper hold? Claims C1–C5")
