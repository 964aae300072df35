"""Group gaps controlled for structure size and other confounders.

Dice punishes small structures: a group whose lesions are smaller looks worse even when the model
is not. For every audited attribute :func:`adjusted_gaps` compares the worst and the best group
(by raw mean) three ways:

* ``raw``: the difference of their means (best minus worst for a metric where higher is better,
  worst minus best otherwise; positive = the worst group is worse);
* ``size``: the same difference after stratifying by structure size (tertiles of ``desc_size`` over
  all cases; with several structures per case, of their total size): the size-standardised
  difference ``sum_s w_s (mean_best,s - mean_worst,s) / sum_s w_s`` over the strata that hold cases
  of both groups, ``w_s`` the number of cases of stratum ``s`` (a Mantel-Haenszel-type weighting);
* ``adjusted``: stratified by size and by every ``adjust`` column (e.g. the site) jointly.

Each comes with a percentile bootstrap interval (cases resampled with replacement, the two groups
fixed) and ``explained`` = ``1 - stratified / raw``, the share of the raw gap that the strata
account for. An attribute that is itself an ``adjust`` column is only stratified by size.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.data.groups import GroupSpec, split_intersection
from duetfair.metrics.descriptors import PREFIX, descriptor_columns

SIZE = PREFIX + "size"
"""The structure-size descriptor the gaps are stratified by."""

EXPLAINED = 0.5
"""A gap is "mostly explained" by size when stratifying removes at least this share of it."""


def case_size(frame: pd.DataFrame) -> np.ndarray | None:
    """Structure size per case (``desc_size``, or the sum of ``desc_size[<class>]``); None without it."""
    cols = [c for c in descriptor_columns(frame) if c == SIZE or c.startswith(SIZE + "[")]
    if not cols:
        return None
    values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    total = np.nansum(values, axis=1)
    total[~np.isfinite(values).any(axis=1)] = np.nan
    return total


def _tertile_codes(values: np.ndarray) -> np.ndarray:
    """Tertile bin 0/1/2 of every finite value, -1 for NaN."""
    ok = np.isfinite(values)
    out = np.full(values.shape, -1, dtype=np.int64)
    if ok.sum() >= 3:
        edges = np.unique(np.quantile(values[ok], [1 / 3, 2 / 3]))
        out[ok] = np.searchsorted(edges, values[ok], side="left")
    return out


def strata_codes(
    frame: pd.DataFrame, size_codes: np.ndarray | None, columns: Sequence[str], spec: GroupSpec
) -> np.ndarray:
    """One stratum code per case: size tertile (``size_codes``, -1 unknown) x the groups of
    ``columns`` (-1: unknown in any part)."""
    codes = np.zeros(len(frame), dtype=np.int64)
    parts = [size_codes] if size_codes is not None else []
    parts += [np.asarray(spec.labels(frame, c).cat.codes, dtype=np.int64) for c in columns]
    for part in parts:
        codes = np.where((codes < 0) | (part < 0), -1, codes * (int(part.max(initial=0)) + 1) + part)
    return codes


def _stratified_gap(
    y: np.ndarray, group: np.ndarray, strata: np.ndarray, n_strata: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Standardised difference group 0 minus group 1 over the common strata -> ``[B]``.

    ``group`` in {0, 1}, ``strata`` in [0, n_strata), ``weights [B, n]`` case multiplicities of B
    resamples (None: one pass with weight 1).
    """
    w = np.ones((1, y.size)) if weights is None else weights
    cell = group * n_strata + strata
    counts = np.stack([np.bincount(cell, weights=row, minlength=2 * n_strata) for row in w])
    sums = np.stack([np.bincount(cell, weights=row * y, minlength=2 * n_strata) for row in w])
    c0, c1 = counts[:, :n_strata], counts[:, n_strata:]
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = sums[:, :n_strata] / c0 - sums[:, n_strata:] / c1
        both = (c0 > 0) & (c1 > 0)
        total = np.where(both, c0 + c1, 0.0)
        return np.where(total.sum(1) > 0, (np.where(both, diff, 0.0) * total).sum(1) / total.sum(1), np.nan)


def _gap_with_ci(
    y: np.ndarray, group: np.ndarray, strata: np.ndarray, boot: np.ndarray | None, level: float
) -> tuple[float | None, list[float | None]]:
    keep = strata >= 0
    n_strata = int(strata[keep].max(initial=0)) + 1
    point = _stratified_gap(y[keep], group[keep], strata[keep], n_strata)[0]
    if boot is None:
        return (float(point) if np.isfinite(point) else None), [None, None]
    draws = _stratified_gap(y[keep], group[keep], strata[keep], n_strata, boot[:, keep])
    draws = draws[np.isfinite(draws)]
    alpha = (1 - level) / 2
    ci: list[float | None] = (
        [float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))] if draws.size else [None, None]
    )
    return (float(point) if np.isfinite(point) else None), ci


def _explained(raw: float | None, stratified: float | None) -> float | None:
    if raw is None or stratified is None or raw <= 0:
        return None
    return float(1.0 - stratified / raw)


def adjusted_gaps(
    frame: pd.DataFrame,
    metric: str,
    attributes: Sequence[str],
    spec: GroupSpec,
    *,
    adjust: Sequence[str] = (),
    higher_better: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Raw, size-stratified and fully adjusted gap of every attribute (module docstring).

    Args:
        frame: case-level table (metric, raw attribute columns, descriptors, ``adjust`` columns).
        metric: per-case metric column.
        attributes: audited attributes (``race``, ``race+sex``).
        spec: group spec of the attributes and of the ``adjust`` columns.
        adjust: further columns to stratify by (confounders such as the site).
        higher_better: direction of the metric.
        n_boot, seed, level: bootstrap resamples (0: no intervals), seed and interval level.

    Returns:
        ``{attribute: {"worst_group", "best_group", "raw_gap", "raw_ci", "size_gap", "size_ci",
        "size_explained", "adjusted_by", "adjusted_gap", "adjusted_ci", "adjusted_explained"}}``
        (size entries None without ``desc_size``; adjusted entries None without ``adjust``).
    """
    y_all = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=np.float64)
    size = case_size(frame)
    size = None if size is None else _tertile_codes(size)
    sign = 1.0 if higher_better else -1.0
    out: dict[str, Any] = {}
    for attr in attributes:
        labels = spec.labels(frame, attr)
        entry = _attribute_gaps(frame, y_all, labels, size, attr, adjust, spec, sign, n_boot, seed, level)
        if entry is not None:
            out[attr] = entry
    return out


def _attribute_gaps(
    frame: pd.DataFrame,
    y_all: np.ndarray,
    labels: pd.Series,
    size: np.ndarray | None,
    attr: str,
    adjust: Sequence[str],
    spec: GroupSpec,
    sign: float,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, Any] | None:
    values = labels.astype(object).to_numpy()
    ok = np.isfinite(y_all) & labels.notna().to_numpy()
    means = {g: float(y_all[ok & (values == g)].mean()) for g in labels.cat.categories if (ok & (values == g)).any()}
    if len(means) < 2:
        return None
    best = max(means, key=lambda g: sign * means[g])
    worst = min(means, key=lambda g: sign * means[g])
    pick = ok & np.isin(values, [best, worst])
    y, group = sign * y_all[pick], (values[pick] == worst).astype(np.int64)  # group 0: best
    rng = np.random.default_rng(seed)
    boot = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n_boot).astype(np.float64) if n_boot else None
    parts = set(split_intersection(attr))
    extra = [c for c in adjust if c not in parts]
    sub = frame.loc[pick]
    raw, raw_ci = _gap_with_ci(y, group, np.zeros(y.size, dtype=np.int64), boot, level)
    entry: dict[str, Any] = {"worst_group": str(worst), "best_group": str(best), "raw_gap": raw, "raw_ci": raw_ci}
    entry.update({"size_gap": None, "size_ci": [None, None], "size_explained": None})
    if size is not None:
        strata = strata_codes(sub, size[pick], [], spec)
        gap, ci = _gap_with_ci(y, group, strata, boot, level)
        entry.update({"size_gap": gap, "size_ci": ci, "size_explained": _explained(raw, gap)})
    entry.update({"adjusted_by": [], "adjusted_gap": None, "adjusted_ci": [None, None], "adjusted_explained": None})
    if extra:
        strata = strata_codes(sub, None if size is None else size[pick], extra, spec)
        gap, ci = _gap_with_ci(y, group, strata, boot, level)
        by = (["size"] if size is not None else []) + list(extra)
        entry.update(
            {"adjusted_by": by, "adjusted_gap": gap, "adjusted_ci": ci, "adjusted_explained": _explained(raw, gap)}
        )
    return entry


def size_strata_note(gaps: Mapping[str, Any]) -> list[str]:
    """Attributes whose gap is mostly explained by structure size (``size_explained >= EXPLAINED``)."""
    return [a for a, g in gaps.items() if g.get("size_explained") is not None and g["size_explained"] >= EXPLAINED]
