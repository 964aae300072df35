"""The method comparison section: methods side by side with their intervals, paired differences to
the baseline with verdicts, and the papers' tables (typed :class:`~duetfair.audit.report.tables.Table`
objects, one HTML table with its caption each). Inputs: a comparison frame (one row per method),
a paired-differences frame and the tables; template ``comparison.html``. The findings of the
comparison (:func:`comparison_findings_of`) lead the report's findings."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.formatting import fmt, fmt_ci, fmt_signed_ci
from duetfair.audit.method_findings import CONTENDER, comparison_findings, contenders
from duetfair.audit.report.figures import BLUE, figure
from duetfair.audit.report.section import ReportData, Section
from duetfair.metrics.registry import column_label as registry_label

COMPARISON_COLUMNS = ("dice", "es_dice", "worst_group_dice", "cvar10")
"""Default comparison columns plotted when present."""


COMPARISON_LABELS = {
    c: registry_label(c)
    for c in ("dice", "es_dice", "iou", "es_iou", "worst_group_dice", "worst_dice", "cvar10", "worst_cvar10")
    + ("hidden_dice",)
}
"""Display names of comparison columns."""


def column_label(col: str) -> str:
    """Display name of a score column (``dice[A]`` -> ``Dice A``)."""
    return COMPARISON_LABELS.get(col, col.replace("dice[", "Dice ").replace("iou[", "IoU ").rstrip("]"))


def comparison_columns(comparison: pd.DataFrame) -> list[str]:
    """The plotted score columns: :data:`COMPARISON_COLUMNS` present, else every numeric one."""
    return [c for c in COMPARISON_COLUMNS if c in comparison.columns] or [
        c
        for c in comparison.columns
        if c not in ("method", CONTENDER)
        and not str(c).endswith(("_low", "_high"))
        and pd.api.types.is_numeric_dtype(comparison[c])
    ]


def plot_comparison(comparison: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Figure: methods side by side, one panel per score column: the value of every method with
    its interval (where given), the value printed next to it, the best method's marker filled
    (reference rows, ``contender`` False, drawn as grey diamonds and never the best)."""
    methods = comparison["method"].astype(str).tolist()
    contender = contenders(comparison)
    ncol = min(len(columns), 4)
    nrow = math.ceil(len(columns) / ncol)
    fig = figure(3.0 * ncol + 1.6, 0.32 * len(methods) * nrow + 1.3 * nrow + 0.3)
    axes = fig.subplots(nrow, ncol, sharey=True, squeeze=False)
    y = np.arange(len(methods))[::-1]
    for k, col in enumerate(columns):
        ax = axes[k // ncol][k % ncol]
        vals = comparison[col].to_numpy(dtype=float)
        nan = np.full(len(vals), np.nan)
        lo = comparison[f"{col}_low"].to_numpy(dtype=float) if f"{col}_low" in comparison else nan
        hi = comparison[f"{col}_high"].to_numpy(dtype=float) if f"{col}_high" in comparison else nan
        has = np.isfinite(lo) & np.isfinite(hi)
        err = np.clip(np.vstack([np.where(has, vals - lo, 0), np.where(has, hi - vals, 0)]), 0, None)
        ax.errorbar(vals, y, xerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
        ranked = np.where(contender, vals, np.nan)
        best = np.nanargmax(ranked) if np.isfinite(ranked).any() else -1
        for i, (v, yi) in enumerate(zip(vals, y)):
            if np.isfinite(v) and not contender[i]:
                ax.plot(v, yi, "D", ms=5, color="grey", mfc="white", mew=1.4)
            elif np.isfinite(v):
                ax.plot(v, yi, "o", ms=6, color=BLUE, mfc=BLUE if i == best else "white", mew=1.4)
        right = np.where(has, np.fmax(hi, vals), vals)
        finite = np.concatenate([vals[np.isfinite(vals)], lo[np.isfinite(lo)], hi[np.isfinite(hi)]])
        if finite.size:
            span = max(float(finite.max() - finite.min()), 1e-3)
            ax.set_xlim(float(finite.min()) - 0.08 * span, float(finite.max()) + 0.75 * span)
            for v, r, yi in zip(vals, right, y):
                if np.isfinite(v):
                    ax.text(r + 0.04 * span, yi, fmt(v), va="center", fontsize=8)
        ax.set_title(column_label(col), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y, methods)
    for k in range(len(columns), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    fig.suptitle("methods side by side (95% intervals where given; filled marker: best)", fontsize=10)
    return fig


def plot_paired(paired: pd.DataFrame, baseline: str) -> Any:
    """Figure: difference of every method to ``baseline`` per score (paired, with its interval),
    zero marked, the verdict printed next to each."""
    metrics = list(dict.fromkeys(paired["metric"]))
    methods = list(dict.fromkeys(paired["method"].astype(str)))
    ncol = min(len(metrics), 3)
    nrow = math.ceil(len(metrics) / ncol)
    fig = figure(3.6 * ncol + 1.6, 0.34 * len(methods) * nrow + 1.3 * nrow + 0.3)
    axes = fig.subplots(nrow, ncol, sharey=True, squeeze=False)
    y = {m: len(methods) - 1 - i for i, m in enumerate(methods)}
    for k, metric in enumerate(metrics):
        ax = axes[k // ncol][k % ncol]
        part = paired[paired["metric"] == metric]
        d = part["diff"].to_numpy(dtype=float)
        lo, hi = part["low"].to_numpy(dtype=float), part["high"].to_numpy(dtype=float)
        ys = np.array([y[str(m)] for m in part["method"]])
        has = np.isfinite(lo) & np.isfinite(hi)
        err = np.clip(np.vstack([np.where(has, d - lo, 0), np.where(has, hi - d, 0)]), 0, None)
        ax.axvline(0, color="gray", lw=1)
        ax.errorbar(d, ys, xerr=err, fmt="o", color="black", mfc="white", capsize=3, lw=1, ms=5)
        finite = np.concatenate([d[np.isfinite(d)], lo[np.isfinite(lo)], hi[np.isfinite(hi)], [0.0]])
        reach = max(float(np.abs(finite).max()), 1e-3)
        span = 2 * reach
        ax.set_xlim(-1.1 * reach, 1.1 * reach + 0.6 * span)
        for di, h, yi, v in zip(d, np.where(has, hi, d), ys, part["verdict"]):
            if np.isfinite(di):
                ax.text(np.nanmax([h, di]) + 0.04 * span, yi, f"{di:+.3f} {v}", va="center", fontsize=7.5)
        ax.set_title(f"{column_label(str(metric))} minus {baseline}", fontsize=10)
        ax.set_yticks(list(y.values()), list(y.keys()))
        ax.grid(axis="x", alpha=0.3)
    for k in range(len(metrics), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    fig.suptitle(f"paired differences to {baseline} (95% intervals)", fontsize=10)
    return fig


def figures(data: ReportData) -> dict[str, Any]:
    """``comparison`` (methods side by side) and ``paired`` (differences to the baseline)."""
    figs: dict[str, Any] = {}
    if data.comparison is not None:
        columns = comparison_columns(data.comparison)
        if columns:
            figs["comparison"] = plot_comparison(data.comparison, columns)
    if data.paired is not None and len(data.paired):
        figs["paired"] = plot_paired(data.paired, data.baseline or "baseline")
    return figs


def comparison_findings_of(data: ReportData) -> list[dict[str, Any]]:
    """The findings of the comparison (best method per plotted score, verdicts to the baseline)."""
    comparison = data.comparison
    if comparison is None:
        return []
    bounds = [c for c in comparison.columns if str(c).endswith(("_low", "_high")) or c == CONTENDER]
    frame = comparison[["method", *comparison_columns(comparison)] + bounds]
    return comparison_findings(frame, data.paired, data.baseline, COMPARISON_LABELS)


def _method_rows(comparison: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (``method``, formatted ``cells``) of the methods table."""
    cols = [c for c in comparison.columns if c != "method" and not str(c).endswith(("_low", "_high"))]
    rows = [
        {
            "method": str(r["method"]),
            "cells": [
                fmt_ci(r[c], [r.get(f"{c}_low"), r.get(f"{c}_high")]) if f"{c}_low" in comparison.columns else fmt(r[c])
                for c in cols
            ],
        }
        for _, r in comparison.iterrows()
    ]
    return [column_label(c) for c in cols], rows


def _paired_rows(paired: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """Score names and rows (``method``, per score ``{"diff", "verdict"}`` or None) of the paired table."""
    metrics = list(dict.fromkeys(paired["metric"].astype(str)))
    rows = []
    for method, part in paired.groupby("method", sort=False):
        by_metric = {str(r["metric"]): r for _, r in part.iterrows()}
        cells = [
            {"diff": fmt_signed_ci(r["diff"], [r["low"], r["high"]]), "verdict": str(r["verdict"])}
            if (r := by_metric.get(m)) is not None
            else None
            for m in metrics
        ]
        rows.append({"method": str(method), "cells": cells})
    return [column_label(m) for m in metrics], rows


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``comparison``: notes, the methods table, the paired table and the papers' tables."""
    if data.comparison is None and data.paired is None and not data.paper_tables:
        return None
    columns, rows = _method_rows(data.comparison) if data.comparison is not None else ([], [])
    has_paired = data.paired is not None and len(data.paired)
    paired_columns, paired = _paired_rows(data.paired) if has_paired else ([], [])
    return {
        "comparison": {
            "baseline": data.baseline,
            "notes": list(data.comparison_notes),
            "columns": columns,
            "rows": rows,
            "paired": paired,
            "paired_columns": paired_columns,
            "tables": list(data.paper_tables),
        }
    }


SECTION = Section(
    name="comparison",
    template="comparison.html",
    context=context,
    nav=lambda ctx: [("comparison", "Methods")],
    figures=figures,
)
