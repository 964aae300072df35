"""Findings of a method comparison in plain words: the best method per score and the verdict of
every paired difference to the baseline (the ``Methods`` block of a comparison report's findings).

:func:`comparison_findings` gives JSON-ready dicts of the same shape as the audit's findings
(:func:`duetfair.audit.findings.build_findings`): ``best_method`` per score column and
``vs_baseline`` per method; :func:`verdict` is the rule of every paired difference.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from duetfair.audit.formatting import fmt, fmt_ci, fmt_signed_ci, join_names, num

CONTENDER = "contender"
"""Optional boolean column of a comparison frame: False marks a reference row (e.g. an oracle
ceiling) shown beside the methods but never ranked as the best."""


def contenders(comparison: Any) -> Any:
    """Boolean array ``[rows]``: which rows compete for "best" (all unless ``contender`` says no)."""
    if CONTENDER not in comparison.columns:
        return np.ones(len(comparison), dtype=bool)
    return comparison[CONTENDER].fillna(True).astype(bool).to_numpy()


def score_columns(comparison: Any) -> list[str]:
    """The numeric score columns of a comparison frame (not ``method``, ``contender`` or bounds)."""
    return [
        c
        for c in comparison.columns
        if c not in ("method", CONTENDER)
        and not str(c).endswith(("_low", "_high"))
        and str(comparison[c].dtype) != "object"
    ]


def _best(comparison: Any, col: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
    """The ``best_method`` finding of one score column (ties named; None without two rows)."""
    values = comparison[col].astype(float).where(contenders(comparison))
    if not values.notna().any() or len(comparison) < 2:
        return None
    row = comparison.loc[int(values.idxmax())]
    ci = [row.get(f"{col}_low"), row.get(f"{col}_high")]
    tied = [str(m) for m, v in zip(comparison["method"], values) if fmt(v) == fmt(row[col])]
    who = f"{join_names(tied)} (tied)" if len(tied) > 1 else str(row["method"])
    return {
        "kind": "best_method",
        "level": "info",
        "metric": col,
        "method": str(row["method"]),
        "tied": tied,
        "value": float(row[col]),
        "ci": [num(c) for c in ci],
        "text": f"Highest {labels.get(col, col)}: {who} with {fmt_ci(row[col], ci)}.",
    }


def _versus(method: str, part: Any, baseline: str | None, labels: Mapping[str, str]) -> dict[str, Any]:
    """The ``vs_baseline`` finding of one method: every paired difference with its verdict."""
    rows = list(part.itertuples(index=False))
    verdicts = [f"{labels.get(r.metric, r.metric)} {fmt_signed_ci(r.diff, [r.low, r.high])}: {r.verdict}" for r in rows]
    return {
        "kind": "vs_baseline",
        "level": "info",
        "metric": None,
        "method": str(method),
        "baseline": baseline,
        "differences": [
            {"metric": r.metric, "diff": num(r.diff), "ci": [num(r.low), num(r.high)], "verdict": r.verdict}
            for r in rows
        ],
        "text": f"{method} vs {baseline}: {'; '.join(verdicts)}.",
    }


def comparison_findings(
    comparison: Any, paired: Any = None, baseline: str | None = None, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Plain-words summary of a method comparison.

    Args:
        comparison: one row per method (``method`` and score columns, optional ``_low``/``_high``),
            every score higher-is-better; an optional boolean ``contender`` column marks reference
            rows (a ceiling such as the benchmark's oracle) that are never named the best.
        paired: differences to the baseline (``method``, ``metric``, ``diff``, ``low``, ``high``,
            ``verdict``), optional.
        baseline: name of the baseline method.
        labels: display names of the score columns.
    """
    names = dict(labels or {})
    out = [f for f in (_best(comparison, c, names) for c in score_columns(comparison)) if f is not None]
    if paired is not None and len(paired):
        out += [_versus(m, part, baseline, names) for m, part in paired.groupby("method", sort=False)]
    return out


def verdict(low: Any, high: Any) -> str:
    """``better`` when the interval of a difference lies above 0, ``worse`` below, else ``no clear
    difference`` (``n/a`` without an interval)."""
    lo, hi = num(low), num(high)
    if lo is None or hi is None:
        return "n/a"
    return "better" if lo > 0 else "worse" if hi < 0 else "no clear difference"
