"""Readable audit reports: Markdown and a self-contained HTML page with figures.

Both render the audit dict of :func:`duetfair.audit.audit_table`, findings first: the ``findings``
of the audit (:mod:`duetfair.audit.findings`, the same sentences and numbers in the JSON, the
Markdown and the HTML) and summary cards with the headline numbers. The HTML report is one file
(jinja2 templates in ``duetfair/audit/templates``; matplotlib figures and thumbnails embedded as
base64, no network at view time), written atomically, readable without colour (values printed on
bars and cells, line styles and markers besides colours).

The page is a list of sections (:data:`~duetfair.audit.report.page.SECTIONS`), one module each,
each receiving the report's inputs as typed data (:class:`~duetfair.audit.report.section.ReportData`:
data frames, the audit dict, :class:`~duetfair.audit.report.tables.Table` objects; never Markdown),
each present when its input is:

* :mod:`~duetfair.audit.report.findings`: cards and findings (of the audit, and of a method
  comparison), with the hidden failure slices (:mod:`~duetfair.audit.report.slices`) and the
  guarantees per group (:mod:`~duetfair.audit.report.guarantees`) inside;
* :mod:`~duetfair.audit.report.comparison` (``comparison``, ``paired``, ``paper_tables``): methods
  side by side with their intervals, paired differences to the baseline with verdicts, and the
  papers' tables, each an HTML table with its caption;
* :mod:`~duetfair.audit.report.training` (:class:`TrainingView`, a run's ``history.csv``): overall
  and worst-group validation Dice per epoch with the selected epoch marked, and the objective's
  state per epoch (``obj/...`` columns, e.g. GroupDRO / FairDRO group weights);
* :mod:`~duetfair.audit.report.metrics`, per metric: group means with intervals; with the per-case
  table the tail of per-case scores in every group with the CVaR region marked, the per-case
  distribution (hidden subtype highlighted) and, for the first metric, intersectional heatmaps of
  the mean over pairs of attributes (n per cell, cells with fewer than ``min_n`` cases greyed
  out); divergent subgroups;
* :mod:`~duetfair.audit.report.gallery` (:class:`~duetfair.audit.gallery.Gallery`): the worst
  cases of every group with the reference and predicted contours;
* :mod:`~duetfair.audit.report.provenance`: duetfair version, the exact command, date, seed, data
  source and the config.

The Markdown report and the console summary are in :mod:`~duetfair.audit.report.text`.
"""

from duetfair.audit.formatting import fmt, fmt_ci
from duetfair.audit.report.comparison import COMPARISON_COLUMNS, COMPARISON_LABELS
from duetfair.audit.report.page import SECTIONS, build_figures, render_html
from duetfair.audit.report.provenance import provenance
from duetfair.audit.report.section import ReportData, Section
from duetfair.audit.report.tables import Cell, Table
from duetfair.audit.report.text import render_markdown, render_summary
from duetfair.audit.report.training import TrainingView
from duetfair.metrics.frame import MIN_GROUP_N as MIN_N

__all__ = [
    "COMPARISON_COLUMNS",
    "COMPARISON_LABELS",
    "MIN_N",
    "SECTIONS",
    "Cell",
    "ReportData",
    "Section",
    "Table",
    "TrainingView",
    "build_figures",
    "fmt",
    "fmt_ci",
    "provenance",
    "render_html",
    "render_markdown",
    "render_summary",
]
