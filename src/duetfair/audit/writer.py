"""The one writer of an audit folder: audit a joined per-case table and write ``cases.csv``,
``audit.json``, ``audit.md`` and ``report.html`` staged (together, or not at all)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from duetfair.errors import require
from duetfair.metrics.registry import TABLE_METRICS

__all__ = ["write_audit"]


def write_audit(
    cases: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    by: Sequence[str],
    metrics: Sequence[str],
    bins: Mapping[str, Sequence[float]] | None = None,
    es_variant: str = "sum_abs",
    n_boot: int = 1000,
    seed: int = 0,
    discovery: bool = True,
    title: str = "duetfair audit",
    inputs: Mapping[str, Any] | None = None,
    gallery: Any = None,
    failure_threshold: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Audit a joined per-case table and write ``cases.csv``, ``audit.json``, ``audit.md``, ``report.html``.

    ``options`` go to :func:`duetfair.audit.audit_table` (e.g. ``confidence``, ``detect``, ``reference``,
    ``adjust``).

    ``inputs`` (sources, counts of the join) is stored under the ``"inputs"`` key of the audit;
    ``gallery`` (e.g. :class:`~duetfair.audit.gallery.FolderGallery`) adds the worst cases' images
    to the report; ``failure_threshold`` the ``--fail`` cut-offs (``["hd95>10"]``); ``units`` the
    unit of each distance metric (``{"hd95": "mm"}``, stored under ``"units"``; ``unknown`` when
    not given). Returns ``(audit, {name: path})``; a plotting failure skips ``report.html`` with a
    warning.
    """
    from duetfair.audit import audit_table

    out = Path(out_dir)
    require(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a folder")
    _require_metrics(cases, metrics)
    audit = audit_table(
        cases,
        list(by),
        metrics=tuple(metrics),
        bins=dict(bins or {}),
        es_variant=es_variant,
        n_boot=n_boot,
        seed=seed,
        discovery=discovery,
        failure_threshold=list(failure_threshold) if failure_threshold else None,
        **options,
    )
    if inputs:
        audit["inputs"] = dict(inputs)
    if any(m.split("[")[0] == "hd95" for m in metrics):
        audit["units"] = {"hd95": str((units or {}).get("hd95", "unknown"))}
    return audit, _write_folder(cases, audit, out, title=title, gallery=gallery)


def _write_folder(
    cases: pd.DataFrame, audit: dict[str, Any], out: Path, *, title: str, gallery: Any
) -> dict[str, Path]:
    """Write the audit folder ``out`` (``cases.csv``, ``audit.json``, ``audit.md``, ``report.html``)
    staged: the files replace the previous ones together, or none does. Returns the files written."""
    from duetfair.audit.report import render_html, render_markdown
    from duetfair.audit.report.guard import render_or_warn
    from duetfair.io import staged_outputs, write_json, write_text

    names = {"cases": "cases.csv", "audit": "audit.json", "markdown": "audit.md", "html": "report.html"}
    with staged_outputs(out) as stage:  # all four files replace the previous ones together, or none does
        cases.to_csv(stage / names["cases"], index=False)
        write_json(stage / names["audit"], audit)
        write_text(stage / names["markdown"], render_markdown(audit, title=title))
        written = {
            "html": render_or_warn(
                lambda: render_html(audit, stage / names["html"], cases=cases, title=title, gallery=gallery),
                complete="cases.csv, audit.json and audit.md",
            )
        }
    if not written["html"]:
        (out / names["html"]).unlink(missing_ok=True)  # an older report would not match the new numbers
    return {k: out / v for k, v in names.items() if written.get(k, True)}


def _require_metrics(cases: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Refuse a ``--metric`` the per-case table does not hold (naming the ones it does)."""
    missing = [m for m in metrics if m not in cases.columns]
    require(
        not missing,
        f"--metric {missing[0] if missing else ''}: not available from this input; "
        f"available: {', '.join(c for c in TABLE_METRICS if c in cases.columns)}",
    )
