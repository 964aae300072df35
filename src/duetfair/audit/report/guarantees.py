"""Rendering of the certified statements: the per-group chart of the failure-share bound against the
cut-off, and the table of guarantees, evidence and tested gaps (Markdown, HTML, console).

Inputs are the blocks :mod:`duetfair.audit.certify` adds to an audit dict; an audit without them
renders nothing here. :func:`certify_figures` draws, for the first metric, one figure per attribute
(``certify/<metric>/<attr>``): one panel per group with the observed failure share at every
cut-off, its one-sided upper bound at that cut-off (Clopper-Pearson), the band that holds at all
cut-offs at once and the band that holds for all cut-offs and all groups of the attribute at once;
the failure cut-off is marked with its bound. :func:`guarantee_tables` gives the rows of the table
that the HTML report (``templates/certify.html``, inside the findings) and :func:`markdown_guarantees` print.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from duetfair.audit.formatting import fmt, fmt_ci, fmt_signed_ci, pct, pvalue
from duetfair.audit.markdown import md_text
from duetfair.audit.report.figures import figure
from duetfair.audit.report.tables import markdown_table

MAX_PANELS = 12
"""At most this many groups (highest bound at the cut-off first) get a panel."""

_SIGN = {">=": "\u2265", "<=": "\u2264"}
_BOUND = "#c0392b"
_BAND = "#2c7fb8"


def _has_curves(m: Mapping[str, Any]) -> bool:
    return any(g.get("failure_curve") for a in m["attributes"].values() for g in a["groups"])


def first_certified(audit: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    """``(key, metric block)`` of the first metric whose groups carry failure curves."""
    for key, m in (audit or {}).get("metrics", {}).items():
        if _has_curves(m):
            return key, m
    return None


def _rank(groups: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Groups with the highest bound at the cut-off first (the largest share at the median cut-off
    without one)."""

    def key(g: Mapping[str, Any]) -> float:
        c = g.get("certificate") or {}
        if c.get("cutoff") is not None:
            return -float(c["upper"])
        curve = g["failure_curve"]
        return -float(np.median(curve["upper"]))

    return sorted(groups, key=key)


def _panel(ax: Any, g: Mapping[str, Any], *, hb: bool, conf: str, first: bool) -> None:
    curve = g["failure_curve"]
    x = np.asarray(curve["cutoffs"], dtype=float)
    share = np.asarray(curve["failures"], dtype=float) / max(int(g["n"]), 1)
    ax.plot(x, share, color="0.35", lw=1.2, marker=".", ms=4, label="observed share")
    ax.plot(x, curve["upper"], color=_BOUND, lw=1.8, marker="o", ms=3, label=f"{conf} bound at each cut-off")
    ax.plot(x, curve["band"], color=_BAND, lw=1.3, ls="--", label="holds at all cut-offs at once")
    if curve.get("band_all_groups"):
        ax.plot(x, curve["band_all_groups"], color=_BAND, lw=1.1, ls=":", label="... and for all groups at once")
    ax.fill_between(x, share, curve["upper"], color=_BOUND, alpha=0.10, lw=0)
    c = g.get("certificate") or {}
    if c.get("cutoff") is not None:
        t, up = float(c["cutoff"]), float(c["upper"])
        ax.axvline(t, color="black", ls=(0, (1, 2)), lw=1)
        ax.plot([t], [up], "D", color=_BOUND, ms=6, mfc="white", mew=1.6)
        ax.annotate(
            f"\u2264 {pct(up)}  ({c['failures']}/{c['n']} failed)",
            xy=(t, up),
            xytext=(-6 if hb else 6, 14),
            textcoords="offset points",
            ha="right" if hb else "left",
            va="bottom",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": _BOUND, "lw": 0.8, "alpha": 0.9},
            arrowprops={"arrowstyle": "-", "color": _BOUND, "lw": 0.8},
        )
    ax.set_ylim(0.0, 1.02)
    ax.set_title(f"{g['value']} (n={g['n']})", fontsize=9)
    ax.grid(alpha=0.3)
    if first:
        ax.legend(loc="upper left" if hb else "upper right", fontsize=6.5, framealpha=0.85)


def plot_failure_bounds(key: str, attr: str, a: Mapping[str, Any], *, higher_better: bool, confidence: float) -> Any:
    """Figure: one panel per group of ``attr``: the share of cases failing against the cut-off with
    its upper confidence bounds (see the module docstring)."""
    groups = _rank([g for g in a["groups"] if g.get("failure_curve")])[:MAX_PANELS]
    ncol = min(len(groups), 4)
    nrow = math.ceil(len(groups) / ncol)
    fig = figure(3.0 * ncol + 0.6, 2.5 * nrow + 0.7)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)
    conf = f"{100 * confidence:g}%"
    for i, g in enumerate(groups):
        _panel(axes[i // ncol][i % ncol], g, hb=higher_better, conf=conf, first=i == 0)
    for i in range(len(groups), nrow * ncol):
        axes[i // ncol][i % ncol].set_visible(False)
    op = "<" if higher_better else ">"
    for ax in axes[-1]:
        ax.set_xlabel(f"cut-off t (a case fails when {key} {op} t)", fontsize=8)
    for row in axes:
        row[0].set_ylabel("share of cases failing", fontsize=8)
    fig.suptitle(f"{key} by {attr}: how many cases can fail? ({conf} upper bounds, worst first)", fontsize=10)
    return fig


def certify_figures(audit: Mapping[str, Any] | None) -> dict[str, Any]:
    """``certify/<key>/<attr>`` figures of the first certified metric (see the module docstring)."""
    found = first_certified(audit)
    if found is None or audit is None:
        return {}
    key, m = found
    conf = float(audit.get("settings", {}).get("confidence", 0.95))
    hb = bool(m.get("higher_is_better", True))
    return {
        f"certify/{key}/{attr}": plot_failure_bounds(key, attr, a, higher_better=hb, confidence=conf)
        for attr, a in m["attributes"].items()
        if any(g.get("failure_curve") for g in a["groups"])
    }


# ---- tables --------------------------------------------------------------------------------


def _row(g: Mapping[str, Any], hb: bool) -> dict[str, str]:
    c, new = g.get("certificate") or {}, g.get("new_case") or {}
    test, e = g.get("gap_test") or {}, g.get("evidence") or {}
    has_cut = c.get("cutoff") is not None
    share_ci = c.get("share_ci") or [None, None]
    needed = e.get("n_needed")
    return {
        "group": str(g["value"]),
        "n": str(g["n"]),
        "failing": f"{c['failures']}/{c['n']}" if has_cut else "-",
        "share": f"{pct(c['share'])} ({pct(share_ci[0])}-{pct(share_ci[1])})" if has_cut else "-",
        "upper": f"\u2264 {pct(c['upper'])}" if has_cut else "-",
        "upper_all": f"\u2264 {pct(c.get('upper_all_groups'))}" if has_cut else "-",
        "new_case": f"{_SIGN[new['direction']]} {fmt(new['bound'])}" if new.get("bound") is not None else "too few",
        "diff": fmt_signed_ci(test.get("diff"), test.get("ci")) if test else "reference",
        "q": pvalue(test.get("q_value")) if test else "-",
        "detectable": fmt(e.get("detectable_gap")) if e else "-",
        "needed": "-" if not e or e.get("detect") is None else (f"{needed} (+{e['more_cases']})" if needed else "n/a"),
        "verdict": str(g.get("verdict", "")),
    }


def _interval(block: Mapping[str, Any] | None) -> str:
    """``estimate (low-high)``; a one-sided interval (a distance's unbounded tail) as ``(at least low)``."""
    block = block or {}
    est, ci = block.get("estimate"), list(block.get("ci") or [None, None])
    if ci[0] is not None and ci[1] is None:
        return f"{fmt(est)} (at least {fmt(ci[0])})"
    if ci[0] is None and ci[1] is not None:
        return f"{fmt(est)} (at most {fmt(ci[1])})"
    return fmt_ci(est, ci)


HEADER = {
    "group": "group",
    "n": "n",
    "failing": "failing",
    "share": "share (CI)",
    "upper": "at most",
    "upper_all": "at most, all groups",
    "new_case": "new case",
    "diff": "difference to reference (CI)",
    "q": "q (BH)",
    "detectable": "detectable gap",
    "needed": "cases for the gap to detect",
    "verdict": "verdict",
}
"""Columns of the guarantees table."""


def guarantee_tables(audit: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Context of the guarantees table of the first certified metric: ``{"metric", "cutoff",
    "confidence", "detect", "content", "header", "attributes": [{"name", "reference", "rows",
    "worst", "gap", "worst_cvar"}]}``; None without certificates."""
    found = first_certified(audit)
    if found is None or audit is None:
        return None
    key, m = found
    s = audit.get("settings", {})
    hb = bool(m.get("higher_is_better", True))
    attrs = []
    for attr, a in m["attributes"].items():
        sel = a.get("selection") or {}
        attrs.append(
            {
                "name": attr,
                "reference": "the rest" if a.get("reference", "rest") == "rest" else a["reference"],
                "rows": [_row(g, hb) for g in a["groups"]],
                "worst": _interval(sel.get("worst_mean")),
                "gap": _interval(sel.get("gap")),
                "worst_cvar": _interval(sel.get("worst_cvar10")),
            }
        )
    cutoff = next((a.get("failure_threshold") for a in m["attributes"].values()), None)
    return {
        "metric": key,
        "cutoff": None if cutoff is None else f"{key.partition('[')[0]} {'<' if hb else '>'} {fmt(cutoff, 3)}",
        "confidence": f"{100 * float(s.get('confidence', 0.95)):g}%",
        "detect": (s.get("detect") or {}).get(key.partition("[")[0]),
        "content": s.get("new_case_content", 0.9),
        "header": HEADER,
        "attributes": attrs,
    }


def markdown_guarantees(audit: Mapping[str, Any]) -> list[str]:
    """The ``## Guarantees`` block of the Markdown report (empty without certificates)."""
    ctx = guarantee_tables(audit)
    if ctx is None:
        return []
    cut = f"failing = {ctx['cutoff']}; " if ctx["cutoff"] else ""

    lines = [
        f"## Guarantees, evidence and tested gaps ({md_text(ctx['metric'])})",
        "",
        f"{cut}bounds at {ctx['confidence']} confidence (Clopper-Pearson; 'all groups': Sidak over the attribute's "
        f"groups); new case: bound met with probability {ctx['content']:g} (order statistic); differences: "
        f"Welch intervals, q: Benjamini-Hochberg over every test of the audit.",
        "",
    ]
    for a in ctx["attributes"]:
        lines += [f"**{md_text(a['name'])}** (reference: {md_text(a['reference'])})", ""]
        lines += markdown_table(list(HEADER.values()), [[r[k] for k in HEADER] for r in a["rows"]])
        lines += [
            "",
            f"Worst-group mean {a['worst']}; gap {a['gap']}; worst-group CVaR10 {a['worst_cvar']} "
            "(intervals that hold whichever group is the worst).",
            "",
        ]
    return lines


def summary_lines(audit: Mapping[str, Any]) -> list[str]:
    """Console lines of the first certified metric: the highest failure bound and the groups with
    insufficient evidence, per attribute."""
    found = first_certified(audit)
    if found is None:
        return []
    key, m = found
    out = []
    for attr, a in m["attributes"].items():
        certs = [g for g in a["groups"] if (g.get("certificate") or {}).get("cutoff") is not None]
        parts = []
        if certs:
            g = max(certs, key=lambda g: float(g["certificate"]["upper"]))
            c = g["certificate"]
            parts.append(f"at most {pct(c['upper'])} of {g['value']} fail ({c['failures']}/{c['n']})")
        short = [g for g in a["groups"] if g.get("verdict") == "insufficient evidence"]
        if short:
            need = [f"{g['value']} ({g['evidence'].get('n_needed') or '?'} needed)" for g in short]
            parts.append(f"insufficient evidence: {', '.join(need)}")
        worse = [str(g["value"]) for g in a["groups"] if str(g.get("verdict", "")).startswith("worse")]
        if worse:
            parts.append(f"worse than the reference: {', '.join(worse)}")
        if parts:
            out.append(f"  {key} by {attr:<8} " + "; ".join(parts))
    return out
