"""The rank stage's work: the method in use gives S and S', the other one only sits beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fragile.checkpoint_run import CheckpointRun
from fragile.data import Split
from fragile.distributed import Context
from fragile.models import conv_layer
from fragile.overlap import bootstrap_ranking
from fragile.params import RankParams
from fragile.ranking import rank_checkpoint, summary_line
from fragile.ranking_exact import rank_conv1, rank_layer
from fragile.ranking_taylor import rank_taylor
from fragile.results import RankResult


@pytest.fixture
def run(tiny_model, tiny_split) -> CheckpointRun:
    # Labels = the model's own predictions: baseline accuracy 1, so drops differ and S, S' are non-empty.
    split = tiny_split.head(16)
    images, _ = next(split.batches(len(split)))
    with torch.no_grad():
        split = Split(split.images, tiny_model(images).argmax(1).numpy())
    return CheckpointRun(checkpoint=Path("models/original/epoch_3.pt"), model=tiny_model, meta={"epoch": 3},
                         layer="conv1", conv=conv_layer(tiny_model), sets=None, part=split, batch_size=8,
                         examples=len(split), device=torch.device("cpu"), ctx=Context())


@pytest.mark.parametrize("method", ["ablation", "taylor"])
def test_the_method_in_use_gives_the_sets_and_compare_adds_the_other(run, method):
    ranked = rank_checkpoint(run, RankParams(method=method, compare=True, batch_size=8))
    exact, taylor = rank_conv1(run.model, run.batches()), rank_taylor(run.model, run.batches())
    chosen = exact if method == "ablation" else taylor
    r = ranked.result
    assert (r.fragile, r.null, r.method, r.epoch, r.examples) == (chosen.fragile, chosen.null, method, 3, 16)
    assert r.accuracy == exact.accuracy and r.score == pytest.approx(taylor.score)
    assert set(r.comparison) == {"spearman", "spearman_loss", "set_agreement"}
    assert ranked.table["kernel"].tolist() == list(range(64))
    assert (ranked.table["set"] == "S").sum() == len(chosen.fragile)
    assert "taylor vs exact: Spearman" in summary_line(r, "cpu") and "16 val examples on cpu" in summary_line(r, "cpu")


def test_without_compare_only_the_method_in_use_runs(run):
    result = rank_checkpoint(run, RankParams(method="ablation", batch_size=8)).result
    assert result.score is None and result.comparison is None and "score" not in result.to_json()
    assert list(rank_checkpoint(run, RankParams(method="ablation", batch_size=8)).table.columns) == [
        "kernel", "accuracy", "loss", "set"]


@pytest.mark.parametrize("layer", ["conv1", "layer1.0.conv1"])
def test_each_examples_outcome_per_dropped_kernel_adds_up_to_the_counts(tiny_model, run, layer):
    ranking = rank_layer(run.model, layer, run.batches(), kernels_per_pass=5)
    outcomes = ranking.example_correct
    assert outcomes.shape == (16, conv_layer(run.model, layer).out_channels) and outcomes.dtype == np.uint8
    assert outcomes.sum(axis=0).tolist() == ranking.correct
    halves = [Split(run.part.images[a:b], run.part.labels[a:b]) for a, b in ((0, 8), (8, 16))]
    merged = rank_layer(run.model, layer, halves[0].batches(8)).merge(rank_layer(run.model, layer, halves[1].batches(8)))
    assert np.array_equal(merged.example_correct, outcomes)


def test_the_ranking_bootstrap_gives_each_kernel_its_probability_of_being_in_s(run):
    ranked = rank_checkpoint(run, RankParams(method="ablation", batch_size=8), resamples=200, seed=1)
    r, correct = ranked.result, ranked.archive["correct"]
    assert correct.shape == (16, 64) and correct.sum(axis=0).tolist() == rank_conv1(run.model, run.batches()).correct
    assert r.p_fragile == bootstrap_ranking(correct, 200, 1).probability
    assert r.fragile_share_ci95[0] <= len(r.fragile) / 64 <= r.fragile_share_ci95[1]
    assert RankResult.from_json(r.to_json()) == r
    unsure = rank_checkpoint(run, RankParams(method="ablation", batch_size=8)).result
    assert unsure.p_fragile is None and "p_fragile" not in unsure.to_json()


def test_the_taylor_ranking_alone_has_no_outcomes_and_no_bootstrap(run):
    ranked = rank_checkpoint(run, RankParams(method="taylor", batch_size=8), resamples=50)
    assert ranked.archive == {} and ranked.result.p_fragile is None


def test_the_hybrid_ranking_has_no_outcomes_of_its_own_and_compare_adds_the_exact_one(run):
    ranked = rank_checkpoint(run, RankParams(method="hybrid", batch_size=8), resamples=50)
    r = ranked.result
    assert ranked.archive == {} and r.p_fragile is None and r.comparison is None and r.score is None
    assert r.fragile == [k for k, a in enumerate(r.accuracy) if a < r.mean_accuracy] and 0 < r.exact_share <= 1
    assert "of drops run exactly" in summary_line(r, "cpu")
    every = rank_checkpoint(run, RankParams(method="hybrid", batch_size=8, compare=True, hybrid_floor=1e9),
                            resamples=50)
    exact = rank_conv1(run.model, run.batches())
    assert every.result.accuracy == exact.accuracy and every.result.fragile == exact.fragile
    assert every.result.comparison == {"spearman": 1.0, "set_agreement": 1.0} and every.result.exact_share == 1.0
    assert every.archive["correct"].sum(axis=0).tolist() == exact.correct and every.result.p_fragile is None
    assert "hybrid vs exact: Spearman 1.000, same set 100%" in summary_line(every.result, "cpu")
