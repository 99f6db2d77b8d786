"""The paper's four figures, rebuilt from the pipeline's results (pure: data in, Figure out).

Every builder takes the stages' typed results (`RankResult`, `AttackResult`) or a
`Comparison` (from an `EvaluateResult`), returns a `matplotlib.figure.Figure` and never touches pyplot's
global state. `save_png` renders with Agg under matplotlib's default style and writes no
"Software" (version) metadata, so identical inputs give byte-identical PNG files on a given
matplotlib/FreeType install and a user's matplotlibrc cannot change the images.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib.style
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from fragile.atomic import atomic_dir, atomic_open
from fragile.comparison import Comparison, comparison_table
from fragile.errors import FragileError
from fragile.results import AttackResult, RankResult
from fragile.summary import fragile_persistence
from fragile.tables import write_csv

DPI = 100  # 1 inch = 100 px: 10-11 pt text stays readable at 100% zoom
KERNEL_DROP_SIZE = (10.0, 4.8)  # inches; Fig. 1
ATTACK_SIZE = (12.0, 4.8)  # Fig. 2
HARDENING_SIZE = (12.0, 4.8)  # Fig. 3
PERSISTENCE_SIZE = (12.0, 5.4)  # Fig. 4
FONT_SIZE = 11
EPSILON_LABEL = "ε (L∞ perturbation, pixel units of [0, 1] images)"

FIG2 = "fig2_attack"
FIG4 = "fig4_kernel_persistence"


def fig1_name(epoch: int) -> str:
    return f"fig1_kernel_drop_epoch_{epoch}"


def fig3_name(epoch: int) -> str:
    return f"fig3_hardening_epoch_{epoch}"


def figure_names(epochs: Sequence[int]) -> list[str]:
    """File stems (PNG and CSV) of every figure the figures stage draws for these checkpoints."""
    return [*(fig1_name(e) for e in epochs), FIG2, *(fig3_name(e) for e in epochs), FIG4]


@contextlib.contextmanager
def _style() -> Iterator[None]:
    # Fonts, line widths and DPI are read both when artists are made and when they are drawn.
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": FONT_SIZE}):
        yield


def _new_figure(size: tuple[float, float], columns: int = 1) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, columns, squeeze=False)[0]
    return fig, list(axes)


def _percent(values: Sequence[float]) -> list[float]:
    return [100.0 * v for v in values]


# The paper's Fig. 2 colours for epochs 10, 50, 100 (grey, green, violet), then more that avoid
# the red and blue reserved for the fragile/null markers.
CHECKPOINT_COLORS = ("0.45", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def _colors(count: int) -> list[Any]:
    if count <= len(CHECKPOINT_COLORS):
        return list(CHECKPOINT_COLORS[:count])
    cmap = colormaps["viridis"]  # many checkpoints: an ordered ramp (early dark, late light)
    return [cmap(0.85 * i / (count - 1)) for i in range(count)]


def kernel_drop_figure(rank: RankResult, epoch: int, context: str = "") -> Figure:
    """Fig. 1: accuracy with each kernel of the ranked layer dropped; mean line; S (blue circles), S' (black stars)."""
    with _style():
        accuracy = _percent(_measured(rank))
        fig, (ax,) = _new_figure(KERNEL_DROP_SIZE)
        kernels = range(len(accuracy))
        ax.plot(kernels, accuracy, color="0.75", linewidth=1, zorder=1)
        fragile, null = list(rank.fragile), list(rank.null)
        ax.scatter(fragile, [accuracy[k] for k in fragile], marker="o", s=36, facecolors="none",
                   edgecolors="tab:blue", linewidths=1.5, zorder=3, label=f"fragile kernels S ({len(fragile)})")
        ax.scatter(null, [accuracy[k] for k in null], marker="*", s=60, color="black", zorder=3,
                   label=f"null kernels S' ({len(null)})")
        mean, baseline = _mean_accuracy(rank), rank.baseline_accuracy
        ax.axhline(100.0 * mean, color="tab:red", linewidth=1.5, zorder=2,
                   label=f"mean over kernels ({100.0 * mean:.1f}%)")
        if baseline is not None:
            ax.axhline(100.0 * baseline, color="0.4", linestyle="--", linewidth=1, zorder=2,
                       label=f"no kernel dropped ({100.0 * baseline:.1f}%)")
        layer = rank.layer
        _kernel_axes(ax, len(accuracy), f"Fig. 1: {layer} kernel drop, epoch {epoch}{_suffix(context)}", layer)
    return fig


def attack_figure(curves: Mapping[int, AttackResult], context: str = "") -> Figure:
    """Fig. 2: left, accuracy vs ε (linear); right, % of examples attacking S vs ε (log, ε > 0)."""
    with _style():
        fig, (left, right) = _new_figure(ATTACK_SIZE, columns=2)
        for color, (epoch, curve) in zip(_colors(len(curves)), sorted(curves.items())):
            eps = list(curve.epsilons)
            left.plot(eps, _percent(curve.accuracy), marker="o", color=color, label=f"epoch {epoch}")
            positive = [(e, t) for e, t in zip(eps, curve.targeting_pct) if e > 0]
            right.plot([e for e, _ in positive], [t for _, t in positive], marker="*", markersize=10,
                       color=color, label=f"epoch {epoch}")
        left.set_xlabel(EPSILON_LABEL)
        left.set_ylabel("FGSM accuracy (%)")
        left.set_title("FGSM accuracy vs ε")
        right.set_xscale("log")
        # label the ε values themselves: log-axis minor labels (3×10⁻², 4×10⁻², ...) collide
        ticks = sorted({e for c in curves.values() for e in c.epsilons if e > 0})
        right.set_xticks(ticks, [f"{e:g}" for e in ticks])
        right.xaxis.set_minor_formatter(NullFormatter())
        right.set_xlabel(EPSILON_LABEL + ", log scale")
        right.set_ylabel("examples attacking S (%)")
        right.set_ylim(-2, 102)
        right.set_title("Attack concentrated on S (Algorithm 1); ε = 0 omitted")
        for ax in (left, right):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(title="checkpoint", fontsize=FONT_SIZE - 1)
        fig.suptitle(f"Fig. 2: FGSM against the checkpoints{_suffix(context)}")
    return fig


def hardening_figure(comparison: Comparison, epoch: int, context: str = "", layer: str = "conv1") -> Figure:
    """Fig. 3: targeting % vs ε (original, hardened); accuracy vs ε (original, hardened white-box, transfer)."""
    settings = (("original", comparison.original, "tab:red", "o", "-"),
                ("hardened (white-box)", comparison.hardened, "tab:blue", "s", "-"),
                ("hardened (transfer from original)", comparison.transfer, "tab:green", "^", "--"))
    with _style():
        fig, (left, right) = _new_figure(HARDENING_SIZE, columns=2)
        for label, sweep, color, marker, style in settings:
            indices = range(len(sweep.epsilons))
            left.plot(sweep.epsilons, [sweep.targeting_pct(i) for i in indices], marker=marker, linestyle=style,
                      color=color, label=label)
            right.plot(sweep.epsilons, [100.0 * sweep.accuracy(i) for i in indices], marker=marker,
                       linestyle=style, color=color, label=label)
        left.set_ylabel("examples attacking S (%)")
        left.set_ylim(-2, 102)
        left.set_title("Attack concentrated on S (Algorithm 1)")
        right.set_ylabel("FGSM accuracy (%)")
        right.set_title("FGSM accuracy vs ε")
        for ax in (left, right):
            ax.set_xlabel(EPSILON_LABEL)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=FONT_SIZE - 1)
        fig.suptitle(f"Fig. 3: original vs hardened {layer}, epoch {epoch}{_suffix(context)}")
    return fig


def persistence_figure(ranks: Mapping[int, RankResult], context: str = "") -> Figure:
    """Fig. 4: per-kernel drop accuracy per checkpoint; red circles = fragile at every checkpoint,
    red crosses = fragile at that checkpoint but not at every one."""
    always, _ = fragile_persistence(fragile_sets(ranks))
    always_set = set(always)
    with _style():
        fig, (ax,) = _new_figure(PERSISTENCE_SIZE)
        circles: list[tuple[int, float]] = []
        crosses: list[tuple[int, float]] = []
        for color, (epoch, rank) in zip(_colors(len(ranks)), sorted(ranks.items())):
            accuracy, mean = _percent(_measured(rank)), _mean_accuracy(rank)
            ax.plot(range(len(accuracy)), accuracy, color=color, linewidth=1.2, zorder=1,
                    label=f"epoch {epoch} (mean {100.0 * mean:.1f}%, dashed)")
            ax.axhline(100.0 * mean, color=color, linestyle="--", linewidth=1, zorder=1)
            for k in rank.fragile:
                (circles if k in always_set else crosses).append((k, accuracy[k]))
        ax.scatter([k for k, _ in circles], [a for _, a in circles], marker="o", s=40, facecolors="none",
                   edgecolors="red", linewidths=1.5, zorder=3,
                   label=f"fragile at every checkpoint ({len(always)} kernels)")
        ax.scatter([k for k, _ in crosses], [a for _, a in crosses], marker="x", s=36, color="red", zorder=3,
                   label="fragile at some checkpoints, not all")
        layer = next(iter(ranks.values())).layer
        _kernel_axes(ax, max(len(_measured(r)) for r in ranks.values()),
                     f"Fig. 4: {layer} kernel drop across checkpoints{_suffix(context)}", layer)
    return fig


def fragile_sets(ranks: Mapping[int, RankResult]) -> dict[int, list[int]]:
    """S of each checkpoint."""
    return {epoch: rank.fragile for epoch, rank in ranks.items()}


def _measured(rank: RankResult) -> list[float]:
    """Accuracy with each kernel dropped: the figures plot the exact ranking's measurements."""
    if rank.accuracy is None:
        raise FragileError(f"the rank result of epoch {rank.epoch} has no measured accuracy per kernel "
                           "(rank.method: taylor); set rank.compare: true to draw Figs. 1 and 4")
    return rank.accuracy


def _mean_accuracy(rank: RankResult) -> float:
    assert rank.mean_accuracy is not None  # measured with the accuracy (`_measured`)
    return rank.mean_accuracy


def _kernel_axes(ax: Any, kernels: int, title: str, layer: str) -> None:
    """Axes, title, grid and legend shared by the kernel-drop figures (Figs. 1 and 4)."""
    ax.set_xlim(-1, kernels)
    ax.set_xlabel(f"{layer} kernel index (dropped kernel)")
    ax.set_ylabel("accuracy with the kernel dropped (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=FONT_SIZE - 1, framealpha=0.9)


def _suffix(context: str) -> str:
    return f" ({context})" if context else ""


# The data behind each figure, one row per plotted point (written next to the PNGs).

def kernel_drop_table(rank: RankResult) -> pd.DataFrame:
    fragile, accuracy = set(rank.fragile), _measured(rank)
    return pd.DataFrame({
        "kernel": range(len(accuracy)),
        "accuracy": list(accuracy),
        "set": ["S" if k in fragile else "S'" for k in range(len(accuracy))],
        "mean_accuracy": _mean_accuracy(rank),
    })


def attack_table(curves: Mapping[int, AttackResult]) -> pd.DataFrame:
    rows = [{"epoch": epoch, "epsilon": e, "accuracy": a, "targeting_pct": t}
            for epoch, curve in sorted(curves.items())
            for e, a, t in zip(curve.epsilons, curve.accuracy, curve.targeting_pct)]
    return pd.DataFrame(rows, columns=["epoch", "epsilon", "accuracy", "targeting_pct"])


def persistence_table(ranks: Mapping[int, RankResult]) -> pd.DataFrame:
    always, _ = fragile_persistence(fragile_sets(ranks))
    rows = []
    for epoch, rank in sorted(ranks.items()):
        fragile = set(rank.fragile)
        for k, acc in enumerate(_measured(rank)):
            marker = ("every checkpoint" if k in always else "some checkpoints") if k in fragile else ""
            rows.append({"epoch": epoch, "kernel": k, "accuracy": acc, "fragile": k in fragile, "marker": marker})
    return pd.DataFrame(rows, columns=["epoch", "kernel", "accuracy", "fragile", "marker"])


def save_png(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write `fig` as a PNG atomically; no version or date metadata, so the bytes depend on the data only."""
    with _style(), atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})


def draw_all(ranks: Mapping[int, RankResult], attacks: Mapping[int, AttackResult],
             comparisons: Mapping[int, Comparison], context: str, png_folder: str | os.PathLike[str],
             csv_folder: str | os.PathLike[str]) -> None:
    """Every figure of these checkpoints as `<name>.png` in `png_folder` and its data as
    `<name>.csv` in `csv_folder`; each folder is replaced as a whole."""
    with atomic_dir(png_folder) as png_dir, atomic_dir(csv_folder) as csv_dir:
        def draw(name: str, figure: Figure, table: pd.DataFrame) -> None:
            save_png(figure, png_dir / f"{name}.png")
            write_csv(csv_dir / f"{name}.csv", table)

        for epoch in ranks:
            draw(fig1_name(epoch), kernel_drop_figure(ranks[epoch], epoch, context), kernel_drop_table(ranks[epoch]))
            draw(fig3_name(epoch), hardening_figure(comparisons[epoch], epoch, context, ranks[epoch].layer),
                 comparison_table(comparisons[epoch]))
        draw(FIG2, attack_figure(attacks, context), attack_table(attacks))
        draw(FIG4, persistence_figure(ranks, context), persistence_table(ranks))
