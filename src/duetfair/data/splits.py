"""Deterministic train/val/test splitting, stratified by group and grouped by patient.

Used when a dataset comes without a split. Units are patients (or lesions) when a grouping column
is given, otherwise single cases; no unit is ever in two splits. Units are stratified by their
group (the most common combination of stratification values among the unit's rows, missing values
forming their own stratum), so every group keeps about the same proportions in every split. The result depends only
on the set of units, the fractions and the seed, not on the row order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from duetfair.errors import require

if TYPE_CHECKING:
    from duetfair.data.groups import GroupSpec

SPLITS = ("train", "val", "test")
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def assign_splits(
    meta: pd.DataFrame,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    names: Sequence[str] = SPLITS,
    stratify: Sequence[str] = (),
    group_by: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """Assign every row of ``meta`` to a split.

    Args:
        meta: one row per case.
        fractions: split fractions (default 0.8/0.1/0.1, the MEDFAIR convention); normalised.
        names: split names, one per fraction (default train/val/test).
        stratify: columns whose value combination defines the strata (e.g. ``["race"]``).
        group_by: patient/lesion id column; all rows of one id go to the same split
            (default ``None``: each row is its own unit).
        seed: random seed (default 0).

    Returns:
        Series of split names aligned with ``meta.index``.

    Example:
        >>> meta = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(40)], "race": ["A", "B"] * 20})
        >>> meta["split"] = assign_splits(meta, stratify=["race"], group_by="patient_id", seed=0)
        >>> meta["split"].value_counts().sort_index().to_dict()
        {'test': 4, 'train': 32, 'val': 4}
        >>> bool((meta.groupby("patient_id")["split"].nunique() == 1).all())  # a patient stays in one split
        True
    """
    require(len(fractions) == len(names), f"assign_splits: {len(fractions)} fractions for {len(names)} names")
    require(
        all(f >= 0 for f in fractions) and sum(fractions) > 0,
        f"assign_splits: fractions must be non-negative with a positive sum, got {list(fractions)}",
    )
    for c in [*stratify, *([group_by] if group_by else [])]:
        require(c in meta.columns, f"split column '{c}' is missing; columns are {list(meta.columns)}")
    unit = meta[group_by].astype(str) if group_by else pd.Series(np.arange(len(meta)).astype(str), index=meta.index)
    if group_by:
        require(not meta[group_by].isna().any(), f"split column '{group_by}' has missing ids")
    strat = _strata(meta, stratify)
    units = _unit_strata(unit, strat)
    rng = np.random.default_rng(seed)
    order: list[str] = []
    for stratum in sorted(units["stratum"].unique()):
        ids = np.sort(units.loc[units["stratum"] == stratum, "unit"].to_numpy())
        order.extend(ids[rng.permutation(len(ids))].tolist())
    # Low-discrepancy (golden-ratio) positions: every stratum and the whole set get the
    # fractions up to about one unit, without per-stratum rounding pushing small strata to train.
    u = np.mod(rng.random() + np.arange(len(order)) * _GOLDEN, 1.0)
    edges = np.cumsum(np.asarray(fractions, dtype=np.float64) / float(sum(fractions)))
    which = np.minimum(np.searchsorted(edges, u, side="right"), len(names) - 1)
    assignment = {unit_id: names[k] for unit_id, k in zip(order, which)}
    return pd.Series([assignment[u] for u in unit], index=meta.index, name="split")


def _unit_strata(unit: pd.Series, strat: pd.Series) -> pd.DataFrame:
    """One stratum per unit: its most common stratum (ties: the smallest label)."""
    df = pd.DataFrame({"unit": unit.to_numpy(), "stratum": strat.to_numpy()})
    sizes = df.groupby(["unit", "stratum"]).size().rename("n").reset_index()
    sizes = sizes.assign(neg=-sizes["n"]).sort_values(["unit", "neg", "stratum"], kind="stable")
    return sizes.drop_duplicates("unit")[["unit", "stratum"]]


def _strata(meta: pd.DataFrame, stratify: Sequence[str]) -> pd.Series:
    """Stratum label per row: the stratification values joined (missing -> ``"<NA>"``)."""
    if not stratify:
        return pd.Series(["all"] * len(meta), index=meta.index)
    parts = [meta[c].map(lambda v: "<NA>" if pd.isna(v) else str(v)) for c in stratify]
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


def assign_group_splits(
    meta: pd.DataFrame,
    spec: "GroupSpec",
    *,
    attributes: Sequence[str] | None = None,
    extra: Sequence[str] = (),
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    group_by: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """:func:`assign_splits` stratified by *encoded* groups (age bins, not raw ages).

    Args:
        meta: one row per case with the spec's attribute columns.
        spec: the dataset's group spec.
        attributes: attributes to stratify by (default: the spec's first attribute).
        extra: further raw columns to stratify by (e.g. ``hidden_subtype``).
        fractions / group_by / seed: as in :func:`assign_splits`.
    """
    attrs = list(attributes) if attributes is not None else spec.attributes[:1]
    codes = spec.select(attrs).encode_frame(meta, require_columns=False) if attrs else np.zeros((len(meta), 0))
    tmp = meta.copy()
    cols = []
    for j, a in enumerate(attrs):
        tmp[f"__code_{a}"] = codes[:, j]
        cols.append(f"__code_{a}")
    return assign_splits(tmp, fractions=fractions, stratify=[*cols, *extra], group_by=group_by, seed=seed)
