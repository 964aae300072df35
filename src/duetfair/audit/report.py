"""Readable audit reports: Markdown and a self-contained HTML page with plots.

Both render the audit dict of :func:`duetfair.audit.audit_table`. The HTML report is one file
(jinja2 template ``templates/report.html``, matplotlib figures embedded as base64 PNG), written
atomically, with:

* per metric and attribute: group means with their bootstrap intervals (n per group in the labels);
* with the per-case table: the per-case distribution in every group (box + points), the
  hidden-subtype cases highlighted when the table marks them, so a failing tail is visible;
* with a ``comparison`` table (one row per method: ``method`` and metric columns such as ``dice``,
  ``es_dice``, ``worst_group_dice``, ``cvar10``, optional ``<col>_low`` / ``<col>_high``): a method
  comparison chart and table.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.discovery import itemset_label
from duetfair.errors import require
from duetfair.io import write_text

COMPARISON_COLUMNS = ("dice", "es_dice", "worst_group_dice", "cvar10")
"""Default comparison columns plotted when present."""


# ---- formatting -------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    """Number -> fixed-point text; None/NaN -> ``n/a``."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def fmt_ci(mean: Any, ci: Sequence[Any] | None, digits: int = 3) -> str:
    """``value (low-high)`` as the papers print it."""
    if not ci or ci[0] is None or (isinstance(ci[0], float) and math.isnan(ci[0])):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ({fmt(ci[0], digits)}-{fmt(ci[1], digits)})"


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.1f}%"


# ---- markdown -------------------------------------------------------------------------------


def _pvalue(p: Any) -> str:
    """A p- or q-value: 3 significant digits, ``<0.001`` below that, ``-`` when undefined."""
    if p is None or not math.isfinite(float(p)):
        return "-"
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def _hidden_name(h: Mapping[str, Any]) -> str:
    """The hidden column of an audit's ``hidden_subtype`` block: ``morphology`` or ``morphology = irregular``."""
    name = str(h.get("column", "hidden_subtype"))
    return name if not h.get("hard") else f"{name} = {', '.join(map(str, h['hard']))}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render_markdown(audit: Mapping[str, Any], *, title: str = "duetfair audit") -> str:
    """Markdown report of an audit dict (same content as the JSON, for people)."""
    s = audit.get("settings", {})
    lines = [f"# {title}", ""]
    lines.append(
        f"{audit.get('n_rows', 0)} rows; attributes: {', '.join(audit.get('by', []))}; "
        f"{s.get('n_boot', 0)} bootstrap resamples (seed {s.get('seed', 0)}, {int(100 * s.get('level', 0.95))}% percentile intervals); "
        f"equity-scaled variant `{s.get('es_variant', 'sum_abs')}`; CVaR fraction {s.get('cvar_alpha', 0.1)}."
    )
    lines.append("")
    for key, m in audit["metrics"].items():
        direction = "higher is better" if m.get("higher_is_better", True) else "lower is better"
        lines += [f"## {key} ({direction})", ""]
        lines.append(f"Overall: **{fmt_ci(m['overall']['mean'], m['overall']['ci'])}** over {m['n_cases']} cases" + (f" ({m['n_missing']} without a defined value left out)" if m.get("n_missing") else "") + ".")
        lines.append("")
        for attr, a in m["attributes"].items():
            lines += [f"### {key} by {attr}", ""]
            rows = [[str(g["value"]), str(g["n"]), fmt_ci(g["mean"], g["ci"]), fmt(g["cvar10"]), _pct(g["failure_rate"])] for g in a["groups"]]
            lines += _md_table(["group", "n", f"mean {key} (CI)", "CVaR10", "failure rate"], rows)
            lines.append("")
            extra = f"; {a['n_unknown']} cases with unknown {attr} count only in the overall mean" if a.get("n_unknown") else ""
            lines.append(
                f"Worst group **{a['worst_group']}** ({fmt(a['worst_mean'])}), best {a['best_group']} ({fmt(a['best_mean'])}), "
                f"gap {fmt(a['gap'])}; ES-{key} **{fmt_ci(a['es'], a['es_ci'])}** (std variant {fmt(a['es_std'])}); "
                f"skewness {fmt(a['skewness'])}; worst-group CVaR10 {fmt(a['worst_cvar10'])}{extra}."
            )
            lines.append("")
        if m.get("subgroups"):
            lines += [f"### Divergent subgroups of {key}", ""]
            rows = [[itemset_label(sg["itemset"]), str(sg["n"]), _pct(sg["support"]), fmt(sg["mean"]),
                     f"{float(sg['divergence']):+.3f}", fmt(sg.get("welch_t"), 1), _pvalue(sg.get("p_value")),
                     _pvalue(sg.get("q_value")), "yes" if sg.get("significant") else "no"] for sg in m["subgroups"]]
            lines += _md_table(["subgroup", "n", "support", "mean", "divergence", "t (Welch)", "p", "q (BH)", "significant"],
                               rows)
            lines.append("")
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(
                f"Hidden hard subtype ({_hidden_name(h)}): {h['n']} cases, mean {key} {fmt(h['mean'])} vs "
                f"{fmt(h['mean_rest'])} for the rest; "
                f"they are {_pct(h['share_in_worst_decile'])} of the worst 10% of cases."
            )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---- plots ----------------------------------------------------------------------------------


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_group_means(metric_key: str, attr: str, summary: Mapping[str, Any], overall: Mapping[str, Any]) -> Any:
    """Figure: mean of ``metric_key`` per group of ``attr`` with CI error bars, overall as a line."""
    groups = summary["groups"]
    labels = [f"{g['value']}\n(n={g['n']})" for g in groups]
    means = np.array([np.nan if g["mean"] is None else g["mean"] for g in groups], dtype=float)
    lo = np.array([np.nan if g["ci"][0] is None else g["ci"][0] for g in groups], dtype=float)
    hi = np.array([np.nan if g["ci"][1] is None else g["ci"][1] for g in groups], dtype=float)
    fig = _figure(max(4.0, 0.9 * len(groups) + 2.0), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    worst = summary["worst_group"]
    colors = ["#c0392b" if str(g["value"]) == str(worst) else "#2c7fb8" for g in groups]
    # a percentile interval need not contain the point estimate (tiny, skewed groups)
    err = np.clip(np.vstack([np.nan_to_num(means - lo), np.nan_to_num(hi - means)]), 0.0, None)
    ax.bar(x, means, color=colors, alpha=0.85, width=0.6)
    ax.errorbar(x, means, yerr=err, fmt="none", ecolor="black", capsize=4, lw=1.2)
    ax.axhline(overall["mean"], color="gray", ls="--", lw=1, label=f"overall {overall['mean']:.3f}")
    ax.set_xticks(x, labels)
    finite = np.concatenate([lo[np.isfinite(lo)], means[np.isfinite(means)]])
    if finite.size:
        low = float(finite.min())
        top = float(np.nanmax(np.concatenate([hi[np.isfinite(hi)], means[np.isfinite(means)]])))
        pad = 0.15 * max(top - low, 1e-3)
        ax.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, top + pad)
    ax.set_ylabel(f"mean {metric_key} (95% CI)")
    ax.set_xlabel(attr)
    ax.set_title(f"{metric_key} by {attr}: worst {worst}, ES {fmt(summary['es'])}")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_group_distribution(metric: str, attr: str, values: np.ndarray, labels: pd.Series, hidden: np.ndarray | None, seed: int = 0) -> Any:
    """Figure: per-case ``metric`` per group (box + jittered points; hidden subtype in red)."""
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
            ax.scatter(i + jitter[~h], v[~h], s=size, color="#2c7fb8", alpha=0.35, lw=0)
            ax.scatter(i + jitter[h], v[h], s=size + 4, color="#c0392b", alpha=0.7, lw=0, label="hidden hard subtype" if i == 0 else None)
        else:
            ax.scatter(i + jitter, v, s=size, color="#2c7fb8", alpha=0.35, lw=0)
    ax.set_xticks(np.arange(len(cats)), [f"{c}\n(n={d.size})" for c, d in zip(cats, data)])
    ax.set_ylabel(f"per-case {metric}")
    ax.set_xlabel(attr)
    ax.set_title(f"per-case {metric} by {attr}")
    if hidden is not None and hidden.any():
        ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_comparison(comparison: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Figure: grouped bars, one group per metric column, one bar per method (CI when given)."""
    methods = comparison["method"].astype(str).tolist()
    fig = _figure(max(5.0, 1.6 * len(columns) + 2.0), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(columns))
    for j, method in enumerate(methods):
        row = comparison.iloc[j]
        vals = np.array([float(row[c]) for c in columns])
        lo = np.array([float(row.get(f"{c}_low", np.nan)) for c in columns])
        hi = np.array([float(row.get(f"{c}_high", np.nan)) for c in columns])
        pos = x - 0.4 + width * (j + 0.5)
        ax.bar(pos, vals, width=width * 0.95, label=method)
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        if has_ci.any():
            err = np.clip(np.vstack([vals[has_ci] - lo[has_ci], hi[has_ci] - vals[has_ci]]), 0.0, None)
            ax.errorbar(pos[has_ci], vals[has_ci], yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
        # value labels above the interval (or the bar), vertical so neighbours never overlap
        tops = np.where(has_ci, np.fmax(hi, vals), vals)
        for px, top, v in zip(pos, tops, vals):
            ax.text(px, top, f" {fmt(v)}", ha="center", va="bottom", rotation=90, fontsize=7)
    ax.set_xticks(x, list(columns))
    finite = comparison[list(columns)].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        top = float(finite.max())
        ax.set_ylim(max(0.0, float(finite.min()) - 0.1), top + 0.22 if top <= 1 else top * 1.3)
    ax.set_ylabel("score (higher is better)")
    ax.legend(fontsize=8, ncol=min(6, len(methods)), loc="upper right")
    ax.set_title("method comparison (error bars: 95% CI where given)")
    ax.grid(axis="y", alpha=0.3)
    return fig


# ---- html -----------------------------------------------------------------------------------


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


def build_figures(audit: Mapping[str, Any], cases: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None) -> dict[str, Any]:
    """All report figures (matplotlib ``Figure`` objects) keyed ``means/<metric>/<attr>``,
    ``dist/<metric>/<attr>`` and ``comparison``."""
    from duetfair.data.groups import GroupSpec, HiddenColumn

    figs: dict[str, Any] = {}
    hidden_col = HiddenColumn.parse(audit.get("settings", {}).get("hidden_column"))
    spec = GroupSpec.from_dict(audit["group_spec"]) if "group_spec" in audit else None
    for key, m in audit["metrics"].items():
        for attr, summary in m["attributes"].items():
            figs[f"means/{key}/{attr}"] = plot_group_means(key, attr, summary, m["overall"])
            if cases is None:
                continue
            base, view = _metric_view(cases, key)
            if base not in view.columns or len(view) == 0:
                continue
            values = pd.to_numeric(view[base], errors="coerce").to_numpy(dtype=float)
            labels = GroupSpec.for_table(view, [attr], base=spec).labels(view, attr)
            ok = np.isfinite(values) & labels.notna().to_numpy()
            hidden = None
            if hidden_col.name in view.columns:
                hidden = (hidden_col.flags(view[hidden_col.name]) > 0)[ok]
            figs[f"dist/{key}/{attr}"] = plot_group_distribution(base, attr, values[ok], labels[ok].reset_index(drop=True), hidden)
    if comparison is not None:
        columns = [c for c in COMPARISON_COLUMNS if c in comparison.columns] or [
            c for c in comparison.columns if c != "method" and not c.endswith(("_low", "_high")) and pd.api.types.is_numeric_dtype(comparison[c])
        ]
        if columns:
            figs["comparison"] = plot_comparison(comparison, columns)
    return figs


def render_html(
    audit: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    *,
    cases: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    title: str = "duetfair audit report",
) -> Path:
    """Write a self-contained HTML report of ``audit`` to ``out_path`` (atomically); return the path.

    Args:
        audit: the dict of :func:`duetfair.audit.audit_table`.
        out_path: target ``.html`` file.
        cases: the audited per-case table, for per-case distribution plots (optional).
        comparison: one row per method (``method`` + score columns, optional ``_low``/``_high``).
        title: page title.
    """
    import jinja2

    require("metrics" in audit, "render_html: expected an audit dict with a 'metrics' entry")
    if comparison is not None:
        require("method" in comparison.columns, "render_html: the comparison table needs a 'method' column")
    figs = build_figures(audit, cases, comparison)
    images = {k: _png(f) for k, f in figs.items()}
    env = jinja2.Environment(loader=jinja2.PackageLoader("duetfair.audit", "templates"), autoescape=jinja2.select_autoescape(["html"]))
    env.filters["fmt"] = fmt
    env.filters["pct"] = _pct
    env.filters["pvalue"] = _pvalue
    env.globals["fmt_ci"] = fmt_ci
    env.globals["itemset_label"] = itemset_label
    env.globals["hidden_name"] = _hidden_name
    comp_rows = None
    comp_cols: list[str] = []
    if comparison is not None:
        comp_cols = [c for c in comparison.columns if c != "method" and not str(c).endswith(("_low", "_high"))]
        comp_rows = [
            {"method": str(r["method"]), "cells": [fmt_ci(r[c], [r.get(f"{c}_low"), r.get(f"{c}_high")]) if f"{c}_low" in comparison.columns else fmt(r[c]) for c in comp_cols]}
            for _, r in comparison.iterrows()
        ]
    html = env.get_template("report.html").render(
        title=title, audit=audit, settings=audit.get("settings", {}), images=images, comparison_rows=comp_rows, comparison_columns=comp_cols
    )
    return write_text(out_path, html)


# ---- console summary ------------------------------------------------------------------------


def render_summary(audit: Mapping[str, Any], *, top_subgroups: int = 3) -> str:
    """A short plain-text summary of an audit (what a console prints)."""
    lines: list[str] = []
    for key, m in audit["metrics"].items():
        lines.append(f"{key}: overall {fmt_ci(m['overall']['mean'], m['overall']['ci'])} over {m['n_cases']} cases")
        for attr, a in m["attributes"].items():
            lines.append(
                f"  by {attr:<10} worst {a['worst_group']} {fmt(a['worst_mean'])}, gap {fmt(a['gap'])}, "
                f"ES {fmt_ci(a['es'], a['es_ci'])}, worst-group CVaR10 {fmt(a['worst_cvar10'])}"
            )
        for sg in m.get("subgroups", [])[:top_subgroups]:
            lines.append(f"  subgroup {itemset_label(sg['itemset'])}: n={sg['n']}, mean {fmt(sg['mean'])} "
                         f"({float(sg['divergence']):+.3f}, t={fmt(sg['t'], 1)}, q={_pvalue(sg.get('q_value'))})")
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(f"  hidden hard subtype ({_hidden_name(h)}): {h['n']} cases, mean {fmt(h['mean'])} vs "
                         f"{fmt(h['mean_rest'])}; {_pct(h['share_in_worst_decile'])} of the worst 10% of cases")
    return "\n".join(lines) + "\n"
