"""Small hand-made stage results (no training), built through the same result types and
builders as the stages: the files `write_results` writes are read by the real readers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fragile.claims_summary import READINGS
from fragile.comparison import Comparison, SweepResult
from fragile.layout import archive_file, checkpoint_file, result_file
from fragile.npz import write_npz
from fragile.params import params_from_dict
from fragile.results import (
    AttackResult,
    EvaluateResult,
    HardenResult,
    Headline,
    NoiseTrialRow,
    RankResult,
    RobustnessRecord,
)
from fragile.summary import summarize

KERNELS = 12
EPSILONS = [0.0, 0.01, 0.1, 0.3]
PGD_EPSILONS = [0.1]
EXAMPLES = 200


def sweep(epsilons: Sequence[float], clean: int, correct: Sequence[int], targeted: Sequence[int],
          targeted_relative: Sequence[int] | None = None, examples: int = EXAMPLES) -> SweepResult:
    """Recorded outcomes: the first `clean` examples right when clean, the first correct[i]
    right at ε index i, the first targeted[i] attacking S (relative: half as many by default),
    on every absolute reading as `targeted` and every relative one as `targeted_relative`."""
    relative = targeted_relative if targeted_relative is not None else [t // 2 for t in targeted]
    result = SweepResult(list(epsilons))
    result.record_clean([j < clean for j in range(examples)])
    for i in range(len(epsilons)):
        result.record(i, "correct", [j < correct[i] for j in range(examples)])
        result.record(i, "targeted", [j < targeted[i] for j in range(examples)])
        result.record(i, "targeted_relative", [j < relative[i] for j in range(examples)])
        for reading in READINGS:
            count = relative[i] if reading.endswith("relative") else targeted[i]
            result.record_reading(i, reading, [j < count for j in range(examples)])
    return result


def _curve(clean: int, drop: int, targeted: int) -> SweepResult:
    return sweep(EPSILONS, clean, [max(clean - drop * i, 0) for i in range(len(EPSILONS))],
                 [0] + [min(targeted + 5 * i, EXAMPLES) for i in range(1, len(EPSILONS))])


def comparison(epoch: int) -> Comparison:
    shift = 10 * (epoch % 4)
    return Comparison(
        original=_curve(140 + shift, 30, 150), hardened=_curve(150 + shift, 25, 120),
        transfer=_curve(150 + shift, 20, 110),
        pgd_original=sweep(PGD_EPSILONS, 140 + shift, [60], [160]),
        pgd_hardened=sweep(PGD_EPSILONS, 150 + shift, [70], [130]),
    )


def rank(epoch: int, layer: str = "conv1") -> RankResult:
    accuracy = [0.6 + 0.02 * epoch + 0.01 * ((k * 7 + epoch) % 5) - (0.08 if k % 4 == 0 else 0.0)
                for k in range(KERNELS)]
    mean = sum(accuracy) / len(accuracy)
    fragile = [k for k, a in enumerate(accuracy) if a < mean]
    null = [k for k in range(KERNELS) if k not in fragile]
    return RankResult(checkpoint=f"models/original/{checkpoint_file(epoch)}", epoch=epoch, layer=layer, split="val",
                      drop="activation", method="ablation", examples=100, baseline_accuracy=0.7, mean_accuracy=mean,
                      num_fragile=len(fragile), num_null=len(null), fragile=fragile, null=null, accuracy=accuracy,
                      device="cpu")


def attack(epoch: int) -> AttackResult:
    c = comparison(epoch)
    return AttackResult.from_sweeps(checkpoint=f"models/original/{checkpoint_file(epoch)}", epoch=epoch,
                                    layer="conv1", fgsm=c.original, pgd=c.pgd_original, distance="absolute",
                                    pgd_steps=3, pgd_step_size=0.0, device="cpu", batch_size=100,
                                    fragile=rank(epoch).fragile, null=rank(epoch).null)


def archive(epoch: int, examples: int = EXAMPLES) -> dict[str, np.ndarray]:
    """attack_target's distance archive of `rank(epoch)`: seeded distances in which S moves more
    on the absolute readings (planted) and like the rest on the relative ones, zero at ε = 0."""
    rng = np.random.default_rng(epoch)
    fragile = rank(epoch).fragile
    arrays: dict[str, np.ndarray] = {}
    for i, eps in enumerate(EPSILONS):
        for reading in READINGS:
            d = eps * rng.gamma(2.0, 1.0, size=(examples, KERNELS))
            if reading.endswith("absolute"):
                d[:, fragile] *= 1.5
            arrays[f"{reading}.eps{i}"] = d.astype(np.float32)
    norms = 1.0 + np.arange(KERNELS, dtype=np.float64) / KERNELS
    return {**arrays, "epsilons": np.asarray(EPSILONS), "weight_norm": norms, "bn_weight_norm": norms[::-1].copy()}


def harden(epoch: int, grid: bool = False) -> HardenResult:
    values = [3.0 / (i + 1) for i in range(5)]
    rows = [NoiseTrialRow(sigma=s, fgsm_accuracy_val=0.4 + s, tau=10 * s, rank_kept=4, alpha=1.1)
            for s in (0.01, 0.02)] if grid else []
    return HardenResult(checkpoint=f"models/original/{checkpoint_file(epoch)}", epoch=epoch, layer="conv1", m=5, n=49,
                        beta=5 / 49, lam=1.6, tau=0.5, sigma=0.02 if grid else 0.015, threshold="truncate",
                        norm="spectral", singular_values=values,
                        filtered_singular_values=[v if v >= 0.5 else 0.0 for v in values], above_tau=4, rank_kept=4,
                        alpha=1.25, noise_source="search" if grid else "harden.noise", noise_grid=rows,
                        search_epsilon=0.1 if grid else None, device="cpu")


def robustness(examples: int = EXAMPLES, pgd_steps: int = 10, **autoattack: Any) -> RobustnessRecord:
    """evaluate's record: labels cycling over 10 classes, PGD settings, MNIST's std; `autoattack`
    may give autoattack_original / autoattack_hardened (AutoAttackResult.to_dict())."""
    return RobustnessRecord(labels=[j % 10 for j in range(examples)], pgd_steps=pgd_steps, pgd_step_size=0.0,
                            pgd_restarts=1, input_std=[0.3081], **autoattack)


def evaluate(epoch: int) -> EvaluateResult:
    return EvaluateResult.from_comparison(checkpoint=f"models/original/{checkpoint_file(epoch)}", epoch=epoch,
                                          layer="conv1", comparison=comparison(epoch), device="cpu",
                                          robustness=robustness())


def params(epochs: tuple[int, ...], epsilon: float = 0.1, bootstrap: int = 0) -> dict[str, Any]:
    return {"epsilon": epsilon, "train": {"epochs": max(epochs), "checkpoints": list(epochs)},
            "analysis": {"bootstrap": bootstrap}}


def headline_metrics(epochs: tuple[int, ...], epsilon: float = 0.1) -> Headline:
    """summarize's headline of these fakes (no intervals)."""
    headline, _ = summarize(params_from_dict(params(epochs, epsilon)), {e: rank(e) for e in epochs},
                            {e: harden(e) for e in epochs}, {e: evaluate(e) for e in epochs},
                            off_grid=_no_attack, say=lambda _line: None, archives={e: archive(e) for e in epochs})
    return headline


def _no_attack(epoch: int, _rank: RankResult) -> Comparison:
    raise AssertionError(f"the fakes cover every ε they are asked about (epoch {epoch})")


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_results(root: Path, epochs: tuple[int, ...] = (1, 2), params_yaml: dict[str, Any] | None = None) -> Path:
    """results/, metrics/, dvclive/ and params.yaml under `root`, as after `dvc repro` up to summarize."""
    for e in epochs:
        name = result_file(e)
        rank(e).write(root / "results/rank" / name)
        attack(e).write(root / "results/attack" / name)
        write_npz(root / "results/attack" / archive_file(e), archive(e))
        harden(e).write(root / "results/harden" / name)
        evaluate(e).write(root / "results/evaluate" / name)
    headline_metrics(epochs).write(root / "metrics/headline.json")
    write_json(root / "dvclive/train/metrics.json",
               {"train": {"loss": 0.2, "accuracy": 0.91}, "val": {"loss": 0.3, "accuracy": 0.88}, "step": 1})
    (root / "params.yaml").write_text(yaml.safe_dump(params_yaml or params(epochs)))
    return root
