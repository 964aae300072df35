"""Divergent subgroup discovery with DivExplorer.

A subgroup is a conjunction of attribute values (an itemset such as ``{race: Black, age: >=60}``).
Its divergence is ``mean(outcome | subgroup) - mean(outcome)``; the t statistic is Welch's
``|div| / sqrt(v_S / n_S + v_D / n_D)`` with population variances (DivExplorer, FairMedSeg).
Mining is frequent-pattern growth over all itemsets with support >= ``min_support``
(``divexplorer.DivergenceExplorer.get_pattern_divergence``), then optional redundancy pruning
(``DivergencePatternProcessor.redundancy_pruning``: drop an itemset when removing one of its items
changes the divergence by at most ``redundancy_threshold``).

Conventions: rows whose outcome is NaN/inf are dropped first (they would bias every mean);
attributes are discretised with :func:`duetfair.metrics.frame.group_labels` (unknown values belong
to no item of that attribute; continuous columns are binned with ``bins``).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.errors import require
from duetfair.metrics.frame import group_labels, metric_values

COLUMNS = ["itemset", "support", "n", "mean", "divergence", "t"]
"""Columns of :func:`find_divergent_subgroups` (``length`` is added as well)."""


def discretise(df: pd.DataFrame, attributes: Sequence[str], bins: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Attribute columns as labels (object dtype, NaN = unknown), keyed ``a0, a1, ...``.

    Positional keys keep DivExplorer's ``"name=value"`` items unambiguous whatever the attribute
    names contain.
    """
    bins = bins or {}
    out = {}
    for i, attr in enumerate(attributes):
        labels = group_labels(df, attr, bins=bins.get(attr))
        out[f"a{i}"] = labels.astype(object).where(labels.notna(), None).to_numpy()
    return pd.DataFrame(out, index=df.index)


def _parse_itemset(items: frozenset, attributes: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, _, value = str(item).partition("=")
        parsed[attributes[int(key[1:])]] = value
    return {a: parsed[a] for a in attributes if a in parsed}


def find_divergent_subgroups(
    df: pd.DataFrame,
    outcome: str,
    attributes: Sequence[str],
    *,
    min_support: float = 0.05,
    max_length: int | None = 3,
    bins: Mapping[str, Sequence[float]] | None = None,
    redundancy_threshold: float | None = None,
    min_n: int = 1,
) -> pd.DataFrame:
    """Subgroups whose mean ``outcome`` diverges from the overall mean, worst first.

    Args:
        df: per-case table (one row per case).
        outcome: numeric per-case column (e.g. ``"dice"``).
        attributes: attribute columns to combine (continuous ones need ``bins``).
        min_support: minimum fraction of (non-NaN) cases in a subgroup (FairMedSeg: 0.001).
        max_length: longest conjunction kept (None: no limit).
        bins: edges per continuous attribute, e.g. ``{"age": [20, 40, 60, 80]}``.
        redundancy_threshold: DivExplorer redundancy pruning threshold (None: no pruning).
        min_n: minimum number of cases in a subgroup.

    Returns:
        DataFrame with columns ``itemset`` (dict attribute -> value label), ``support`` (fraction),
        ``n``, ``mean``, ``divergence`` (subgroup mean - overall mean), ``t`` (Welch) and ``length``,
        sorted by divergence ascending (for Dice: the worst subgroup first); the empty itemset
        (the whole table) is not included.
    """
    from divexplorer import DivergenceExplorer
    from divexplorer.pattern_processor import DivergencePatternProcessor

    require(0.0 < min_support <= 1.0, f"min_support={min_support!r}; expected a fraction in (0, 1]")
    require(max_length is None or max_length >= 1, f"max_length={max_length!r}; expected >= 1 or None")
    require(len(attributes) >= 1, "discovery: expected at least one attribute")
    values = metric_values(df, outcome)
    keep = np.isfinite(values)
    require(keep.sum() >= 2, f"discovery: column '{outcome}' has fewer than 2 finite values")
    data = discretise(df.loc[keep], attributes, bins)
    data["outcome"] = values[keep]
    data = data.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = DivergenceExplorer(data).get_pattern_divergence(
            min_support=min_support, quantitative_outcomes=["outcome"], attributes=[f"a{i}" for i in range(len(attributes))]
        )
        if redundancy_threshold is not None:
            raw = DivergencePatternProcessor(raw, "outcome").redundancy_pruning(redundancy_threshold)
    raw = raw[raw["length"] > 0]
    if max_length is not None:
        raw = raw[raw["length"] <= max_length]
    out = pd.DataFrame(
        {
            "itemset": [_parse_itemset(s, attributes) for s in raw["itemset"]],
            "support": raw["support"].to_numpy(dtype=np.float64),
            "n": raw["support_count"].to_numpy(dtype=np.int64),
            "mean": raw["outcome"].to_numpy(dtype=np.float64),
            "divergence": raw["outcome_div"].to_numpy(dtype=np.float64),
            "t": raw["outcome_t"].to_numpy(dtype=np.float64),
            "length": raw["length"].to_numpy(dtype=np.int64),
        }
    )
    out = out[out["n"] >= min_n]
    return out.sort_values(["divergence", "support"], ascending=[True, False], kind="stable").reset_index(drop=True)


def itemset_label(itemset: Mapping[str, Any]) -> str:
    """Readable label of an itemset: ``{"race": "Black", "age": ">=60"}`` -> ``race=Black, age=>=60``."""
    return ", ".join(f"{k}={v}" for k, v in itemset.items())


def subgroup_members(df: pd.DataFrame, itemset: Mapping[str, Any], bins: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Boolean mask [n] of the rows of ``df`` that belong to ``itemset`` (labels as returned above)."""
    mask = np.ones(len(df), dtype=bool)
    for attr, value in itemset.items():
        labels = group_labels(df, attr, bins=(bins or {}).get(attr))
        mask &= (labels.astype(object) == str(value)).to_numpy()
    return mask
