from __future__ import annotations

import pytest
import torch

from fragile.attacks import eval_mode, fgsm, gradient_sign, perturb


def _batch(split):
    return next(split.batches(len(split)))


def test_fgsm_stays_in_the_epsilon_ball_and_the_pixel_range(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    for eps in (0.01, 0.1, 0.3):
        adv = fgsm(tiny_model, images, labels, eps)
        assert (adv - images).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        # Away from the clamp every pixel moves by exactly ε.
        inside = (images > eps) & (images < 1 - eps)
        moved = (adv - images).abs()[inside]
        assert torch.allclose(moved, torch.full_like(moved, eps), atol=1e-6)


def test_fgsm_with_zero_epsilon_returns_the_input(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    assert torch.equal(fgsm(tiny_model, images, labels, 0.0), images)


def test_reused_gradient_sweep_equals_fgsm_per_epsilon(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    sign = gradient_sign(tiny_model, images, labels)
    for eps in (0.0, 0.02, 0.1, 0.25):
        assert torch.equal(perturb(images, sign, eps), fgsm(tiny_model, images, labels, eps))


def test_fgsm_increases_the_loss(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        clean = loss(tiny_model(images), labels)
        adv = loss(tiny_model(fgsm(tiny_model, images, labels, 0.05)), labels)
    assert adv > clean


def test_attack_runs_in_eval_mode_and_restores_the_mode(tiny_model, tiny_split):
    images, labels = _batch(tiny_split)
    tiny_model.train()
    seen = []
    handle = tiny_model.net.bn1.register_forward_hook(lambda m, i, o: seen.append(m.training))
    running_mean = tiny_model.net.bn1.running_mean.clone()
    fgsm(tiny_model, images, labels, 0.1)
    handle.remove()
    assert seen == [False]
    assert tiny_model.training
    assert torch.equal(tiny_model.net.bn1.running_mean, running_mean)  # BN stats untouched
    assert all(p.grad is None for p in tiny_model.parameters())


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_is_eval_inside_and_restores_the_callers_mode(tiny_model, training):
    tiny_model.train(training)
    with eval_mode(tiny_model):
        assert not any(m.training for m in tiny_model.modules())
    assert all(m.training == training for m in tiny_model.modules())
    with pytest.raises(RuntimeError), eval_mode(tiny_model):
        raise RuntimeError("an attack that fails midway")
    assert all(m.training == training for m in tiny_model.modules())


def test_adversarial_images_keep_the_clean_images_layout(tiny_model):
    """One channel: channels_last and contiguous strides both fit the data, and a layout taken
    from the gradient would run the model on another kernel path than the clean pass."""
    from fragile.devices import batch_to
    from fragile.pgd import pgd

    torch.manual_seed(0)
    images, labels = batch_to(torch.rand(6, 1, 16, 16), None), torch.arange(6)
    sign = gradient_sign(tiny_model, images, labels)
    assert sign.stride() != images.stride()  # the case that needs care
    for eps in (0.0, 0.1):
        assert perturb(images, sign, eps).stride() == images.stride()
        assert pgd(tiny_model, images, labels, eps, 2, generator=torch.Generator().manual_seed(0)).stride() == images.stride()
    conv = lambda x: tiny_model.net.conv1(tiny_model.normalize(x))  # noqa: E731
    with torch.no_grad():
        assert torch.equal(conv(perturb(images, sign, 0.0)), conv(images))
