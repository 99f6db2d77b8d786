"""The typed result files: the JSON round trip, the format version, and one-line errors that
name the stage to rerun for every way a file can be bad."""

from __future__ import annotations

import dataclasses
import json

import pytest

import fake_results as fake
from fragile.errors import FragileError
from fragile.results import (
    FORMAT_KEY,
    AttackResult,
    EvaluateResult,
    HardenResult,
    Headline,
    RankResult,
    read_checkpoints,
    read_kernel_sets,
)

RESULTS = {
    "rank": fake.rank(1),
    "attack_target": fake.attack(1),
    "harden": fake.harden(1, grid=True),
    "evaluate": fake.evaluate(1),
    "summarize": fake.headline_metrics((1, 2)),
}


@pytest.mark.parametrize("stage", sorted(RESULTS))
def test_every_result_survives_the_round_trip_through_its_file(tmp_path, stage):
    result = RESULTS[stage]
    assert type(result).STAGE == stage
    result.write(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert next(iter(data)) == FORMAT_KEY and data[FORMAT_KEY] == type(result).FORMAT_VERSION
    assert type(result).read(tmp_path / "r.json") == result


def test_the_files_keep_the_pipelines_json_shapes():
    rank = fake.rank(1).to_json()
    assert "score" not in rank and "comparison" not in rank  # written only when the Taylor ranking ran
    taylor = dataclasses.replace(fake.rank(1), accuracy=None, score=[0.1] * fake.KERNELS, mean_score=0.1,
                                 baseline_loss=1.0)
    assert taylor.to_json()["accuracy"] is None and RankResult.from_json(taylor.to_json()) == taylor
    evaluate = fake.evaluate(1).to_json()
    assert list(evaluate["original"]) == ["clean_correct", "correct", "targeted", "targeted_relative", "per_example"]
    assert list(evaluate["pgd"]) == ["epsilons", "original", "hardened"]
    headline = fake.headline_metrics((1, 2)).to_json()
    assert list(headline) == [FORMAT_KEY, "epsilon", "epoch_1", "epoch_2", "layer", "stability", "readings",
                              "kernel_norms", "claims", "methods"]
    assert set(headline["epoch_1"]) == {"examples", "original", "hardened", "gain", "kernels", "harden", "masking",
                                        "sanity"}
    assert list(evaluate)[-1] == "robustness" and len(evaluate["robustness"]["labels"]) == evaluate["examples"]
    assert "autoattack_original" not in evaluate["robustness"]  # written only when AutoAttack ran


def test_an_evaluate_result_gives_back_the_comparison_it_was_made_of():
    comparison = fake.comparison(2)
    result = EvaluateResult.from_json(fake.evaluate(2).to_json())
    assert result.comparison() == comparison
    assert result.comparison().original.outcomes("targeted_relative", 1) == comparison.original.outcomes(
        "targeted_relative", 1)


def test_an_attack_result_records_both_distances_and_the_chosen_one():
    sweep = fake.comparison(1).original
    result = AttackResult.from_sweeps(checkpoint="m/epoch_1.pt", epoch=1, layer="conv1", fgsm=sweep, pgd=None,
                                      distance="relative", pgd_steps=3, pgd_step_size=0.0, device="cpu",
                                      batch_size=50, fragile=[0, 2], null=[1, 3])
    assert (result.batch_size, result.fragile, result.null) == (50, [0, 2], [1, 3])
    assert result.targeting_pct == result.targeting_pct_relative == [sweep.targeting_pct(i, "relative")
                                                                      for i in range(len(fake.EPSILONS))]
    assert result.targeting_pct_absolute == [sweep.targeting_pct(i) for i in range(len(fake.EPSILONS))]
    assert result.readings["bn_relative"] == [sweep.reading_pct("bn_relative", i) for i in range(len(fake.EPSILONS))]
    assert result.readings["conv_absolute"] == result.targeting_pct_absolute  # the fakes record them alike
    assert AttackResult.from_json(result.to_json()) == result
    assert result.pgd is None and result.curve_rows()[2] == {
        "epsilon": 0.1, "accuracy": sweep.accuracy(2), "targeting_pct": sweep.targeting_pct(2, "relative")}


def _edited(edit):
    data = fake.rank(1).to_json()
    edit(data)
    return data


BAD_FILES = {
    "missing": (None, "not found; run the rank stage first (dvc repro -f rank)"),
    "not JSON": ("{'fragile': [1]", "is not valid JSON; rerun the rank stage (dvc repro -f rank)"),
    "not an object": ("[1, 2]", "is not a JSON object; rerun"),
    "no version": (_edited(lambda d: d.pop(FORMAT_KEY)), "has no format version (written before results had one); "
                   f"this code reads version {RankResult.FORMAT_VERSION} of rank results; rerun the rank stage (dvc repro -f rank)"),
    "old version": (_edited(lambda d: d.update({FORMAT_KEY: 0})), f"has format version 0; this code reads version {RankResult.FORMAT_VERSION}"),
    "unknown version": (_edited(lambda d: d.update({FORMAT_KEY: 7})), "has format version 7; this code reads"),
    "missing field": (_edited(lambda d: d.pop("null")), "lacks null; it is older than this code; rerun the rank "
                      "stage (dvc repro -f rank)"),
    "wrong type": (_edited(lambda d: d.update(fragile="0, 1")), "fragile must be a list, got str; rerun"),
    "wrong element": (_edited(lambda d: d["fragile"].append(2.5)), "] must be a int, got float; rerun"),
    "unknown field": (_edited(lambda d: d.update(extra=1)), "has fields this code does not know (extra); rerun"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_result_file_is_one_line_naming_the_file_and_the_stage_to_rerun(tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "results" / "epoch_1.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(FragileError) as error:
        RankResult.read(path)
    text = str(error.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert message in text, text
    assert text.endswith("(dvc repro -f rank)"), text


def test_nested_records_name_the_field_and_each_stage_its_own_rerun(tmp_path):
    evaluate = fake.evaluate(1).to_json()
    del evaluate["hardened"]["targeted_relative"]
    fake.write_json(tmp_path / "e.json", evaluate)
    with pytest.raises(FragileError, match=r"e\.json lacks hardened\.targeted_relative; .*dvc repro -f evaluate\)"):
        EvaluateResult.read(tmp_path / "e.json")
    headline = fake.headline_metrics((1,)).to_json()
    headline["epoch_1"]["kernels"]["fragile"] = "12"
    fake.write_json(tmp_path / "h.json", headline)
    with pytest.raises(FragileError, match=r"epoch_1\.kernels\.fragile must be a int, got str; .*-f summarize\)"):
        Headline.read(tmp_path / "h.json")
    harden = fake.harden(1).to_json()
    harden[FORMAT_KEY] = 0
    fake.write_json(tmp_path / "hd.json", harden)
    with pytest.raises(FragileError, match=r"format version 0; .*rerun the harden stage \(dvc repro -f harden\)"):
        HardenResult.read(tmp_path / "hd.json")
    attack = fake.attack(1).to_json()
    del attack["pgd"]["per_example"]
    fake.write_json(tmp_path / "a.json", attack)
    with pytest.raises(FragileError, match=r"lacks pgd\.per_example; .*dvc repro -f attack_target\)"):
        AttackResult.read(tmp_path / "a.json")


def test_results_of_every_checkpoint_are_read_by_their_file_names(tmp_path):
    fake.write_results(tmp_path, (1, 3))
    ranks = read_checkpoints(RankResult, tmp_path / "results/rank", (1, 3))
    assert ranks == {1: fake.rank(1), 3: fake.rank(3)}
    with pytest.raises(FragileError, match=r"epoch_2\.json not found; run the evaluate stage first"):
        read_checkpoints(EvaluateResult, tmp_path / "results/evaluate", (1, 2))


def test_kernel_sets_must_split_the_analysed_layers_kernels(tmp_path):
    path = tmp_path / "s.json"
    fake.rank(1).write(path)
    rank = fake.rank(1)
    assert read_kernel_sets(path, "conv1", fake.KERNELS) == (rank.fragile, rank.null)
    with pytest.raises(FragileError, match=f"ranks {fake.KERNELS} kernels of conv1, but analysis.layer is "
                                           "layer1.0.conv1 with 12 kernels; rerun the rank stage"):
        read_kernel_sets(path, "layer1.0.conv1", fake.KERNELS)
    with pytest.raises(FragileError, match="with 64 kernels; rerun the rank stage"):
        read_kernel_sets(path, "conv1", 64)
    dataclasses.replace(rank, null=rank.null + rank.fragile[:1]).write(path)
    with pytest.raises(FragileError, match="must hold two non-empty, disjoint kernel sets"):
        read_kernel_sets(path, "conv1", fake.KERNELS)
