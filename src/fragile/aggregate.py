"""Mean ± std over seeds of finished DVC experiments (`dvc exp show --json`), torch-free.

Each run (an experiment, optionally the baseline commits) becomes one row of flattened
params (`train.epochs`, `analysis.layer`, ...) and headline metrics (`epoch_2.original.fgsm_accuracy`,
...). Runs are grouped by every param except `seed`, so `dvc exp run --queue -S seed=0,1,2`
gives one group of three; running the same seeds at another `epsilon` gives a second group.
std is the sample standard deviation (ddof = 1): undefined (empty) for a group of one run.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from fragile.errors import FragileError
from fragile.results import FORMAT_KEY

PARAMS_FILE = "params.yaml"
METRICS_FILE = "metrics/headline.json"
SEED = "seed"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become tuples (hashable group keys)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _file_data(data: Mapping[str, Any], kind: str, path: str) -> dict[str, Any] | None:
    entry = (data.get(kind) or {}).get(path)
    if not entry or entry.get("error") or not isinstance(entry.get("data"), Mapping):
        return None
    return entry["data"]


def _run(rev: Mapping[str, Any], label: str, metrics_file: str) -> dict[str, Any] | None:
    """One row, or None when the run has no params or metrics to show."""
    data = rev.get("data") or {}
    params, metrics = _file_data(data, "params", PARAMS_FILE), _file_data(data, "metrics", metrics_file)
    if rev.get("error") or params is None or metrics is None:
        return None
    return {"run": label, "params": flatten(params), "metrics": flatten(metrics)}


def finished_runs(show: Any, metrics_file: str = METRICS_FILE, baseline: bool = False) -> list[dict[str, Any]]:
    """The successful experiments in `dvc exp show --json` output (queued, running and failed ones
    are left out), plus the baseline commits when `baseline`; the workspace is never included
    (it repeats the baseline or holds an unfinished run)."""
    if not isinstance(show, list):
        raise FragileError("expected the JSON list that `dvc exp show --json` prints")
    runs = []
    for commit in show:
        if not isinstance(commit, Mapping) or commit.get("rev") == "workspace":
            continue
        if baseline:
            runs.append(_run(commit, str(commit.get("name") or commit.get("rev", ""))[:12], metrics_file))
        for experiment in commit.get("experiments") or []:
            executor = experiment.get("executor") or {}
            # No executor: a finished `dvc exp run` outside the queue; otherwise it must have succeeded.
            if executor and executor.get("state") != "success":
                continue
            for rev in experiment.get("revs") or []:
                runs.append(_run(rev, str(experiment.get("name") or rev.get("rev", ""))[:12], metrics_file))
    return [run for run in runs if run is not None]


def aggregate(runs: list[dict[str, Any]], match: Sequence[str] = ()) -> pd.DataFrame:
    """Long table: the params that differ between groups, then group, metric, n, mean, std, seeds
    and each seed's value (`per_seed`, in the order of `seeds`: a verdict code per seed shows
    whether a conclusion holds for every seed, which a mean hides).

    Metrics that are not numbers (lists, strings) and metrics that repeat a param (the headline's
    `epsilon`) are left out; with `match` (shell patterns such as `claims.*.code`), so is every
    metric that matches none of them.
    """
    if not runs:
        raise FragileError("no finished experiments to aggregate; run `dvc exp run --queue -S seed=0,1,2` "
                           "then `dvc queue start`, and wait for them to finish (`dvc queue status`)")
    params = pd.DataFrame([{k: v for k, v in r["params"].items() if k != SEED} for r in runs])
    keys = [c for c in params.columns if params[c].astype(str).nunique(dropna=False) > 1]
    group_of = pd.Series(["all runs"] * len(runs)) if not keys else params[keys].astype(str).apply(
        lambda row: ", ".join(f"{k}={row[k]}" for k in keys), axis=1)
    rows = []
    for label in dict.fromkeys(group_of):  # first-seen order
        members = sorted((i for i, g in enumerate(group_of) if g == label),
                         key=lambda i: str(runs[i]["params"].get(SEED, "")).zfill(12))
        metrics = pd.DataFrame([_numeric(runs[i]["metrics"], runs[i]["params"]) for i in members])
        seeds = ", ".join(str(runs[i]["params"].get(SEED, "?")) for i in members)
        for metric in metrics.columns:
            if match and not any(fnmatch.fnmatchcase(metric, pattern) for pattern in match):
                continue
            values = metrics[metric].dropna()
            per_seed = ", ".join("–" if pd.isna(v) else f"{v:.4g}" for v in metrics[metric])
            rows.append({**{k: params.loc[members[0], k] for k in keys}, "group": label, "metric": metric,
                         "n": len(values), "mean": values.mean(), "std": values.std(ddof=1), "seeds": seeds,
                         "per_seed": per_seed})
    if not rows:
        raise FragileError(f"no metric matches {', '.join(match)}; see the names with `dvc metrics show`")
    return pd.DataFrame(rows, columns=[*keys, "group", "metric", "n", "mean", "std", "seeds", "per_seed"])


def _numeric(metrics: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among the metrics, without the params and the file's format version."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in params and k != FORMAT_KEY}


def markdown(table: pd.DataFrame) -> str:
    """One markdown table per group: metric | mean ± std | per seed | n."""
    from fragile.markdown import markdown_table

    parts = []
    for label, group in table.groupby("group", sort=False):
        rows = [[row.metric, _mean_std(row.mean, row.std), row.per_seed, row.n] for row in group.itertuples()]
        parts.append(f"### {label} (seeds {group['seeds'].iloc[0]})\n\n"
                     + markdown_table(["metric", "mean ± std", "per seed", "n"], rows))
    return "\n\n".join(parts) + "\n"


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4g} ± {std:.2g}" if pd.notna(std) else f"{mean:.4g} (one run)"


def parse_show(text: str, source: str) -> Any:
    """The parsed output of `dvc exp show --json`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise FragileError(f"{source} is not JSON; pass the output of `dvc exp show --json`") from None
