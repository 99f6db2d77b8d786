"""Item 6: the cost of our L∞ PGD (fragile.pgd) against torchattacks' PGD on the same examples.

Both attack the same points from the same start: the random start is drawn once here as the
pipeline draws it (`start`: x₀ = clamp(x + U(−ε, ε)) from a generator seeded with the seed and
the batch's pixels), and both then run with random_start=False from x₀, so torchattacks' own
draw (from the global generator) does not come in. Same ε, step and steps; ours with
early_stop=False does the same work as torchattacks (every step for every example) and gives
the same adversarial examples (`compare`); with early_stop=True it stops each example at its
first misclassified iterate, and its robust accuracy ("survives every iterate") is reported
beside the full run's (the last iterate).

The one difference in arithmetic: torchattacks projects as clamp(x + clamp(x' − x, −ε, ε), 0, 1),
ours as min(max(x', max(x − ε, 0)), min(x + ε, 1)); x + (x' − x) can round to a neighbour of x'
in float32. Where that rounding is exact (pixels, ε and step on a 2⁻⁸ grid) the two are bit-
identical (tests/test_benchmarks.py); on the real data they agree to that rounding (`compare`
counts the pixels and the examples whose prediction differs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchattacks

from benchmarks.timing import Ratio, interleaved, seconds_cell
from fragile.attacks import eval_mode, like
from fragile.data import Split
from fragile.devices import batch_to
from fragile.models import FragileNet
from fragile.pgd import pgd, step_size
from fragile.sweep import batch_seed


def start(images: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
    """The pipeline's random start for this batch (fragile.pgd's draw, seeded as pgd_sweep
    seeds it), in the images' memory layout."""
    generator = torch.Generator().manual_seed(batch_seed(seed, images))
    noise = torch.rand(images.shape, generator=generator, dtype=images.dtype)
    low, high = (images - epsilon).clamp(0.0, 1.0), (images + epsilon).clamp(0.0, 1.0)
    return torch.min(torch.max(images + (2 * noise - 1) * epsilon, low), high, out=like(images))


def theirs(model: FragileNet, x0: torch.Tensor, labels: torch.Tensor, epsilon: float, steps: int,
           step: float) -> torch.Tensor:
    return torchattacks.PGD(model, eps=epsilon, alpha=step, steps=steps, random_start=False)(x0, labels)


def ours(model: FragileNet, x0: torch.Tensor, labels: torch.Tensor, epsilon: float, steps: int, step: float,
         early_stop: bool) -> torch.Tensor:
    return pgd(model, x0, labels, epsilon, steps, step, random_start=False, early_stop=early_stop)


@dataclass(frozen=True)
class Agreement:
    """torchattacks' adversarial examples against ours (early_stop=False) on the same batches."""

    identical_batches: int
    batches: int
    differing_pixels: int
    pixels: int
    max_difference: float
    differing_predictions: int
    examples: int

    @property
    def same_attack(self) -> bool:
        """Bit-identical, or apart only by the projection's float32 rounding (a few ulps of a
        pixel) without any prediction changing."""
        return self.differing_predictions == 0 and self.max_difference <= 1e-6


def compare(model: FragileNet, batches: list[tuple[torch.Tensor, torch.Tensor]], epsilon: float, steps: int,
            step: float) -> Agreement:
    counts = [0, 0, 0, 0, 0, 0]
    largest = 0.0
    for x0, labels in batches:
        a, b = theirs(model, x0, labels, epsilon, steps, step), ours(model, x0, labels, epsilon, steps, step, False)
        with torch.no_grad(), eval_mode(model):
            predictions_differ = int((model(a).argmax(1) != model(b).argmax(1)).sum())
        for i, value in enumerate((int(torch.equal(a, b)), 1, int((a != b).sum()), a.numel(), predictions_differ,
                                   len(labels))):
            counts[i] += value
        largest = max(largest, float((a - b).abs().max()))
    return Agreement(counts[0], counts[1], counts[2], counts[3], largest, counts[4], counts[5])


def robust_accuracy(model: FragileNet, batches: list[tuple[torch.Tensor, torch.Tensor]],
                    attack: object) -> float:
    correct = total = 0
    for x0, labels in batches:
        adversarial = attack(x0, labels)  # type: ignore[operator]
        with torch.no_grad(), eval_mode(model):
            correct += int((model(adversarial).argmax(1) == labels).sum())
        total += len(labels)
    return correct / total


def run(model: FragileNet, split: Split, batch_size: int, epsilon: float, steps: int, step: float, seed: int,
        repeats: int) -> dict[str, object]:
    alpha = step_size(epsilon, steps, step)
    batches = []
    for images, labels in split.batches(batch_size):
        images = batch_to(images, None)
        batches.append((start(images, epsilon, seed), labels))

    def over(attack: object) -> object:
        return lambda: [attack(x0, y) for x0, y in batches]  # type: ignore[operator]

    attacks = {
        "torchattacks PGD": lambda x0, y: theirs(model, x0, y, epsilon, steps, alpha),
        "ours, early_stop=False": lambda x0, y: ours(model, x0, y, epsilon, steps, alpha, False),
        "ours, early_stop=True": lambda x0, y: ours(model, x0, y, epsilon, steps, alpha, True),
    }
    one = [(x0[:8], y[:8]) for x0, y in batches[:1]]  # warm-up: one small batch
    times = interleaved({name: over(a) for name, a in attacks.items()}, repeats,
                        {name: (lambda a=a: [a(x0, y) for x0, y in one]) for name, a in attacks.items()})
    examples = sum(len(y) for _, y in batches)
    return {
        "times": times,
        "ratios": [
            Ratio.of("PGD per step: ours (early_stop=False) vs torchattacks", times["torchattacks PGD"],
                     times["ours, early_stop=False"], 1.0),
            Ratio.of("PGD: ours with early stop vs torchattacks", times["torchattacks PGD"],
                     times["ours, early_stop=True"]),
        ],
        "agreement": compare(model, batches, epsilon, steps, alpha),
        "robust_accuracy": {name: robust_accuracy(model, batches, a) for name, a in attacks.items()},
        "epsilon": epsilon, "steps": steps, "step": alpha, "examples": examples, "batch_size": batch_size,
        "ms_per_step_image": {name: 1e3 * min(t) / (steps * examples) for name, t in times.items()},
    }


def lines(r: dict[str, object]) -> list[str]:
    """The item's markdown section."""
    a: Agreement = r["agreement"]  # type: ignore[assignment]
    accuracy: dict[str, float] = r["robust_accuracy"]  # type: ignore[assignment]
    return [
        f"{r['examples']} test examples in batches of {r['batch_size']}, ε = {r['epsilon']:g}, {r['steps']} steps of "
        f"{r['step']:g}; every attack starts from the same seeded random start (drawn here as the pipeline draws "
        "it, then random_start=False on all three), so torchattacks' own draw does not enter.",
        "",
        f"- torchattacks vs ours (early_stop=False): bit-identical batches {a.identical_batches} of {a.batches}; "
        f"pixels that differ {a.differing_pixels:,} of {a.pixels:,} (largest difference {a.max_difference:.2g}: "
        "the projection's float32 rounding, x + (x' − x) against x'); examples whose prediction differs "
        f"{a.differing_predictions} of {a.examples} — "
        + ("**the same attack**" if a.same_attack else "**not the same attack**"),
        "- robust accuracy: " + "; ".join(f"{name} {value:.3f}" for name, value in accuracy.items())
        + " (early stop counts an example robust only if it survives every iterate)",
        "",
        "| case | seconds min / median / max | ms per image-step (fastest repeat) |",
        "|---|---|---|",
        *[f"| {name} | {seconds_cell(t)} | "
          f"{r['ms_per_step_image'][name]:.3f} |"  # type: ignore[index]
          for name, t in r["times"].items()],  # type: ignore[attr-defined]
    ]
