"""fragile aggregate on a saved `dvc exp show --json` (the shape DVC 3 prints, including queued,
failed and out-of-queue experiments)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from fragile.aggregate import aggregate, finished_runs
from fragile.errors import FragileError
from stages.aggregate import main as aggregate_command


def _data(seed, layer, fgsm, count, rev):
    return {
        "rev": rev, "timestamp": "2026-11-25T16:06:37",
        "params": {"params.yaml": {"data": {"seed": seed, "epsilon": 0.1, "train": {"checkpoints": [1, 2]},
                                            "analysis": {"layer": layer}}}},
        "metrics": {"metrics/headline.json": {"data": {
            "format_version": 1, "epsilon": 0.1, "layer": layer, "epoch_2": {"original": {"fgsm_accuracy": fgsm}},
            "stability": {"always_fragile_count": count}}}},
        "deps": {}, "outs": {}, "meta": {},
    }


def _experiment(name, state, seed, layer, fgsm, count, error=None):
    rev = f"{abs(hash(name)):040x}"[:40]
    return {"revs": [{"rev": rev, "name": name, "data": _data(seed, layer, fgsm, count, rev), "error": error,
                      "experiments": None}],
            "executor": None if state is None else {"state": state, "name": "dvc-task", "local": {}},
            "name": name}


def show_json():
    base = _data(0, "conv1", 0.9, 99, "a" * 40)
    return [
        {"rev": "workspace", "name": None, "data": {**base, "rev": "workspace"}, "error": None, "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": base, "error": None, "experiments": [
            _experiment("seed-0", "success", 0, "conv1", 0.50, 10),
            _experiment("seed-1", "success", 1, "conv1", 0.60, 12),
            _experiment("seed-2", None, 2, "conv1", 0.70, 14),  # `dvc exp run` outside the queue
            _experiment("deep-0", "success", 0, "layer2.0.conv2", 0.30, 40),
            _experiment("deep-1", "success", 1, "layer2.0.conv2", 0.40, 44),
            _experiment("broken", "failed", 3, "conv1", 0.0, 0, error={"msg": "Experiment run failed", "type": ""}),
            _experiment("waiting", "queued", 4, "conv1", 0.0, 0),
        ]},
    ]


def test_finished_experiments_grouped_by_every_param_but_seed():
    runs = finished_runs(show_json())
    assert [r["run"] for r in runs] == ["seed-0", "seed-1", "seed-2", "deep-0", "deep-1"]
    table = aggregate(runs).set_index(["analysis.layer", "metric"])
    assert "format_version" not in set(table.index.get_level_values("metric"))  # a file format, not a result
    conv1 = table.loc[("conv1", "epoch_2.original.fgsm_accuracy")]
    assert conv1["n"] == 3 and conv1["mean"] == pytest.approx(0.6) and conv1["std"] == pytest.approx(0.1)
    assert conv1["seeds"] == "0, 1, 2" and conv1["group"] == "analysis.layer=conv1"
    assert conv1["per_seed"] == "0.5, 0.6, 0.7"  # in the order of the seeds
    deep = table.loc[("layer2.0.conv2", "stability.always_fragile_count")]
    assert deep["n"] == 2 and deep["mean"] == pytest.approx(42) and deep["std"] == pytest.approx(math.sqrt(8))
    assert "epsilon" not in table.index.get_level_values("metric")  # a param echoed in the metrics


def test_the_baseline_counts_only_when_asked_and_a_single_run_has_no_std():
    runs = finished_runs(show_json(), baseline=True)
    assert runs[0]["run"] == "main"
    table = aggregate(runs[:1])
    assert table["n"].tolist() == [1, 1] and table["std"].isna().all() and set(table["group"]) == {"all runs"}


def test_the_command_prints_markdown_and_writes_csv(tmp_path, capsys):
    saved = tmp_path / "exps.json"
    saved.write_text(json.dumps(show_json()), encoding="utf-8")
    aggregate_command(source=saved, out=tmp_path / "seeds.csv", baseline=False, metrics_file="metrics/headline.json",
                      match=[])
    text = capsys.readouterr().out
    assert "### analysis.layer=conv1 (seeds 0, 1, 2)" in text
    assert "| epoch_2.original.fgsm_accuracy | 0.6 ± 0.1 | 0.5, 0.6, 0.7 | 3 |" in text
    assert "| stability.always_fragile_count | 42 ± 2.8 | 40, 44 | 2 |" in text
    csv = pd.read_csv(tmp_path / "seeds.csv")
    assert list(csv.columns) == ["analysis.layer", "group", "metric", "n", "mean", "std", "seeds", "per_seed"]
    assert len(csv) == 4


def test_match_keeps_only_the_named_metrics(tmp_path, capsys):
    table = aggregate(finished_runs(show_json()), match=["stability.*"])
    assert set(table["metric"]) == {"stability.always_fragile_count"}
    with pytest.raises(FragileError, match="no metric matches claims"):
        aggregate(finished_runs(show_json()), match=["claims.*"])


def test_nothing_finished_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FragileError, match="no finished experiments"):
        aggregate(finished_runs([show_json()[0]]))
    (tmp_path / "bad.json").write_text("not json", encoding="utf-8")
    with pytest.raises(SystemExit):
        aggregate_command(source=tmp_path / "bad.json", out=None, baseline=False, metrics_file="metrics/headline.json",
                          match=[])
    assert "is not JSON" in capsys.readouterr().err
