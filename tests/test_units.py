from __future__ import annotations

import pytest

from fragile.units import PAPER_EPSILON_UNITS, epsilon_readings, normalised_to_pixels

MNIST_STD = [0.3081]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]


def test_the_papers_mnist_epsilon_read_in_normalised_units():
    readings = epsilon_readings(0.34, MNIST_STD)
    assert readings.if_pixels == 0.34
    assert readings.if_normalised == pytest.approx(0.104754)  # 0.34 × 0.3081
    assert readings.note == PAPER_EPSILON_UNITS == "units not stated in the paper"


def test_several_channels_take_the_smallest_std():
    readings = epsilon_readings(0.01, CIFAR10_STD)
    assert readings.if_normalised_per_channel == pytest.approx((0.002470, 0.002435, 0.002616))
    assert readings.if_normalised == pytest.approx(0.002435)
    assert normalised_to_pixels(0.01, CIFAR10_STD) == readings.if_normalised
    assert readings.to_dict()["if_normalised_per_channel"] == list(readings.if_normalised_per_channel)


def test_bad_inputs_are_refused():
    for eps, std in ((0.1, []), (0.1, [0.3, 0.0]), (-0.1, [0.3])):
        with pytest.raises(ValueError):
            epsilon_readings(eps, std)
