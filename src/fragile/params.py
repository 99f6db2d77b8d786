"""Typed pipeline parameters: one dataclass per params.yaml section, validated once.

Every error names the offending key (and the closest valid key for typos), so a
mistyped `params.yaml` or `dvc exp run -S` fails before any work is done.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fragile.errors import FragileError

DATASETS = ("mnist5k", "mnist", "fashion-mnist", "cifar10", "imagefolder")
ARCHS = ("resnet18", "resnet50", "resnet101")
STEMS = ("imagenet", "cifar")
MODEL_SOURCES = ("train", "file")
SCHEDULERS = ("cosine", "constant")
SPLITS = ("train", "val", "test")
DROP_MODES = ("activation", "weight")
RANK_METHODS = ("ablation", "taylor", "hybrid")
THRESHOLDS = ("truncate", "clamp")
NORMS = ("spectral", "fro")
DISTANCES = ("absolute", "relative")
SANITY_EPSILON_MIN = 0.5  # fragile.sanity.LARGE_EPSILON: the chance-level bound holds from here on
OUTPUTS = ("conv", "bn", "relu")  # where Algorithm 1 reads the analysed conv (fragile.targeting.OUTPUTS)


@dataclass(frozen=True)
class DataParams:
    dataset: str = "mnist5k"
    root: str = "data/raw"
    download: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    image_size: int = 0  # imagefolder: 0 keeps the images' one shared size; N resizes to N×N

    def validate(self) -> None:
        _choice("data.dataset", self.dataset, DATASETS)
        if self.image_size < 0:
            raise FragileError(f"data.image_size must be 0 (keep the size) or a side in pixels, got {self.image_size}")
        if self.image_size and self.dataset != "imagefolder":
            raise FragileError(
                f"data.image_size resizes data.dataset: imagefolder only; set it to 0 for {self.dataset}"
            )
        _fraction("data.val_fraction", self.val_fraction)
        _fraction("data.test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise FragileError(
                "data.val_fraction + data.test_fraction must be below 1 "
                f"(got {self.val_fraction} + {self.test_fraction})"
            )


@dataclass(frozen=True)
class ModelParams:
    arch: str = "resnet18"
    stem: str = "imagenet"
    source: str = "train"  # train: train model.arch here | file: import trained weights from model.file
    # The default names a folder only so that a DVC dependency on ${model.file} always exists.
    file: str = "models/import"
    mean: tuple[float, ...] = ()  # per-channel normalisation in [0, 1] pixel units; (): the data's statistics
    std: tuple[float, ...] = ()

    def validate(self) -> None:
        _choice("model.arch", self.arch, ARCHS)
        _choice("model.stem", self.stem, STEMS)
        _choice("model.source", self.source, MODEL_SOURCES)
        if self.source == "file" and not self.file.strip():
            raise FragileError("model.source is file but model.file is empty; set it to the weights file to import")
        if len(self.mean) != len(self.std):
            raise FragileError(
                f"model.mean has {len(self.mean)} values and model.std {len(self.std)}; give one per input "
                "channel in both, or [] in both for the prepared data's statistics"
            )
        for i, (mu, sigma) in enumerate(zip(self.mean, self.std)):
            if not 0 <= mu <= 1:
                raise FragileError(f"model.mean[{i}] must be in [0, 1] (pixel units of [0, 1] images), got {mu}")
            _positive(f"model.std[{i}]", sigma)


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 10
    checkpoints: tuple[int, ...] = (2, 5, 10)
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    max_examples: int = 0  # 0: the whole training split
    nproc: int = 1  # processes per machine (torchrun + DistributedDataParallel when > 1)
    sync_bn: bool = False  # SyncBatchNorm across the processes (CUDA only)

    def validate(self, imported: bool = False) -> None:
        """`imported`: model.source is file, whose one checkpoint is analysed as epoch 0."""
        _positive("train.epochs", self.epochs)
        _positive("train.batch_size", self.batch_size)
        if self.batch_size < 2:
            # BatchNorm in training mode cannot normalise a single example (1x1 maps in layer4).
            raise FragileError(f"train.batch_size must be at least 2 for BatchNorm, got {self.batch_size}")
        if self.max_examples < 0 or self.max_examples == 1:
            raise FragileError(
                f"train.max_examples must be 0 (the whole training split) or at least 2, got {self.max_examples}"
            )
        if self.nproc < 1:
            raise FragileError(f"train.nproc must be at least 1 (processes per machine), got {self.nproc}")
        _positive("train.lr", self.lr)
        _in_range("train.momentum", self.momentum, 0.0, 1.0)
        _in_range("train.weight_decay", self.weight_decay, 0.0, math.inf)
        _choice("train.scheduler", self.scheduler, SCHEDULERS)
        if imported:
            if list(self.checkpoints) != [0]:
                raise FragileError(
                    "model.source is file: the imported weights are the one checkpoint, analysed as "
                    f"epoch 0; set train.checkpoints to [0] (got {list(self.checkpoints)})"
                )
            return
        if not self.checkpoints:
            raise FragileError(
                "train.checkpoints is empty; list at least one epoch to save, e.g. "
                f"[{self.epochs}]"
            )
        if list(self.checkpoints) != sorted(set(self.checkpoints)):
            raise FragileError(
                f"train.checkpoints must be strictly increasing, got {list(self.checkpoints)}"
            )
        for epoch in self.checkpoints:
            if not 1 <= epoch <= self.epochs:
                raise FragileError(
                    f"train.checkpoints has epoch {epoch}, outside 1..train.epochs "
                    f"({self.epochs}); raise train.epochs or drop that checkpoint"
                    + (" (epoch 0 is for model.source: file)" if epoch == 0 else "")
                )


@dataclass(frozen=True)
class RankParams:
    split: str = "val"
    max_examples: int = 1000
    batch_size: int = 250
    drop: str = "activation"
    method: str = "ablation"
    compare: bool = False
    hybrid_slack: float = 3.0  # hybrid: a pair's drop runs exactly when |margin| <= slack·|first-order change| + floor
    hybrid_floor: float = 0.5  # logits
    hybrid_calibrate: bool = True  # hybrid: each kernel's slack grows to what its exactly run pairs show

    def validate(self) -> None:
        _choice("rank.split", self.split, SPLITS)
        _positive("rank.max_examples", self.max_examples)
        _positive("rank.batch_size", self.batch_size)
        _choice("rank.drop", self.drop, DROP_MODES)
        _choice("rank.method", self.method, RANK_METHODS)
        for key, value in (("rank.hybrid_slack", self.hybrid_slack), ("rank.hybrid_floor", self.hybrid_floor)):
            if not value >= 0:
                raise FragileError(f"{key} must be >= 0 (larger runs more drops exactly), got {value}")


@dataclass(frozen=True)
class AttackParams:
    epsilons: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    max_examples: int = 1000
    batch_size: int = 250
    distance: str = "absolute"  # Algorithm 1's d_k: absolute (the paper) | relative (d_k / ‖f_L(x)_k‖)
    pgd_epsilons: tuple[float, ...] = ()  # the headline ε and sanity_epsilon are always added (pgd_grid)
    pgd_steps: int = 10  # fewer than 10: the masking verdict is "not assessed"
    pgd_step_size: float = 0.0  # 0: 2.5·ε/pgd_steps (Madry et al.)
    pgd_restarts: int = 1  # random restarts; an example is robust only if it survives every one
    sanity_epsilon: float = 0.5  # PGD here must bring accuracy to chance level; 0: no such check
    autoattack: bool = False  # also AutoAttack (torchattacks, standard L∞) at the headline ε

    def validate(self) -> None:
        if not self.epsilons:
            raise FragileError("attack.epsilons is empty; list the FGSM strengths, e.g. [0, 0.1]")
        _epsilon_grid("attack.epsilons", self.epsilons)
        _positive("attack.max_examples", self.max_examples)
        _positive("attack.batch_size", self.batch_size)
        _choice("attack.distance", self.distance, DISTANCES)
        _epsilon_grid("attack.pgd_epsilons", self.pgd_epsilons)
        _positive("attack.pgd_steps", self.pgd_steps)
        _in_range("attack.pgd_step_size", self.pgd_step_size, 0.0, 1.0)
        _positive("attack.pgd_restarts", self.pgd_restarts)
        if self.sanity_epsilon != 0 and not SANITY_EPSILON_MIN <= self.sanity_epsilon <= 1:
            raise FragileError(
                f"attack.sanity_epsilon must be 0 (off) or in [{SANITY_EPSILON_MIN}, 1], where every image is "
                f"within ε of uniform grey, got {self.sanity_epsilon}"
            )

    def pgd_grid(self, headline: float, sanity: bool = True) -> tuple[float, ...]:
        """The ε at which PGD runs, increasing: attack.pgd_epsilons plus the headline ε (the
        masking verdict needs PGD there) and, with `sanity`, sanity_epsilon when it is on (the
        evaluation of both models needs it; a curve of one model need not pay for it)."""
        extra = {headline} | ({self.sanity_epsilon} if sanity and self.sanity_epsilon else set())
        return tuple(sorted(set(self.pgd_epsilons) | extra))


@dataclass(frozen=True)
class HardenParams:
    noise: float = 0.015
    threshold: str = "truncate"
    norm: str = "spectral"
    noise_grid: tuple[float, ...] = ()
    search_examples: int = 500

    def validate(self) -> None:
        _positive("harden.noise", self.noise)
        _choice("harden.threshold", self.threshold, THRESHOLDS)
        _choice("harden.norm", self.norm, NORMS)
        for i, sigma in enumerate(self.noise_grid):
            _positive(f"harden.noise_grid[{i}]", sigma)
        _positive("harden.search_examples", self.search_examples)


@dataclass(frozen=True)
class EvaluateParams:
    max_examples: int = 1000
    batch_size: int = 250

    def validate(self) -> None:
        _positive("evaluate.max_examples", self.max_examples)
        _positive("evaluate.batch_size", self.batch_size)


@dataclass(frozen=True)
class AnalysisParams:
    layer: str = "conv1"  # a conv of the ResNet, by its torchvision module name
    bootstrap: int = 1000  # resamples for the 95% confidence intervals; 0: none
    output: str = "conv"  # Algorithm 1 reads the conv's output (the paper) | after its BatchNorm | after BN + ReLU
    chance_subsets: int = 1000  # random kernel sets of size |S| for Algorithm 1's chance baseline; 0: none
    rank_bootstrap: int = 1000  # resamples of the ranking examples for each kernel's P(in S); 0: none
    significance: float = 0.05  # α of every claim's verdict
    claim_tolerance: float = 0.10  # how far (as a share) our value may sit from the paper's and still be "near"

    def validate(self) -> None:
        # Which names exist depends on model.arch; the stages check it against the model.
        if not self.layer or self.layer != self.layer.strip():
            raise FragileError(
                f"analysis.layer must name a conv layer such as conv1 or layer1.0.conv1, got {self.layer!r}"
            )
        if self.bootstrap < 0:
            raise FragileError(f"analysis.bootstrap must be >= 0 (0 turns the intervals off), got {self.bootstrap}")
        _choice("analysis.output", self.output, OUTPUTS)
        if not 0 < self.significance < 1:
            raise FragileError(f"analysis.significance must be strictly between 0 and 1, got {self.significance}")
        # With R random sets the smallest p-value is 1/(1 + R): fewer could never be significant.
        fewest = math.ceil(1 / self.significance)
        if self.chance_subsets != 0 and self.chance_subsets < fewest:
            raise FragileError(
                f"analysis.chance_subsets must be 0 (no chance baseline) or at least {fewest}, so that its "
                f"p-value can fall below analysis.significance ({self.significance}); got {self.chance_subsets}"
            )
        if self.rank_bootstrap < 0:
            raise FragileError(
                f"analysis.rank_bootstrap must be >= 0 (0 turns the ranking bootstrap off), got {self.rank_bootstrap}"
            )
        _in_range("analysis.claim_tolerance", self.claim_tolerance, 0.0, 1.0)


@dataclass(frozen=True)
class Params:
    seed: int = 0
    epsilon: float = 0.1
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    rank: RankParams = field(default_factory=RankParams)
    attack: AttackParams = field(default_factory=AttackParams)
    harden: HardenParams = field(default_factory=HardenParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    analysis: AnalysisParams = field(default_factory=AnalysisParams)

    def validate(self) -> None:
        if self.seed < 0:
            raise FragileError(f"seed must be >= 0, got {self.seed}")
        _epsilon("epsilon", self.epsilon)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, TrainParams):  # after model: its source decides the checkpoints
                value.validate(imported=self.model.source == "file")
            elif dataclasses.is_dataclass(value):
                value.validate()

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) for checkpoints and JSON outputs."""
        return _plain(dataclasses.asdict(self))


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read, type-check and validate a params file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FragileError(f"params file {path} not found; pass --params PATH") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FragileError(f"{path} is not valid YAML{where}; fix its syntax") from None
    return params_from_dict(raw or {}, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    params = _build(Params, raw, prefix="", source=source)
    params.validate()
    return params


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise FragileError(f"{source}: {where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            full = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(prefix + n for n in names)}"
            raise FragileError(f"{source}: unknown params key '{full}'{hint}")
    values: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], prefix=f"{key}.", source=source)
        else:
            values[name] = _coerce(key, raw[name], hint, source)
    return cls(**values)


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_type, _) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise FragileError(f"{source}: {key} must be a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, item_type, source) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise FragileError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FragileError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FragileError(f"{source}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise FragileError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise FragileError(f"{source}: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {hint!r} for {key}")  # a bug, not user input


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise FragileError(f"{key} must be one of {', '.join(options)}, got '{value}'{hint}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise FragileError(f"{key} must be > 0, got {value}")


def _in_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value < high:
        raise FragileError(f"{key} must be in [{low}, {high}), got {value}")


def _fraction(key: str, value: float) -> None:
    if not 0 < value < 1:
        raise FragileError(f"{key} must be strictly between 0 and 1, got {value}")


def _epsilon(key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise FragileError(
            f"{key} must be in [0, 1] (pixel units of images scaled to [0, 1]), got {value}"
        )


def _epsilon_grid(key: str, values: tuple[float, ...]) -> None:
    for i, eps in enumerate(values):
        _epsilon(f"{key}[{i}]", eps)
    if list(values) != sorted(set(values)):
        raise FragileError(f"{key} must be strictly increasing, got {list(values)}")
