"""Screened exact ranking (`rank.method: hybrid`): the exact ranking's counts, with the drop
run only for the (example, kernel) pairs whose outcome could change.

The exact ranking counts, per kernel k, the examples still right with k dropped: c_k = Σ_i
right_ik. A pair's outcome differs from the example's unperturbed outcome only if the drop
moves the example's margin m_i (true-class logit minus the best other logit) through zero.
One forward and one backward pass per batch give every pair's first-order margin change
Δ_ik = Σ_hw (fill_k − a_ik)·∂m_i/∂a_ik (a: the tensor whose channel the drop replaces, as in
`ranking_taylor`). The drop is run exactly for each pair with |m_i| ≤ slack·|Δ_ik| + floor
(the margin could plausibly cross zero, allowing the first-order estimate to be off by a
factor `slack` plus `floor` logits); every other pair counts at the example's unperturbed
outcome. With `calibrate` (the default) the slack is then learned per kernel, batch by batch:
the pairs run show how far each kernel's drop really moved the margin, |m'_ik − m_i|, against
its estimate |Δ_ik|; the kernel's slack grows to the largest (|m'_ik − m_i| − floor)/|Δ_ik| seen,
the pairs the wider screen now takes in are run, and so on until no new pair enters. The
first-order estimate is worst for the most harmful kernels of a deep network (a resnet50's
fragile kernels move margins up to ten times the estimate), and a fixed slack misses exactly
their flips, which also shifts the mean line. The counts, and so the mean line K·c_k vs Σc
and S, are the exact ranking's up to the flips of unscreened pairs; with a floor above every
margin every pair runs and they are the exact ranking's. The per-example outcomes are not recorded (unscreened pairs were not
run), so there is no ranking bootstrap, as for `rank.method: taylor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from fragile.attacks import eval_mode
from fragile.devices import batch_to
from fragile.errors import FragileError
from fragile.kernel_drop import drop_site
from fragile.kernel_sets import KernelRanking
from fragile.models import FragileNet, conv_layer

if TYPE_CHECKING:
    import pandas as pd

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class HybridRanking:
    """Per kernel, the examples right with it dropped (run exactly on the screened pairs, the
    unperturbed outcome elsewhere) and how many of its pairs ran exactly. S and S' follow the
    exact ranking's mean-line rule in whole counts (`KernelRanking.fragile`)."""

    correct: list[int]
    exact_pairs: list[int]  # per kernel, examples whose drop of it was run exactly
    examples: int
    baseline_correct: int

    @property
    def accuracy(self) -> list[float]:
        return [c / self.examples for c in self.correct]

    @property
    def baseline_accuracy(self) -> float:
        return self.baseline_correct / self.examples

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracy) / len(self.correct)

    @property
    def exact_share(self) -> float:
        """Share of all (example, kernel) pairs whose drop ran exactly: the cost relative to
        the exact ranking, less the screening pass."""
        return sum(self.exact_pairs) / (self.examples * len(self.correct))

    def _sets(self) -> KernelRanking:
        # The exact ranking's rule on these counts (losses are not part of it).
        return KernelRanking(correct=self.correct, loss_sum=[0.0] * len(self.correct), examples=self.examples,
                             baseline_correct=self.baseline_correct)

    @property
    def fragile(self) -> list[int]:
        return self._sets().fragile

    @property
    def null(self) -> list[int]:
        return self._sets().null

    def check_sets(self) -> None:
        self._sets().check_sets()

    def merge(self, other: HybridRanking) -> HybridRanking:
        """This ranking and `other`'s, run on other examples: the counts add."""
        return HybridRanking(
            correct=[a + b for a, b in zip(self.correct, other.correct, strict=True)],
            exact_pairs=[a + b for a, b in zip(self.exact_pairs, other.exact_pairs, strict=True)],
            examples=self.examples + other.examples,
            baseline_correct=self.baseline_correct + other.baseline_correct,
        )


def rank_hybrid(
    model: FragileNet,
    batches: Batches,
    drop: str = "activation",
    device: torch.device | None = None,
    progress: Callable[[int], None] | None = None,
    layer: str = "conv1",
    slack: float = 3.0,
    floor: float = 0.5,
    pairs_per_pass: int = 1000,
    calibrate: bool = True,
) -> HybridRanking:
    """The screened exact ranking of `layer`'s kernels (see the module docstring); the drop
    acts where `rank_conv1` / `rank_layer` apply it, `pairs_per_pass` dropped copies per forward."""
    channels = conv_layer(model, layer).out_channels
    fill, prefix, rest, point = drop_site(model, layer, drop)
    captured: list[torch.Tensor] = []
    dropped: list[torch.Tensor] = []  # per copy, the kernel the hook zeroes (deeper layers)

    def at_point(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor | None:
        if dropped:  # in place, before the block's residual addition or ReLU reads it
            out[torch.arange(len(out), device=out.device), dropped[0]] = 0
            return None
        captured.append(out)
        return out.clone()  # the block's in-place residual addition / ReLU must not overwrite `out`

    correct = torch.zeros(channels, dtype=torch.long)
    exact_pairs = torch.zeros(channels, dtype=torch.long)
    base_correct = examples = 0
    handle = point.register_forward_hook(at_point) if point is not None else None
    try:
        with eval_mode(model):
            fill = fill.to(device) if device is not None else fill
            for images, labels in batches:
                images, labels = batch_to(images, device), labels.to(device)
                with torch.no_grad():
                    hidden = prefix(images)
                hidden.requires_grad_(True)
                captured.clear()
                dropped.clear()
                with torch.enable_grad():
                    logits = rest(hidden)
                    a = captured[0] if point is not None else hidden
                    # Summed margins: the gradient is each example's own ∂m_i/∂a_i.
                    margin = _margin(logits, labels)
                    (grad,) = torch.autograd.grad(margin.sum(), a)
                change = ((fill.to(a.dtype)[None, :, None, None] - a.detach()) * grad).sum(dim=(2, 3)).abs()
                right = logits.detach().argmax(1) == labels
                margin = margin.detach()
                distance = margin.abs()[:, None]  # how far each example's margin is from a flip
                hits = right[:, None].repeat(1, channels)
                ran = torch.zeros_like(hits)
                moved = torch.zeros_like(change)  # |m'_ik − m_i| of the pairs run
                screened = distance <= slack * change + floor
                with torch.no_grad():
                    while screened.any():
                        _run_pairs(screened, hidden.detach(), labels, margin, fill, rest, point is None, dropped,
                                   hits, moved, pairs_per_pass)
                        ran |= screened
                        if not calibrate:
                            break
                        reach = (_kernel_slack(moved, change, ran, slack, floor) * change).nan_to_num(torch.inf)
                        screened = ~ran & (distance <= reach + floor)
                correct += hits.sum(0).cpu()
                exact_pairs += ran.sum(0).cpu()
                base_correct += int(right.sum())
                examples += len(labels)
                if progress is not None:
                    progress(len(labels))
    finally:
        if handle is not None:
            handle.remove()
    if examples == 0:
        raise FragileError("the ranking split has no examples; check rank.split and rank.max_examples")
    return HybridRanking(correct=correct.tolist(), exact_pairs=exact_pairs.tolist(), examples=examples,
                         baseline_correct=base_correct)


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example, the true class's logit minus the best other class's: > 0 when right."""
    rows = torch.arange(len(labels), device=logits.device)
    others = logits.detach().clone()
    others[rows, labels] = -torch.inf
    return logits[rows, labels] - logits[rows, others.argmax(1)]


def _kernel_slack(moved: torch.Tensor, change: torch.Tensor, ran: torch.Tensor, slack: float,
                  floor: float) -> torch.Tensor:
    """Per kernel, the slack that would have screened in every pair run so far: the largest
    (|m' − m| − floor)/|Δ| over them, at least `slack`; infinite where a pair moved more than
    `floor` with a first-order change of zero (the estimate says nothing for that kernel, and
    inf · 0 makes every one of its pairs run)."""
    excess = (moved - floor).clamp(min=0)
    ratio = torch.where(ran & (excess > 0), excess / change, torch.zeros_like(change))  # x/0 = inf here
    return ratio.amax(0).clamp(min=slack)[None, :]


def _run_pairs(screened: torch.Tensor, hidden: torch.Tensor, labels: torch.Tensor, margin: torch.Tensor,
               fill: torch.Tensor, rest: Callable[[torch.Tensor], torch.Tensor], at_input: bool,
               dropped: list[torch.Tensor], hits: torch.Tensor, moved: torch.Tensor, pairs_per_pass: int) -> None:
    """For each screened pair (example i, kernel k), set hits[i, k] to whether example i is
    right with kernel k dropped and moved[i, k] to how far the drop moved its margin: the
    dropped channel is replaced in `rest`'s input (`at_input`, conv1) or zeroed by the
    drop-point hook through `dropped`."""
    example, kernel = screened.nonzero(as_tuple=True)
    for first in range(0, len(example), pairs_per_pass):
        ex, k = example[first : first + pairs_per_pass], kernel[first : first + pairs_per_pass]
        copies = hidden[ex]
        if at_input:
            copies[torch.arange(len(ex), device=copies.device), k] = fill[k, None, None].to(copies.dtype)
            logits = rest(copies.contiguous(memory_format=torch.channels_last))
        else:
            dropped[:] = [k]
            logits = rest(copies)
            dropped.clear()
        hits[ex, k] = logits.argmax(1) == labels[ex]
        moved[ex, k] = (_margin(logits, labels[ex]) - margin[ex]).abs().to(moved.dtype)


def compare_hybrid(hybrid: HybridRanking, exact: KernelRanking) -> dict[str, float]:
    """How well the screened ranking reproduces the exact one: the Spearman correlation of
    their per-kernel accuracies (ties get average ranks) and the share of kernels put in the
    same set (S or S') by both."""
    import pandas as pd

    fragile_h, fragile_e = set(hybrid.fragile), set(exact.fragile)
    kernels = len(hybrid.correct)
    same = sum((k in fragile_h) == (k in fragile_e) for k in range(kernels))
    return {
        "spearman": float(pd.Series(hybrid.correct).corr(pd.Series(exact.correct), method="spearman")),
        "set_agreement": same / kernels,
    }


def hybrid_table(hybrid: HybridRanking, exact: KernelRanking | None = None) -> pd.DataFrame:
    """Per-kernel rows: kernel, accuracy (screened), exact_pairs, set; and the exact ranking's
    accuracy and loss as `exact_accuracy`, `exact_loss` when it ran too."""
    import pandas as pd

    fragile = set(hybrid.fragile)
    kernels = range(len(hybrid.correct))
    table = pd.DataFrame({"kernel": kernels, "accuracy": hybrid.accuracy, "exact_pairs": hybrid.exact_pairs})
    if exact is not None:
        table["exact_accuracy"], table["exact_loss"] = exact.accuracy, exact.loss
    table["set"] = ["S" if k in fragile else "S'" for k in kernels]
    return table
