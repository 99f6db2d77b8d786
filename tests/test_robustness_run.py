"""evaluate's robustness record on a tiny model, through the result file into the headline:
attack.autoattack end to end, against torchattacks run directly on the same examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fake_results as fake
from fragile.checkpoint_run import CheckpointRun
from fragile.comparison import Comparison
from fragile.data import Split
from fragile.distributed import Context
from fragile.params import params_from_dict
from fragile.results import EvaluateResult
from fragile.robustness_run import robustness_record
from fragile.summary import headline
from fragile.sweep import fgsm_sweep, pgd_sweep
from test_autoattack import tiny_net

torchattacks = pytest.importorskip("torchattacks")
EPSILON = 0.05


pytestmark = pytest.mark.usefixtures("one_thread")


def examples(model: nn.Module, n: int = 12) -> Split:
    """uint8 images whose clean labels are the model's predictions (every example attacked)."""
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)
    return Split(images.numpy(), labels.numpy())


def run_of(model: nn.Module, part: Split) -> CheckpointRun:
    return CheckpointRun(checkpoint=Path("epoch_1.pt"), model=model, meta={"epoch": 1, "std": [0.25]},  # type: ignore[arg-type]
                         layer="conv1", conv=model[1], sets=([0], [1]), part=part, batch_size=5,
                         examples=len(part), device=torch.device("cpu"), ctx=Context())


def direct(model: nn.Module, part: Split) -> np.ndarray:
    """torchattacks' AutoAttack itself, on each of the run's batches."""
    outcome = []
    for images, labels in part.batches(5):
        adversarial = torchattacks.AutoAttack(model, norm="Linf", eps=EPSILON, version="standard", n_classes=10,
                                              seed=0)(images, labels)
        with torch.no_grad():
            outcome.append((model(adversarial).argmax(1) == labels).numpy())
    return np.concatenate(outcome)


def test_autoattack_runs_end_to_end_and_agrees_with_torchattacks_run_directly():
    original, hardened = tiny_net(quantised=True), tiny_net(quantised=False)
    part = examples(original)
    p = params_from_dict({"epsilon": EPSILON, "attack": {"autoattack": True, "pgd_steps": 10}})
    record = robustness_record(run_of(original, part), hardened, p)
    assert record.labels == part.labels.tolist() and record.input_std == [0.25] and record.pgd_steps == 10

    def sweeps(model: nn.Module) -> tuple:
        return (fgsm_sweep(model, part.batches(5), [0.0, EPSILON], [], [], None),
                pgd_sweep(model, part.batches(5), [EPSILON], [], [], None, steps=10))

    (fo, po), (fh, ph) = sweeps(original), sweeps(hardened)
    result = EvaluateResult.from_comparison(
        checkpoint="epoch_1.pt", epoch=1, layer="conv1", device="cpu", robustness=record,
        comparison=Comparison(original=fo, hardened=fh, transfer=fh, pgd_original=po, pgd_hardened=ph))
    back = EvaluateResult.from_json(result.to_json())  # through the file's JSON, as summarize reads it
    block = headline(back.comparison(), EPSILON, fake.rank(1), fake.harden(1), record=back.robustness)

    for model, side, name in ((original, block.original, "original"), (hardened, block.hardened, "hardened")):
        theirs = direct(model, part)
        assert side["autoattack_accuracy"] == theirs.mean(), name
        ours = back.robustness.autoattack_original if name == "original" else back.robustness.autoattack_hardened
        assert ours["per_example"]["Square"] == "".join("1" if t else "0" for t in theirs)
    assert block.masking["strong_attack"] == "AutoAttack"
    assert block.gain["autoattack"] == pytest.approx(block.hardened["autoattack_accuracy"]
                                                     - block.original["autoattack_accuracy"])
    assert any(c["name"] == "AutoAttack at least as strong as PGD" for c in block.sanity["original"])


def test_without_autoattack_the_record_has_none():
    model = tiny_net(quantised=False)
    record = robustness_record(run_of(model, examples(model)), model, params_from_dict({}))
    assert record.autoattack_original is None and record.autoattack_hardened is None
    assert "autoattack_original" not in EvaluateResult.from_comparison(
        checkpoint="m", epoch=1, layer="conv1", device="cpu", robustness=record,
        comparison=fake.comparison(1)).to_json()["robustness"]
