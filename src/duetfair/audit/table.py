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
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.certify import CertifySettings, certify_metric, finish_gap_tests, parse_detect
from duetfair.audit.discovery import DEFAULT_REDUNDANCY_Z, find_divergent_subgroups
from duetfair.audit.findings import build_findings
from duetfair.audit.slice_findings import slice_findings
from duetfair.audit.slices import SliceSettings, slice_audit
from duetfair.data.groups import GroupSpec, HiddenColumn
from duetfair.errors import DuetfairError, require
from duetfair.io import read_table
from duetfair.metrics.bootstrap import MAX_RESAMPLES
from duetfair.metrics.descriptors import descriptor_columns
from duetfair.metrics.frame import MIN_GROUP_N, GroupMetricFrame
from duetfair.metrics.hidden import failure_thresholds, higher_is_better
from duetfair.options import HIDDEN_COLUMN

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
    df: pd.DataFrame,
    by: Sequence[str],
    metrics: Sequence[str] = ("dice",),
    bins: Mapping[str, Sequence[float] | Mapping[str, Any]] | None = None,
    es_variant: str = "sum_abs",
    n_boot: int = 1000,
    seed: int = 0,
    min_support: float = 0.05,
    *,
    max_length: int | None = 3,
    level: float = 0.95,
    cvar_alpha: float = 0.1,
    cvar_method: str = "fractional",
    failure_threshold: Sequence[str] | None = None,
    discovery: bool = True,
    max_subgroups: int | None = 20,
    redundancy_threshold: float | None = None,
    redundancy_z: float | None = DEFAULT_REDUNDANCY_Z,
    fdr: float = 0.05,
    class_: Any | None = None,
    spec: GroupSpec | None = None,
    hidden: str | HiddenColumn | None = HIDDEN_COLUMN,
    confidence: float | None = None,
    detect: float | str | Sequence[float | str] | Mapping[str, float | None] | None = None,
    reference: str | None = None,
    gap_test: str = "permutation",
    fdr_method: str = "bh",
    adjust: Sequence[str] = (),
    slices: SliceSettings | None = SliceSettings(),
) -> dict[str, Any]:
    """Audit a per-case table: overall, per-group, fairness and tail numbers, divergent subgroups.

    Args:
        df: per-case table (one row per case, or per case and class with a ``class`` column).
        by: attributes to audit; each a column or an intersection ``"race+sex"``.
        metrics: per-case metric columns (default ``("dice",)``).
        bins: edges per continuous attribute, e.g. ``{"age": [20, 40, 60, 80]}`` (left-closed) or
            ``{"age": {"edges": [40, 50, 60, 70], "right": True}}``.
        es_variant: ``"sum_abs"`` (default; FairSeg/dMoE/DuetFair) or ``"std"`` (FairMedFM).
        n_boot: bootstrap resamples for the intervals (0: none).
        seed: bootstrap seed.
        min_support: minimum subgroup support of the discovery (fraction of cases).
        max_length: longest attribute conjunction of the discovery.
        level: confidence level of the intervals.
        cvar_alpha: CVaR fraction of the per-group tail (``cvar10`` = worst 10 %).
        cvar_method: ``"fractional"`` (default) or ``"discrete"`` CVaR (:func:`duetfair.metrics.hidden.cvar`).
        failure_threshold: per-metric failure cut-offs overriding the defaults, e.g.
            ``["hd95>10", "dice<0.6"]`` (defaults: Dice 0.5, IoU 1/3, NSD 0.5, none for distances).
        discovery: run divergent-subgroup discovery (DivExplorer).
        max_subgroups: keep at most this many subgroups per metric (worst first; None: all).
        redundancy_threshold: DivExplorer's absolute redundancy pruning threshold (None: not used).
        redundancy_z: prune an itemset whose divergence changes by at most ``z`` standard errors
            when one item is removed (default 3; None: no such pruning).
        fdr: false discovery rate of the Benjamini-Hochberg ``significant`` flag of subgroups.
        class_: audit only this class of a multi-class table.
        spec: group spec of the table's attributes (e.g. the ``group_spec.json`` of the run that
            wrote it); attributes it lacks are inferred from the table.
        hidden: analysis-only column of known hard cases (``"hidden_subtype"``, ``"morphology"``,
            ``"morphology=irregular"``; :class:`~duetfair.data.groups.HiddenColumn`), reported as
            ``hidden_subtype`` when the table has it.
        confidence: confidence of the guarantees, tests and new intervals
            (:mod:`duetfair.audit.certify`; default ``level``).
        detect: gap of the mean to detect per metric (``0.05``, ``"hd95=5"``, a list or a mapping;
            default 0.05 for metrics in [0, 1], not assessed for distances).
        reference: group every other group is tested against (a value, or ``ATTRIBUTE=VALUE``;
            None: the rest of the population).
        gap_test: ``"permutation"`` (default; studentized, exact when no group differs) or
            ``"welch"`` test of a group against its reference.
        fdr_method: ``"bh"`` (Benjamini-Hochberg, default) or ``"by"`` (Benjamini-Yekutieli) over
            every gap test of the audit.
        adjust: columns the group gaps are also stratified by (``adjusted_gaps``, e.g. the site).
        slices: settings of the hidden failure slices, searched for the first metric when the table
            has case descriptors (``desc_*``; :mod:`duetfair.audit.slices`); None: no slices.

    Returns:
        The audit dict (see the module docstring), JSON-ready except for NaN, which
        :func:`duetfair.io.write_json` writes as null.
    """
    require(len(df) > 0, "the per-case table is empty; expected at least one case")
    require(len(by) >= 1, "expected at least one attribute (--by)")
    require(len(metrics) >= 1, "expected at least one metric (--metric)")
    require(0.0 < min_support <= 1.0, f"--min-support {min_support}: expected a fraction in (0, 1]")
    require(0 <= int(n_boot) <= MAX_RESAMPLES, f"--bootstrap {n_boot}: expected 0 to at most {MAX_RESAMPLES} resamples")
    require(0 <= int(seed) < 2**63, f"--seed {seed}: expected an integer in [0, 2^63)")
    require(max_length is None or max_length >= 1, f"--max-length {max_length}: expected at least 1")
    require(0.0 < fdr < 1.0, f"--fdr {fdr}: expected a false discovery rate in (0, 1)")
    _require_unique_cases(df)
    groups = GroupSpec.for_table(df, by, bins=bins, base=spec)
    hidden_col = HiddenColumn.parse(hidden)
    cutoffs = failure_thresholds(list(metrics), failure_threshold)
    views = _class_views(df, metrics, class_)
    certify = CertifySettings(
        confidence=level if confidence is None else float(confidence),
        detect=parse_detect(detect, metrics),
        reference=None if reference is None else str(reference),
        gap_test=gap_test,
        fdr_method=fdr_method,
        fdr=fdr,
        n_views=len(views),
    )
    out_metrics: dict[str, Any] = {}
    for key, metric, table in views:
        out_metrics[key] = _audit_metric(
            table,
            metric,
            by,
            groups,
            es_variant=es_variant,
            n_boot=n_boot,
            seed=seed,
            min_support=min_support,
            max_length=max_length,
            level=level,
            cvar_alpha=cvar_alpha,
            cvar_method=cvar_method,
            failure_threshold=cutoffs[metric],
            discovery=discovery,
            max_subgroups=max_subgroups,
            redundancy_threshold=redundancy_threshold,
            redundancy_z=redundancy_z,
            fdr=fdr,
            hidden=hidden_col,
            certify=certify,
        )
    gap_tests = finish_gap_tests(out_metrics, fdr=fdr, method=certify.fdr_method)
    result = {
        "schema": SCHEMA,
        "n_rows": int(len(df)),
        "by": list(by),
        "bins": {a.name: {"edges": list(a.edges), "right": a.right} for a in groups.specs if a.edges is not None},
        "group_spec": groups.to_dict(),
        "settings": {
            "es_variant": es_variant,
            "n_boot": int(n_boot),
            "seed": int(seed),
            "level": float(level),
            "cvar_alpha": float(cvar_alpha),
            "cvar_method": cvar_method,
            "failure_thresholds": cutoffs,
            "redundancy_z": redundancy_z,
            "fdr": float(fdr),
            "min_support": float(min_support),
            "min_group_n": MIN_GROUP_N,
            "max_length": max_length,
            "class": None if class_ is None else str(class_),
            "hidden_column": str(hidden_col),
            **certify.to_dict(),
        },
        "metrics": out_metrics,
        "gap_tests": gap_tests,
    }
    if slices is not None and (descriptor_columns(df) or adjust):
        first = metrics[0]
        result.update(
            slice_audit(
                df,
                first,
                by,
                spec=spec,
                bins=bins,
                class_=class_,
                failure_threshold=cutoffs[first],
                settings=slices,
                adjust=adjust,
                n_boot=n_boot,
                seed=seed,
            )
        )
    result["findings"] = slice_findings(result) + build_findings(result)
    return result


def _audit_metric(df: pd.DataFrame, metric: str, by: Sequence[str], spec: GroupSpec, **kw: Any) -> dict[str, Any]:
    frames = [
        GroupMetricFrame(
            df,
            metric,
            attr,
            spec=spec,
            es_variant=kw["es_variant"],
            n_boot=kw["n_boot"],
            seed=kw["seed"],
            level=kw["level"],
            cvar_alpha=kw["cvar_alpha"],
            cvar_method=kw["cvar_method"],
            failure_threshold=kw["failure_threshold"],
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
    certify_metric(result, frames, metric=metric, settings=kw["certify"], n_boot=kw["n_boot"], seed=kw["seed"])
    if kw["discovery"]:
        result["subgroups"] = _subgroups(df, metric, spec, kw)
    hidden = _hidden_summary(df, metric, kw["hidden"])
    if hidden is not None:
        result["hidden_subtype"] = hidden
    return result


def _subgroups(df: pd.DataFrame, metric: str, spec: GroupSpec, kw: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = find_divergent_subgroups(
        df,
        metric,
        spec.attributes,
        min_support=kw["min_support"],
        max_length=kw["max_length"],
        spec=spec,
        redundancy_threshold=kw["redundancy_threshold"],
        redundancy_z=kw["redundancy_z"],
        fdr=kw["fdr"],
    )
    if not higher_is_better(metric):
        found = found.iloc[::-1].reset_index(drop=True)
    if kw["max_subgroups"] is not None:
        found = found.head(kw["max_subgroups"])
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
