"""Small hand-made stage results (no training), shaped like the pipeline's JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fragile.comparison import comparison_from_counts
from fragile.summary import headline, kernel_stability

KERNELS = 12
EPSILONS = [0.0, 0.01, 0.1, 0.3]
EXAMPLES = 200


def rank(epoch: int) -> dict[str, Any]:
    accuracy = [0.6 + 0.02 * epoch + 0.01 * ((k * 7 + epoch) % 5) - (0.08 if k % 4 == 0 else 0.0)
                for k in range(KERNELS)]
    mean = sum(accuracy) / len(accuracy)
    fragile = [k for k, a in enumerate(accuracy) if a < mean]
    return {"epoch": epoch, "layer": "conv1", "split": "val", "drop": "activation", "examples": 100,
            "baseline_accuracy": 0.7, "mean_accuracy": mean, "num_fragile": len(fragile),
            "num_null": KERNELS - len(fragile), "fragile": fragile,
            "null": [k for k in range(KERNELS) if k not in fragile], "accuracy": accuracy}


def counts(epoch: int) -> dict[str, Any]:
    def sweep(clean: int, drop: int, targeted: int) -> dict[str, Any]:
        return {"clean_correct": clean, "correct": [max(clean - drop * i, 0) for i in range(len(EPSILONS))],
                "targeted": [0] + [min(targeted + 5 * i, EXAMPLES) for i in range(1, len(EPSILONS))]}

    return {"epoch": epoch, "examples": EXAMPLES, "epsilons": EPSILONS,
            "original": sweep(140 + 10 * (epoch % 4), 30, 150), "hardened": sweep(150 + 10 * (epoch % 4), 25, 120),
            "transfer": sweep(150 + 10 * (epoch % 4), 20, 110)}


def attack(epoch: int) -> dict[str, Any]:
    original = comparison_from_counts(counts(epoch)).original
    return {"epoch": epoch, "layer": "conv1", "examples": EXAMPLES, "clean_accuracy": original.clean_accuracy,
            "epsilons": EPSILONS, "accuracy": [original.accuracy(i) for i in range(len(EPSILONS))],
            "targeting_pct": [original.targeting_pct(i) for i in range(len(EPSILONS))]}


def harden(epoch: int, grid: bool = False) -> dict[str, Any]:
    values = [3.0 / (i + 1) for i in range(5)]
    rows = [{"sigma": s, "fgsm_accuracy_val": 0.4 + s, "tau": 10 * s, "rank_kept": 4, "alpha": 1.1}
            for s in (0.01, 0.02)] if grid else []
    return {"epoch": epoch, "layer": "conv1", "m": 5, "n": 49, "beta": 5 / 49, "lam": 1.6, "tau": 0.5,
            "sigma": 0.02 if grid else 0.015, "threshold": "truncate", "norm": "spectral", "singular_values": values,
            "filtered_singular_values": [v if v >= 0.5 else 0.0 for v in values], "above_tau": 4, "rank_kept": 4,
            "alpha": 1.25, "noise_source": "search" if grid else "harden.noise", "noise_grid": rows,
            "search_epsilon": 0.1 if grid else None}


def headline_metrics(epochs: tuple[int, ...], epsilon: float = 0.1) -> dict[str, Any]:
    return {"epsilon": epsilon, **{f"epoch_{e}": headline(comparison_from_counts(counts(e)), epsilon, rank(e),
                                                          harden(e)) for e in epochs},
            "layer": "conv1", "stability": kernel_stability({e: rank(e) for e in epochs})}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_results(root: Path, epochs: tuple[int, ...] = (1, 2), params: dict[str, Any] | None = None) -> Path:
    """results/, metrics/, dvclive/ and params.yaml under `root`, as after `dvc repro` up to summarize."""
    for e in epochs:
        write_json(root / f"results/rank/epoch_{e}.json", rank(e))
        write_json(root / f"results/attack/epoch_{e}.json", attack(e))
        write_json(root / f"results/harden/epoch_{e}.json", harden(e))
        write_json(root / f"results/evaluate/epoch_{e}.json", counts(e))
    write_json(root / "metrics/headline.json", headline_metrics(epochs))
    write_json(root / "dvclive/train/metrics.json",
               {"train": {"loss": 0.2, "accuracy": 0.91}, "val": {"loss": 0.3, "accuracy": 0.88}, "step": 1})
    (root / "params.yaml").write_text(yaml.safe_dump(
        params or {"train": {"epochs": max(epochs), "checkpoints": list(epochs)}}))
    return root
