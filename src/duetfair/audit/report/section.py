"""The contract of a report section: what it receives and what it gives the page.

A section receives the report's inputs as one typed :class:`ReportData` (the audit dict, the
per-case table, the comparison frames, the typed tables, the training view, ...; never Markdown)
and gives the page (:mod:`duetfair.audit.report.page`):

* ``figures(data)``: its matplotlib figures by key (``means/dice/race``, ``comparison``, ...);
* ``context(data, figures)``: the variables of its template, or None when the section has
  nothing to show (then it is left out of the page and of the navigation);
* ``nav(context)``: its ``(anchor, title)`` entries in the navigation bar;
* ``template``: its jinja2 template in ``duetfair/audit/templates`` (the variables of every
  section's context, the ``images`` (key -> base64 PNG), the page's ``audit``, ``settings`` and
  ``min_n``, the ``fig`` macro and the number filters are visible to it).

A section with a Markdown form has a ``markdown(audit) -> list[str]`` function in its module
(:func:`duetfair.audit.report.text.render_markdown` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pandas as pd

from duetfair.audit.report.tables import Table
from duetfair.metrics.frame import MIN_GROUP_N


@dataclass(frozen=True)
class ReportData:
    """The inputs of a report (:func:`duetfair.audit.report.render_html` documents each)."""

    audit: Mapping[str, Any] | None
    cases: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    paired: pd.DataFrame | None = None
    paper_tables: tuple[Table, ...] = ()
    baseline: str | None = None
    comparison_notes: tuple[str, ...] = ()
    audit_name: str | None = None
    gallery: Any = None
    training: Any = None
    provenance: Mapping[str, Any] | None = None
    min_n: int = MIN_GROUP_N


def no_figures(data: ReportData) -> dict[str, Any]:
    """The figures of a section without any."""
    return {}


@dataclass(frozen=True)
class Section:
    """One section of the HTML report (module docstring)."""

    name: str
    template: str
    context: Callable[[ReportData, Mapping[str, Any]], dict[str, Any] | None]
    nav: Callable[[Mapping[str, Any]], list[tuple[str, str]]]
    figures: Callable[[ReportData], dict[str, Any]] = no_figures
