"""The HTML report: one self-contained page made of the sections in :data:`SECTIONS`.

Every section (:class:`~duetfair.audit.report.section.Section`) draws its figures and gives the
variables of its template; the page encodes the figures as base64 PNGs, renders ``report.html``
(head, navigation, then each present section's template in order) and writes the file atomically.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from duetfair.audit.discovery import itemset_label
from duetfair.audit.formatting import fmt, fmt_ci, fmt_signed_ci, pct, pvalue
from duetfair.audit.metric_notes import metric_title, missing_note
from duetfair.audit.report import comparison, findings, gallery, metrics, provenance, training
from duetfair.audit.report.gallery import build_gallery
from duetfair.audit.report.section import ReportData, Section
from duetfair.audit.report.tables import Table
from duetfair.errors import require
from duetfair.io import write_text
from duetfair.metrics.frame import MIN_GROUP_N

SECTIONS: tuple[Section, ...] = (
    findings.SECTION,
    comparison.SECTION,
    training.SECTION,
    metrics.SECTION,
    gallery.SECTION,
    provenance.SECTION,
)
"""The sections of the page, in order (a section without anything to show is left out)."""


def build_figures(
    audit: Mapping[str, Any] | None,
    cases: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    *,
    paired: pd.DataFrame | None = None,
    baseline: str | None = None,
    training: Any = None,
    min_n: int = MIN_GROUP_N,
) -> dict[str, Any]:
    """All report figures (matplotlib ``Figure`` objects), keyed ``means/<metric>/<attr>``; with the
    per-case table ``tail/<metric>/<attr>``, ``dist/<metric>/<attr>`` and
    ``heat/<first metric>/<a>+<b>``; ``certify/<metric>/<attr>``, ``slices``; ``comparison`` and
    ``paired``; ``training/curves`` and ``training/obj/<name>``."""
    data = ReportData(
        audit, cases=cases, comparison=comparison, paired=paired, baseline=baseline, training=training, min_n=min_n
    )
    return _figures(data)


def _figures(data: ReportData) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    for section in SECTIONS:
        figs.update(section.figures(data))
    return figs


def _environment() -> Any:
    """The jinja2 environment of the templates, with the number filters every section uses."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("duetfair.audit", "templates"), autoescape=jinja2.select_autoescape(["html"])
    )
    env.filters.update(fmt=fmt, pct=pct, pvalue=pvalue)
    env.globals.update(
        fmt_ci=fmt_ci,
        fmt_signed_ci=fmt_signed_ci,
        itemset_label=itemset_label,
        hidden_name=metrics.hidden_name,
        failure_header=metrics.failure_header,
        missing_note=missing_note,
    )
    return env


def _images(data: ReportData) -> tuple[dict[str, Any], dict[str, str]]:
    """The figures and their base64 PNGs (a group named ``$x^{$`` is text, not TeX)."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # a control character in a name
        figs = _figures(data)
        from duetfair.audit.report.figures import png

        return figs, {k: png(f) for k, f in figs.items()}


def render_page(data: ReportData, out_path: str | os.PathLike[str], *, title: str) -> Path:
    """Render the sections of ``data`` into ``out_path`` (atomically); return the path."""
    figs, images = _images(data)
    parts, nav, variables = [], [], {}
    for section in SECTIONS:
        ctx = section.context(data, figs)
        if ctx is None:
            continue
        parts.append(section.template)
        nav += section.nav(ctx)
        variables.update(ctx)
    env = _environment()
    env.globals["metric_title"] = lambda key: metric_title(data.audit or {}, key)
    html = env.get_template("report.html").render(
        title=title,
        audit=data.audit,
        settings=(data.audit or {}).get("settings", {}),
        images=images,
        min_n=data.min_n,
        sections=nav,
        parts=parts,
        **variables,
    )
    return write_text(out_path, html)


def _check_inputs(
    audit: Mapping[str, Any] | None, comparison: pd.DataFrame | None, paper_tables: Sequence[Table]
) -> None:
    """One-line errors for inputs a report cannot be made of."""
    require(audit is None or "metrics" in audit, "render_html: expected an audit dict with a 'metrics' entry")
    require(
        not isinstance(paper_tables, str) and all(isinstance(t, Table) for t in paper_tables),
        "render_html: paper_tables must be Table objects (duetfair.audit.report.tables), not Markdown text",
    )
    require(
        audit is not None or comparison is not None or bool(paper_tables),
        "render_html: expected an audit or a comparison",
    )
    if comparison is not None:
        require("method" in comparison.columns, "render_html: the comparison table needs a 'method' column")


def render_html(
    audit: Mapping[str, Any] | None,
    out_path: str | os.PathLike[str],
    *,
    cases: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
    paper_tables: Sequence[Table] = (),
    baseline: str | None = None,
    comparison_notes: Sequence[str] = (),
    audit_name: str | None = None,
    gallery: Any = None,
    training: Any = None,
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
        paper_tables: the papers' tables (:class:`~duetfair.audit.report.tables.Table`, e.g.
            :func:`duetfair.audit.compare.paper_table`), each shown with its caption and note.
        baseline: name of the baseline of ``paired``.
        comparison_notes: sentences shown with the comparison; audit_name: whose audit it is, in a
            comparison report (e.g. the method shown).
        gallery: a :class:`~duetfair.audit.gallery.Gallery`, or a source with
            ``build(cases, audit) -> Gallery`` (:class:`~duetfair.audit.gallery.FolderGallery`).
        training: the training view of a run (:meth:`TrainingView.from_run`).
        provenance: entries over the defaults of :func:`provenance` (config, data, seed, ...).
        title: page title.
        min_n: heatmap cells and groups with fewer cases are greyed out / flagged (default: the
            audit's ``settings.min_group_n``, :data:`~duetfair.metrics.frame.MIN_GROUP_N`).
    """
    _check_inputs(audit, comparison, paper_tables)
    if min_n is None:
        min_n = int((audit or {}).get("settings", {}).get("min_group_n", MIN_GROUP_N))
    if gallery is not None and not hasattr(gallery, "entries") and audit is not None and cases is not None:
        gallery = build_gallery(gallery, cases, audit)
    data = ReportData(
        audit,
        cases=cases,
        comparison=comparison,
        paired=paired,
        paper_tables=tuple(paper_tables),
        baseline=baseline,
        comparison_notes=tuple(comparison_notes),
        audit_name=audit_name,
        gallery=gallery,
        training=training,
        provenance=provenance,
        min_n=min_n,
    )
    return render_page(data, out_path, title=title)
