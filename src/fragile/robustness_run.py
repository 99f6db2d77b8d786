"""evaluate's robustness record (fragile.results.RobustnessRecord): what the sanity checks and
the masking verdict need besides the FGSM and PGD sweeps.

The examples' labels (the chance-level bound at a large ε), the PGD settings (a verdict needs
at least 10 steps), the models' input std (the paper's ε read in normalised units) and, with
attack.autoattack, AutoAttack at the headline ε against the original and the hardened model,
each example's outcome after every component. All of it is merged over the processes of a
sharded run in example order, as the sweeps are.
"""

from __future__ import annotations

from dataclasses import dataclass

from fragile import distributed
from fragile.autoattack import autoattack
from fragile.checkpoint_run import CheckpointRun
from fragile.models import FragileNet
from fragile.params import Params
from fragile.results import RobustnessRecord


@dataclass(frozen=True)
class ExampleLabels:
    """The labels of a shard's examples, in order (mergeable over the processes)."""

    labels: list[int]

    def merge(self, other: ExampleLabels) -> ExampleLabels:
        return ExampleLabels(self.labels + other.labels)


def robustness_record(run: CheckpointRun, hardened: FragileNet, p: Params) -> RobustnessRecord:
    """The record of `run`'s examples; AutoAttack against both models when attack.autoattack."""
    a = p.attack
    labels = distributed.combine(run.part, lambda: ExampleLabels([int(y) for y in run.part.labels]))
    attacked = {}
    if a.autoattack:
        for name, model in (("original", run.model), ("hardened", hardened)):
            attacked[f"autoattack_{name}"] = run.combine("evaluate", lambda advance, model=model: autoattack(
                model, run.batches(), p.epsilon, p.seed, run.device, progress=advance,
            ), note=f"AutoAttack, {name}").to_dict()
    return RobustnessRecord(labels=labels.labels, pgd_steps=a.pgd_steps, pgd_step_size=a.pgd_step_size,
                            pgd_restarts=a.pgd_restarts, input_std=[float(s) for s in run.meta["std"]], **attacked)
