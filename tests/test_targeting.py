from __future__ import annotations

import torch
from torch import nn

from fragile.targeting import capture_output, kernel_distances, targets_fragile


def test_algorithm_1_on_a_hand_made_conv_layer():
    # Three 1x1 kernels with gains 3, 1 and 0.5: a perturbation δ moves kernel k's map by
    # gain_k·δ, so d = (3, 1, 0.5)·‖δ‖. With S = {0} and S' = {1, 2}: S_f = 3‖δ‖ > S_n = 0.75‖δ‖.
    conv = nn.Conv2d(1, 3, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([3.0, 1.0, 0.5]).view(3, 1, 1, 1))
    x = torch.zeros(2, 1, 2, 2)
    delta = torch.full_like(x, 0.1)  # ‖δ‖ over a 2x2 map = 0.2
    with torch.no_grad():
        d = kernel_distances(conv(x), conv(x + delta))
    assert torch.allclose(d, torch.tensor([[0.6, 0.2, 0.1]] * 2))
    assert targets_fragile(d, [0], [1, 2]).tolist() == [True, True]
    # Swap the roles: the attack is now on S' for every example.
    assert targets_fragile(d, [1, 2], [0]).tolist() == [False, False]


def test_a_tie_is_not_an_attack_on_s():
    d = torch.tensor([[1.0, 1.0], [2.0, 1.0], [0.0, 0.0]])
    assert targets_fragile(d, [0], [1]).tolist() == [False, True, False]


def test_distance_is_per_example_and_kernel():
    clean = torch.zeros(1, 2, 3, 4)
    adv = torch.zeros(1, 2, 3, 4)
    adv[0, 1] = 1.0  # 12 pixels moved by 1 -> sqrt(12)
    assert torch.allclose(kernel_distances(clean, adv), torch.tensor([[0.0, 12**0.5]]))


def test_capture_output_records_each_forward_and_then_stops():
    layer = nn.Identity()
    with capture_output(layer) as outputs:
        layer(torch.ones(1))
        layer(torch.zeros(1))
    layer(torch.ones(1))
    assert [t.item() for t in outputs] == [1.0, 0.0]


def test_scaling_a_kernel_scales_its_absolute_distance_but_not_its_relative_one():
    # Hardening multiplies a fragile kernel's weights by α: its map, and so its absolute d_k,
    # grow by α for the same input change, while d_k / ‖f(x)_k‖ stays put.
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, kernel_size=3, bias=False)
    x = torch.rand(4, 1, 8, 8)
    adv = x + 0.05 * torch.randn_like(x)
    alpha = 3.0
    with torch.no_grad():
        before_abs = kernel_distances(conv(x), conv(adv))
        before_rel = kernel_distances(conv(x), conv(adv), relative=True)
        conv.weight[0] *= alpha
        after_abs = kernel_distances(conv(x), conv(adv))
        after_rel = kernel_distances(conv(x), conv(adv), relative=True)
    assert torch.allclose(after_abs[:, 0], alpha * before_abs[:, 0])
    assert torch.allclose(after_abs[:, 1:], before_abs[:, 1:])
    assert torch.allclose(after_rel, before_rel)


def test_relative_distance_divides_by_the_clean_norm_and_a_dead_kernel_stays_zero():
    clean = torch.zeros(1, 2, 1, 2)
    clean[0, 0] = torch.tensor([[3.0, 4.0]])  # norm 5; kernel 1 is dead (all zero, unmoved)
    adv = clean.clone()
    adv[0, 0, 0, 0] += 1.0
    assert torch.allclose(kernel_distances(clean, adv, relative=True), torch.tensor([[0.2, 0.0]]))
