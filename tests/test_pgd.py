from __future__ import annotations

import pytest
import torch

from fragile.attacks import fgsm
from fragile.pgd import pgd, step_size


def _batch(split, n: int = 16):
    return next(split.batches(n))  # a few examples keep these resnet18 attacks fast


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pgd_stays_in_the_epsilon_ball_and_the_pixel_range(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    for eps in (0.01, 0.3):
        adv = pgd(tiny_model, images, labels, eps, steps=2, generator=_generator())
        assert (adv - images).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        assert not torch.equal(adv, images)


def test_zero_epsilon_returns_the_input(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    assert torch.equal(pgd(tiny_model, images, labels, 0.0, steps=5, generator=_generator()), images)


def test_one_step_of_size_epsilon_without_random_start_is_fgsm(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    for eps in (0.02, 0.3):
        adv = pgd(tiny_model, images, labels, eps, steps=1, step=eps, random_start=False, early_stop=False)
        assert torch.equal(adv, fgsm(tiny_model, images, labels, eps))


def test_the_same_seed_gives_the_same_examples_and_another_seed_others(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    a = pgd(tiny_model, images, labels, 0.1, steps=1, generator=_generator(3))
    b = pgd(tiny_model, images, labels, 0.1, steps=1, generator=_generator(3))
    c = pgd(tiny_model, images, labels, 0.1, steps=1, generator=_generator(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pgd_finds_a_higher_loss_than_fgsm_on_the_same_examples(tiny_model, tiny_split):
    # Many small projected steps climb the loss inside the ball further than FGSM's single step
    # from the clean point; the per-example losses summed over the batch must be higher.
    images, labels = _batch(tiny_split)
    loss = torch.nn.functional.cross_entropy
    eps = 0.05
    fgsm_adv = fgsm(tiny_model, images, labels, eps)
    pgd_adv = pgd(tiny_model, images, labels, eps, steps=6, generator=_generator(), early_stop=False)
    with torch.no_grad():
        fgsm_logits, pgd_logits = tiny_model(fgsm_adv), tiny_model(pgd_adv)
    assert loss(pgd_logits, labels, reduction="sum") > loss(fgsm_logits, labels, reduction="sum")
    assert (pgd_logits.argmax(1) == labels).sum() <= (fgsm_logits.argmax(1) == labels).sum()


def test_pgd_restores_the_training_mode(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    tiny_model.train()
    pgd(tiny_model, images, labels, 0.1, steps=1, generator=_generator())
    assert tiny_model.training
    assert all(p.grad is None for p in tiny_model.parameters())


def test_default_step_is_madrys_rule():
    assert step_size(0.1, 10) == 2.5 * 0.1 / 10
    assert step_size(0.1, 10, 0.01) == 0.01


def test_without_random_start_it_matches_torchattacks_pgd(tiny_model, tiny_split):
    torchattacks = pytest.importorskip("torchattacks")
    images, labels = _batch(tiny_split, 8)
    theirs = torchattacks.PGD(tiny_model, eps=0.1, alpha=0.04, steps=2, random_start=False)(images, labels)
    ours = pgd(tiny_model, images, labels, 0.1, steps=2, step=0.04, random_start=False, early_stop=False)
    assert torch.allclose(ours, theirs, atol=1e-6)


class _CoinFlip(torch.nn.Module):
    """Class 1 wins where the (single) pixel exceeds 0.55, with zero gradient everywhere: PGD's
    steps cannot move, so only its random start decides, as with a masked gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = x.flatten(1)[:, :1]
        return torch.cat([pixel * 0, pixel * 0 + 10.0 * (pixel > 0.55)], dim=1)


def test_an_example_is_robust_only_if_it_survives_every_restart():
    n, eps, restarts = 400, 0.1, 4
    images, labels = torch.full((n, 1, 1, 1), 0.5), torch.zeros(n, dtype=torch.long)
    adv = pgd(_CoinFlip(), images, labels, eps, steps=2, generator=_generator(0), restarts=restarts)
    robust = _CoinFlip()(adv).argmax(1) == labels
    # Replay the starts: each restart draws one uniform per example still robust, in order.
    replay, alive = _generator(0), torch.ones(n, dtype=torch.bool)
    for _ in range(restarts):
        start = 0.5 + (2 * torch.rand((int(alive.sum()), 1, 1, 1), generator=replay) - 1) * eps
        alive[alive.clone()] = start.flatten() <= 0.55
    assert torch.equal(robust, alive)
    assert abs(robust.float().mean().item() - 0.75**restarts) < 0.08  # 0.32 expected, not 0.75


def test_restarts_only_add_successful_attacks(tiny_model, tiny_split):
    images, _ = _batch(tiny_split, 8)
    with torch.no_grad():
        labels = tiny_model(images).argmax(1)  # all correct when clean: every example is attacked
    once = pgd(tiny_model, images, labels, 0.01, steps=2, generator=_generator(5))
    assert torch.equal(once, pgd(tiny_model, images, labels, 0.01, steps=2, generator=_generator(5), restarts=1))
    thrice = pgd(tiny_model, images, labels, 0.01, steps=2, generator=_generator(5), restarts=3)
    with torch.no_grad():
        robust_once = tiny_model(once).argmax(1) == labels
        robust_thrice = tiny_model(thrice).argmax(1) == labels
    assert robust_once.any()
    assert not (robust_thrice & ~robust_once).any()  # the first restart is the single run
    assert (thrice - images).abs().max() <= 0.01 + 1e-6 and thrice.min() >= 0 and thrice.max() <= 1


def test_restarts_need_a_random_start():
    images, labels = torch.full((2, 1, 1, 1), 0.5), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="random start"):
        pgd(_CoinFlip(), images, labels, 0.1, steps=1, random_start=False, restarts=2)
    with pytest.raises(ValueError, match="at least 1"):
        pgd(_CoinFlip(), images, labels, 0.1, steps=1, restarts=0)


def _correct(model, images, labels):
    with torch.no_grad():
        return model(images).argmax(1) == labels


def test_early_stop_counts_robust_exactly_the_examples_that_survive_every_iterate(tiny_model, tiny_split):
    images, labels = _batch(tiny_split, 32)
    eps, steps, alpha = 0.05, 4, 0.02
    early = pgd(tiny_model, images, labels, eps, steps=steps, step=alpha, generator=_generator(7))
    # The full run's iterates: the random start, then each step (same seed, same start).
    noise = torch.rand(images.shape, generator=_generator(7))
    start = torch.min(torch.max(images + (2 * noise - 1) * eps, (images - eps).clamp(0, 1)), (images + eps).clamp(0, 1))
    survives = _correct(tiny_model, start, labels)
    for t in range(1, steps + 1):
        full = pgd(tiny_model, images, labels, eps, steps=t, step=alpha, generator=_generator(7), early_stop=False)
        survives &= _correct(tiny_model, full, labels)
    last = _correct(tiny_model, full, labels)
    assert torch.equal(_correct(tiny_model, early, labels), survives)
    assert not (survives & ~last).any()  # never more robust than the last iterate of a full run
    assert (early - images).abs().max() <= eps + 1e-6 and early.min() >= 0 and early.max() <= 1


class _CountingRows(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


def test_early_stop_spends_no_steps_on_broken_examples(tiny_model, tiny_split):
    images, labels = _batch(tiny_split, 32)
    counting = _CountingRows(tiny_model)
    pgd(counting, images, labels, 0.5, steps=10, generator=_generator())  # ε = 0.5 breaks nearly all at once
    early_rows, counting.rows = counting.rows, 0
    pgd(counting, images, labels, 0.5, steps=10, generator=_generator(), early_stop=False)
    assert counting.rows == 10 * len(images)
    assert early_rows < counting.rows / 2
