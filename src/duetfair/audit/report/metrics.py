"""The section of every audited metric: overall value, per attribute the group table with the
worst group marked, the equity-scaled value and the tail, figures (group means with intervals;
with the per-case table the tail of every group with its CVaR region, the per-case distribution
with the hidden subtype highlighted and, for the first metric, intersectional heatmaps over pairs
of attributes), divergent subgroups and the hidden subtype. Template ``metrics.html``; Markdown
:func:`markdown`."""

from __future__ import annotations

import itertools
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.discovery import itemset_label
from duetfair.audit.formatting import cutoff_text, fmt, fmt_ci, pct, pvalue
from duetfair.audit.markdown import md_text
from duetfair.audit.metric_notes import metric_title, missing_note
from duetfair.audit.report.metric_plots import plot_group_distribution, plot_group_means, plot_heatmap, plot_tail
from duetfair.audit.report.section import ReportData, Section
from duetfair.audit.report.tables import markdown_table

MAX_HEATMAPS = 6
"""At most this many attribute pairs get an intersectional heatmap."""


def hidden_name(h: Mapping[str, Any]) -> str:
    """The hidden column of an audit's ``hidden_subtype`` block: ``morphology`` or ``morphology = irregular``."""
    name = str(h.get("column", "hidden_subtype"))
    return name if not h.get("hard") else f"{name} = {', '.join(map(str, h['hard']))}"


def failure_header(key: str, a: Mapping[str, Any], m: Mapping[str, Any]) -> str:
    """``failures (dice < 0.5)``: the failure-rate column named with its cut-off."""
    threshold = a.get("failure_threshold")
    if threshold is None:
        return "failure rate"
    return f"failures ({cutoff_text(key, threshold, bool(m.get('higher_is_better', True)))})"


def slug(text: str) -> str:
    """The anchor of a metric's section (``dice[1]`` -> ``dice-1``)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


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


def _case_figures(
    key: str, m: Mapping[str, Any], view: pd.DataFrame, values: np.ndarray, groups: Any, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """``tail/<key>/<attr>`` and ``dist/<key>/<attr>``: the per-case ``values [n]`` of the rows
    ``view`` that metric ``key`` covers, by the groups (``GroupSpec``) of every attribute."""
    from duetfair.data.groups import HiddenColumn

    figs: dict[str, Any] = {}
    hidden_col = HiddenColumn.parse(settings.get("hidden_column"))
    base = _metric_view(view, key)[0]
    for attr, summary in m["attributes"].items():
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
            higher_better=bool(m.get("higher_is_better", True)),
            cvar_method=str(settings.get("cvar_method", "fractional")),
        )
        hidden = (hidden_col.flags(view[hidden_col.name]) > 0)[ok] if hidden_col.name in view.columns else None
        figs[f"dist/{key}/{attr}"] = plot_group_distribution(base, attr, values[ok], lab, hidden)
    return figs


def _heatmaps(
    key: str, m: Mapping[str, Any], view: pd.DataFrame, values: np.ndarray, spec: Any, min_n: int
) -> dict[str, Any]:
    """``heat/<key>/<a>+<b>``: the mean over every pair of the attributes (intersections split)."""
    from duetfair.data.groups import GroupSpec

    pairs = _heatmap_pairs(list(m["attributes"]), list(view.columns))
    if not pairs:
        return {}
    base = _metric_view(view, key)[0]
    pair_spec = GroupSpec.for_table(view, [p for pair in pairs for p in pair], base=spec)
    figs: dict[str, Any] = {}
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
                higher_better=bool(m.get("higher_is_better", True)),
            )
    return figs


def figures(data: ReportData) -> dict[str, Any]:
    """``means/<key>/<attr>``; with the per-case table ``tail/...``, ``dist/...`` and, for the first
    metric, ``heat/<key>/<a>+<b>``."""
    from duetfair.data.groups import GroupSpec

    audit, cases = data.audit, data.cases
    if audit is None:
        return {}
    figs: dict[str, Any] = {}
    spec = GroupSpec.from_dict(audit["group_spec"]) if "group_spec" in audit else None
    for index, (key, m) in enumerate(audit["metrics"].items()):
        for attr, summary in m["attributes"].items():
            figs[f"means/{key}/{attr}"] = plot_group_means(key, attr, summary, m["overall"])
        if cases is None:
            continue
        base, view = _metric_view(cases, key)
        if base not in view.columns or not len(view):
            continue
        values = pd.to_numeric(view[base], errors="coerce").to_numpy(dtype=float)
        groups = GroupSpec.for_table(view, list(m["attributes"]), base=spec)
        figs.update(_case_figures(key, m, view, values, groups, audit.get("settings", {})))
        if index == 0:
            figs.update(_heatmaps(key, m, view, values, spec, data.min_n))
    return figs


# ---- page ------------------------------------------------------------------------------------


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``slugs`` (metric key -> anchor) and ``heatmaps`` (metric key -> figure keys)."""
    if data.audit is None:
        return None
    slugs = {key: slug(key) for key in data.audit.get("metrics", {})}
    return {"slugs": slugs, "heatmaps": {key: [k for k in figs if k.startswith(f"heat/{key}/")] for key in slugs}}


def nav(ctx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One entry per metric."""
    return [(f"metric-{s}", key) for key, s in ctx["slugs"].items()]


SECTION = Section(name="metrics", template="metrics.html", context=context, nav=nav, figures=figures)


# ---- markdown --------------------------------------------------------------------------------


def _markdown_attribute(key: str, attr: str, a: Mapping[str, Any], m: Mapping[str, Any]) -> list[str]:
    """``### key by attr``: the group table and the attribute's summary sentence."""
    rows = [
        [
            str(g["value"]) + (" (worst)" if str(g["value"]) == str(a["worst_group"]) else ""),
            str(g["n"]),
            fmt_ci(g["mean"], g["ci"]),
            fmt(g["cvar10"]),
            fmt(g.get("p10")),
            fmt(g.get("std")),
            pct(g["failure_rate"]),
        ]
        for g in a["groups"]
    ]
    header = ["group", "n", f"mean {key} (95% CI)", "CVaR10", "10th pct", "std", failure_header(key, a, m)]
    extra = (
        f"; {a['n_unknown']} cases with unknown {md_text(attr)} count only in the overall mean"
        if a.get("n_unknown")
        else ""
    )
    return [
        f"### {md_text(key)} by {md_text(attr)}",
        "",
        *markdown_table(header, rows),
        "",
        f"Worst group **{md_text(a['worst_group'])}** ({fmt(a['worst_mean'])}), best "
        f"{md_text(a['best_group'])} ({fmt(a['best_mean'])}), gap {fmt(a['gap'])}; "
        f"ES-{md_text(key)} **{fmt_ci(a['es'], a['es_ci'])}** (std variant {fmt(a['es_std'])}); "
        f"skewness {fmt(a['skewness'])}; worst-group CVaR10 {fmt(a['worst_cvar10'])}{extra}.",
        "",
    ]


def _markdown_subgroups(key: str, m: Mapping[str, Any]) -> list[str]:
    """``### Divergent subgroups of key`` (empty without discovery)."""
    if not m.get("subgroups"):
        return []
    rows = [
        [
            itemset_label(sg["itemset"]),
            str(sg["n"]),
            pct(sg["support"]),
            fmt(sg["mean"]),
            f"{float(sg['divergence']):+.3f}",
            fmt(sg.get("welch_t"), 1),
            pvalue(sg.get("p_value")),
            pvalue(sg.get("q_value")),
            "yes" if sg.get("significant") else "no",
        ]
        for sg in m["subgroups"]
    ]
    header = ["subgroup", "n", "support", "mean", "divergence", "t (Welch)", "p", "q (BH)", "significant"]
    return [f"### Divergent subgroups of {md_text(key)}", "", *markdown_table(header, rows), ""]


def markdown(audit: Mapping[str, Any]) -> list[str]:
    """One ``##`` block per metric: overall value, groups per attribute, subgroups, hidden subtype."""
    lines: list[str] = []
    for key, m in audit["metrics"].items():
        direction = "higher is better" if m.get("higher_is_better", True) else "lower is better"
        lines += [f"## {md_text(metric_title(audit, key))} ({direction})", ""]
        lines.append(
            f"Overall: **{fmt_ci(m['overall']['mean'], m['overall']['ci'])}** over {m['n_cases']} cases"
            f"{missing_note(m)}."
        )
        lines.append("")
        for attr, a in m["attributes"].items():
            lines += _markdown_attribute(key, attr, a, m)
        lines += _markdown_subgroups(key, m)
        if m.get("hidden_subtype"):
            h = m["hidden_subtype"]
            lines.append(
                f"Hidden hard subtype ({md_text(hidden_name(h))}): {h['n']} cases, mean {md_text(key)} "
                f"{fmt(h['mean'])} vs "
                f"{fmt(h['mean_rest'])} for the rest; "
                f"they are {pct(h['share_in_worst_decile'])} of the worst 10% of cases."
            )
            lines.append("")
    return lines
