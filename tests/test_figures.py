"""The paper's figures from small hand-made results: valid, sized, not blank, byte-stable."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fake_results as fake
from fragile import figures
from stages import figures as figures_stage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = (1, 2, 3)


def _ranks():
    return {e: fake.rank(e) for e in EPOCHS}


BUILDERS = {
    "fig1": (lambda: figures.kernel_drop_figure(fake.rank(1), 1, "resnet18, mnist5k"), figures.KERNEL_DROP_SIZE),
    "fig2": (lambda: figures.attack_figure({e: fake.attack(e) for e in EPOCHS}, "resnet18, mnist5k"),
             figures.ATTACK_SIZE),
    "fig3": (lambda: figures.hardening_figure(fake.comparison(1), 1), figures.HARDENING_SIZE),
    "fig4": (lambda: figures.persistence_figure(_ranks(), "resnet18, mnist5k"), figures.PERSISTENCE_SIZE),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_figure_is_a_png_of_the_expected_size_and_not_blank(tmp_path, name):
    build, size = BUILDERS[name]
    path = tmp_path / f"{name}.png"
    figures.save_png(build(), path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(size[0] * figures.DPI), round(size[1] * figures.DPI))
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10  # a blank (one-colour) canvas has 0
    assert (pixels < 100).mean() > 0.005  # dark ink: text, axes, markers


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_identical_inputs_give_byte_identical_pngs(tmp_path, name):
    build, _ = BUILDERS[name]
    figures.save_png(build(), tmp_path / "a.png")
    figures.save_png(build(), tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data and b"Matplotlib version" not in data


def test_different_inputs_give_different_pngs(tmp_path):
    rank = fake.rank(1)
    figures.save_png(figures.kernel_drop_figure(rank, 1), tmp_path / "a.png")
    rank.accuracy[3] -= 0.2
    figures.save_png(figures.kernel_drop_figure(rank, 1), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()


def test_fig1_marks_fragile_below_and_null_above_the_mean():
    rank = fake.rank(2)
    ax = figures.kernel_drop_figure(rank, 2).axes[0]
    fragile_points, null_points = (c.get_offsets() for c in ax.collections)
    mean = 100 * rank.mean_accuracy
    assert sorted(fragile_points[:, 0]) == rank.fragile and (fragile_points[:, 1] < mean).all()
    assert sorted(null_points[:, 0]) == rank.null and (null_points[:, 1] >= mean).all()
    assert ax.get_xlabel() and ax.get_ylabel() and "epoch 2" in ax.get_title()


def test_fig2_right_panel_is_log_scaled_without_epsilon_zero():
    fig = figures.attack_figure({e: fake.attack(e) for e in EPOCHS})
    left, right = fig.axes
    assert left.get_xscale() == "linear" and right.get_xscale() == "log"
    assert len(left.get_lines()) == len(right.get_lines()) == len(EPOCHS)
    assert list(left.get_lines()[0].get_xdata()) == fake.EPSILONS
    assert list(right.get_lines()[0].get_xdata()) == [e for e in fake.EPSILONS if e > 0]
    assert [t.get_text() for t in right.get_legend().get_texts()] == [f"epoch {e}" for e in EPOCHS]


def test_fig3_has_targeting_and_three_accuracy_curves():
    comparison = fake.comparison(1)
    left, right = figures.hardening_figure(comparison, 1).axes
    assert len(left.get_lines()) == len(right.get_lines()) == 3
    assert list(right.get_lines()[1].get_ydata()) == [100 * comparison.hardened.accuracy(i)
                                                       for i in range(len(fake.EPSILONS))]


def test_fig4_circles_kernels_fragile_at_every_checkpoint_and_crosses_the_rest():
    ranks = _ranks()
    always, some = figures.fragile_persistence(figures.fragile_sets(ranks))
    sets = [set(r.fragile) for r in ranks.values()]
    assert set(always) == set.intersection(*sets) and always
    assert set(some) == set.union(*sets) - set(always) and some
    circles, crosses = figures.persistence_figure(ranks).axes[0].collections
    assert len(circles.get_offsets()) == len(always) * len(EPOCHS)
    assert {int(x) for x in crosses.get_offsets()[:, 0]} == set(some)


def test_one_checkpoint_has_every_fragile_kernel_persistent():
    always, some = figures.fragile_persistence({1: fake.rank(1).fragile})
    assert always == fake.rank(1).fragile and some == []


def test_the_stage_writes_every_figure_and_its_data(tmp_path):
    fake.write_results(tmp_path, EPOCHS)
    out, data = tmp_path / "report/figures", tmp_path / "report/data"
    out.mkdir(parents=True)
    (out / "fig1_kernel_drop_epoch_9.png").write_bytes(b"stale")  # from a checkpoint no longer analysed
    figures_stage.main(tmp_path / "results/rank", tmp_path / "results/attack", tmp_path / "results/evaluate",
                       out, data, tmp_path / "params.yaml")
    names = figures.figure_names(EPOCHS)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in names)
    assert sorted(p.name for p in data.iterdir()) == sorted(f"{n}.csv" for n in names)
    assert "epoch,epsilon,accuracy,targeting_pct" in (data / "fig2_attack.csv").read_text()


def test_the_stage_names_the_missing_stage(tmp_path, capsys):
    fake.write_results(tmp_path, (1,))
    (tmp_path / "results/evaluate/epoch_1.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        figures_stage.main(tmp_path / "results/rank", tmp_path / "results/attack", tmp_path / "results/evaluate",
                           tmp_path / "f", tmp_path / "d", tmp_path / "params.yaml")
    assert exit_info.value.code == 2
    assert "run the evaluate stage first" in capsys.readouterr().err


def test_kernel_figures_name_the_analysed_layer():
    rank = fake.rank(1, layer="layer2.0.conv2")
    ax = figures.kernel_drop_figure(rank, 1).axes[0]
    assert ax.get_xlabel().startswith("layer2.0.conv2 kernel") and "layer2.0.conv2" in ax.get_title()
    assert "layer2.0.conv2" in figures.persistence_figure({1: rank}).axes[0].get_title()
    assert "conv1" in figures.kernel_drop_figure(fake.rank(1), 1).axes[0].get_title()


def test_a_rank_result_without_measured_accuracy_is_a_one_line_error():
    import dataclasses

    from fragile.errors import FragileError

    taylor = dataclasses.replace(fake.rank(1), method="taylor", accuracy=None, mean_accuracy=None,
                                 baseline_accuracy=None)
    with pytest.raises(FragileError, match="epoch 1 has no measured accuracy per kernel .*rank.compare: true"):
        figures.kernel_drop_figure(taylor, 1)
