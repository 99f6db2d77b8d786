"""When the paper's numbers are comparable with a run, and what agreement means."""

from __future__ import annotations

from fragile.paper import (
    PAPER_ACCURACY,
    PaperSetting,
    RunConfig,
    agreement,
    caveats,
    differences,
    not_comparable,
    published,
)


def test_a_run_differs_from_a_setting_in_each_aspect_it_does_not_share():
    setting = PaperSetting("cifar10", "resnet50", 100)
    same = RunConfig("cifar10", "resnet50", "imagenet", 100, (10, 100), 0)
    assert differences(same, setting) == []
    other = RunConfig("mnist5k", "resnet18", "imagenet", 2, (1, 2), 0)
    assert [aspect for aspect, _ in differences(other, setting)] == ["architecture", "dataset", "epochs"]
    assert not_comparable(differences(other, setting)) == "not comparable: architecture, dataset, epochs differ"


def test_agreement_is_within_two_standard_errors_of_our_estimate():
    # 2·sqrt(0.76·0.24/1000) = 2.7 pp
    assert agreement(0.76, 0.7587, 1000)[0] == "agrees"
    verdict, detail = agreement(0.50, 0.5888, 1000)
    assert verdict == "disagrees" and "-8.9 pp" in detail and "±3.2 pp" in detail


def test_published_numbers_keep_their_printed_precision():
    assert [published(p.clean) for p in PAPER_ACCURACY] == ["75.87%", "99.42%"]
    assert published(0.37) == "37%" and published(0.794) == "79.4%"


def test_imported_weights_are_never_like_for_like_and_say_so():
    setting = PaperSetting("cifar10", "resnet50", 100)
    imported = RunConfig("cifar10", "resnet50", "imagenet", 2, (0,), 0, source="file")
    assert differences(imported, setting) == [("epochs", "imported weights (epochs unknown here) vs 100")]
    assert imported.describe() == "resnet50 (imagenet stem), imported weights (model.file), cifar10"


def test_the_embedded_mnist_digits_compare_with_mnist_naming_the_training_images_and_with_nothing_else():
    subset = RunConfig("mnist5k", "resnet50", "imagenet", 100, (10, 50, 100), 0)
    mnist = PaperSetting("mnist", "resnet50", 100)
    assert differences(subset, mnist) == []
    assert caveats(subset, mnist) == ["the number of training images differs: a 5,000-digit MNIST "
                                      "subset vs all of MNIST's"]
    cifar = PaperSetting("cifar10", "resnet50", 100)
    assert [aspect for aspect, _ in differences(subset, cifar)] == ["dataset"] and caveats(subset, cifar) == []
    full = RunConfig("mnist", "resnet50", "imagenet", 100, (100,), 0)
    assert caveats(full, mnist) == []
