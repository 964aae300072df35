"""The per-case table: shaping per-case, per-class metrics into the tables audits read.

``cases.csv`` (what ``duetfair evaluate`` writes) has one row per case and foreground class:
``case_id``, ``class``, the metric columns of :func:`duetfair.metrics.per_case.per_case_metrics`,
the case descriptors (``desc_*``, when computed), the **raw** attribute columns and the
hidden-subtype column when the data knows it. Raw values are
kept so that the audit of the table applies the run's group spec (bins, unknown groups) itself.
Fairness numbers are computed on the **case-level** table: one row per case, each metric the mean
over the case's foreground classes (:func:`case_level`).

This module is the one owner of the table: :func:`join_metadata` adds metadata to per-case scores
(``duetfair score``, ``duetfair evaluate`` through :func:`attach_metadata`), and
:func:`audit_view` chooses the granularity an audit reads (:class:`~duetfair.options.Granularity`:
the case-level mean of ``evaluate`` and of a run's ``cases.csv``, or each class of ``score``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd

from duetfair.data.groups import GroupSpec
from duetfair.errors import require
from duetfair.metrics import registry
from duetfair.metrics.registry import METRIC_COLUMNS as METRIC_COLUMNS  # re-exported
from duetfair.options import HIDDEN_COLUMN, Granularity


def _metadata(meta: pd.DataFrame, spec: GroupSpec, hidden_column: str) -> pd.DataFrame:
    """``case_id``, the spec's raw attribute columns and the hidden column, from a loader's metadata."""
    cols = ["case_id"] + [a for a in spec.attributes if a in meta.columns]
    if hidden_column in meta.columns and hidden_column not in cols:  # the oracle routes on it too
        cols.append(hidden_column)
    return meta[cols].assign(case_id=meta["case_id"].astype(str))


def attach_metadata(
    table: pd.DataFrame, meta: pd.DataFrame, spec: GroupSpec, *, hidden_column: str = HIDDEN_COLUMN
) -> pd.DataFrame:
    """Add the raw attribute columns (and the hidden column when present) to ``table`` by ``case_id``
    (:func:`join_metadata` on a loader's metadata: the spec's attributes and the hidden column)."""
    return join_metadata(table, _metadata(meta, spec, hidden_column))[0]


@dataclass
class JoinReport:
    """How the per-case table and the metadata matched (all lists sorted)."""

    n_cases: int
    unmatched_metadata: list[str] = field(default_factory=list)
    without_metadata: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and the first 20 ids of each list."""
        return {
            "n_cases": self.n_cases,
            "n_without_metadata": len(self.without_metadata),
            "without_metadata": self.without_metadata[:20],
            "n_unmatched_metadata_rows": len(self.unmatched_metadata),
            "unmatched_metadata_rows": self.unmatched_metadata[:20],
        }

    def messages(self) -> list[str]:
        """One-line warnings for people (empty when everything matched)."""
        out = []
        if self.without_metadata:
            out.append(
                f"{len(self.without_metadata)} of {self.n_cases} cases have no metadata row "
                f"({_listing(self.without_metadata)}); "
                f"their attributes are unknown: they count in the overall means and in no group"
            )
        if self.unmatched_metadata:
            out.append(
                f"{len(self.unmatched_metadata)} metadata rows match no case "
                f"({_listing(self.unmatched_metadata)}); ignored"
            )
        return out


def _listing(names: Sequence[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def join_metadata(table: pd.DataFrame, meta: pd.DataFrame) -> tuple[pd.DataFrame, JoinReport]:
    """Add the metadata columns (raw values) to a per-case table by ``case_id``.

    Returns the joined table (rows and order of ``table``) and the :class:`JoinReport`. No case
    matching any metadata row is an error (wrong id column or pattern); so is a metadata column
    named like a column of the table. An empty table is returned with the metadata columns.
    """
    require("case_id" in meta.columns, "metadata: expected a 'case_id' column (see read_metadata)")
    clash = [c for c in meta.columns if c != "case_id" and c in table.columns]
    require(
        not clash,
        f"metadata column '{clash[0] if clash else ''}' clashes with a column of the per-case table; rename it",
    )
    cases = list(dict.fromkeys(table["case_id"].astype(str)))
    known = set(meta["case_id"])
    without = sorted(c for c in cases if c not in known)
    require(
        len(without) < len(cases) or not cases,
        f"no case id matches the metadata ids (cases: {_listing(cases, 3)}; metadata: "
        f"{_listing(list(meta['case_id']), 3)}); check --id-column and --pattern",
    )
    unmatched = sorted(set(meta["case_id"]) - set(cases))
    joined = table.assign(case_id=table["case_id"].astype(str)).merge(meta, on="case_id", how="left")
    return joined, JoinReport(len(cases), unmatched, without)


# METRIC_COLUMNS (from the registry): per-class columns of per_case_metrics besides case_id and
# class. The case descriptors (desc_*) are per-class columns too, recognised by their prefix; neither
# is ever an attribute, nor is any metric the registry knows.


def case_level(cases: pd.DataFrame, metrics: Sequence[str] = ("dice", "iou")) -> pd.DataFrame:
    """Case-level table for audits from a per-case, per-class table (``cases.csv``): one row per
    case with the mean of each metric over its classes, every non-metric column (raw attributes,
    hidden column) kept, and the case descriptors (``desc_*``), one column per class when a case
    has several (``desc_size[2]``; :func:`duetfair.metrics.descriptors.case_descriptors`)."""
    from duetfair.metrics.descriptors import case_descriptors, is_descriptor

    present = [m for m in metrics if m in cases.columns]
    require(len(present) > 0, f"per-case table has none of the metrics {list(metrics)}")
    scores = cases.groupby("case_id", sort=False)[present].mean().reset_index()
    keep = [
        c
        for c in cases.columns
        if c not in (*METRIC_COLUMNS, *present, "class") and registry.get(str(c)) is None and not is_descriptor(c)
    ]
    _refuse_per_class(cases, keep)
    out = scores.merge(cases[keep].drop_duplicates("case_id"), on="case_id", how="left")
    if any(is_descriptor(c) for c in cases.columns):
        out = out.merge(case_descriptors(cases), on="case_id", how="left")
    return out


def _refuse_per_class(cases: pd.DataFrame, columns: Sequence[str]) -> None:
    """A case's attributes are the same on all its rows: a column that differs between the classes
    of one case is a per-class value (a metric the registry does not know), never an attribute."""
    if "class" not in cases.columns or not columns or not cases["case_id"].duplicated().any():
        return
    varying = cases.groupby("case_id", sort=False)[list(columns)].nunique(dropna=False).max()
    bad = [str(c) for c in columns if varying[c] > 1]
    require(
        not bad,
        f"per-case table: column '{bad[0] if bad else ''}' differs between the classes of one case, so it is "
        f"not an attribute; a per-class metric must be one of {', '.join(registry.REGISTRY)} "
        f"(duetfair.metrics.registry), or the column dropped",
    )


def label_frame(meta: pd.DataFrame, spec: GroupSpec, attributes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """``case_id`` and the group label of each attribute (object dtype, NaN = unknown), as the spec names them."""
    out = pd.DataFrame({"case_id": meta["case_id"].astype(str).to_numpy()})
    for attr in attributes or spec.attributes:
        out[attr] = spec.labels(meta, attr).astype(object).to_numpy()
    return out


def audit_view(
    cases: pd.DataFrame, granularity: Granularity | str, metrics: Sequence[str] = ("dice", "iou")
) -> pd.DataFrame:
    """The table an audit reads from a per-case table, at ``granularity``: ``case`` the case-level
    table of :func:`case_level` (what ``duetfair evaluate`` audits), ``class`` the table as it is
    (every class of a multi-class table audited on its own, ``dice[rim]``). A table without a
    ``class`` column is one row per case either way."""
    if Granularity(granularity) is Granularity.CLASS or "class" not in cases.columns:
        return cases
    return case_level(cases, metrics)
