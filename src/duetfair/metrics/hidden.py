"""Intra-group hidden failures: the tail of the per-case metric inside each group.

A group mean can look fine while a subset of its cases fails (a hidden hard subtype). These
numbers expose it: per group, CVaR_a (mean of the worst ``ceil(a * n)`` cases, a = 0.1 by
default), the 10th percentile, the within-group standard deviation and the failure rate (share of
cases below a threshold, Dice < 0.5 by default). "Worst" follows the metric's direction: lowest for
Dice / IoU / NSD, highest for distances (HD95, NormHD).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from duetfair.errors import require

LOWER_IS_BETTER = frozenset({"hd95", "hd", "normhd", "assd", "masd", "loss"})
"""Metric names whose worst cases are the largest values."""


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``: False for distances and losses (by name), True otherwise."""
    return metric.lower() not in LOWER_IS_BETTER


def cvar(values: np.ndarray, alpha: float = 0.1, *, higher_better: bool = True) -> float:
    """CVaR_alpha: mean of the worst ``ceil(alpha * n)`` of ``values`` [n] (NaN ignored).

    ``alpha = 1`` gives the mean. Returns NaN for an empty input.
    """
    require(0.0 < alpha <= 1.0, f"cvar: alpha={alpha!r}; expected a fraction in (0, 1]")
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    k = max(1, math.ceil(alpha * v.size - 1e-9))
    if higher_better:
        worst = np.partition(v, k - 1)[:k]
    else:
        worst = -np.partition(-v, k - 1)[:k]
    return float(worst.mean())


def tail_stats(
    values: np.ndarray,
    *,
    alpha: float = 0.1,
    failure_threshold: float | None = 0.5,
    higher_better: bool = True,
) -> dict[str, float]:
    """Tail statistics of one group's per-case values [n] (NaN ignored).

    Returns a dict with ``n``, ``mean``, ``std`` (population), ``cvar`` (CVaR_alpha), ``p10`` (10th
    percentile for higher-is-better metrics, 90th otherwise: the worst decile boundary) and
    ``failure_rate`` (share below ``failure_threshold``, or above it for lower-is-better metrics;
    NaN when the threshold is None).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "cvar": nan, "p10": nan, "failure_rate": nan}
    q = 10.0 if higher_better else 90.0
    if failure_threshold is None:
        failure = float("nan")
    elif higher_better:
        failure = float(np.mean(v < failure_threshold))
    else:
        failure = float(np.mean(v > failure_threshold))
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "cvar": cvar(v, alpha, higher_better=higher_better),
        "p10": float(np.percentile(v, q)),
        "failure_rate": failure,
    }


def hidden_failure_table(
    df: pd.DataFrame,
    metric: str,
    group: str,
    *,
    alpha: float = 0.1,
    failure_threshold: float | None = 0.5,
    higher_better: bool | None = None,
) -> pd.DataFrame:
    """Per-group tail statistics of ``df[metric]`` grouped by ``df[group]``.

    Args:
        df: per-case table (one row per case).
        metric: numeric column (e.g. ``"dice"``); NaN rows are ignored.
        group: column of group labels; NaN labels (unknown attribute) are in no group.
        alpha: CVaR fraction (0.1 = worst 10 %).
        failure_threshold: failure cut-off (Dice < 0.5 by default); None disables the rate.
        higher_better: metric direction; inferred from the name when None.

    Returns:
        DataFrame indexed by group label with columns ``n, mean, std, cvar, p10, failure_rate``,
        in the order of first appearance of the categories (sorted labels for plain columns).
    """
    require(metric in df.columns, f"hidden: column '{metric}' not in the table")
    require(group in df.columns, f"hidden: column '{group}' not in the table")
    hb = higher_is_better(metric) if higher_better is None else higher_better
    rows = {}
    for label, part in df.groupby(group, sort=True, observed=True, dropna=True):
        rows[label] = tail_stats(part[metric].to_numpy(dtype=np.float64), alpha=alpha, failure_threshold=failure_threshold, higher_better=hb)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "mean", "std", "cvar", "p10", "failure_rate"])


def worst_group_cvar(table: pd.DataFrame, *, higher_better: bool = True) -> tuple[str, float]:
    """Group with the worst CVaR in a :func:`hidden_failure_table` -> ``(label, cvar)``."""
    require(len(table) > 0, "hidden: no group to compare")
    col = table["cvar"]
    label = col.idxmin() if higher_better else col.idxmax()
    return str(label), float(col[label])
