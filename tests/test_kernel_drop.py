"""Where dropping a kernel acts: the BatchNorm after its conv, or the conv itself."""

from __future__ import annotations

from fragile.kernel_drop import drop_point


def test_drop_point_pairs_convs_with_their_batchnorm(tiny_model):
    net = tiny_model.net
    assert drop_point(tiny_model, "conv1", "activation") is net.bn1
    assert drop_point(tiny_model, "layer2.0.conv2", "activation") is net.layer2[0].bn2
    assert drop_point(tiny_model, "layer2.0.downsample.0", "activation") is net.layer2[0].downsample[1]
    assert drop_point(tiny_model, "conv1", "weight") is net.conv1
