"""The rank stage's output for rank.method ablation, taylor and hybrid, with and without rank.compare."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from fragile import models
from fragile.data import Split, write_prepared
from fragile.npz import read_npz
from fragile.results import RankResult
from fragile.summary import kernel_drop_series
from stages.rank import main as rank_stage


@pytest.fixture
def rank_inputs(tmp_path, tiny_model, tiny_split):
    # Labels = the model's own predictions: baseline accuracy 1, so drops differ and S, S' are non-empty.
    images, _ = next(tiny_split.batches(len(tiny_split)))
    with torch.no_grad():
        tiny_split = Split(tiny_split.images, tiny_model(images).argmax(1).numpy())
    write_prepared(tmp_path / "data", {"train": tiny_split, "val": tiny_split, "test": tiny_split}, 10, "mnist5k")
    checkpoint = tmp_path / "epoch_1.pt"
    models.save(checkpoint, tiny_model, {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "mean": [0.5],
                                         "std": [0.25], "stem": "imagenet", "epoch": 1})
    return tmp_path, checkpoint


def _run(tmp_path, checkpoint, analysis=None, **rank):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"rank": {"batch_size": 16, **rank}, "analysis": analysis or {}}), encoding="utf-8")
    rank_stage(model=checkpoint, data=tmp_path / "data", kernels_csv=tmp_path / "k.csv", sets=tmp_path / "s.json",
               outcomes=tmp_path / "k.npz", params=params)
    return json.loads((tmp_path / "s.json").read_text()), pd.read_csv(tmp_path / "k.csv")


def test_ablation_by_default_keeps_the_measured_accuracy(rank_inputs):
    summary, table = _run(*rank_inputs)
    assert summary["method"] == "ablation"
    assert len(summary["accuracy"]) == 64 and "comparison" not in summary and "score" not in summary
    assert list(table.columns) == ["kernel", "accuracy", "loss", "set"]
    assert len(kernel_drop_series({1: RankResult.from_json(summary)})) == 64
    correct = read_npz(rank_inputs[0] / "k.npz")["correct"]  # each example's outcome per dropped kernel
    assert correct.sum(axis=0).tolist() == [round(a * summary["examples"]) for a in summary["accuracy"]]
    assert len(summary["p_fragile"]) == 64 and all(0 <= p <= 1 for p in summary["p_fragile"])


def test_taylor_alone_has_scores_and_no_accuracy(rank_inputs):
    summary, table = _run(*rank_inputs, method="taylor")
    assert summary["method"] == "taylor"
    assert summary["accuracy"] is None and summary["mean_accuracy"] is None
    assert len(summary["score"]) == 64 and "comparison" not in summary
    assert sorted(summary["fragile"] + summary["null"]) == list(range(64))
    assert summary["fragile"] == [k for k, s in enumerate(summary["score"]) if s > summary["mean_score"]]
    assert list(table.columns) == ["kernel", "score", "set"]
    assert kernel_drop_series({1: RankResult.from_json(summary)}).empty  # summarize copes: no measured accuracy
    assert read_npz(rank_inputs[0] / "k.npz") == {} and "p_fragile" not in summary  # no exact outcomes to resample


@pytest.mark.parametrize("method", ["taylor", "ablation"])
def test_compare_records_spearman_and_set_agreement(rank_inputs, method):
    summary, table = _run(*rank_inputs, method=method, compare=True)
    comparison = summary["comparison"]
    assert set(comparison) == {"spearman", "spearman_loss", "set_agreement"}
    assert -1.0 <= comparison["spearman"] <= 1.0
    taylor_s = {k for k, s in enumerate(summary["score"]) if s > summary["mean_score"]}
    exact_s = {k for k, a in enumerate(summary["accuracy"]) if a < summary["mean_accuracy"]}
    assert comparison["set_agreement"] == pytest.approx(sum((k in taylor_s) == (k in exact_s) for k in range(64)) / 64)
    assert set(summary["fragile"]) == (taylor_s if method == "taylor" else exact_s)
    assert {"score", "accuracy", "loss", "set"} <= set(table.columns)


@pytest.mark.parametrize("compare", [False, True])
def test_hybrid_keeps_screened_accuracy_and_no_outcomes(rank_inputs, compare):
    summary, table = _run(*rank_inputs, method="hybrid", compare=compare, hybrid_floor=1e9)
    assert summary["method"] == "hybrid" and 0 < summary["exact_share"] <= 1 and "score" not in summary
    assert summary["fragile"] == [k for k, a in enumerate(summary["accuracy"]) if a < summary["mean_accuracy"]]
    assert sorted(summary["fragile"] + summary["null"]) == list(range(64))
    assert len(kernel_drop_series({1: RankResult.from_json(summary)})) == 64
    assert "p_fragile" not in summary  # no per-example outcomes of its own to resample
    if compare:  # every pair ran: the exact ranking's counts, and its outcomes archived
        assert summary["comparison"] == {"spearman": 1.0, "set_agreement": 1.0}
        assert table["accuracy"].tolist() == table["exact_accuracy"].tolist()
        correct = read_npz(rank_inputs[0] / "k.npz")["correct"]
        assert correct.sum(axis=0).tolist() == [round(a * summary["examples"]) for a in summary["accuracy"]]
    else:
        assert "comparison" not in summary and read_npz(rank_inputs[0] / "k.npz") == {}
        assert list(table.columns) == ["kernel", "accuracy", "exact_pairs", "set"]
        assert table["exact_pairs"].tolist() == [summary["examples"]] * 64


def test_a_deeper_layer_ranks_its_own_kernels(rank_inputs):
    summary, table = _run(*rank_inputs, analysis={"layer": "layer2.0.conv2"}, max_examples=8, batch_size=8)
    assert summary["layer"] == "layer2.0.conv2"
    assert len(summary["accuracy"]) == 128 and sorted(summary["fragile"] + summary["null"]) == list(range(128))
    assert table["kernel"].tolist() == list(range(128))


def test_an_unknown_layer_fails_before_any_work(rank_inputs, capsys):
    tmp_path, _ = rank_inputs
    with pytest.raises(SystemExit) as exit_:
        _run(*rank_inputs, analysis={"layer": "layer9.conv1"})
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no conv layer 'layer9.conv1'") and "valid names: conv1, layer1.0.conv1," in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "s.json").exists()


def test_harden_checks_the_layer_and_hardens_it(rank_inputs, capsys):
    from stages.harden import main as harden_stage

    tmp_path, checkpoint = rank_inputs
    summary, _ = _run(*rank_inputs, analysis={"layer": "layer1.0.conv1"}, max_examples=8, batch_size=8)
    for layer, code in (("layer1.0.bn1", 2), ("layer1.0.conv1", None)):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"analysis": {"layer": layer}, "harden": {"noise": 0.05}}),
                                         encoding="utf-8")
        run = lambda: harden_stage(model=checkpoint, data=tmp_path / "data", sets=tmp_path / "s.json",  # noqa: E731
                                   out=tmp_path / "h.pt", report=tmp_path / "h.json", params=tmp_path / "p.yaml")
        if code:
            with pytest.raises(SystemExit):
                run()
            assert "valid names: conv1," in capsys.readouterr().err
        else:
            run()
    report = json.loads((tmp_path / "h.json").read_text())
    assert report["layer"] == "layer1.0.conv1" and report["m"] == len(summary["null"]) and report["n"] == 64 * 9
    assert report["rank_kept"] < report["m"]
    hardened = models.read_checkpoint(tmp_path / "h.pt")["state_dict"]
    original = models.read_checkpoint(checkpoint)["state_dict"]
    assert [k for k in original if not torch.equal(original[k], hardened[k])] == ["net.layer1.0.conv1.weight"]
