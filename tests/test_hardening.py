from __future__ import annotations

import math

import pytest
import torch

from fragile.hardening import (
    filter_singular_values,
    gavish_donoho_lambda,
    harden_checkpoint,
    harden_model,
    harden_weight,
    threshold_tau,
)


def _matrix_with_singular_values(values, m, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    k = len(values)
    return u[:, :k] @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ v[:, :k].T


def test_lambda_of_one_is_four_over_root_three():
    assert gavish_donoho_lambda(1.0) == pytest.approx(4 / math.sqrt(3), rel=1e-12)


def test_lambda_matches_the_formula_and_grows_with_beta():
    beta = 0.25
    expected = math.sqrt(2 * 1.25 + 8 * 0.25 / (1.25 + math.sqrt(0.0625 + 3.5 + 1)))
    assert gavish_donoho_lambda(beta) == pytest.approx(expected, rel=1e-12)
    assert gavish_donoho_lambda(0.1) < gavish_donoho_lambda(0.5) < gavish_donoho_lambda(1.0)


def test_tau_takes_the_matrix_so_that_m_is_at_most_n():
    tau_wide, m, n, beta, lam = threshold_tau((10, 40), 0.015)
    tau_tall = threshold_tau((40, 10), 0.015)[0]
    assert (m, n, beta) == (10, 40, 0.25)
    assert tau_wide == tau_tall == pytest.approx(lam * math.sqrt(40) * 0.015)


def test_truncate_and_clamp_on_known_singular_values():
    values = torch.tensor([5.0, 3.0, 1.0, 0.5])
    assert filter_singular_values(values, 2.0, "truncate").tolist() == [5.0, 3.0, 0.0, 0.0]
    assert filter_singular_values(values, 2.0, "clamp").tolist() == [2.0, 2.0, 1.0, 0.5]


def _weight_from_null_matrix(null_matrix, fragile_count, seed=1):
    rows, cols = null_matrix.shape  # cols = C*kh*kw with C=1, kh=kw
    side = int(math.isqrt(cols))
    gen = torch.Generator().manual_seed(seed)
    fragile = torch.randn(fragile_count, 1, side, side, generator=gen, dtype=torch.float64)
    weight = torch.cat([fragile, null_matrix.reshape(rows, 1, side, side)])
    return weight, list(range(fragile_count)), list(range(fragile_count, fragile_count + rows))


@pytest.mark.parametrize("threshold", ["truncate", "clamp"])
def test_harden_weight_filters_null_kernels_and_amplifies_fragile_ones(threshold):
    m, n = 6, 9  # 6 null kernels of 1x3x3
    tau = threshold_tau((m, n), 0.1)[0]
    known = [3 * tau, 2 * tau, 0.5 * tau, 0.25 * tau]
    k = _matrix_with_singular_values(known, m, n)
    weight, fragile, null = _weight_from_null_matrix(k, fragile_count=3)
    new, report = harden_weight(weight, fragile, null, sigma=0.1, threshold=threshold, norm="spectral")

    assert report.tau == pytest.approx(tau)
    assert report.singular_values[:4] == pytest.approx(known)
    k_tilde = new[null].reshape(m, n)
    s_tilde = torch.linalg.svdvals(k_tilde)
    if threshold == "truncate":
        assert s_tilde[:2].tolist() == pytest.approx(known[:2])
        assert s_tilde[2:].abs().max() < 1e-9
        assert report.rank_kept == 2
        expected_alpha = 1 + known[2]  # ‖K − K̃‖₂ = largest discarded singular value
    else:
        assert s_tilde[:4].tolist() == pytest.approx([tau, tau, known[2], known[3]])
        assert report.rank_kept == 4
        expected_alpha = 1 + (known[0] - tau)
    assert report.above_tau == 2
    assert report.alpha == pytest.approx(expected_alpha)
    assert torch.allclose(new[fragile], report.alpha * weight[fragile])


def test_frobenius_alpha():
    m, n = 4, 9
    tau = threshold_tau((m, n), 0.1)[0]
    known = [2 * tau, 0.6 * tau, 0.3 * tau]
    weight, fragile, null = _weight_from_null_matrix(_matrix_with_singular_values(known, m, n), 2)
    _, report = harden_weight(weight, fragile, null, sigma=0.1, norm="fro")
    assert report.alpha == pytest.approx(1 + math.hypot(known[1], known[2]))


def test_single_null_kernel_is_a_one_row_matrix():
    weight = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    new, report = harden_weight(weight, [0, 1, 2], [3], sigma=0.01)
    assert (report.m, report.n) == (1, 9)
    assert report.beta == pytest.approx(1 / 9)
    assert len(report.singular_values) == 1


def test_all_singular_values_below_tau_gives_rank_zero_and_zero_null_kernels():
    weight = 1e-4 * torch.randn(5, 1, 3, 3, dtype=torch.float64)
    new, report = harden_weight(weight, [0, 1], [2, 3, 4], sigma=1.0)
    assert report.rank_kept == 0
    assert torch.count_nonzero(new[[2, 3, 4]]) == 0
    assert report.alpha == pytest.approx(1 + float(torch.linalg.matrix_norm(weight[[2, 3, 4]].reshape(3, 9), ord=2)))


def test_harden_model_changes_only_conv1_of_a_copy(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    hardened, report = harden_model(tiny_model, list(range(20)), list(range(20, 64)), sigma=0.015)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    changed = [k for k, v in hardened.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["net.conv1.weight"]
    assert report.m == 44 and report.n == 49


def test_clamp_with_every_singular_value_below_tau_leaves_the_layer_unchanged():
    weight = 1e-4 * torch.randn(5, 1, 3, 3, dtype=torch.float64)
    new, report = harden_weight(weight, [0, 1], [2, 3, 4], sigma=1.0, threshold="clamp")
    assert report.above_tau == 0
    assert report.alpha == pytest.approx(1.0)
    assert torch.allclose(new, weight, atol=1e-15)


def test_harden_model_on_a_deeper_conv_changes_only_that_conv(tiny_model):
    layer = "layer2.0.conv2"  # 128 kernels of 128×3×3: K is |S'| × 1152
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    # σ = 0.03: τ = λ√n·σ grows with √n = √1152, above some of the singular values of this random layer
    hardened, report = harden_model(tiny_model, list(range(50)), list(range(50, 128)), sigma=0.03, layer=layer)
    changed = [k for k, v in hardened.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == [f"net.{layer}.weight"]
    assert (report.m, report.n) == (78, 128 * 9)
    assert 0 < report.rank_kept < 78 and report.alpha > 1
    new = hardened.net.layer2[0].conv2.weight
    assert torch.allclose(new[:50], report.alpha * before[f"net.{layer}.weight"][:50])


def test_harden_checkpoint_edits_one_weight_of_the_state_dict_and_records_how(tiny_model):
    checkpoint = {"arch": "resnet18", "epoch": 2, "state_dict": tiny_model.state_dict()}
    fragile, null = list(range(0, 128, 3)), [k for k in range(128) if k % 3]
    hardened, report = harden_checkpoint(checkpoint, "layer2.0.conv2", fragile, null, 0.01, "clamp", "fro")
    before, after = checkpoint["state_dict"], hardened["state_dict"]
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["net.layer2.0.conv2.weight"]
    expected, _ = harden_model(tiny_model, fragile, null, 0.01, "clamp", "fro", "layer2.0.conv2")
    assert torch.equal(after["net.layer2.0.conv2.weight"], expected.net.layer2[0].conv2.weight)
    assert hardened["hardening"] == {"sigma": 0.01, "threshold": "clamp", "norm": "fro", "layer": "layer2.0.conv2"}
    assert hardened["epoch"] == 2 and "hardening" not in checkpoint and report.m == len(null)
