"""The "Hidden failure slices" part of the findings section: the ``hidden_slices`` of an audit
(:mod:`duetfair.audit.slices`) as a table, a figure and pictures; their sentences are the findings
of :mod:`duetfair.audit.slice_findings`.

* :func:`plot_slices`: small multiples of the metric against the two most explanatory descriptors,
  coloured (and marked) by the group of the first attribute, tertile cuts dashed, the first
  slice's members ringed;
* :func:`slice_gallery`: the worst cases of each slice as thumbnails, drawn by the report's
  gallery (``duetfair score --images``, ``duetfair evaluate``);
* :func:`markdown_slices`: the same as a Markdown table; :func:`slice_context`: the template's.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.formatting import fmt, fmt_signed_ci, pct, pvalue
from duetfair.audit.report.figures import figure, style
from duetfair.audit.report.tables import markdown_table
from duetfair.audit.slice_findings import no_slice
from duetfair.audit.slices import case_frame, case_ids, descriptor_levels
from duetfair.metrics.descriptors import descriptor_of

PER_SLICE = 4
"""Worst cases shown per slice in the gallery."""

MAX_GALLERY = 6
"""Slices with a gallery row."""


# ---- figure ------------------------------------------------------------------------------------


def explanatory_columns(frame: pd.DataFrame, audit: Mapping[str, Any], metric: str, k: int = 2) -> list[str]:
    """The ``k`` descriptor columns that explain the metric most: those of the first slices, then
    by the share of the metric's variance between their levels (eta squared)."""
    cols: list[str] = []
    for s in audit.get("hidden_slices", []):
        cols += [c for c in s.get("descriptors", []) if c in frame.columns and c not in cols]
    y = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=np.float64)
    levels, attrs = descriptor_levels(frame)
    scores = {}
    for a in attrs:
        lab = levels[a.name].to_numpy(dtype=object)
        ok = np.isfinite(y) & pd.notna(lab)
        if ok.sum() < 3 or a.column in scores:
            continue
        ss = float(((y[ok] - y[ok].mean()) ** 2).sum())
        between = sum(((y[ok][lab[ok] == w].mean() - y[ok].mean()) ** 2) * (lab[ok] == w).sum() for w in set(lab[ok]))
        scores[a.column] = between / ss if ss > 0 else 0.0
    cols += [c for c in sorted(scores, key=lambda c: -scores[c]) if c not in cols]
    return cols[:k]


def _cuts(column: str, x: np.ndarray) -> list[float]:
    """Where the words of a descriptor change: its tertiles (contrast: of its magnitude, both signs,
    and 0 between darker and lighter)."""
    if x.size < 3:
        return []
    if column.partition("[")[0] == "desc_contrast":
        edges = np.quantile(np.abs(x), [1 / 3, 2 / 3])
        return sorted({0.0, *edges.tolist(), *(-edges).tolist()})
    return np.unique(np.quantile(x, [1 / 3, 2 / 3])).tolist()


def plot_slices(
    frame: pd.DataFrame, metric: str, columns: Sequence[str], groups: pd.Series | None, members: Sequence[str] = ()
) -> Any:
    """Figure: one panel per descriptor column, ``metric`` against it, colour and marker by group,
    tertile cuts dashed, the ``members`` (case ids) of the first slice ringed in black."""
    fig = figure(4.6 * len(columns) + 0.6, 3.6)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    y = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=np.float64)
    ring = np.isin(case_ids(frame), list(members))
    labels = groups.astype(object).to_numpy() if groups is not None else np.full(len(frame), "all", dtype=object)
    cats = [c for c in (groups.cat.categories if groups is not None else ["all"]) if (labels == c).any()]
    for ax, col in zip(axes, columns):
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        for i, c in enumerate(cats):
            sel = ok & (labels == c)
            ax.scatter(x[sel], y[sel], s=14, alpha=0.7, marker=style(i)["marker"], label=f"{c} (n={sel.sum()})")
        ax.scatter(x[ok & ring], y[ok & ring], s=46, facecolors="none", edgecolors="black", lw=0.9, label="first slice")
        for edge in _cuts(col, x[ok]):
            ax.axvline(edge, color="0.4", ls="--", lw=0.8)
        positive = x[ok] > 0
        if ok.sum() and positive.all() and x[ok].max() / max(x[ok].min(), 1e-12) > 100:
            ax.set_xscale("log")
        d = descriptor_of(col)
        ax.set_xlabel(f"{col} ({d.unit})" if d else col)
        ax.set_ylabel(f"per-case {metric}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"per-case {metric} against the most explanatory descriptors (dashed: tertile cuts)", fontsize=10)
    return fig


def slice_figures(audit: Mapping[str, Any], cases: pd.DataFrame | None) -> dict[str, Any]:
    """``{"slices": Figure}`` when the audit has a slice search and ``cases`` its descriptors."""
    from duetfair.data.groups import GroupSpec

    search = audit.get("slice_search")
    if not search or cases is None:
        return {}
    metric = str(search["metric"])
    frame = case_frame(cases, metric, audit.get("settings", {}).get("class"))
    if metric not in frame.columns:
        return {}
    columns = explanatory_columns(frame, audit, metric)
    if not columns:
        return {}
    groups = None
    if audit.get("by") and "group_spec" in audit:
        spec = GroupSpec.from_dict(audit["group_spec"])
        groups = GroupSpec.for_table(frame, audit["by"][:1], base=spec).labels(frame, audit["by"][0])
    first = (audit.get("hidden_slices") or [{}])[0].get("members", [])
    return {"slices": plot_slices(frame, metric, columns, groups, first)}


# ---- gallery -----------------------------------------------------------------------------------


def slice_gallery(
    audit: Mapping[str, Any],
    cases: pd.DataFrame | None,
    draw: Callable[[Sequence[str]], Mapping[str, Any]] | None,
    *,
    per_slice: int = PER_SLICE,
    max_slices: int = MAX_GALLERY,
) -> list[dict[str, Any]]:
    """The worst ``per_slice`` cases of each of the first ``max_slices`` slices, drawn by ``draw``
    (case ids -> ``(data URI, note)`` or a reason); never raises (a failure becomes a note)."""
    search = audit.get("slice_search")
    if not search or cases is None or draw is None or not audit.get("hidden_slices"):
        return []
    metric = str(search["metric"])
    hb = bool(search.get("higher_is_better", True))
    frame = case_frame(cases, metric, audit.get("settings", {}).get("class"))
    score = dict(zip(case_ids(frame), pd.to_numeric(frame[metric], errors="coerce")))
    rows = []
    for s in audit["hidden_slices"][:max_slices]:
        members = sorted(s["members"], key=lambda c: score.get(c, math.nan) * (1 if hb else -1))[:per_slice]
        rows.append({"definition": s["definition"], "within": s["within"], "ids": members})
    try:
        drawn = draw(list(dict.fromkeys(c for r in rows for c in r["ids"])))
    except Exception as exc:  # noqa: BLE001 - the report is written without the pictures
        return [{"definition": "", "within": "", "cases": [], "note": f"not drawn: {str(exc)[:200]}"}]
    for r in rows:
        ids = r.pop("ids")
        r["cases"] = [
            {"case_id": c, "score": score.get(c), "src": drawn[c][0], "where": drawn[c][1]}
            for c in ids
            if isinstance(drawn.get(c), tuple)
        ]
    return rows


# ---- markdown ----------------------------------------------------------------------------------


def markdown_slices(audit: Mapping[str, Any]) -> list[str]:
    """The ``## Hidden failure slices`` table of the Markdown report (empty without a search)."""
    search = audit.get("slice_search")
    if not search:
        return []
    lines = ["## Hidden failure slices", ""]
    slices = audit.get("hidden_slices", [])
    if not slices:
        return lines + [no_slice(search)["text"], ""]
    header = ["slice", "within", "n", "share", "mean", "rest", "gap (95% CI)", "q", "failing"]
    rows = [
        [
            s["definition"],
            s["within"],
            str(s["n"]),
            pct(s["share"]),
            fmt(s["mean"]),
            fmt(s["mean_rest"]),
            fmt_signed_ci(s["gap"], s["gap_ci"]),
            pvalue(s["q"]),
            pct(s.get("failure_rate")),
        ]
        for s in slices
    ]
    return lines + markdown_table(header, rows) + [""]


def slice_context(audit: Mapping[str, Any] | None, gallery_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What the HTML template shows in the section (None without a slice search)."""
    if not audit or not audit.get("slice_search"):
        return None
    search = audit["slice_search"]
    return {
        "metric": search["metric"],
        "rows": list(audit.get("hidden_slices", [])),
        "n_tests": search["n_tests"],
        "n_scopes": len(search["scopes"]),
        "adjusted_for": search.get("overall_adjusted_for", []),
        "fdr": search.get("settings", {}).get("fdr", 0.05),
        "gallery": [r for r in gallery_rows if r.get("cases") or r.get("note")],
    }
