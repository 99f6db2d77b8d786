"""Headline metrics at the top-level `epsilon`, one block per checkpoint (dvc metrics), and
the stability of the fragile set S across checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
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


def fragile_persistence(ranks: Mapping[int, Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    """(kernels fragile at every checkpoint, kernels fragile at some but not all): the red circles
    and crosses of the paper's Fig. 4."""
    sets = [set(rank["fragile"]) for rank in ranks.values()]
    if not sets:
        return [], []
    always = set.intersection(*sets)
    return sorted(always), sorted(set.union(*sets) - always)


def kernel_stability(ranks: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """How stable S is across training: `jaccard_<a>_<b>` = |S_a ∩ S_b| / |S_a ∪ S_b| for each
    pair of consecutive checkpoints a < b, and the kernels fragile at every checkpoint.

    With a single checkpoint there is no pair (no Jaccard keys) and every kernel of its S is
    "fragile at every checkpoint".
    """
    epochs = sorted(ranks)
    out: dict[str, Any] = {"checkpoints": epochs}
    for a, b in zip(epochs, epochs[1:]):
        s_a, s_b = set(ranks[a]["fragile"]), set(ranks[b]["fragile"])
        # The rank stage never writes an empty S, so the union is non-empty; two empty sets are equal.
        out[f"jaccard_{a}_{b}"] = len(s_a & s_b) / len(s_a | s_b) if s_a | s_b else 1.0
    always, _ = fragile_persistence({e: ranks[e] for e in epochs})
    out["always_fragile"] = always
    out["always_fragile_count"] = len(always)
    return out
