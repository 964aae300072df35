"""Audit of a per-case results table: the ``duetfair audit`` JSON.

The per-case table (CSV or Parquet, one row per case and class) is the interface between
evaluation and audit, so a model from any toolkit can be audited. :func:`audit_table` returns a
JSON-ready dict; its shape (schema version 1) is::

    {"schema": "duetfair.audit/1", "n_rows", "by", "bins", "group_spec", "settings": {...},
     "metrics": {"dice": {
        "n_cases", "n_missing", "n_inf", "higher_is_better",
        "overall": {"mean", "ci"},
        "attributes": {"race": {
            "groups": [{"value", "n", "mean", "ci", "cvar10", "p10", "std", "failure_rate", "n_inf", "small"}],
            "n_unknown", "worst_group", "worst_mean", "best_group", "best_mean", "gap",
            "es", "es_ci", "es_std", "es_sum_abs", "skewness", "worst_cvar10", "failure_threshold",
            "small_groups"}},
        "subgroups": [{"itemset": {attr: value}, "support", "n", "mean", "divergence", "t",
                       "welch_t", "p_value", "q_value", "significant"}],
        "hidden_subtype": {"column", "hard", "n", "mean", "mean_rest", "share_in_worst_decile"}   # when known
     }},
     "findings": [{"kind", "level", "metric", "attribute", "text", ...}]}

Every group, every attribute and ``overall`` also carry the certified statements of
:mod:`duetfair.audit.certify` (``certificate``, ``failure_curve``, ``new_case``, ``evidence``,
``gap_test``, ``verdict``, ``cvar10_ci``; per attribute ``selection``, ``reference``,
``insufficient_groups``), each with its method name; ``gap_tests`` describes the
Benjamini-Hochberg family over all of them and ``settings`` adds ``confidence``, ``detect``,
``reference`` and the methods used. The ``small`` flag (n < ``min_group_n``) is kept for
compatibility; the findings use the ``insufficient evidence`` verdict instead.

``findings`` are the audit's main points in plain words with the numbers behind them (worst group
per attribute and whether its interval separates, hidden-failure shares, the most divergent
significant subgroup, warnings about small groups and unknown values), built by
:func:`duetfair.audit.findings.build_findings`; the Markdown and HTML reports print the same list.

``hidden_subtype`` summarises the analysis-only column of known hard cases (``hidden``: default
``hidden_subtype``, or e.g. ``morphology`` / ``morphology=irregular``; ``column`` names it and
``settings.hidden_column`` repeats the choice); cases with an unknown value count in neither part.

``group_spec`` is the :class:`~duetfair.data.groups.GroupSpec` that turned the table's raw values
into groups (a run's saved spec where it defines an attribute, else inferred from the table), so
every consumer of the audit labels cases the same way. ``es`` uses the chosen variant, ``es_std`` /
``es_sum_abs`` are both variants' point estimates; intervals are ``[low, high]`` percentile
bootstrap intervals. When the table holds several classes (a ``class`` column) and none is selected,
every metric is audited per class under the key ``"<metric>[<class>]"`` (e.g. ``dice[1]`` = rim,
``dice[2]`` = cup for FairSeg).
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.certify import CertifySettings, certify_metric, finish_gap_tests
from duetfair.audit.discovery import find_divergent_subgroups
from duetfair.audit.findings import build_findings
from duetfair.audit.settings import AuditSettings
from duetfair.audit.slice_findings import slice_findings
from duetfair.audit.slices import slice_audit
from duetfair.data.groups import GroupSpec, HiddenColumn
from duetfair.errors import DuetfairError, require
from duetfair.io import read_table
from duetfair.metrics.descriptors import descriptor_columns
from duetfair.metrics.frame import GroupMetricFrame
from duetfair.metrics.hidden import failure_thresholds, higher_is_better

SCHEMA = "duetfair.audit/1"
"""Identifier of the audit JSON schema written by :func:`audit_table`."""


def load_case_table(path: str | os.PathLike[str], *, missing: Sequence[str] = ()) -> pd.DataFrame:
    """Read a per-case table (``.csv``, ``.tsv``, ``.parquet``, ``.xlsx``) with one-line errors;
    ``case_id`` is text (``007`` keeps its zeros), ``missing``: the table's own missing-value words
    (see :func:`duetfair.io.read_table`)."""
    df = read_table(path, text_columns=["case_id"], missing=missing)
    require(len(df.columns) > 0 and len(df) > 0, f"{path}: the table is empty; expected one row per case")
    return df


def _require_unique_cases(df: pd.DataFrame) -> None:
    """Refuse a table that lists a case twice (it would count twice in every mean)."""
    if "case_id" not in df.columns:
        return
    keys = ["case_id", "class"] if "class" in df.columns else ["case_id"]
    dup = df[df.duplicated(keys, keep=False)]
    if not dup.empty:
        row = dup.iloc[0]
        what = f"case '{row['case_id']}'" + (f" class {row['class']}" if "class" in keys else "")
        raise DuetfairError(
            f"the per-case table has {dup.duplicated(keys).sum()} duplicate row(s), e.g. {what}; "
            f"expected one row per case{' and class' if 'class' in keys else ''}"
        )


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _hidden_summary(df: pd.DataFrame, metric: str, column: HiddenColumn) -> dict[str, Any] | None:
    """Hard cases of ``column`` vs the rest: ``n``, means and their share of the worst 10 % of
    cases (``None`` without the column or without both kinds of case)."""
    if column.name not in df.columns:
        return None
    values = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=np.float64)
    flags = column.flags(df[column.name])
    ok = np.isfinite(values) & (flags >= 0)
    values, hidden = values[ok], flags[ok] > 0
    if not hidden.any() or hidden.all():
        return None
    k = max(1, math.ceil(0.1 * values.size))
    order = np.argsort(values if higher_is_better(metric) else -values, kind="stable")[:k]
    return {
        "column": column.name,
        "hard": None if column.hard is None else list(column.hard),
        "n": int(hidden.sum()),
        "mean": float(values[hidden].mean()),
        "mean_rest": float(values[~hidden].mean()),
        "share_in_worst_decile": float(hidden[order].mean()),
    }


def _class_views(df: pd.DataFrame, metrics: Sequence[str], class_: Any | None) -> list[tuple[str, str, pd.DataFrame]]:
    """``(key, metric, table)`` triples: one per metric, or per metric and class."""
    if "class" not in df.columns:
        require(class_ is None, f"--class {class_}: the table has no 'class' column")
        return [(m, m, df) for m in metrics]
    classes = pd.unique(df["class"].dropna())
    if class_ is not None:
        sel = df[df["class"].astype(str) == str(class_)]
        require(
            len(sel) > 0, f"--class {class_}: no row with that class; classes present: {', '.join(map(str, classes))}"
        )
        return [(m, m, sel) for m in metrics]
    if len(classes) <= 1:
        return [(m, m, df) for m in metrics]
    return [(f"{m}[{c}]", m, df[df["class"] == c]) for m in metrics for c in sorted(classes, key=str)]


def audit_table(
    df: pd.DataFrame, by: Sequence[str], *, settings: AuditSettings | None = None, **options: Any
) -> dict[str, Any]:
    """Audit a per-case table: overall, per-group, fairness and tail numbers, divergent subgroups.

    Args:
        df: per-case table (one row per case, or per case and class with a ``class`` column).
        by: attributes to audit; each a column or an intersection ``"race+sex"``.
        settings: the audit's settings (:class:`~duetfair.audit.settings.AuditSettings`; default
            its defaults).
        **options: single settings by name, overriding ``settings`` (``metrics=("dice", "iou")``,
            ``n_boot=0``, ...; an unknown name is a ``TypeError``).

    Returns:
        The audit dict (see the module docstring), JSON-ready except for NaN, which
        :func:`duetfair.io.write_json` writes as null.
    """
    s = AuditSettings.resolve(settings, **options)
    require(len(df) > 0, "the per-case table is empty; expected at least one case")
    require(len(by) >= 1, "expected at least one attribute (--by)")
    s.check()
    _require_unique_cases(df)
    groups = GroupSpec.for_table(df, by, bins=s.bins, base=s.spec)
    cutoffs = failure_thresholds(list(s.metrics), s.failure_threshold)
    views = _class_views(df, s.metrics, s.class_)
    certify = s.certify_settings(len(views))
    out_metrics = {
        key: _audit_metric(table, metric, by, groups, s, cutoffs[metric], certify) for key, metric, table in views
    }
    result = {
        "schema": SCHEMA,
        "n_rows": int(len(df)),
        "by": list(by),
        "bins": {a.name: {"edges": list(a.edges), "right": a.right} for a in groups.specs if a.edges is not None},
        "group_spec": groups.to_dict(),
        "settings": s.to_dict(cutoffs, certify),
        "metrics": out_metrics,
        "gap_tests": finish_gap_tests(out_metrics, fdr=s.fdr, method=certify.fdr_method),
    }
    if s.slices is not None and (descriptor_columns(df) or s.adjust):
        first = s.metrics[0]
        result.update(
            slice_audit(
                df,
                first,
                by,
                spec=s.spec,
                bins=s.bins,
                class_=s.class_,
                failure_threshold=cutoffs[first],
                settings=s.slices,
                adjust=s.adjust,
                n_boot=s.n_boot,
                seed=s.seed,
            )
        )
    result["findings"] = slice_findings(result) + build_findings(result)
    return result


def _audit_metric(
    df: pd.DataFrame,
    metric: str,
    by: Sequence[str],
    spec: GroupSpec,
    s: AuditSettings,
    failure_threshold: Any,
    certify: CertifySettings,
) -> dict[str, Any]:
    frames = [
        GroupMetricFrame(
            df,
            metric,
            attr,
            spec=spec,
            es_variant=s.es_variant,
            n_boot=s.n_boot,
            seed=s.seed,
            level=s.level,
            cvar_alpha=s.cvar_alpha,
            cvar_method=s.cvar_method,
            failure_threshold=failure_threshold,
        )
        for attr in by
    ]
    first = frames[0]
    result: dict[str, Any] = {
        "n_cases": first.n_cases,
        "n_missing": first.n_missing,
        "n_inf": first.n_inf,
        "higher_is_better": bool(first.higher_better),
        "overall": {"mean": first.overall, "ci": list(first.overall_ci)},
        "attributes": {attr: frame.to_dict() for attr, frame in zip(by, frames)},
        "subgroups": [],
    }
    certify_metric(result, frames, metric=metric, settings=certify, n_boot=s.n_boot, seed=s.seed)
    if s.discovery:
        result["subgroups"] = _subgroups(df, metric, spec, s)
    hidden = _hidden_summary(df, metric, s.hidden_column)
    if hidden is not None:
        result["hidden_subtype"] = hidden
    return result


def _subgroups(df: pd.DataFrame, metric: str, spec: GroupSpec, s: AuditSettings) -> list[dict[str, Any]]:
    found = find_divergent_subgroups(
        df,
        metric,
        spec.attributes,
        min_support=s.min_support,
        max_length=s.max_length,
        spec=spec,
        redundancy_threshold=s.redundancy_threshold,
        redundancy_z=s.redundancy_z,
        fdr=s.fdr,
    )
    if not higher_is_better(metric):
        found = found.iloc[::-1].reset_index(drop=True)
    if s.max_subgroups is not None:
        found = found.head(s.max_subgroups)
    return [
        {
            "itemset": dict(r.itemset),
            "support": float(r.support),
            "n": int(r.n),
            "mean": float(r.mean),
            "divergence": float(r.divergence),
            "t": _finite(r.t),
            "welch_t": _finite(r.welch_t),
            "p_value": _finite(r.p_value),
            "q_value": _finite(r.q_value),
            "significant": bool(r.significant),
        }
        for r in found.itertuples(index=False)
    ]
