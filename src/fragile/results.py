"""The stages' result files as typed, versioned records.

One dataclass per file: `RankResult` (results/rank), `AttackResult` (results/attack),
`HardenResult` (results/harden), `EvaluateResult` (results/evaluate) and `Headline`
(summarize's metrics/headline.json). Writers, readers and the tests' fakes all go through
them: `to_json` gives the file's JSON object, `format_version` first; `from_json` checks the
version, that every field is there with its type and that nothing else is; `write` and
`read` add the file. A file that is missing, is not JSON, has another format version or
other fields is refused in one line naming the stage to rerun.

To add a field: add it, typed, to the dataclass and bump that class's FORMAT_VERSION. A
field whose value may be missing is `optional()` (written only when set). Torch-free: the
aggregation stages read these without importing torch.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from fragile.atomic import write_json
from fragile.comparison import Comparison, SweepCounts, SweepResult
from fragile.errors import FragileError
from fragile.layout import result_file

FORMAT_KEY = "format_version"
_OMIT_IF_NONE = "omit_if_none"

R = TypeVar("R", bound="ResultFile")


def optional() -> Any:
    """A field that may be unset (None): written only when set, read as None when absent."""
    return field(default=None, metadata={_OMIT_IF_NONE: True})


def rerun(stage: str) -> str:
    return f"rerun the {stage} stage (dvc repro -f {stage})"


def read_json_object(path: str | os.PathLike[str], stage: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object at `path`, which the `stage` stage wrote and which must hold `keys`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FragileError(f"{path} not found; run the {stage} stage first (dvc repro -f {stage})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FragileError(f"{path} is not valid JSON; {rerun(stage)}") from None
    if not isinstance(data, dict):
        raise FragileError(f"{path} is not a JSON object; {rerun(stage)}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise FragileError(f"{path} lacks {', '.join(missing)}; it is older than this code: {rerun(stage)}")
    return data


class ResultFile:
    """What every result dataclass shares: its stage, its format version and the JSON round trip."""

    STAGE: ClassVar[str]
    FORMAT_VERSION: ClassVar[int]

    def to_json(self) -> dict[str, Any]:
        return {FORMAT_KEY: self.FORMAT_VERSION, **_plain(self)}

    @classmethod
    def from_json(cls: type[R], data: Any, source: str = "the result") -> R:
        reader = _Reader(source, cls.STAGE)
        if not isinstance(data, dict):
            raise reader.error("is not a JSON object")
        version = data.get(FORMAT_KEY)
        if version != cls.FORMAT_VERSION:
            found = "no format version (written before results had one)" if version is None else \
                f"format version {version!r}"
            raise reader.error(f"has {found}; this code reads version {cls.FORMAT_VERSION} of {cls.STAGE} results")
        return cls._from_fields({k: v for k, v in data.items() if k != FORMAT_KEY}, reader)

    @classmethod
    def _from_fields(cls: type[R], data: dict[str, Any], reader: _Reader) -> R:
        return reader.build(cls, data, "")

    def write(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_json())

    @classmethod
    def read(cls: type[R], path: str | os.PathLike[str]) -> R:
        return cls.from_json(read_json_object(path, cls.STAGE), str(path))


def read_checkpoints(cls: type[R], folder: str | os.PathLike[str], epochs: Iterable[int]) -> dict[int, R]:
    """{epoch: the `cls` result of that checkpoint} from a per-checkpoint stage's folder."""
    return {epoch: cls.read(Path(folder) / result_file(epoch)) for epoch in epochs}


# --- rank ------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class RankResult(ResultFile):
    """results/rank/epoch_N.json: S and S' of the analysed conv. `accuracy`, `mean_accuracy`
    and `baseline_accuracy` are None when only the Taylor ranking ran, and the screened counts
    of rank.method hybrid (exact on the pairs it ran) when it chose S; `score`, `mean_score`
    and `baseline_loss` are written when the Taylor ranking ran, `comparison` when the fast
    method and the exact one both ran (rank.compare), `exact_share` (share of example–kernel
    pairs whose drop ran exactly) for hybrid. `p_fragile` (each kernel's share of
    ranking-bootstrap resamples in which it is in S) and `fragile_share_ci95` (the resamples'
    95% range of |S|/n) are written when the exact ranking chose S and
    analysis.rank_bootstrap > 0."""

    STAGE: ClassVar[str] = "rank"
    FORMAT_VERSION: ClassVar[int] = 3

    checkpoint: str
    epoch: int
    layer: str
    split: str
    drop: str
    method: str
    examples: int
    baseline_accuracy: float | None
    mean_accuracy: float | None
    num_fragile: int
    num_null: int
    fragile: list[int]
    null: list[int]
    accuracy: list[float] | None
    device: str
    score: list[float] | None = optional()
    mean_score: float | None = optional()
    baseline_loss: float | None = optional()
    comparison: dict[str, float] | None = optional()  # Spearman and S/S' agreement, taylor or hybrid vs exact
    p_fragile: list[float] | None = optional()
    fragile_share_ci95: list[float] | None = optional()
    exact_share: float | None = optional()


def read_kernel_sets(path: str | os.PathLike[str], layer: str, kernels: int) -> tuple[list[int], list[int]]:
    """(S, S') of a rank result, which must split exactly the kernels 0..kernels-1 of `layer`
    (a rank result of another layer or model is refused)."""
    rank = RankResult.read(path)
    fragile, null = rank.fragile, rank.null
    if not fragile or not null or set(fragile) & set(null):
        raise FragileError(f"{path} must hold two non-empty, disjoint kernel sets; {rerun('rank')}")
    if rank.layer != layer or sorted(fragile + null) != list(range(kernels)):
        raise FragileError(f"{path} ranks {len(fragile + null)} kernels of {rank.layer}, but analysis.layer is "
                           f"{layer} with {kernels} kernels; {rerun('rank')}")
    return fragile, null


# --- attack_target ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PgdCurve:
    """PGD next to FGSM in an attack result: per PGD ε, accuracy and Algorithm 1."""

    epsilons: list[float]
    steps: int
    step_size: float
    accuracy: list[float]
    targeting_pct: list[float]  # on attack.distance
    targeting_pct_absolute: list[float]
    targeting_pct_relative: list[float]
    per_example: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class AttackResult(ResultFile):
    """results/attack/epoch_N.json: FGSM accuracy and Algorithm 1 per ε on the original model
    (targeting on absolute and relative distances; `targeting_pct` on attack.distance), each
    example's outcomes for the bootstrap, and PGD (None when attack.pgd_epsilons is empty).
    `readings`: FGSM targeting percent per ε on every reading of fragile.targeting (conv, bn,
    relu × absolute, relative); their distances lie in results/attack/epoch_N.npz."""

    STAGE: ClassVar[str] = "attack_target"
    FORMAT_VERSION: ClassVar[int] = 3

    checkpoint: str
    epoch: int
    layer: str
    examples: int
    clean_accuracy: float
    epsilons: list[float]
    accuracy: list[float]
    distance: str
    targeting_pct: list[float]
    targeting_pct_absolute: list[float]
    targeting_pct_relative: list[float]
    device: str
    per_example: dict[str, Any]
    pgd: PgdCurve | None
    readings: dict[str, list[float]]
    # What the FGSM sweep ran on besides the checkpoint, examples and ε: evaluate reuses it for
    # the original model only when all of them match its own run (fragile.evaluation).
    batch_size: int
    fragile: list[int]
    null: list[int]

    @classmethod
    def from_sweeps(cls, *, checkpoint: str | os.PathLike[str], epoch: int, layer: str, fgsm: SweepResult,
                    pgd: SweepResult | None, distance: str, pgd_steps: int, pgd_step_size: float,
                    device: str, batch_size: int, fragile: Sequence[int], null: Sequence[int]) -> AttackResult:
        return cls(
            checkpoint=str(checkpoint), epoch=epoch, layer=layer, examples=fgsm.examples,
            batch_size=batch_size, fragile=list(fragile), null=list(null),
            clean_accuracy=fgsm.clean_accuracy, epsilons=fgsm.epsilons, accuracy=_accuracies(fgsm),
            distance=distance, **_targeting(fgsm, distance), device=device, per_example=fgsm.per_example,
            pgd=None if pgd is None else PgdCurve(
                epsilons=pgd.epsilons, steps=pgd_steps, step_size=pgd_step_size, accuracy=_accuracies(pgd),
                **_targeting(pgd, distance), per_example=pgd.per_example,
            ),
            readings={reading: [fgsm.reading_pct(reading, i) for i in range(len(fgsm.epsilons))]
                      for reading in fgsm.readings()},
        )

    def curve_rows(self) -> list[dict[str, float]]:
        """The attack curve (dvc plots): epsilon, accuracy, targeting_pct (on attack.distance)."""
        return [{"epsilon": e, "accuracy": a, "targeting_pct": t}
                for e, a, t in zip(self.epsilons, self.accuracy, self.targeting_pct)]


def _accuracies(sweep: SweepResult) -> list[float]:
    return [sweep.accuracy(i) for i in range(len(sweep.epsilons))]


def _targeting(sweep: SweepResult, distance: str) -> dict[str, list[float]]:
    indices = range(len(sweep.epsilons))
    return {
        "targeting_pct": [sweep.targeting_pct(i, distance) for i in indices],
        "targeting_pct_absolute": [sweep.targeting_pct(i) for i in indices],
        "targeting_pct_relative": [sweep.targeting_pct(i, "relative") for i in indices],
    }


# --- harden ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class NoiseTrialRow:
    """One σ of harden.noise_grid: the hardened model's FGSM accuracy on val and its τ, rank, α."""

    sigma: float
    fgsm_accuracy_val: float
    tau: float
    rank_kept: int
    alpha: float


@dataclass(frozen=True, kw_only=True)
class HardenResult(ResultFile):
    """results/harden/epoch_N.json: the hardening of the analysed conv (m, n, β, λ, τ, the
    singular values before and after the threshold, rank kept, α) and where σ came from."""

    STAGE: ClassVar[str] = "harden"
    FORMAT_VERSION: ClassVar[int] = 1

    checkpoint: str
    epoch: int
    layer: str
    m: int
    n: int
    beta: float
    lam: float
    tau: float
    sigma: float
    threshold: str
    norm: str
    singular_values: list[float]
    filtered_singular_values: list[float]
    above_tau: int
    rank_kept: int
    alpha: float
    noise_source: str  # "harden.noise" or "search"
    noise_grid: list[NoiseTrialRow]
    search_epsilon: float | None
    device: str


# --- evaluate --------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PgdCounts:
    """PGD white-box against each model, on its own ε grid."""

    epsilons: list[float]
    original: SweepCounts
    hardened: SweepCounts


@dataclass(frozen=True, kw_only=True)
class RobustnessRecord:
    """What the sanity checks and the masking verdict need besides the sweeps: the examples'
    labels (in example order), the PGD settings, the models' input std (the paper's ε in
    normalised units) and AutoAttack at `epsilon` per model (fragile.autoattack's
    `AutoAttackResult.to_dict`; absent unless attack.autoattack)."""

    labels: list[int]
    pgd_steps: int
    pgd_step_size: float
    pgd_restarts: int
    input_std: list[float]
    autoattack_original: dict[str, Any] | None = optional()
    autoattack_hardened: dict[str, Any] | None = optional()


@dataclass(frozen=True, kw_only=True)
class EvaluateResult(ResultFile):
    """results/evaluate/epoch_N.json: exact counts and per-example outcomes per ε of FGSM
    white-box against the original and the hardened model and transferred from the original,
    and of PGD (absent when attack.pgd_epsilons is empty), and the robustness record. The FGSM
    settings' `per_example` also holds Algorithm 1's outcome on every reading (`reading.<name>`,
    fragile.comparison)."""

    STAGE: ClassVar[str] = "evaluate"
    FORMAT_VERSION: ClassVar[int] = 2

    checkpoint: str
    epoch: int
    layer: str
    examples: int
    epsilons: list[float]
    original: SweepCounts
    hardened: SweepCounts
    transfer: SweepCounts
    pgd: PgdCounts | None = optional()
    device: str
    robustness: RobustnessRecord

    @classmethod
    def from_comparison(cls, *, checkpoint: str | os.PathLike[str], epoch: int, layer: str,
                        comparison: Comparison, device: str, robustness: RobustnessRecord) -> EvaluateResult:
        c = comparison
        pgd = None
        if c.pgd_original is not None and c.pgd_hardened is not None:
            pgd = PgdCounts(epsilons=c.pgd_original.epsilons, original=c.pgd_original.counts(),
                            hardened=c.pgd_hardened.counts())
        return cls(checkpoint=str(checkpoint), epoch=epoch, layer=layer, examples=c.original.examples,
                   epsilons=c.original.epsilons, original=c.original.counts(), hardened=c.hardened.counts(),
                   transfer=c.transfer.counts(), pgd=pgd, device=device, robustness=robustness)

    def comparison(self) -> Comparison:
        def sweep(counts: SweepCounts, epsilons: list[float]) -> SweepResult:
            return counts.sweep(epsilons, self.examples)

        pgd = self.pgd
        return Comparison(
            original=sweep(self.original, self.epsilons), hardened=sweep(self.hardened, self.epsilons),
            transfer=sweep(self.transfer, self.epsilons),
            pgd_original=sweep(pgd.original, pgd.epsilons) if pgd else None,
            pgd_hardened=sweep(pgd.hardened, pgd.epsilons) if pgd else None,
        )


# --- summarize -------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class KernelCounts:
    fragile: int  # |S|
    null: int  # |S'|
    fragile_fraction: float


@dataclass(frozen=True, kw_only=True)
class HardenSummary:
    sigma: float
    tau: float
    alpha: float
    rank_kept: int


@dataclass(frozen=True, kw_only=True)
class HeadlineBlock:
    """One checkpoint's headline at `epsilon`. `original`, `hardened` and `gain` map readable
    metric names to numbers, each with a `<name>_ci95` sibling when resampling is on; the PGD
    entries are there when `epsilon` is on attack.pgd_epsilons (see fragile.summary)."""

    examples: int
    original: dict[str, Any]
    hardened: dict[str, Any]
    gain: dict[str, Any]
    kernels: KernelCounts
    harden: HardenSummary
    masking: dict[str, Any]  # the three-way verdict (fragile.robustness_summary)
    sanity: dict[str, Any]  # per model, each sanity check's pass/fail with its numbers


_EPOCH_KEY = re.compile(r"epoch_(\d+)")


@dataclass(frozen=True, kw_only=True)
class Headline(ResultFile):
    """metrics/headline.json (dvc metrics): the headline at `epsilon`, one `epoch_<N>` block per
    checkpoint, the analysed layer and the stability of S across checkpoints; every Algorithm 1
    reading against its chance baseline (`readings`), the kernels' weight norms (`kernel_norms`)
    and the verdict on each of the paper's claims (`claims`), see fragile.claims_summary."""

    STAGE: ClassVar[str] = "summarize"
    FORMAT_VERSION: ClassVar[int] = 2

    epsilon: float
    checkpoints: dict[int, HeadlineBlock]  # written as `epoch_<N>` keys, for readable metric names
    layer: str
    stability: dict[str, Any]
    readings: dict[str, Any]
    kernel_norms: dict[str, Any]
    claims: dict[str, Any]
    methods: dict[str, str]  # which interval or test each kind of number uses

    def to_json(self) -> dict[str, Any]:
        return {FORMAT_KEY: self.FORMAT_VERSION, "epsilon": self.epsilon,
                **{f"epoch_{epoch}": _plain(block) for epoch, block in self.checkpoints.items()},
                "layer": self.layer, "stability": _plain(self.stability), "readings": _plain(self.readings),
                "kernel_norms": _plain(self.kernel_norms), "claims": _plain(self.claims),
                "methods": dict(self.methods)}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], reader: _Reader) -> Headline:
        blocks = {key: value for key, value in data.items() if _EPOCH_KEY.fullmatch(key)}
        rest = reader.build(_HeadlineRest, {k: v for k, v in data.items() if k not in blocks}, "")
        return cls(epsilon=rest.epsilon, layer=rest.layer, stability=rest.stability, readings=rest.readings,
                   kernel_norms=rest.kernel_norms, claims=rest.claims, methods=rest.methods,
                   checkpoints={int(_EPOCH_KEY.fullmatch(key).group(1)): reader.build(HeadlineBlock, value, key)
                                for key, value in blocks.items()})


@dataclass(frozen=True, kw_only=True)
class _HeadlineRest:
    """The headline's fields besides its per-checkpoint blocks (as they are read)."""

    epsilon: float
    layer: str
    stability: dict[str, Any]
    readings: dict[str, Any]
    kernel_norms: dict[str, Any]
    claims: dict[str, Any]
    methods: dict[str, str]


# --- the JSON round trip ---------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """`value` as JSON-ready dicts, lists and scalars (dataclass fields in their order)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)
                if not (f.metadata.get(_OMIT_IF_NONE) and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Reader:
    """Builds typed records from parsed JSON; every complaint names the file and the stage to rerun."""

    def __init__(self, source: str, stage: str) -> None:
        self.source, self.stage = source, stage

    def error(self, what: str) -> FragileError:
        return FragileError(f"{self.source} {what}; {rerun(self.stage)}")

    def build(self, cls: type, data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise self.error(f"{where or 'the file'}: expected a JSON object, got {_kind(data)}")
        hints = typing.get_type_hints(cls)
        declared = [f for f in fields(cls) if f.init]
        prefix = f"{where}." if where else ""
        missing = [prefix + f.name for f in declared if f.name not in data and not f.metadata.get(_OMIT_IF_NONE)]
        if missing:
            raise self.error(f"lacks {', '.join(missing)}; it is older than this code")
        unknown = sorted(set(data) - {f.name for f in declared})
        if unknown:
            raise self.error(f"has fields this code does not know ({', '.join(prefix + k for k in unknown)})")
        return cls(**{f.name: self.value(hints[f.name], data[f.name], prefix + f.name)
                      for f in declared if f.name in data})

    def value(self, hint: Any, value: Any, where: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Any:
            return value
        if origin in (Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.value(inner, value, where)
        if is_dataclass(hint):
            return self.build(hint, value, where)
        if origin is list:
            if not isinstance(value, list):
                raise self._wrong(where, "a list", value)
            return [self.value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self._wrong(where, "a JSON object", value)
            return {k: self.value(args[1], v, f"{where}.{k}") for k, v in value.items()}
        expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[hint]
        if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
            raise self._wrong(where, f"a {hint.__name__}", value)
        return value

    def _wrong(self, where: str, expected: str, value: Any) -> FragileError:
        return self.error(f"{where} must be {expected}, got {_kind(value)}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
