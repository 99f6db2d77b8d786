"""Headline metrics at the top-level `epsilon`, one block per checkpoint (dvc metrics)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fragile.comparison import Comparison


def headline(comparison: Comparison, epsilon: float, sets: dict[str, Any], harden: dict[str, Any]) -> dict[str, Any]:
    """Readable names for `dvc metrics diff`: clean and FGSM accuracy, targeting, |S|, τ, α."""
    at = comparison.original.at(epsilon)
    original, hardened, transfer = comparison.original, comparison.hardened, comparison.transfer
    fragile, null = len(sets["fragile"]), len(sets["null"])
    return {
        "examples": original.examples,
        "original": {
            "clean_accuracy": original.clean_accuracy,
            "fgsm_accuracy": original.accuracy(at),
            "targeting_pct": original.targeting_pct(at),
        },
        "hardened": {
            "clean_accuracy": hardened.clean_accuracy,
            "fgsm_accuracy_whitebox": hardened.accuracy(at),
            "fgsm_accuracy_transfer": transfer.accuracy(at),
            "targeting_pct": hardened.targeting_pct(at),
            "targeting_pct_transfer": transfer.targeting_pct(at),
        },
        "kernels": {"fragile": fragile, "null": null, "fragile_fraction": fragile / (fragile + null)},
        "harden": {
            "sigma": harden["sigma"],
            "tau": harden["tau"],
            "alpha": harden["alpha"],
            "rank_kept": harden["rank_kept"],
        },
    }


def accuracy_series(comparisons: dict[int, Comparison]) -> pd.DataFrame:
    """Long format (epsilon, accuracy, series) for the `series` plot template."""
    rows = []
    for epoch, c in comparisons.items():
        for label, sweep in (("original", c.original), ("hardened white-box", c.hardened),
                             ("hardened transfer", c.transfer)):
            rows += [{"epsilon": eps, "accuracy": sweep.accuracy(i), "series": f"epoch {epoch} {label}"}
                     for i, eps in enumerate(sweep.epsilons)]
    return pd.DataFrame(rows, columns=["epsilon", "accuracy", "series"])


def targeting_series(comparisons: dict[int, Comparison]) -> pd.DataFrame:
    rows = []
    for epoch, c in comparisons.items():
        for label, sweep in (("original", c.original), ("hardened", c.hardened)):
            rows += [{"epsilon": eps, "targeting_pct": sweep.targeting_pct(i), "series": f"epoch {epoch} {label}"}
                     for i, eps in enumerate(sweep.epsilons)]
    return pd.DataFrame(rows, columns=["epsilon", "targeting_pct", "series"])


def kernel_drop_series(sets: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """Measured accuracy per dropped kernel; a checkpoint ranked by rank.method: taylor alone
    has no measured accuracy (`accuracy` is null) and contributes no rows."""
    rows = []
    for epoch, entry in sets.items():
        if entry.get("accuracy") is None:
            continue
        rows += [{"kernel": k, "accuracy": acc, "series": f"epoch {epoch}"} for k, acc in enumerate(entry["accuracy"])]
    return pd.DataFrame(rows, columns=["kernel", "accuracy", "series"])
