"""Attack results as exact counts: per-ε sweeps and the original-vs-hardened comparison.

Torch-free on purpose: the aggregation stages (summarize, figures, report) read these from
JSON (fragile.results) without paying for a torch import, and shards of a sweep merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a table is built: harden reads results without needing pandas
    import pandas as pd

FLAG_KINDS = ("correct", "targeted", "targeted_relative")
READING_KIND = "reading.{reading}"  # per_example key of Algorithm 1's outcomes on one reading (fragile.targeting)


@dataclass(kw_only=True)
class SweepCounts:
    """The exact counts of one sweep, without its ε grid and example count (which a
    comparison's sweeps share): what results/evaluate stores per setting.

    `targeted` counts Algorithm 1 on absolute distances d_k (the paper), `targeted_relative`
    on d_k / ‖f_L(x)_k‖. `per_example` keeps each example's outcome as a '0'/'1' string in
    example order ("clean", and one string per ε for each of FLAG_KINDS), which the bootstrap
    resamples."""

    clean_correct: int = 0
    correct: list[int] = field(default_factory=list)
    targeted: list[int] = field(default_factory=list)
    targeted_relative: list[int] = field(default_factory=list)
    per_example: dict[str, Any] = field(default_factory=dict)

    def sweep(self, epsilons: list[float], examples: int) -> SweepResult:
        return SweepResult(list(epsilons), examples, **_count_fields(self))


def _count_fields(counts: SweepCounts) -> dict[str, Any]:
    return {f.name: getattr(counts, f.name) for f in fields(SweepCounts)}


@dataclass
class SweepResult(SweepCounts):
    """Counts per ε over `examples` examples; fractions are derived, so that the shards of a
    sweep merge exactly (`merge`)."""

    epsilons: list[float]
    examples: int = 0

    def __post_init__(self) -> None:
        self.correct = self.correct or [0] * len(self.epsilons)
        self.targeted = self.targeted or [0] * len(self.epsilons)
        self.targeted_relative = self.targeted_relative or [0] * len(self.epsilons)

    def counts(self) -> SweepCounts:
        return SweepCounts(**_count_fields(self))

    def merge(self, other: SweepResult) -> SweepResult:
        """This sweep and `other`, run on the next examples of the same ε grid: counts add,
        per-example strings join (this one's examples first)."""
        if other.epsilons != self.epsilons:
            raise ValueError(f"cannot merge sweeps over different ε grids: {self.epsilons} vs {other.epsilons}")
        return SweepResult(
            list(self.epsilons),
            self.examples + other.examples,
            clean_correct=self.clean_correct + other.clean_correct,
            correct=_added(self.correct, other.correct),
            targeted=_added(self.targeted, other.targeted),
            targeted_relative=_added(self.targeted_relative, other.targeted_relative),
            per_example=_joined(self.per_example, other.per_example),
        )

    @classmethod
    def from_outcomes(cls, epsilons: list[float], per_example: dict[str, Any]) -> SweepResult:
        """The sweep whose per-example outcomes are `per_example` (as `record` wrote them):
        every count is recounted from the strings, so it equals the sweep that recorded them."""
        clean = per_example.get("clean", "")
        counts = {kind: [flags.count("1") for flags in per_example[kind]] if kind in per_example else []
                  for kind in FLAG_KINDS}
        return cls(list(epsilons), len(clean), clean_correct=clean.count("1"),
                   per_example={kind: (list(v) if isinstance(v, list) else v) for kind, v in per_example.items()},
                   **counts)

    def record_clean(self, correct: list[bool]) -> None:
        self.clean_correct += sum(correct)
        self.per_example["clean"] = self.per_example.get("clean", "") + _flags(correct)
        self.examples += len(correct)

    def record(self, i: int, kind: str, outcomes: list[bool]) -> None:
        """Add one batch's outcomes of `kind` (one of FLAG_KINDS) at ε index i."""
        getattr(self, kind)[i] += sum(outcomes)
        strings = self.per_example.setdefault(kind, [""] * len(self.epsilons))
        strings[i] += _flags(outcomes)

    def record_reading(self, i: int, reading: str, outcomes: list[bool]) -> None:
        """Add one batch's Algorithm 1 outcomes on `reading` (e.g. "bn_relative") at ε index i;
        kept per example only (`reading_pct`, `outcomes(READING_KIND.format(reading=...), i)`)."""
        strings = self.per_example.setdefault(READING_KIND.format(reading=reading), [""] * len(self.epsilons))
        strings[i] += _flags(outcomes)

    def readings(self) -> list[str]:
        """The readings whose outcomes were recorded, in recording order."""
        prefix = READING_KIND.format(reading="")
        return [kind[len(prefix):] for kind in self.per_example if kind.startswith(prefix)]

    def reading_pct(self, reading: str, i: int) -> float | None:
        """Percent of examples attacking S on `reading` at ε index i; None if it was not recorded."""
        flags = self.outcomes(READING_KIND.format(reading=reading), i)
        return 100.0 * flags.count("1") / len(flags) if flags else None

    def outcomes(self, kind: str, i: int | None = None) -> str:
        """The '0'/'1' string of `kind` at ε index i ("clean" takes no index); "" if nothing was recorded."""
        if kind == "clean":
            return self.per_example.get("clean", "")
        strings = self.per_example.get(kind)
        return strings[i] if strings else ""

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.examples

    def accuracy(self, i: int) -> float:
        return self.correct[i] / self.examples

    def targeting_pct(self, i: int, distance: str = "absolute") -> float:
        counts = self.targeted_relative if distance == "relative" else self.targeted
        return 100.0 * counts[i] / self.examples

    def at(self, epsilon: float) -> int:
        return self.epsilons.index(epsilon)

    def rows(self, distance: str = "absolute") -> list[dict[str, float]]:
        return [
            {"epsilon": eps, "accuracy": self.accuracy(i), "targeting_pct": self.targeting_pct(i, distance)}
            for i, eps in enumerate(self.epsilons)
        ]


def _added(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _joined(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Per-example outcome strings of two shards, the first's examples first."""
    joined: dict[str, Any] = {}
    for kind, value in first.items():
        if isinstance(value, str):
            joined[kind] = value + second[kind]
        else:
            joined[kind] = [a + b for a, b in zip(value, second[kind], strict=True)]
    return joined


def _flags(outcomes: list[bool]) -> str:
    return "".join("1" if o else "0" for o in outcomes)


@dataclass(frozen=True)
class Comparison:
    original: SweepResult  # white-box against the original
    hardened: SweepResult  # white-box against the hardened model
    transfer: SweepResult  # the original's adversarial examples, fed to the hardened model
    # L∞ PGD, white-box against each model, on attack.pgd_epsilons (None: not run)
    pgd_original: SweepResult | None = None
    pgd_hardened: SweepResult | None = None

    def merge(self, other: Comparison) -> Comparison:
        """This comparison and `other`'s, run on the next examples: each sweep merged."""
        def merged(a: SweepResult | None, b: SweepResult | None) -> SweepResult | None:
            return None if a is None or b is None else a.merge(b)

        return Comparison(*(merged(getattr(self, f.name), getattr(other, f.name)) for f in fields(Comparison)))


def comparison_table(result: Comparison) -> pd.DataFrame:
    """One row per ε: FGSM accuracies and targeting percentages (absolute and relative
    distances) of the three settings."""
    import pandas as pd

    indices = range(len(result.original.epsilons))
    return pd.DataFrame(
        {
            "epsilon": result.original.epsilons,
            "original_accuracy": [result.original.accuracy(i) for i in indices],
            "hardened_whitebox_accuracy": [result.hardened.accuracy(i) for i in indices],
            "hardened_transfer_accuracy": [result.transfer.accuracy(i) for i in indices],
            "original_targeting_pct": [result.original.targeting_pct(i) for i in indices],
            "hardened_targeting_pct": [result.hardened.targeting_pct(i) for i in indices],
            "transfer_targeting_pct": [result.transfer.targeting_pct(i) for i in indices],
            "original_targeting_pct_relative": [result.original.targeting_pct(i, "relative") for i in indices],
            "hardened_targeting_pct_relative": [result.hardened.targeting_pct(i, "relative") for i in indices],
            "transfer_targeting_pct_relative": [result.transfer.targeting_pct(i, "relative") for i in indices],
        }
    )


def pgd_table(result: Comparison) -> pd.DataFrame:
    """One row per PGD ε: white-box accuracy and targeting of the original and the hardened model."""
    import pandas as pd

    columns = ["epsilon", "original_pgd_accuracy", "hardened_pgd_accuracy", "original_pgd_targeting_pct",
               "hardened_pgd_targeting_pct"]
    o, h = result.pgd_original, result.pgd_hardened
    if o is None or h is None:
        return pd.DataFrame(columns=columns)
    indices = range(len(o.epsilons))
    return pd.DataFrame(
        {
            "epsilon": o.epsilons,
            "original_pgd_accuracy": [o.accuracy(i) for i in indices],
            "hardened_pgd_accuracy": [h.accuracy(i) for i in indices],
            "original_pgd_targeting_pct": [o.targeting_pct(i) for i in indices],
            "hardened_pgd_targeting_pct": [h.targeting_pct(i) for i in indices],
        },
        columns=columns,
    )


def comparison_lines(result: Comparison) -> list[str]:
    """Accuracies and attack on S per ε (and per PGD ε), one line each."""
    lines = [f"ε={row.epsilon:<6g} accuracy original {row.original_accuracy:.4f} hardened "
             f"{row.hardened_whitebox_accuracy:.4f} transfer {row.hardened_transfer_accuracy:.4f} | on S original "
             f"{row.original_targeting_pct:.1f}% hardened {row.hardened_targeting_pct:.1f}%"
             for row in comparison_table(result).itertuples()]
    lines += [f"PGD ε={row.epsilon:<6g} accuracy original {row.original_pgd_accuracy:.4f}"
              f" hardened {row.hardened_pgd_accuracy:.4f}" for row in pgd_table(result).itertuples()]
    return lines
