"""The benchmark's tables: per method the mean over seeds with a bootstrap interval across seeds,
paired differences to the baselines and their verdicts (:func:`aggregate_seeds`,
:func:`benchmark_tables`, :func:`benchmark_markdown`)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.compare import MIN_VERDICT_SEEDS
from duetfair.audit.report.tables import Cell, Table, tables_markdown
from duetfair.engine.recipes import RECIPES
from duetfair.metrics.bootstrap import bootstrap_means, percentile_ci

REFERENCE_METHODS: tuple[str, ...] = ("oracle",)
"""Rows shown as a reference (a ceiling), never marked as the best method."""
DISPLAY = {method.value: recipe.display for method, recipe in RECIPES.items()}

BENCH_COLUMNS = ("es_dice", "dice", "es_iou", "iou", "worst_dice", "worst_cvar10", "hidden_dice")


def seed_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-seed ``values`` (resampling seeds; NaN
    seeds left out; ``(nan, nan)`` with fewer than two)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float("nan"), float("nan"))
    return percentile_ci(bootstrap_means(v, n_boot, np.random.default_rng(seed)), level)


def aggregate_seeds(per_seed: pd.DataFrame, baselines: str | Sequence[str] = ("erm",)) -> pd.DataFrame:
    """Per method: mean over seeds and bootstrap interval across seeds of every headline column,
    and the paired difference to each of ``baselines`` (same seed) with its interval
    (``<col>_vs_<baseline>`` and ``<col>_vs_<baseline>_ci``)."""
    names = [baselines] if isinstance(baselines, str) else list(baselines)
    bases = {b: per_seed[per_seed["key"] == b].set_index("seed") for b in names}
    rows = []
    for key, part in per_seed.groupby("key", sort=False):
        row: dict[str, Any] = {"method": part["method"].iloc[0], "key": key, "n_seeds": int(len(part))}
        for col in BENCH_COLUMNS:
            if col not in part:
                continue
            vals = part[col].to_numpy(dtype=float)
            row[col] = _nanmean(vals)
            row[f"{col}_ci"] = list(seed_ci(vals))
            for b, base in bases.items():
                if len(base) and col in base:
                    diff = part.set_index("seed")[col] - base[col].reindex(part["seed"]).to_numpy()
                    d = diff.to_numpy(dtype=float)
                    row[f"{col}_vs_{b}"] = _nanmean(d)
                    row[f"{col}_vs_{b}_ci"] = list(seed_ci(d))
        rows.append(row)
    return pd.DataFrame(rows)


def _nanmean(v: np.ndarray) -> float:
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _fmt(v: float, ci: Sequence[float] | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{v:+.3f}" if signed else f"{v:.3f}"
    if ci and all(math.isfinite(c) for c in ci):
        s += f" ({ci[0]:+.3f} to {ci[1]:+.3f})" if signed else f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return s


#: Scores of the paired-difference tables and of the verdicts (all higher-is-better; the hidden
#: subtype only where the data knows it).
VERDICT_COLUMNS = ("es_dice", "worst_dice", "worst_cvar10", "hidden_dice")
PAIRED_COLUMNS = ("dice", *VERDICT_COLUMNS)


def verdict(ci: Sequence[float] | None) -> str:
    """``better`` / ``worse`` when the paired interval excludes 0, else ``no clear difference``
    (the benchmark tables give none below :data:`~duetfair.audit.compare.MIN_VERDICT_SEEDS` seeds)."""
    if ci is None or not all(math.isfinite(x) for x in ci):
        return "n/a"
    return "better" if ci[0] > 0 else "worse" if ci[1] < 0 else "no clear difference"


def benchmark_tables(agg: pd.DataFrame, baselines: str | Sequence[str] = ("erm",)) -> list[Table]:
    """The tables of :func:`aggregate_seeds`: the scores (mean over seeds, interval across seeds, best
    mean per column marked; the oracle ceiling is not a contender), then one table per baseline of
    paired differences with a verdict per score of :data:`VERDICT_COLUMNS`."""
    from duetfair.audit.compare import LABELS

    reference = agg["key"].isin(REFERENCE_METHODS)
    cols = [c for c in BENCH_COLUMNS if c in agg.columns]
    best = {c: agg.loc[~reference, c].max() for c in cols if agg.loc[~reference, c].notna().any()}
    rows = [
        [str(r["method"]), str(r["n_seeds"])]
        + [Cell(_fmt(r[c], r.get(f"{c}_ci")), best=c in best and not reference[i] and r[c] == best[c]) for c in cols]
        for i, r in agg.iterrows()
    ]
    tables = [Table.of(["Method", "seeds"] + [LABELS.get(c, c) for c in cols], rows)]
    names = [baselines] if isinstance(baselines, str) else list(baselines)
    return tables + [_paired_table(agg, b) for b in names if f"dice_vs_{b}" in agg.columns]


def _paired_table(agg: pd.DataFrame, b: str) -> Table:
    """Paired differences to baseline ``b`` (same seed) with the verdicts."""
    from duetfair.audit.compare import LABELS

    name = DISPLAY.get(b, b)
    paired = [c for c in PAIRED_COLUMNS if f"{c}_vs_{b}" in agg.columns]
    thin = bool((agg["n_seeds"] < MIN_VERDICT_SEEDS).any())
    caption = (
        f"Paired difference to {name} (same seed; 95% interval across seeds"
        + (
            f"; with fewer than {MIN_VERDICT_SEEDS} seeds it is about the seeds' range, not a 95% interval"
            if thin
            else ""
        )
        + "):"
    )
    rows = []
    for _, r in agg.iterrows():
        if r["key"] == b:
            continue
        cells = [str(r["method"])] + [_fmt(r[f"{c}_vs_{b}"], r.get(f"{c}_vs_{b}_ci"), signed=True) for c in paired]
        marks = [
            f"{LABELS.get(c, c)}: {verdict(r.get(f'{c}_vs_{b}_ci'))}"
            for c in VERDICT_COLUMNS
            if f"{c}_vs_{b}" in agg.columns and math.isfinite(r[f"{c}_vs_{b}"])
        ]
        if r["n_seeds"] <= 1:
            cells.append("n/a (1 seed)")
        elif r["n_seeds"] < MIN_VERDICT_SEEDS:
            cells.append(f"none: {r['n_seeds']} seeds are too few for a verdict (at least {MIN_VERDICT_SEEDS})")
        else:
            cells.append("; ".join(marks))
        rows.append(cells)
    header = ["Method"] + [f"{LABELS.get(c, c)} vs {name}" for c in paired] + ["verdict"]
    return Table.of(header, rows, caption=caption)


def benchmark_markdown(agg: pd.DataFrame, baselines: str | Sequence[str] = ("erm",)) -> str:
    """Markdown of :func:`benchmark_tables` (``methods.md``)."""
    return tables_markdown(benchmark_tables(agg, baselines))
