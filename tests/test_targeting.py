from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fragile.errors import FragileError
from fragile.models import conv_layer
from fragile.targeting import (
    READINGS,
    DistanceRecorder,
    archive_key,
    bn_scaled_weight_norms,
    capture_output,
    following_batchnorm,
    kernel_distances,
    kernel_weight_norms,
    layer_outputs,
    layer_readings,
    norm_distance_spearman,
    reading_distances,
    reading_name,
    set_weight_norms,
    targets_fragile,
)


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


# --- Readings at the conv, after its BatchNorm, after the ReLU ------------------------------


def _conv_bn(seed: int = 0) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, 4, kernel_size=3, bias=False)
    bn = nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return conv, bn


def test_every_reading_is_computed_and_the_conv_ones_are_exactly_the_old_distances():
    conv, bn = _conv_bn()
    x = torch.rand(5, 1, 8, 8)
    adv = (x + 0.1 * torch.randn_like(x).sign()).clamp(0, 1)
    with torch.no_grad():
        clean_out, adv_out = conv(x), conv(adv)
    d = reading_distances(clean_out, adv_out, bn)
    assert tuple(d) == READINGS == ("conv_absolute", "conv_relative", "bn_absolute", "bn_relative",
                                    "relu_absolute", "relu_relative")
    assert torch.equal(d["conv_absolute"], kernel_distances(clean_out, adv_out))
    assert torch.equal(d["conv_relative"], kernel_distances(clean_out, adv_out, relative=True))
    assert all(v.shape == (5, 4) for v in d.values())
    # Without a BatchNorm only the conv readings exist.
    assert tuple(reading_distances(clean_out, adv_out, None)) == ("conv_absolute", "conv_relative")


def test_the_bn_and_relu_outputs_are_what_the_eval_mode_modules_compute():
    conv, bn = _conv_bn()
    x = torch.rand(3, 1, 8, 8)
    bn.train()  # the readings use the running statistics whatever mode the module is in
    with torch.no_grad():
        out = layer_outputs(conv(x), bn)
        bn.eval()
        assert torch.equal(out["bn"], bn(conv(x)))
        assert torch.equal(out["relu"], torch.relu(bn(conv(x))))


def test_the_bn_reading_is_invariant_to_a_kernel_scaled_with_its_batchnorm_statistics():
    # Scaling W_k by s > 0, running_mean_k by s and running_var_k by s² leaves the network
    # unchanged (conv has no bias; BN undoes the scale). The conv reading sees s, the bn one not.
    conv, bn = _conv_bn(1)
    x = torch.rand(6, 1, 10, 10)
    adv = (x + 0.1 * torch.randn_like(x).sign()).clamp(0, 1)
    with torch.no_grad():
        before = reading_distances(conv(x), conv(adv), bn)
        s, k = 7.0, 2
        conv.weight[k] *= s
        bn.running_mean[k] *= s
        bn.running_var[k] *= s**2
        after = reading_distances(conv(x), conv(adv), bn)
    # eps inside BN's sqrt(var + eps) is not scaled, hence a tolerance rather than equality
    for reading in ("bn_absolute", "bn_relative", "relu_absolute", "relu_relative"):
        assert torch.allclose(after[reading], before[reading], rtol=1e-4, atol=1e-6), reading
    assert torch.allclose(after["conv_absolute"][:, k], s * before["conv_absolute"][:, k], rtol=1e-5)
    assert not torch.allclose(after["conv_absolute"], before["conv_absolute"])
    # The relative conv reading is scale-free too, but only because it divides by the clean map.
    assert torch.allclose(after["conv_relative"], before["conv_relative"], rtol=1e-5)


def test_a_verdict_that_flips_with_raw_scale_flips_in_the_conv_reading_only():
    conv, bn = _conv_bn(2)
    x = torch.rand(8, 1, 10, 10)
    adv = (x + 0.1 * torch.randn_like(x).sign()).clamp(0, 1)
    fragile, null = [0], [1, 2, 3]
    with torch.no_grad():
        before = reading_distances(conv(x), conv(adv), bn)
        # Grow the fragile kernel 1000-fold, with its BN statistics: the same network.
        conv.weight[0] *= 1000
        bn.running_mean[0] *= 1000
        bn.running_var[0] *= 1000**2
        after = reading_distances(conv(x), conv(adv), bn)
    assert not targets_fragile(before["conv_absolute"], fragile, null).any()
    assert targets_fragile(after["conv_absolute"], fragile, null).all()
    for reading in ("bn_absolute", "relu_absolute"):
        assert torch.equal(targets_fragile(after[reading], fragile, null),
                           targets_fragile(before[reading], fragile, null))


@pytest.mark.parametrize(
    ("layer", "bn_name"),
    [("conv1", "bn1"), ("layer1.0.conv2", "layer1.0.bn2"), ("layer2.0.downsample.0", "layer2.0.downsample.1")],
)
def test_the_batchnorm_following_each_kind_of_conv(tiny_model, layer, bn_name):
    modules = dict(tiny_model.net.named_modules())
    assert following_batchnorm(tiny_model, layer) is modules[bn_name]


def test_an_unknown_layer_names_the_key(tiny_model):
    with pytest.raises(FragileError, match="analysis.layer"):
        following_batchnorm(tiny_model, "layer1.0.bn1")


def test_layer_readings_on_a_model_match_the_captured_conv_output(tiny_model):
    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16)
    adv = (x + 0.05).clamp(0, 1)
    readings = layer_readings(tiny_model, "layer1.0.conv1", x, adv)
    conv = conv_layer(tiny_model, "layer1.0.conv1")
    with torch.no_grad(), capture_output(conv) as outputs:
        tiny_model(x)
        tiny_model(adv)
    assert torch.equal(readings["conv_absolute"], kernel_distances(outputs[0], outputs[1]))
    assert readings["bn_absolute"].shape == (3, 64)
    assert (readings["relu_absolute"] > 0).any()


def test_reading_names_and_archive_keys():
    assert reading_name("relu", "relative") == "relu_relative"
    assert archive_key("bn_absolute", 3) == "bn_absolute.eps3"
    with pytest.raises(ValueError):
        reading_name("pool", "absolute")
    with pytest.raises(ValueError):
        archive_key("conv", 0)


def test_weight_norms_and_their_spearman_with_the_mean_distance():
    weight = torch.zeros(4, 1, 1, 2)
    weight[:, 0, 0, 0] = torch.tensor([3.0, 1.0, 2.0, 4.0])  # norms 3, 1, 2, 4
    norms = kernel_weight_norms(weight)
    assert norms.tolist() == [3.0, 1.0, 2.0, 4.0]
    # Distances in the same order as the norms -> +1; reversed -> -1.
    assert norm_distance_spearman(norms, np.array([[0.3, 0.1, 0.2, 0.4]] * 2)) == pytest.approx(1.0)
    assert norm_distance_spearman(norms, np.array([[0.1, 0.4, 0.3, 0.0]])) == pytest.approx(-1.0)
    assert norm_distance_spearman(norms, np.ones((2, 4))) is None  # constant mean distance
    assert set_weight_norms(norms, [0, 3], [1, 2]) == (3.5, 1.5)


def test_bn_scaled_norms_carry_gamma_over_the_running_std():
    conv, bn = _conv_bn()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1.0, 1.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 1.0]))
    bn.eps = 0.0
    expected = kernel_weight_norms(conv.weight) * np.array([1.0, 1.0, 2.0, 0.5])
    assert np.allclose(bn_scaled_weight_norms(conv.weight, bn), expected)


def test_the_recorder_keeps_batches_in_example_order_per_reading_and_epsilon(tmp_path):
    from fragile.npz import read_npz, write_npz

    recorder = DistanceRecorder()
    first = {"conv_absolute": torch.tensor([[1.0, 2.0]]), "bn_absolute": torch.tensor([[3.0, 4.0]])}
    second = {"conv_absolute": torch.tensor([[5.0, 6.0], [7.0, 8.0]]), "bn_absolute": torch.zeros(2, 2)}
    recorder.add(0, first)
    recorder.add(1, {"conv_absolute": torch.ones(1, 2, dtype=torch.float64)})
    recorder.add(0, second)
    arrays = recorder.arrays()
    assert sorted(arrays) == ["bn_absolute.eps0", "conv_absolute.eps0", "conv_absolute.eps1"]
    assert arrays["conv_absolute.eps0"].tolist() == [[1.0, 2.0], [5.0, 6.0], [7.0, 8.0]]
    assert arrays["conv_absolute.eps1"].dtype == np.float32
    write_npz(tmp_path / "d.npz", arrays)
    assert np.array_equal(read_npz(tmp_path / "d.npz")[archive_key("conv_absolute", 0)], arrays["conv_absolute.eps0"])
