"""Readable audit reports: Markdown and a self-contained HTML page with figures.

Both render the audit dict of :func:`duetfair.audit.audit_table`, findings first: the ``findings``
of the audit (:mod:`duetfair.audit.findings`, the same sentences and numbers in the JSON, the
Markdown and the HTML) and summary cards with the headline numbers. The HTML report is one file
(jinja2 template ``templates/report.html``; matplotlib figures and thumbnails embedded as base64, no
network at view time), written atomically, readable without colour (values printed on bars and
cells, line styles and markers besides colours). Its sections, each present when its input is:

* ``findings``: cards and findings (of the audit, and of a method comparison);
* ``comparison`` (``comparison``, ``paired``, ``paper_table``): methods side by side with their
  intervals, paired differences to the baseline with verdicts, and the papers' table;
* ``training`` (:class:`TrainingView`, a run's ``history.csv``): overall and worst-group validation
  Dice per epoch with the selected epoch marked, and the objective's state per epoch (``obj/...``
  columns, e.g. GroupDRO / FairDRO group weights);
* per metric: group means with intervals; with the per-case table the tail of per-case scores in
  every group with the CVaR region marked, the per-case distribution (hidden subtype highlighted)
  and, for the first metric, intersectional heatmaps of the mean over pairs of attributes (n per
  cell, cells with fewer than ``min_n`` cases greyed out); divergent subgroups;
* ``gallery`` (:class:`~duetfair.audit.gallery.Gallery`): the worst cases of every group with the
  reference and predicted contours;
* ``hidden-slices`` (at the top of the findings, when the audit has ``hidden_slices``): the slices in
  words, metric against the most explanatory descriptors, each slice's worst cases
  (:mod:`duetfair.audit.slice_report`);
* ``provenance``: duetfair version, the exact command, date, seed, data source and the config.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair import history as H
from duetfair.audit.discovery import itemset_label
from duetfair.audit.findings import (
    CONTENDER,
    MIN_N,
    comparison_findings,
    contenders,
    findings_of,
    fmt,
    fmt_ci,
    fmt_signed_ci,
    headline_cards,
    pct,
    pvalue,
)
from duetfair.audit.markdown import md_cells, md_plain, md_text
from duetfair.audit.metric_notes import metric_title, missing_note
from duetfair.audit.report_certify import certify_figures, guarantee_tables, markdown_guarantees, summary_lines
from duetfair.audit.slice_report import SLICE_KINDS, markdown_slices, slice_context, slice_figures, slice_gallery
from duetfair.errors import require
from duetfair.io import write_text
from duetfair.metrics.hidden import cvar

COMPARISON_COLUMNS = ("dice", "es_dice", "worst_group_dice", "cvar10")
"""Default comparison columns plotted when present."""

COMPARISON_LABELS = {
    "dice": "Dice",
    "es_dice": "ES-Dice",
    "iou": "IoU",
    "es_iou": "ES-IoU",
    "worst_group_dice": "Worst-group Dice",
    "worst_dice": "Worst-group Dice",
    "cvar10": "Worst-group CVaR10",
    "worst_cvar10": "Worst-group CVaR10",
    "hidden_dice": "Hidden-subtype Dice",
}
"""Display names of comparison columns."""

MAX_HEATMAPS = 6
"""At most this many attribute pairs get an intersectional heatmap."""

__all__ = [
    "COMPARISON_COLUMNS",
    "MIN_N",
    "TrainingView",
    "build_figures",
    "fmt",
    "fmt_ci",
    "provenance",
    "render_html",
    "render_markdown",
    "render_summary",
]

_pct = pct
_pvalue = pvalue


# ---- markdown -------------------------------------------------------------------------------


def _hidden_name(h: Mapping[str, Any]) -> str:
    """The hidden column of an audit's ``hidden_subtype`` block: ``morphology`` or ``morphology = irregular``."""
    name = str(h.get("column", "hidden_subtype"))
    return name if not h.get("hard") else f"{name} = {', '.join(map(str, h['hard']))}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table of plain-text cells (escaped: user values cannot add markup or cells)."""
    lines = ["| " + " | ".join(map(md_text, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(md_text, r)) + " |" for r in rows]
    return lines


def _failure_header(key: str, a: Mapping[str, Any], m: Mapping[str, Any]) -> str:
    """``failures (dice < 0.5)``: the failure-rate column named with its cut-off."""
    threshold = a.get("failure_threshold")
    if threshold is None:
        return "failure rate"
    op = "<" if m.get("higher_is_better", True) else ">"
    return f"failures ({key.partition('[')[0]} {op} {fmt(threshold, 3).rstrip('0').rstrip('.')})"


def markdown_findings(audit: Mapping[str, Any]) -> list[str]:
    """The ``## Findings`` block of the Markdown report: headline numbers, then the findings'
    sentences (warnings marked), as the HTML report shows them."""
    lines = ["## Findings", ""]
    cards = headline_cards(audit)
    if cards:
        lines += _md_table(["headline", "value (95% CI)", "note"], [[c["label"], c["text"], c["note"]] for c in cards])
        lines.append("")
    for block in _finding_blocks(findings_of(audit)):
        lines += [f"**{md_text(block['title'])}**", ""]
        lines += [
            f"- {'**Warning:** ' if f.get('level') == 'warning' else ''}{md_text(f['text'])}" for f in block["entries"]
        ]
        lines.append("")
    return lines + markdown_slices(audit)


def render_markdown(audit: Mapping[str, Any], *, title: str = "duetfair audit") -> str:
    """Markdown report of an audit dict (same content as the JSON, for people); every value from
    the data (title, column and group names) is escaped (:func:`~duetfair.audit.markdown.md_text`)."""
    s = audit.get("settings", {})
    lines = [f"# {md_text(title)}", ""]
    lines.append(
        f"{audit.get('n_rows', 0)} rows; attributes: {md_text(', '.join(audit.get('by', [])))}; "
        f"{s.get('n_boot', 0)} bootstrap resamples (seed {s.get('seed', 0)}, "
        f"{int(100 * s.get('level', 0.95))}% percentile intervals); "
        f"equity-scaled variant {md_text(s.get('es_variant', 'sum_abs'))}; CVaR fraction {s.get('cvar_alpha', 0.1)}."
    )
    lines.append("")
    lines += markdown_findings(audit)
    lines += markdown_guarantees(audit)
    for key, m in audit["metrics"].items():
        direction = "higher is better" if m.get("higher_is_better", True) else "lower is better"
        lines += [f"## {md_text(metric_title(audit, key))} ({direction})", ""]
        left_out = missing_note(m)
        lines.append(
            f"Overall: **{fmt_ci(m['overall']['mean'], m['overall']['ci'])}** over {m['n_cases']} cases{left_out}."
        )
        lines.append("")
        for attr, a in m["attributes"].items():
            lines += [f"### {md_text(key)} by {md_text(attr)}", ""]
            rows = [
                [
                    str(g["value"]) + (" (worst)" if str(g["value"]) == str(a["worst_group"]) else ""),
                    str(g["n"]),
                    fmt_ci(g["mean"], g["ci"]),
                    fmt(g["cvar10"]),
                    fmt(g.get("p10")),
                    fmt(g.get("std")),
                    _pct(g["failure_rate"]),
                ]
                for g in a["groups"]
            ]
            lines += _md_table(
                ["group", "n", f"mean {key} (95% CI)", "CVaR10", "10th pct", "std", _failure_header(key, a, m)], rows
            )
            lines.append("")
            extra = (
                f"; {a['n_unknown']} cases with unknown {md_text(attr)} count only in the overall mean"
                if a.get("n_unknown")
                else ""
            )
            lines.append(
                f"Worst group **{md_text(a['worst_group'])}** ({fmt(a['worst_mean'])}), best "
                f"{md_text(a['best_group'])} ({fmt(a['best_mean'])}), gap {fmt(a['gap'])}; "
                f"ES-{md_text(key)} **{fmt_ci(a['es'], a['es_ci'])}** (std variant {fmt(a['es_std'])}); "
                f"skewness {fmt(a['skewness'])}; worst-group CVaR10 {fmt(a['worst_cvar10'])}{extra}."
            )
            lines.append("")
        if m.get("subgroups"):
            lines += [f"### Divergent subgroups of {md_text(key)}", ""]
            rows = [
                [
                    itemset_label(sg["itemset"]),
                    str(sg["n"]),
                    _pct(sg["support"]),
                    fmt(sg["mean"]),
                    f"{float(sg['divergence']):+.3f}",
                    fmt(sg.get("welch_t"), 1),
                    _pvalue(sg.get("p_value")),
                    _pvalue(sg.get("q_value")),
                    "yes" if sg.get("significant") else "no",
                ]
                for sg in m["subgroups"]
            ]
            lines += _md_table(
                ["subgroup", "n", "support", "mean", "divergence", "t (Welch)", "p", "q (BH)", "significant"], rows
            )
            lines.append("")
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(
                f"Hidden hard subtype ({md_text(_hidden_name(h))}): {h['n']} cases, mean {md_text(key)} "
                f"{fmt(h['mean'])} vs "
                f"{fmt(h['mean_rest'])} for the rest; "
                f"they are {_pct(h['share_in_worst_decile'])} of the worst 10% of cases."
            )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---- plots ----------------------------------------------------------------------------------

_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_WORST = "#c0392b"
_BLUE = "#2c7fb8"


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _style(i: int) -> dict[str, Any]:
    """Line style and marker of the i-th series (readable without colour)."""
    return {"ls": _STYLES[i % len(_STYLES)], "marker": _MARKERS[i % len(_MARKERS)]}


def plot_group_means(metric_key: str, attr: str, summary: Mapping[str, Any], overall: Mapping[str, Any]) -> Any:
    """Figure: mean of ``metric_key`` per group of ``attr`` with CI error bars and the value on
    every bar; the worst group hatched, the overall mean as a line."""
    groups = summary["groups"]
    labels = [f"{g['value']}\n(n={g['n']})" for g in groups]
    means = np.array([np.nan if g["mean"] is None else g["mean"] for g in groups], dtype=float)
    lo = np.array([np.nan if g["ci"][0] is None else g["ci"][0] for g in groups], dtype=float)
    hi = np.array([np.nan if g["ci"][1] is None else g["ci"][1] for g in groups], dtype=float)
    fig = _figure(max(4.0, 0.9 * len(groups) + 2.0), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    worst = summary["worst_group"]
    is_worst = [str(g["value"]) == str(worst) for g in groups]
    # a percentile interval need not contain the point estimate (tiny, skewed groups)
    err = np.clip(np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)]), 0.0, None)
    bars = ax.bar(
        x,
        means,
        color=[_WORST if w else _BLUE for w in is_worst],
        alpha=0.85,
        width=0.6,
        edgecolor="black",
        linewidth=0.6,
    )
    for bar, w in zip(bars, is_worst):
        if w:
            bar.set_hatch("//")
    ax.errorbar(x, means, yerr=err, fmt="none", ecolor="black", capsize=4, lw=1.2)
    ax.axhline(overall["mean"], color="gray", ls="--", lw=1, label=f"overall {fmt(overall['mean'])}")
    ax.set_xticks(x, labels)
    finite = np.concatenate([lo[np.isfinite(lo)], means[np.isfinite(means)]])
    if finite.size:
        low = float(finite.min())
        top = float(np.nanmax(np.concatenate([hi[np.isfinite(hi)], means[np.isfinite(means)]])))
        pad = 0.15 * max(top - low, 1e-3)
        ax.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, top + 2.2 * pad)
    tops = np.where(np.isfinite(hi), np.fmax(hi, means), means)
    for xi, top_i, m in zip(x, tops, means):
        if np.isfinite(m):
            ax.text(xi, top_i, fmt(m), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"mean {metric_key} (95% CI)")
    ax.set_xlabel(attr)
    ax.set_title(f"{metric_key} by {attr}: worst {worst} (hatched), ES {fmt(summary['es'])}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_group_distribution(
    metric: str, attr: str, values: np.ndarray, labels: pd.Series, hidden: np.ndarray | None, seed: int = 0
) -> Any:
    """Figure: per-case ``metric`` per group (box + jittered points; hidden subtype as red crosses)."""
    cats = [c for c in labels.cat.categories if (labels == c).any()]
    fig = _figure(max(4.5, 1.0 * len(cats) + 2.0), 3.6)
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    data = [values[(labels == c).to_numpy()] for c in cats]
    ax.boxplot(data, positions=np.arange(len(cats)), widths=0.5, showfliers=False, medianprops={"color": "black"})
    for i, c in enumerate(cats):
        mask = (labels == c).to_numpy()
        v = values[mask]
        jitter = rng.uniform(-0.18, 0.18, size=v.size)
        size = 6 if v.size < 500 else 3
        if hidden is not None:
            h = hidden[mask]
            ax.scatter(i + jitter[~h], v[~h], s=size, color=_BLUE, alpha=0.35, lw=0)
            ax.scatter(
                i + jitter[h],
                v[h],
                s=size + 10,
                color=_WORST,
                alpha=0.8,
                marker="x",
                lw=0.9,
                label="hidden hard subtype" if i == 0 else None,
            )
        else:
            ax.scatter(i + jitter, v, s=size, color=_BLUE, alpha=0.35, lw=0)
    ax.set_xticks(np.arange(len(cats)), [f"{c}\n(n={d.size})" for c, d in zip(cats, data)])
    ax.set_ylabel(f"per-case {metric}")
    ax.set_xlabel(attr)
    ax.set_title(f"per-case {metric} by {attr}", fontsize=10)
    if hidden is not None and hidden.any():
        ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_tail(
    metric: str,
    attr: str,
    values: np.ndarray,
    labels: pd.Series,
    *,
    alpha: float = 0.1,
    threshold: float | None = None,
    higher_better: bool = True,
    cvar_method: str = "fractional",
) -> Any:
    """Figure: the per-case scores of every group sorted worst first (x: share of the group's
    cases), the CVaR region (worst ``alpha`` of each group) shaded and each group's CVaR drawn
    across it, the failure cut-off as a line."""
    cats = [c for c in labels.cat.categories if (labels == c).any()]
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    share = 100 * alpha
    ax.axvspan(0, share, color="0.88", zorder=0, label=f"CVaR region (worst {share:.0f}%)")
    for i, c in enumerate(cats):
        v = values[(labels == c).to_numpy()]
        v = np.sort(v) if higher_better else np.sort(v)[::-1]
        x = (np.arange(v.size) + 0.5) / v.size * 100
        tail = cvar(v, alpha, higher_better=higher_better, cvar_method=cvar_method)
        (line,) = ax.plot(
            x, v, lw=1.3, ms=4, markevery=max(1, v.size // 8), **_style(i), label=f"{c} (n={v.size}): CVaR {fmt(tail)}"
        )
        ax.hlines(tail, 0, share, colors=line.get_color(), linestyles=_style(i)["ls"], lw=2.4)
    if threshold is not None:
        ax.axhline(
            threshold,
            color="black",
            ls=(0, (1, 2)),
            lw=1,
            label=f"failure cut-off {'<' if higher_better else '>'} {fmt(threshold, 2)}",
        )
    ax.set_xlim(0, 50)
    ax.set_xlabel("share of the group's cases, worst first (%; the worst half shown)")
    ax.set_ylabel(f"per-case {metric}")
    ax.set_title(f"tail of per-case {metric} by {attr}: thick segments = CVaR{share:.0f}", fontsize=10)
    ax.legend(loc="lower right" if higher_better else "upper right", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_heatmap(
    metric: str,
    a: str,
    b: str,
    values: np.ndarray,
    la: pd.Series,
    lb: pd.Series,
    *,
    min_n: int = MIN_N,
    higher_better: bool = True,
) -> Any:
    """Figure: mean ``metric`` over the groups of ``a`` x ``b`` with mean and n printed in every
    cell; cells with fewer than ``min_n`` cases greyed out and hatched (n only)."""
    import matplotlib

    ca = [c for c in la.cat.categories if (la == c).any()]
    cb = [c for c in lb.cat.categories if (lb == c).any()]
    mean = np.full((len(ca), len(cb)), np.nan)
    n = np.zeros((len(ca), len(cb)), dtype=int)
    va, vb = la.to_numpy(), lb.to_numpy()
    for i, ga in enumerate(ca):
        for j, gb in enumerate(cb):
            mask = (va == ga) & (vb == gb)
            n[i, j] = int(mask.sum())
            if n[i, j]:
                mean[i, j] = float(values[mask].mean())
    shown = np.where(n >= min_n, mean, np.nan)
    fig = _figure(max(3.8, 0.85 * len(cb) + 2.4), max(2.6, 0.55 * len(ca) + 1.5))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis" if higher_better else "viridis_r"].with_extremes(bad="#d9d9d9")
    finite = shown[np.isfinite(shown)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i in range(len(ca)):
        for j in range(len(cb)):
            if n[i, j] >= min_n:
                level = (shown[i, j] - vmin) / (vmax - vmin)
                dark = level < 0.55 if higher_better else level > 0.45
                ax.text(
                    j,
                    i,
                    f"{fmt(shown[i, j])}\nn={n[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
            else:
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.6", lw=0))
                ax.text(j, i, f"n={n[i, j]}\ntoo few", ha="center", va="center", fontsize=7, color="0.25")
    rotate = max((len(str(c)) for c in cb), default=0) > 6
    ax.set_xticks(
        range(len(cb)), [str(c) for c in cb], rotation=30 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.set_yticks(range(len(ca)), [str(c) for c in ca])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    fig.colorbar(im, ax=ax, label=f"mean {metric}", shrink=0.85)
    ax.set_title(f"mean {metric}: {a} x {b} (grey: n < {min_n})", fontsize=10)
    return fig


def _column_label(col: str) -> str:
    return COMPARISON_LABELS.get(col, col.replace("dice[", "Dice ").replace("iou[", "IoU ").rstrip("]"))


def plot_comparison(comparison: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Figure: methods side by side, one panel per score column: the value of every method with
    its interval (where given), the value printed next to it, the best method's marker filled
    (reference rows, ``contender`` False, drawn as grey diamonds and never the best)."""
    methods = comparison["method"].astype(str).tolist()
    contender = contenders(comparison)
    ncol = min(len(columns), 4)
    nrow = math.ceil(len(columns) / ncol)
    fig = _figure(3.0 * ncol + 1.6, 0.32 * len(methods) * nrow + 1.3 * nrow + 0.3)
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
                ax.plot(v, yi, "o", ms=6, color=_BLUE, mfc=_BLUE if i == best else "white", mew=1.4)
        right = np.where(has, np.fmax(hi, vals), vals)
        finite = np.concatenate([vals[np.isfinite(vals)], lo[np.isfinite(lo)], hi[np.isfinite(hi)]])
        if finite.size:
            span = max(float(finite.max() - finite.min()), 1e-3)
            ax.set_xlim(float(finite.min()) - 0.08 * span, float(finite.max()) + 0.75 * span)
            for v, r, yi in zip(vals, right, y):
                if np.isfinite(v):
                    ax.text(r + 0.04 * span, yi, fmt(v), va="center", fontsize=8)
        ax.set_title(_column_label(col), fontsize=10)
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
    fig = _figure(3.6 * ncol + 1.6, 0.34 * len(methods) * nrow + 1.3 * nrow + 0.3)
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
        ax.set_title(f"{_column_label(str(metric))} minus {baseline}", fontsize=10)
        ax.set_yticks(list(y.values()), list(y.keys()))
        ax.grid(axis="x", alpha=0.3)
    for k in range(len(metrics), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    fig.suptitle(f"paired differences to {baseline} (95% intervals)", fontsize=10)
    return fig


def _epoch_axis(ax: Any, epochs: pd.Series) -> None:
    from matplotlib.ticker import MaxNLocator

    last = float(epochs.max()) if epochs.notna().any() else 1.0
    ax.set_xlim(0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def plot_learning_curves(history: pd.DataFrame, best_epoch: int | None, select: str | None = None) -> Any:
    """Figure: overall, worst-group (and ES) validation Dice per epoch; the selected epoch marked."""
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    series = [(H.VAL_DICE, "overall"), (H.VAL_WORST_DICE, "worst group"), (H.VAL_ES_DICE, "ES-Dice")]
    for i, (col, label) in enumerate(c for c in series if c[0] in history.columns):
        v = pd.to_numeric(history[col], errors="coerce")
        ok = v.notna() & epochs.notna()
        if not ok.any():
            continue
        ax.plot(epochs[ok], v[ok], lw=1.5, ms=4, label=label, **_style(i))
        if best_epoch is not None and best_epoch > 0 and (epochs[ok] == best_epoch).any():
            ax.plot([best_epoch], [float(v[ok][epochs[ok] == best_epoch].iloc[0])], "*", ms=11, color="black")
    if best_epoch is not None and best_epoch > 0:
        ax.axvline(best_epoch, color="black", ls=(0, (4, 2)), lw=1)
        late = epochs.notna().any() and best_epoch > 0.6 * float(epochs.max())
        ax.annotate(
            f"selected: epoch {best_epoch}" + (f" ({select})" if select else ""),
            xy=(best_epoch, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if late else 4, -4),
            textcoords="offset points",
            va="top",
            ha="right" if late else "left",
            fontsize=8,
        )
    _epoch_axis(ax, epochs)
    ax.set_ylabel("validation Dice")
    ax.set_title("learning curves: overall vs worst-group validation Dice", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


OBJECTIVE_STATE = {
    "q": "group weights q (GroupDRO / FairDRO)",
    "scale": "group scales (FEBS)",
    "group_value": "robust value R_g per group (FairDRO)",
    "group_dice_loss": "group Dice loss (FEBS)",
}
"""Display names of per-group objective state logged as ``obj/<name>_<group id>``."""


def objective_families(history: pd.DataFrame) -> dict[str, list[tuple[str, int | None]]]:
    """``obj/...`` columns of a history grouped by name: ``{"q": [("obj/q_0", 0), ...], ...}``
    (scalars such as ``obj/max_weight`` under their own name, group id None)."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for col in history.columns:
        if not str(col).startswith("obj/") or not pd.to_numeric(history[col], errors="coerce").notna().any():
            continue
        m = re.fullmatch(r"obj/(.+)_(\d+)", str(col))
        name, gid = (m.group(1), int(m.group(2))) if m else (str(col)[4:], None)
        out.setdefault(name, []).append((str(col), gid))
    return out


def plot_objective_state(
    history: pd.DataFrame, name: str, columns: Sequence[tuple[str, int | None]], group_names: Sequence[str] = ()
) -> Any:
    """Figure: one ``obj/`` quantity per epoch, one line per group (labelled at its end)."""
    fig = _figure(5.6, 3.2)
    ax = fig.add_subplot()
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    for i, (col, gid) in enumerate(columns):
        v = pd.to_numeric(history[col], errors="coerce")
        ok = v.notna() & epochs.notna()
        label = name if gid is None else (group_names[gid] if gid < len(group_names) else f"group {gid}")
        ax.plot(epochs[ok], v[ok], lw=1.4, ms=4, label=label, **_style(i))
    _epoch_axis(ax, epochs)
    ax.set_ylabel(name)
    ax.set_title(f"objective state: {OBJECTIVE_STATE.get(name, name)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


# ---- inputs of the report sections -----------------------------------------------------------


@dataclass
class TrainingView:
    """The training section of a run's report.

    Attributes:
        history: ``history.csv`` of the run (``epoch``, ``val_dice``, ``val_worst_dice``,
            ``best_epoch``, ``obj/...``).
        best_epoch: the selected epoch (marked in the curves).
        select: the selection rule (``overall``, ``worst_group``, ``es``).
        group_names: names of the objective's group ids (labels of ``obj/<name>_<id>``).
        objective: the objective's name.
    """

    history: pd.DataFrame
    best_epoch: int | None = None
    select: str | None = None
    group_names: list[str] = field(default_factory=list)
    objective: str | None = None

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str]) -> "TrainingView | None":
        """The view of a run folder (``history.csv``, ``run.json``); None without a readable history."""
        from duetfair.errors import DuetfairError
        from duetfair.rundir import RunDir

        run = RunDir(run_dir)
        if not run.history.is_file():
            return None
        try:
            history = pd.read_csv(run.history)
        except (OSError, ValueError):
            return None
        if "epoch" not in history.columns or history.empty:
            return None
        try:
            record = run.read_record() if run.record.is_file() else None
        except DuetfairError:
            record = None
        best = record.best_epoch if record is not None else None
        if (best is None or best < 1) and "best_epoch" in history.columns:
            last = pd.to_numeric(history["best_epoch"], errors="coerce").dropna()
            best = int(last.iloc[-1]) if len(last) else None
        return cls(
            history,
            best_epoch=best if best is not None and best > 0 else None,
            select=record.select if record is not None else None,
            group_names=list(record.group_names) if record is not None else [],
            objective=record.objective if record is not None else None,
        )


def provenance(*, config: str | None = None, data: str | None = None, seed: Any = None, **extra: Any) -> dict[str, Any]:
    """What made a report: the duetfair version, the exact command (``sys.argv``) and the date, and
    where the caller knows them the config (its text), the data source, the seed and ``extra``
    entries (name -> text; a dict of texts is shown as collapsed blocks)."""
    from duetfair import __version__

    argv = [str(a) for a in sys.argv]
    if argv:
        name = Path(argv[0]).name
        if name == "__main__.py":
            argv = ["python", "-m", "duetfair", *argv[1:]]
        elif name == "duetfair":
            argv[0] = "duetfair"
    out: dict[str, Any] = {
        "duetfair": __version__,
        "command": shlex.join(argv),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    for key, value in (("seed", seed), ("data", data), ("config", config), *extra.items()):
        if value is not None:
            out[key] = value
    return out


def _audit_provenance(audit: Mapping[str, Any] | None) -> dict[str, Any]:
    """Default provenance of an audit: the bootstrap seed and the inputs ``duetfair score`` recorded."""
    out = provenance()
    if audit is None:
        return out
    out["seed"] = f"{audit.get('settings', {}).get('seed', 0)} (bootstrap)"
    inputs = audit.get("inputs")
    if isinstance(inputs, Mapping):
        parts = [f"{k}: {v}" for k, v in inputs.items() if isinstance(v, (str, int, float)) and k != "kind"]
        out["data"] = f"{inputs.get('kind', 'input')}" + (f" ({'; '.join(parts)})" if parts else "")
    return out


# ---- figures ---------------------------------------------------------------------------------


def _metric_view(cases: pd.DataFrame, key: str) -> tuple[str, pd.DataFrame]:
    """Base metric name and the rows of ``cases`` that a metric key (``dice`` or ``dice[1]``) covers."""
    if key.endswith("]") and "[" in key:
        base, _, cls = key[:-1].partition("[")
        if "class" in cases.columns:
            return base, cases[cases["class"].astype(str) == cls]
        return base, cases
    if "class" in cases.columns and cases["class"].nunique() > 1:
        return key, cases.iloc[0:0]
    return key, cases


def _heatmap_pairs(by: Sequence[str], columns: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of the single attributes behind ``by`` (intersections split), at most :data:`MAX_HEATMAPS`."""
    atoms = [a for a in dict.fromkeys(p for attr in by for p in attr.split("+")) if a in columns]
    return list(itertools.combinations(atoms, 2))[:MAX_HEATMAPS]


def _audit_figures(audit: Mapping[str, Any], cases: pd.DataFrame | None, min_n: int) -> dict[str, Any]:
    from duetfair.data.groups import GroupSpec, HiddenColumn

    figs: dict[str, Any] = {}
    settings = audit.get("settings", {})
    hidden_col = HiddenColumn.parse(settings.get("hidden_column"))
    spec = GroupSpec.from_dict(audit["group_spec"]) if "group_spec" in audit else None
    for index, (key, m) in enumerate(audit["metrics"].items()):
        hb = bool(m.get("higher_is_better", True))
        base, view = _metric_view(cases, key) if cases is not None else (key, None)
        usable = view is not None and base in view.columns and len(view) > 0
        values = pd.to_numeric(view[base], errors="coerce").to_numpy(dtype=float) if usable else None
        groups = GroupSpec.for_table(view, list(m["attributes"]), base=spec) if usable else None
        for attr, summary in m["attributes"].items():
            figs[f"means/{key}/{attr}"] = plot_group_means(key, attr, summary, m["overall"])
            if values is None or groups is None or view is None:
                continue
            labels = groups.labels(view, attr)
            ok = np.isfinite(values) & labels.notna().to_numpy()
            if not ok.any():
                continue
            lab = labels[ok].reset_index(drop=True)
            figs[f"tail/{key}/{attr}"] = plot_tail(
                base,
                attr,
                values[ok],
                lab,
                alpha=float(settings.get("cvar_alpha", 0.1)),
                threshold=summary.get("failure_threshold"),
                higher_better=hb,
                cvar_method=str(settings.get("cvar_method", "fractional")),
            )
            hidden = (hidden_col.flags(view[hidden_col.name]) > 0)[ok] if hidden_col.name in view.columns else None
            figs[f"dist/{key}/{attr}"] = plot_group_distribution(base, attr, values[ok], lab, hidden)
        if index == 0 and values is not None and view is not None:
            pairs = _heatmap_pairs(list(m["attributes"]), list(view.columns))
            if pairs:
                pair_spec = GroupSpec.for_table(view, [p for pair in pairs for p in pair], base=spec)
            for a, b in pairs:
                la, lb = pair_spec.labels(view, a), pair_spec.labels(view, b)
                ok = np.isfinite(values) & la.notna().to_numpy() & lb.notna().to_numpy()
                if ok.any():
                    figs[f"heat/{key}/{a}+{b}"] = plot_heatmap(
                        base,
                        a,
                        b,
                        values[ok],
                        la[ok].reset_index(drop=True),
                        lb[ok].reset_index(drop=True),
                        min_n=min_n,
                        higher_better=hb,
                    )
    return figs


def _comparison_columns(comparison: pd.DataFrame) -> list[str]:
    return [c for c in COMPARISON_COLUMNS if c in comparison.columns] or [
        c
        for c in comparison.columns
        if c not in ("method", CONTENDER)
        and not str(c).endswith(("_low", "_high"))
        and pd.api.types.is_numeric_dtype(comparison[c])
    ]


def build_figures(
    audit: Mapping[str, Any] | None,
    cases: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    *,
    paired: pd.DataFrame | None = None,
    baseline: str | None = None,
    training: TrainingView | None = None,
    min_n: int = MIN_N,
) -> dict[str, Any]:
    """All report figures (matplotlib ``Figure`` objects), keyed ``means/<metric>/<attr>``; with the
    per-case table ``tail/<metric>/<attr>``, ``dist/<metric>/<attr>`` and
    ``heat/<first metric>/<a>+<b>``; ``comparison`` and ``paired``; ``training/curves`` and
    ``training/obj/<name>``."""
    figs: dict[str, Any] = _audit_figures(audit, cases, min_n) if audit is not None else {}
    figs.update(certify_figures(audit))
    figs.update(slice_figures(audit, cases) if audit is not None else {})
    if comparison is not None:
        columns = _comparison_columns(comparison)
        if columns:
            figs["comparison"] = plot_comparison(comparison, columns)
    if paired is not None and len(paired):
        figs["paired"] = plot_paired(paired, baseline or "baseline")
    if training is not None:
        figs["training/curves"] = plot_learning_curves(training.history, training.best_epoch, training.select)
        for name, cols in list(objective_families(training.history).items())[:4]:
            figs[f"training/obj/{name}"] = plot_objective_state(training.history, name, cols, training.group_names)
    return figs


# ---- html ------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _markdown_table(md: str) -> dict[str, Any] | None:
    """A Markdown table (e.g. ``comparison.md``) -> ``{"header", "rows": [[{"text", "best"}]], "note"}``."""
    lines = md.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    if len(table) < 2:
        return None

    def cells(line: str) -> list[str]:  # escaped cells (audit.markdown.md_text) back to their text
        return [md_plain(c) for c in md_cells(line)]

    def cell(text: str) -> dict[str, Any]:
        best = text.startswith("**") and text.endswith("**") and len(text) > 4
        return {"text": md_plain(text[2:-2] if best else text), "best": best}

    rows = [[cell(c) for c in md_cells(ln)] for ln in table[2:]]
    note = " ".join(ln.strip() for ln in lines if ln.strip() and not ln.startswith("|"))
    return {"header": cells(table[0]), "rows": rows, "note": md_plain(note.replace("**", "").replace("`", ""))}


def _comparison_context(
    comparison: pd.DataFrame | None,
    paired: pd.DataFrame | None,
    paper_table: str | None,
    baseline: str | None,
    notes: Sequence[str],
) -> dict[str, Any] | None:
    if comparison is None and paired is None and paper_table is None:
        return None
    out: dict[str, Any] = {
        "baseline": baseline,
        "notes": list(notes),
        "columns": [],
        "rows": [],
        "paired": [],
        "paired_columns": [],
        "paper": _markdown_table(paper_table) if paper_table else None,
    }
    if comparison is not None:
        cols = [c for c in comparison.columns if c != "method" and not str(c).endswith(("_low", "_high"))]
        out["columns"] = [_column_label(c) for c in cols]
        out["rows"] = [
            {
                "method": str(r["method"]),
                "cells": [
                    fmt_ci(r[c], [r.get(f"{c}_low"), r.get(f"{c}_high")])
                    if f"{c}_low" in comparison.columns
                    else fmt(r[c])
                    for c in cols
                ],
            }
            for _, r in comparison.iterrows()
        ]
    if paired is not None and len(paired):
        metrics = list(dict.fromkeys(paired["metric"].astype(str)))
        out["paired_columns"] = [_column_label(m) for m in metrics]
        out["paired"] = [
            {
                "method": str(method),
                "cells": [
                    next(
                        (
                            {"diff": fmt_signed_ci(r["diff"], [r["low"], r["high"]]), "verdict": str(r["verdict"])}
                            for _, r in part[part["metric"].astype(str) == m].iterrows()
                        ),
                        None,
                    )
                    for m in metrics
                ],
            }
            for method, part in paired.groupby("method", sort=False)
        ]
    return out


def _training_context(training: TrainingView | None, figs: Mapping[str, Any]) -> dict[str, Any] | None:
    if training is None:
        return None
    h = training.history
    selected = None
    if training.best_epoch is not None:
        rows = h[pd.to_numeric(h["epoch"], errors="coerce") == training.best_epoch]
        if len(rows):
            r = rows.iloc[0]
            selected = {
                k: fmt(r[c])
                for k, c in (("dice", H.VAL_DICE), ("worst", H.VAL_WORST_DICE), ("es", H.VAL_ES_DICE))
                if c in h.columns
            }
            if H.VAL_WORST_GROUP in h.columns:
                selected["worst_group"] = str(r[H.VAL_WORST_GROUP])
    families = [k for k in figs if k.startswith("training/obj/")]
    return {
        "best_epoch": training.best_epoch,
        "select": training.select,
        "objective": training.objective,
        "epochs": int(pd.to_numeric(h["epoch"], errors="coerce").max()),
        "selected": selected,
        "families": families,
        "names": {k: OBJECTIVE_STATE.get(k.split("/")[-1], k.split("/")[-1]) for k in families},
    }


def _gallery_context(gallery: Any) -> dict[str, Any] | None:
    if gallery is None:
        return None
    attrs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for e in gallery.entries:
        attrs.setdefault(str(e["attribute"]), {}).setdefault(str(e["group"]), []).append(e)
    return {
        "metric": gallery.metric,
        "per_group": gallery.per_group,
        "notes": list(gallery.notes),
        "n": len(gallery.entries),
        "attributes": [
            {"name": a, "groups": [{"name": g, "cases": cs} for g, cs in groups.items()]} for a, groups in attrs.items()
        ],
    }


def _provenance_context(prov: Mapping[str, Any]) -> dict[str, Any]:
    items, blocks = [], []
    for key, value in prov.items():
        if key == "config" and isinstance(value, str):
            blocks.append(("config", value))
        elif isinstance(value, Mapping):
            blocks += [
                (f"{key}: {k}", v if isinstance(v, str) else json.dumps(v, indent=2, default=str))
                for k, v in value.items()
            ]
        elif isinstance(value, (list, tuple)):
            items.append((key, ", ".join(map(str, value))))
        else:
            items.append((key, str(value)))
    return {"items": items, "blocks": blocks}


def render_html(
    audit: Mapping[str, Any] | None,
    out_path: str | os.PathLike[str],
    *,
    cases: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
    paper_table: str | None = None,
    baseline: str | None = None,
    comparison_notes: Sequence[str] = (),
    audit_name: str | None = None,
    gallery: Any = None,
    training: TrainingView | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str = "duetfair audit report",
    min_n: int | None = None,
) -> Path:
    """Write a self-contained HTML report to ``out_path`` (atomically); return the path.

    Args:
        audit: the dict of :func:`duetfair.audit.audit_table` (None: a comparison-only report).
        out_path: target ``.html`` file.
        cases: the audited per-case table: tails, distributions and heatmaps (optional).
        comparison: one row per method (``method`` + higher-is-better score columns, optional
            ``_low``/``_high``), e.g. :func:`duetfair.audit.compare.report_frame`.
        paired: differences to the baseline (``method``, ``metric``, ``diff``, ``low``, ``high``,
            ``verdict``), e.g. :func:`duetfair.audit.compare.paired_differences`.
        paper_table: the papers' table as Markdown (:func:`duetfair.audit.compare.format_table`).
        baseline: name of the baseline of ``paired``.
        comparison_notes: sentences shown with the comparison (e.g. what the intervals resample).
        audit_name: whose audit it is, in a comparison report (e.g. the method shown).
        gallery: a :class:`~duetfair.audit.gallery.Gallery`, or a source with
            ``build(cases, audit) -> Gallery`` (:class:`~duetfair.audit.gallery.FolderGallery`).
        training: the training view of a run (:meth:`TrainingView.from_run`).
        provenance: entries over the defaults of :func:`provenance` (config, data, seed, ...).
        title: page title.
        min_n: heatmap cells and groups with fewer cases are greyed out / flagged (default: the
            audit's ``settings.min_group_n``, :data:`~duetfair.metrics.frame.MIN_GROUP_N`).
    """
    import jinja2

    require(audit is None or "metrics" in audit, "render_html: expected an audit dict with a 'metrics' entry")
    require(
        audit is not None or comparison is not None or paper_table is not None,
        "render_html: expected an audit or a comparison",
    )
    if comparison is not None:
        require("method" in comparison.columns, "render_html: the comparison table needs a 'method' column")
    if min_n is None:
        min_n = int((audit or {}).get("settings", {}).get("min_group_n", MIN_N))
    if gallery is not None and not hasattr(gallery, "entries") and audit is not None and cases is not None:
        gallery = _build_gallery(gallery, cases, audit)
    import warnings

    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # a control character in a name
        # a group named "$x^{$" is text, not TeX
        figs = build_figures(audit, cases, comparison, paired=paired, baseline=baseline, training=training, min_n=min_n)
        images = {k: _png(f) for k, f in figs.items()}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("duetfair.audit", "templates"), autoescape=jinja2.select_autoescape(["html"])
    )
    env.filters["fmt"] = fmt
    env.filters["pct"] = _pct
    env.filters["pvalue"] = _pvalue
    env.globals["fmt_ci"] = fmt_ci
    env.globals["fmt_signed_ci"] = fmt_signed_ci
    env.globals["itemset_label"] = itemset_label
    env.globals["hidden_name"] = _hidden_name
    env.globals["failure_header"] = _failure_header
    env.globals["missing_note"] = missing_note
    env.globals["metric_title"] = lambda key: metric_title(audit or {}, key)
    findings = findings_of(audit) if audit is not None else []
    comp = _comparison_context(comparison, paired, paper_table, baseline, comparison_notes)
    if comparison is not None:
        findings = (
            comparison_findings(
                comparison[
                    ["method", *_comparison_columns(comparison)]
                    + [c for c in comparison.columns if str(c).endswith(("_low", "_high")) or c == CONTENDER]
                ],
                paired,
                baseline,
                COMPARISON_LABELS,
            )
            + findings
        )
    slugs = {key: _slug(key) for key in (audit or {}).get("metrics", {})}
    train = _training_context(training, figs)
    gal = _gallery_context(gallery) if gallery is not None and hasattr(gallery, "entries") else None
    slices = slice_context(audit, slice_gallery(audit or {}, cases, getattr(gallery, "draw", None)))
    sections = [("findings", "Findings")]
    sections += [("hidden-slices", "Hidden failure slices")] if slices else []
    sections += [("comparison", "Methods")] if comp else []
    sections += [("training", "Training")] if train else []
    sections += [(f"metric-{slugs[k]}", k) for k in slugs]
    sections += [("gallery", "Failing cases")] if gal else []
    sections += [("provenance", "Provenance")]
    prov = {**_audit_provenance(audit), **dict(provenance or {})}
    html = env.get_template("report.html").render(
        title=title,
        audit=audit,
        settings=(audit or {}).get("settings", {}),
        images=images,
        finding_blocks=_finding_blocks(findings),
        audit_name=audit_name,
        cards=headline_cards(audit) if audit is not None else [],
        guarantees=guarantee_tables(audit),
        comparison=comp,
        training=train,
        gallery=gal,
        slices=slices,
        heatmaps={key: [k for k in images if k.startswith(f"heat/{key}/")] for key in slugs},
        slugs=slugs,
        sections=sections,
        provenance=_provenance_context(prov),
        min_n=min_n,
        version=prov.get("duetfair", ""),
    )
    return write_text(out_path, html)


def _finding_blocks(findings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Findings grouped for display: the comparison's (``kind`` methods), one block per metric (all
    but the first ``collapsed``), then the warnings."""
    blocks: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for f in findings:
        if f.get("level") == "warning":
            key = ("warnings", "Warnings")
        elif f.get("kind") in ("best_method", "vs_baseline"):
            key = ("methods", "Methods")
        elif f.get("kind") in SLICE_KINDS:
            key = ("slices", "Hidden failure slices")
        else:
            key = ("metric", str(f.get("metric") or ""))
        blocks.setdefault(key, []).append(f)
    rank = {"methods": 0, "slices": 1, "metric": 2, "warnings": 3}
    order = sorted(blocks, key=lambda k: rank[k[0]])
    out, metrics = [], 0
    for kind, title in order:
        out.append(
            {
                "kind": kind,
                "title": title,
                "entries": blocks[(kind, title)],
                "collapsed": kind == "metric" and metrics > 0,
            }
        )
        metrics += kind == "metric"
    return out


def _build_gallery(source: Any, cases: pd.DataFrame, audit: Mapping[str, Any]) -> Any:
    """``source.build(cases, audit)``; a gallery that cannot be built becomes a note, never an error."""
    from duetfair.audit.gallery import Gallery

    try:
        return source.build(cases, audit)
    except Exception as exc:  # noqa: BLE001 - the report is written without the pictures
        return Gallery(notes=[f"gallery not drawn: {' '.join(str(exc).split())[:200]}"])


# ---- console summary ------------------------------------------------------------------------


def render_summary(audit: Mapping[str, Any], *, top_subgroups: int = 3) -> str:
    """A short plain-text summary of an audit (what a console prints)."""
    lines: list[str] = []
    for key, m in audit["metrics"].items():
        lines.append(
            f"{metric_title(audit, key)}: overall {fmt_ci(m['overall']['mean'], m['overall']['ci'])} "
            f"over {m['n_cases']} cases{missing_note(m)}"
        )
        for attr, a in m["attributes"].items():
            lines.append(
                f"  by {attr:<10} worst {a['worst_group']} {fmt(a['worst_mean'])}, gap {fmt(a['gap'])}, "
                f"ES {fmt_ci(a['es'], a['es_ci'])}, worst-group CVaR10 {fmt(a['worst_cvar10'])}"
            )
        for sg in m.get("subgroups", [])[:top_subgroups]:
            lines.append(
                f"  subgroup {itemset_label(sg['itemset'])}: n={sg['n']}, mean {fmt(sg['mean'])} "
                f"({float(sg['divergence']):+.3f}, t={fmt(sg['t'], 1)}, q={_pvalue(sg.get('q_value'))})"
            )
        if key == next(iter(audit["metrics"])):
            lines += summary_lines(audit)
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(
                f"  hidden hard subtype ({_hidden_name(h)}): {h['n']} cases, mean {fmt(h['mean'])} vs "
                f"{fmt(h['mean_rest'])}; {_pct(h['share_in_worst_decile'])} of the worst 10% of cases"
            )
    for s in audit.get("hidden_slices", [])[:top_subgroups]:
        lines.append(
            f"hidden failure slice ({s['within']}): {s['definition']}: n={s['n']}, mean {fmt(s['mean'])} vs "
            f"{fmt(s['mean_rest'])}, gap {fmt_signed_ci(s['gap'], s['gap_ci'])}, q={_pvalue(s['q'])}"
        )
    return "\n".join(lines) + "\n"
