"""evaluate's reuse of attack_target's FGSM sweep: identical results, and only when it ran on the same things."""

from __future__ import annotations

import dataclasses

import pytest

import fake_results as fake
from fragile import models
from fragile.checkpoint_run import open_checkpoint
from fragile.comparison import SweepResult
from fragile.data import write_prepared
from fragile.evaluation import evaluate_checkpoint, reusable_sweep
from fragile.hardening import harden_model
from fragile.layout import checkpoint_file
from fragile.params import AttackParams, Params
from fragile.results import AttackResult
from fragile.sweep import attack_checkpoint

EPSILONS = (0.0, 0.05, 0.2)


@pytest.fixture
def setup(tmp_path, tiny_model, tiny_split, monkeypatch, one_thread):
    monkeypatch.delenv("FRAGILE_NPROC", raising=False)
    write_prepared(tmp_path / "data", {"train": tiny_split, "val": tiny_split, "test": tiny_split}, 10, "mnist5k")
    meta = {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "mean": [0.5], "std": [0.25],
            "stem": "imagenet", "epoch": 4}
    original = tmp_path / checkpoint_file(4)
    models.save(original, tiny_model, meta)
    fragile, null = list(range(0, 64, 3)), [k for k in range(64) if k % 3]
    dataclasses.replace(fake.rank(4), fragile=fragile, null=null).write(tmp_path / "s.json")
    hardened, _ = harden_model(tiny_model, fragile, null, 0.015, "truncate", "spectral", "conv1")
    models.save(tmp_path / "hardened.pt", hardened, meta)
    params = Params(attack=AttackParams(epsilons=EPSILONS, max_examples=40, batch_size=16, pgd_steps=2))
    return tmp_path, original, params


def open_run(tmp_path, original, batch_size=16, examples=40):
    return open_checkpoint("evaluate", original, tmp_path / "data", "conv1", "test", examples, batch_size,
                           sets=tmp_path / "s.json")


def test_evaluate_with_attack_targets_sweep_equals_evaluate_alone(setup):
    tmp_path, original, params = setup
    attack, _ = attack_checkpoint(open_run(tmp_path, original), params.attack, params.seed)
    attack = AttackResult.from_json(attack.to_json())  # through the file format, as the stage reads it
    run = open_run(tmp_path, original)
    reused = reusable_sweep(attack, run, EPSILONS)
    assert reused is not None
    alone = evaluate_checkpoint(run, tmp_path / "hardened.pt", params)
    with_reuse = evaluate_checkpoint(run, tmp_path / "hardened.pt", params, original_sweep=reused)
    assert with_reuse.to_json() == alone.to_json()


def test_a_sweep_rebuilt_from_its_outcomes_has_its_counts(setup):
    tmp_path, original, params = setup
    run = open_run(tmp_path, original)
    attack, _ = attack_checkpoint(run, params.attack, params.seed)
    rebuilt = SweepResult.from_outcomes(attack.epsilons, attack.per_example)
    assert rebuilt.examples == 40 and rebuilt.clean_accuracy == attack.clean_accuracy
    assert [rebuilt.accuracy(i) for i in range(len(EPSILONS))] == attack.accuracy
    assert [rebuilt.targeting_pct(i, "relative") for i in range(len(EPSILONS))] == attack.targeting_pct_relative


@pytest.mark.parametrize("change", ["batch_size", "examples", "sets", "epsilons", "checkpoint", "device"])
def test_a_sweep_on_anything_else_is_not_reused(setup, change):
    tmp_path, original, params = setup
    attack, _ = attack_checkpoint(open_run(tmp_path, original), params.attack, params.seed)
    run = open_run(tmp_path, original, batch_size=8 if change == "batch_size" else 16,
                   examples=32 if change == "examples" else 40)
    epsilons = EPSILONS[:2] if change == "epsilons" else EPSILONS
    if change == "sets":
        attack = dataclasses.replace(attack, fragile=attack.fragile[1:], null=[attack.fragile[0], *attack.null])
    if change == "checkpoint":
        attack = dataclasses.replace(attack, checkpoint="models/original/epoch_9.pt")
    if change == "device":
        attack = dataclasses.replace(attack, device="cuda")
    assert reusable_sweep(attack, run, epsilons) is None
