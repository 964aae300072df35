"""The findings section, first in every report: summary cards with the headline numbers, the
findings in plain words (:mod:`duetfair.audit.findings`, the same sentences as the audit JSON;
a comparison's own findings first), the hidden failure slices (:mod:`duetfair.audit.report.slices`)
and the guarantees per group (:mod:`duetfair.audit.report.guarantees`) inside it. Template
``findings.html``; Markdown :func:`markdown_findings`."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from duetfair.audit.findings import findings_of, headline_cards
from duetfair.audit.markdown import md_text
from duetfair.audit.report.comparison import comparison_findings_of
from duetfair.audit.report.guarantees import certify_figures, guarantee_tables
from duetfair.audit.report.section import ReportData, Section
from duetfair.audit.report.slices import markdown_slices, slice_context, slice_figures, slice_gallery
from duetfair.audit.report.tables import markdown_table
from duetfair.audit.slice_findings import SLICE_KINDS


def markdown_findings(audit: Mapping[str, Any]) -> list[str]:
    """The ``## Findings`` block of the Markdown report: headline numbers, then the findings'
    sentences (warnings marked), as the HTML report shows them."""
    lines = ["## Findings", ""]
    cards = headline_cards(audit)
    if cards:
        lines += markdown_table(
            ["headline", "value (95% CI)", "note"], [[c["label"], c["text"], c["note"]] for c in cards]
        )
        lines.append("")
    for block in finding_blocks(findings_of(audit)):
        lines += [f"**{md_text(block['title'])}**", ""]
        lines += [
            f"- {'**Warning:** ' if f.get('level') == 'warning' else ''}{md_text(f['text'])}" for f in block["entries"]
        ]
        lines.append("")
    return lines + markdown_slices(audit)


def finding_blocks(findings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Findings grouped for display: the comparison's (``kind`` methods), one block per metric (all
    but the first ``collapsed``), then the warnings."""
    blocks: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for f in findings:
        if f.get("level") == "warning":
            key = ("warnings", "Warnings")
        elif f.get("kind") in ("best_method", "vs_baseline"):
            key = ("methods", "Methods")
        elif f.get("kind") in SLICE_KINDS:
            key = ("slices", "Hidden failure slices")
        else:
            key = ("metric", str(f.get("metric") or ""))
        blocks.setdefault(key, []).append(f)
    rank = {"methods": 0, "slices": 1, "metric": 2, "warnings": 3}
    order = sorted(blocks, key=lambda k: rank[k[0]])
    out, metrics = [], 0
    for kind, title in order:
        out.append(
            {
                "kind": kind,
                "title": title,
                "entries": blocks[(kind, title)],
                "collapsed": kind == "metric" and metrics > 0,
            }
        )
        metrics += kind == "metric"
    return out


def figures(data: ReportData) -> dict[str, Any]:
    """``certify/<metric>/<attr>`` (failure bounds) and ``slices`` (hidden failure slices)."""
    if data.audit is None:
        return {}
    return {**certify_figures(data.audit), **slice_figures(data.audit, data.cases)}


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any]:
    """``finding_blocks``, ``cards``, ``guarantees``, ``slices`` and ``audit_name``."""
    audit = data.audit
    found = comparison_findings_of(data) + (findings_of(audit) if audit is not None else [])
    draw = getattr(data.gallery, "draw", None)
    return {
        "finding_blocks": finding_blocks(found),
        "audit_name": data.audit_name,
        "cards": headline_cards(audit) if audit is not None else [],
        "guarantees": guarantee_tables(audit),
        "slices": slice_context(audit, slice_gallery(audit or {}, data.cases, draw)),
    }


def nav(ctx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``Findings``, and the hidden failure slices when the audit has a slice search."""
    return [("findings", "Findings")] + ([("hidden-slices", "Hidden failure slices")] if ctx["slices"] else [])


SECTION = Section(name="findings", template="findings.html", context=context, nav=nav, figures=figures)
