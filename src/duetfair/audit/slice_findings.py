"""The hidden failure slices in words: the findings of :mod:`duetfair.audit.slices`.

:func:`slice_findings`: one plain sentence per slice (its definition, n, share, mean against the
rest, gap with its interval, q, failure shares and how it fails), or that no slice passes the
multiple-testing threshold; and, from ``adjusted_gaps`` (:mod:`duetfair.audit.confounding`), a
sentence for every attribute whose gap is mostly explained by structure size (or persists). The
report shows them at the top of its findings (:mod:`duetfair.audit.report.slices`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from duetfair.audit.formatting import fmt, fmt_signed_ci, p_equals, pct
from duetfair.audit.slices import OVERALL

SLICE_KINDS = ("hidden_slice", "no_hidden_slice")
"""Finding kinds of the "Hidden failure slices" block."""

MAX_FINDINGS = 5
"""Slices stated as findings (the table lists all)."""


def _within(s: Mapping[str, Any]) -> str:
    if s["within"] == OVERALL:
        return "All cases" + (" (compared with cases of the same groups)" if s.get("gap_adjusted") else "")
    others = s.get("adjusted_for") or [] if s.get("gap_adjusted") else []
    same = f" (compared with cases of the same {' and '.join(others)} groups)" if others else ""
    return f"Within {s['attribute']} = {s['group']}{same}"


def _how_it_fails(s: Mapping[str, Any]) -> str:
    parts = []
    err = s.get("median_volume_error")
    if err is not None and math.isfinite(err) and abs(err) >= 0.25:
        kind = "under-segmented or missed" if err < 0 else "over-segmented"
        parts.append(f"mostly {kind} (median volume error {100 * err:+.0f}%)")
    near = s.get("median_error_boundary_share")
    if near is not None and math.isfinite(near):
        parts.append("errors mostly along the boundary" if near >= 0.7 else "errors mostly away from the boundary")
    return ("; " + ", ".join(parts)) if parts else ""


def slice_sentence(s: Mapping[str, Any], metric: str, threshold: Any, higher_better: bool) -> str:
    """The finding of one slice in plain words."""
    scope = "of all cases" if s["within"] == OVERALL else "of the group"
    text = (
        f"{_within(s)}: {s['definition']} (n={s['n']}, {pct(s['share'])} {scope}) score {metric} "
        f"{fmt(s['mean'])} against {fmt(s['mean_rest'])} for the rest; gap {fmt_signed_ci(s['gap'], s['gap_ci'])}"
        f"{' after adjusting for the groups' if s.get('gap_adjusted') else ''}, {p_equals('q', s['q'])}"
    )
    if s.get("failure_rate") is not None and threshold is not None:
        op = "<" if higher_better else ">"
        share = s.get("share_of_failures")
        text += f"; {pct(s['failure_rate'])} of them fail ({metric} {op} {fmt(threshold, 2)})"
        if share is not None:
            text += (
                f", {pct(share)} of the {'failures' if s['within'] == OVERALL else 'group' + chr(39) + 's failures'}"
            )
    return text + _how_it_fails(s) + "."


def slice_findings(audit: Mapping[str, Any], *, max_findings: int = MAX_FINDINGS) -> list[dict[str, Any]]:
    """Findings of the hidden failure slices and of the size-controlled gaps (module docstring)."""
    search = audit.get("slice_search")
    out: list[dict[str, Any]] = []
    if search:
        metric = str(search["metric"])
        hb = bool(search.get("higher_is_better", True))
        threshold = search.get("failure_threshold")
        for s in audit.get("hidden_slices", [])[:max_findings]:
            out.append(
                {
                    "kind": "hidden_slice",
                    "level": "info",
                    "metric": metric,
                    "attribute": s.get("attribute"),
                    "text": slice_sentence(s, metric, threshold, hb),
                    **{k: s[k] for k in ("definition", "within", "n", "mean", "gap", "q")},
                }
            )
        if not audit.get("hidden_slices"):
            out.append(no_slice(search))
    out += _gap_findings(audit.get("adjusted_gaps"))
    return out


def no_slice(search: Mapping[str, Any]) -> dict[str, Any]:
    """The finding that no slice passes the multiple-testing threshold (and the closest one)."""
    fdr = search.get("settings", {}).get("fdr", 0.05)
    text = (
        f"No descriptor slice of {search['metric']} fails significantly (Benjamini-Hochberg q <= {fmt(fdr, 2)} "
        f"over {search['n_tests']} slices in {len(search['scopes'])} scopes)"
    )
    top = search.get("most_divergent")
    if top:
        text += f"; the closest, {top['definition']} ({top['within']}, n={top['n']}), has {p_equals('q', top['q'])}"
    return {
        "kind": "no_hidden_slice",
        "level": "info",
        "metric": search["metric"],
        "attribute": None,
        "text": text + ".",
        "n_tests": int(search["n_tests"]),
    }


def _gap_findings(gaps: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A sentence per attribute whose gap size (and ``--adjust``) stratification mostly explains,
    or that persists after it."""
    from duetfair.audit.confounding import EXPLAINED

    if not gaps:
        return []
    out = []
    metric = gaps["metric"]
    for attr, g in gaps["attributes"].items():
        for kind, by in (("size", ["structure size"]), ("adjusted", g.get("adjusted_by") or [])):
            value, share = g.get(f"{kind}_gap"), g.get(f"{kind}_explained")
            if value is None or share is None or not by:
                continue
            words = " and ".join(b if b != "size" else "structure size" for b in by)
            pair = f"{g['worst_group']} vs {g['best_group']}"
            raw = fmt_signed_ci(g["raw_gap"], g["raw_ci"])
            strat = fmt_signed_ci(value, g.get(f"{kind}_ci"))
            if share >= EXPLAINED:
                text = (
                    f"Most of the {metric} gap by {attr} ({pair}, {raw}) is explained by {words}: stratified by "
                    f"{words} it is {strat} ({pct(share)} of it explained)."
                )
            else:
                text = f"The {metric} gap by {attr} ({pair}, {raw}) persists after stratifying by {words}: {strat}."
            out.append(
                {
                    "kind": "size_explained" if share >= EXPLAINED else "gap_persists",
                    "level": "info",
                    "metric": metric,
                    "attribute": attr,
                    "text": text,
                    "stratified_by": list(by),
                    "raw_gap": g["raw_gap"],
                    "stratified_gap": value,
                    "explained": share,
                }
            )
    return out
