"""AutoAttack (Croce & Hein 2020) at one ε, with each example's outcome after every component.

torchattacks' `AutoAttack(norm='Linf', version='standard')` runs APGD-CE, APGD-T, FAB-T and
Square one after another (its `MultiAttack`), each on the examples that all earlier ones left
correctly classified; an example is robust only if it survives all four. `autoattack` builds
the same four attacks with the same settings and runs the same loop itself, so that it can
keep, per example, whether it is still robust after each component; the final outcome equals
torchattacks' AutoAttack on the same batch. Square is the gradient-free one: examples that it
breaks after the three gradient attacks failed are a sign of masked gradients.

torchattacks' standard version gives APGD and FAB 10 iterations (the original AutoAttack uses
100) and Square 5000 queries. Every component seeds torch's global generator with `seed` at
each call (so a batch's outcome does not depend on the batches before it); the caller's
generator state is restored afterwards. The result type is torch-free (torch is imported only
to attack), so the aggregation stages can read it back from JSON (`from_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fragile.errors import FragileError

if TYPE_CHECKING:
    import torch
    from torch import nn

COMPONENTS = ("APGD-CE", "APGD-T", "FAB-T", "Square")
GRADIENT_FREE = "Square"
SQUARE_QUERIES = 5000  # torchattacks' standard version


@dataclass(frozen=True, eq=False)
class AutoAttackResult:
    """Per-example outcomes (boolean arrays in example order) of AutoAttack at `epsilon`.

    `robust_after[k]`: still correctly classified after components 0..k (AutoAttack's running
    robust accuracy); the last one is the final outcome."""

    epsilon: float
    components: tuple[str, ...]
    clean: np.ndarray
    robust_after: tuple[np.ndarray, ...]

    @property
    def examples(self) -> int:
        return int(self.clean.size)

    @property
    def final(self) -> np.ndarray:
        """Robust under every component."""
        return self.robust_after[-1]

    @property
    def white_box(self) -> np.ndarray:
        """Robust under the gradient-based components (all before Square)."""
        return self.robust_after[self.components.index(GRADIENT_FREE) - 1]

    def accuracy(self, component: str | None = None) -> float:
        """Robust accuracy after `component` (and those before it); the final one for None."""
        outcome = self.final if component is None else self.robust_after[self.components.index(component)]
        return float(outcome.mean()) if outcome.size else float("nan")

    def broken_by(self) -> dict[str, int]:
        """How many examples each component broke that every earlier one had left robust
        (the first component counts from the correctly classified clean examples)."""
        before = self.clean
        counts = {}
        for name, after in zip(self.components, self.robust_after):
            counts[name] = int((before & ~after).sum())
            before = after
        return counts

    def merge(self, other: AutoAttackResult) -> AutoAttackResult:
        """This result and `other`'s, run on the next examples (the shards of one run)."""
        if (other.epsilon, other.components) != (self.epsilon, self.components):
            raise ValueError(f"cannot merge AutoAttack at ε = {self.epsilon} with ε = {other.epsilon}")
        return AutoAttackResult(self.epsilon, self.components, np.concatenate([self.clean, other.clean]),
                                tuple(np.concatenate(pair) for pair in zip(self.robust_after, other.robust_after)))

    def to_dict(self) -> dict[str, Any]:
        """Counts and '0'/'1' strings in example order (the sweeps' per-example format)."""
        return {
            "epsilon": self.epsilon,
            "examples": self.examples,
            "components": list(self.components),
            "clean_correct": int(self.clean.sum()),
            "robust": {name: int(after.sum()) for name, after in zip(self.components, self.robust_after)},
            "broken_by": self.broken_by(),
            "per_example": {"clean": _flags(self.clean),
                            **{name: _flags(after) for name, after in zip(self.components, self.robust_after)}},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoAttackResult:
        """The inverse of `to_dict`."""
        flags = data["per_example"]
        names = tuple(data["components"])
        return cls(float(data["epsilon"]), names, _outcomes(flags["clean"]),
                   tuple(_outcomes(flags[name]) for name in names))


def components(model: nn.Module, epsilon: float, seed: int, n_classes: int,
               square_queries: int = SQUARE_QUERIES) -> list[Any]:
    """The four attacks of torchattacks' AutoAttack(norm='Linf', version='standard'), in order.
    (APGD's loss "ce" and FAB's multi_targeted=True make them APGD-CE and FAB-T.)"""
    torchattacks = _torchattacks()
    common = {"norm": "Linf", "eps": epsilon, "seed": seed, "n_restarts": 1}
    return [
        torchattacks.APGD(model, loss="ce", **common),
        torchattacks.APGDT(model, n_classes=n_classes, **common),
        torchattacks.FAB(model, multi_targeted=True, n_classes=n_classes, **common),
        torchattacks.Square(model, n_queries=square_queries, **common),
    ]


def autoattack(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epsilon: float,
    seed: int = 0,
    device: torch.device | None = None,
    square_queries: int = SQUARE_QUERIES,
    progress: Callable[[int], object] | None = None,
) -> AutoAttackResult:
    """AutoAttack (L∞, standard) against `model` (pixels in [0, 1]) at `epsilon` on every batch,
    in eval mode (the model's mode is restored after). The number of classes is the width of
    the model's output."""
    from fragile.attacks import eval_mode
    from fragile.devices import batch_to

    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1] (pixel units), got {epsilon}")
    clean: list[np.ndarray] = []
    robust: list[list[np.ndarray]] = [[] for _ in COMPONENTS]
    with eval_mode(model):
        for images, labels in batches:
            images, labels = batch_to(images, device), labels.to(device)
            batch_clean, after = _attack_batch(model, images, labels, epsilon, seed, square_queries)
            clean.append(batch_clean)
            for kept, outcome in zip(robust, after):
                kept.append(outcome)
            if progress is not None:
                progress(len(labels))
    if not clean:
        raise ValueError("autoattack needs at least one batch")
    return AutoAttackResult(epsilon, COMPONENTS, np.concatenate(clean), tuple(np.concatenate(k) for k in robust))


def _attack_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float, seed: int,
                  square_queries: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """MultiAttack's loop: each attack on the examples still robust, in order."""
    import torch

    size = len(labels)
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        with torch.no_grad():
            logits = model(images)
        clean = (logits.argmax(1) == labels).cpu().numpy()
        attacks = components(model, epsilon, seed, logits.shape[1], square_queries)
        alive = torch.arange(size, device=images.device)
        after = []
        for attack in attacks:
            if alive.numel():
                with torch.enable_grad():  # as MultiAttack runs them, whatever the caller's mode
                    adversarial = attack(images[alive], labels[alive])
                with torch.no_grad():
                    alive = alive[model(adversarial).argmax(1) == labels[alive]]
            outcome = np.zeros(size, dtype=bool)
            outcome[alive.cpu().numpy()] = True
            after.append(outcome)
    return clean, after


def _torchattacks() -> Any:
    try:
        import torchattacks
    except ImportError:
        raise FragileError(
            "attack.autoattack needs torchattacks, which is not installed; run `make install` "
            "(it adds torchattacks>=3.5,<4 with --no-deps)"
        ) from None
    return torchattacks


def _flags(outcome: np.ndarray) -> str:
    return "".join("1" if o else "0" for o in outcome)


def _outcomes(flags: str) -> np.ndarray:
    return np.frombuffer(flags.encode("ascii"), dtype=np.uint8) == ord("1")
