from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from fragile.autoattack import COMPONENTS, AutoAttackResult, autoattack, components
from fragile.errors import FragileError

torchattacks = pytest.importorskip("torchattacks")


class Quantised(nn.Module):
    """Rounds pixels to quarters: zero gradient, so the gradient attacks miss what Square finds."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


def tiny_net(quantised: bool) -> nn.Module:
    torch.manual_seed(0)
    front = [Quantised()] if quantised else []
    return nn.Sequential(*front, nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).eval()


pytestmark = pytest.mark.usefixtures("one_thread")


def examples(model: nn.Module, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(images).argmax(1)  # all correct when clean: every example is attacked
    return images.contiguous(memory_format=torch.channels_last), labels


def test_the_final_outcome_equals_torchattacks_autoattack_on_the_same_examples():
    model = tiny_net(quantised=True)
    images, labels = examples(model)
    ours = autoattack(model, [(images, labels)], 0.05, seed=3)
    adversarial = torchattacks.AutoAttack(model, norm="Linf", eps=0.05, version="standard", n_classes=10,
                                          seed=3)(images, labels)
    with torch.no_grad():
        theirs = (model(adversarial).argmax(1) == labels).numpy()
    assert np.array_equal(ours.final, theirs)
    broken = ours.broken_by()
    assert broken["Square"] > 0  # the gradient-free component found what the others missed
    assert ours.accuracy() == theirs.mean() < ours.accuracy("FAB-T")


def test_the_components_are_autoattacks_own():
    model = tiny_net(quantised=False)
    reference = torchattacks.AutoAttack(model, norm="Linf", eps=0.1, version="standard", n_classes=10,
                                        seed=7)._autoattack.attacks
    ours = components(model, 0.1, seed=7, n_classes=10)
    settings = ("eps", "norm", "seed", "n_restarts", "steps", "loss", "n_target_classes", "multi_targeted",
                "n_queries", "p_init")
    assert [type(a) for a in ours] == [type(a) for a in reference]
    for mine, theirs in zip(ours, reference):
        for name in settings:
            assert getattr(mine, name, None) == getattr(theirs, name, None), (type(mine).__name__, name)


def test_outcomes_nest_and_add_up_over_batches():
    model = tiny_net(quantised=True)
    images, labels = examples(model)
    result = autoattack(model, [(images[:7], labels[:7]), (images[7:], labels[7:])], 0.05, seed=3,
                        square_queries=200)
    assert result.components == COMPONENTS and result.examples == 12
    for before, after in zip((result.clean, *result.robust_after), result.robust_after):
        assert not (after & ~before).any()  # each component only removes examples
    assert sum(result.broken_by().values()) == result.clean.sum() - result.final.sum()
    assert np.array_equal(result.white_box, result.robust_after[COMPONENTS.index("FAB-T")])
    counts = result.to_dict()
    assert counts["robust"]["Square"] == result.final.sum()
    assert counts["per_example"]["Square"] == "".join("1" if r else "0" for r in result.final)
    back = AutoAttackResult.from_dict(json.loads(json.dumps(counts)))
    assert back.to_dict() == counts and np.array_equal(back.white_box, result.white_box)
    # A batch's outcome does not depend on the batches before it.
    second = autoattack(model, [(images[7:], labels[7:])], 0.05, seed=3, square_queries=200)
    assert np.array_equal(second.final, result.final[7:])


def test_the_same_seed_gives_the_same_outcomes_and_leaves_the_callers_state_alone():
    model = tiny_net(quantised=True).train()
    images, labels = examples(model.eval())
    model.train()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = autoattack(model, [(images, labels)], 0.05, seed=0, square_queries=200)
    assert torch.equal(torch.random.get_rng_state(), state)  # the components' reseeding is undone
    assert model.training
    again = autoattack(model, [(images, labels)], 0.05, seed=0, square_queries=200)
    assert all(np.array_equal(a, b) for a, b in zip(first.robust_after, again.robust_after))


def test_without_torchattacks_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(FragileError, match="make install"):
        components(tiny_net(quantised=False), 0.1, seed=0, n_classes=10)
