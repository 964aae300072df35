"""``duetfair audit`` (a per-case table) and ``duetfair score`` (masks or another tool's scores):
the two commands that audit, with the same audit settings (:class:`~duetfair.cli.options.AuditOptions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from duetfair.cli.app import app, console, note
from duetfair.cli.options import AuditOptions, with_options
from duetfair.cli.score import ScoreInputs, run_score
from duetfair.errors import DuetfairError, require
from duetfair.options import ReportFormat

if TYPE_CHECKING:
    import pandas as pd

    from duetfair.data.groups import HiddenColumn
    from duetfair.engine.run_audit import RunAudit

CasesArg = Annotated[
    str,
    typer.Argument(
        help="Per-case table (CSV, TSV or Parquet): one row per case (and class), metric and attribute columns."
    ),
]
FormatOpt = Annotated[ReportFormat, typer.Option("--format", help="Output format: json, md or html.")]
OutOpt = Annotated[
    Optional[str],
    typer.Option("--out", help="Write the report to this file (default: print JSON/Markdown; html needs --out)."),
]
PredDirArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Folder of predicted masks, one label map per case (PNG/NPY/NPZ 2D; NIfTI, NRRD, MHA 3D).",
    ),
]
RefDirArg = Annotated[
    Optional[str], typer.Argument(help="Folder of reference masks, matched to the predictions by case id.")
]


@app.command("audit")
@with_options(settings=AuditOptions)
def audit_cmd(
    cases: CasesArg, fmt: FormatOpt = ReportFormat.JSON, out: OutOpt = None, *, settings: AuditOptions
) -> None:
    """Audit subgroup performance from a per-case results table of any model.

    Prints or writes overall, per-group (mean, 95% CI, CVaR10, failure rate), worst group, gap,
    equity-scaled value with its interval, and the most divergent attribute subgroups.

    The cases.csv of a run is audited as 'duetfair evaluate' audited it: with the run's group spec
    (its bins, its unknown groups), its attributes (no --by needed), the case-level mean over the
    classes, its metrics and bootstrap settings, so it reproduces the run's audit.json. --bins
    age=40,50,60,70 is left-closed ([40, 50) -> 40-49); add :right for right-closed bins
    (age=40,50,60,70:right). --hidden names your own column of known hard cases (e.g. morphology);
    the audit reports how those cases fare against the rest and how many of the worst 10% they are.

    Example: duetfair audit cases.csv --by race --by sex --bins age=20,40,60,80 --by age --metric dice --format md

    A table with case descriptors (desc_* columns, written by duetfair score and evaluate) also
    gets its hidden failure slices: cases described in words (small, low-contrast, ...) that fail,
    overall and inside every group, and each group gap stratified by structure size (--adjust: also
    by other columns).

    Example: duetfair audit cases.csv --by race --hidden morphology=irregular --format md

    Example: duetfair audit runs/fair_dro/cases.csv --format md
    """
    from duetfair.audit import audit_table, load_case_table

    require(fmt is not ReportFormat.HTML or out is not None, "--format html: expected --out FILE.html")
    settings.check_bootstrap()
    table = load_case_table(cases, missing=settings.missing or ())
    frame, kwargs = audit_request(cases, table, settings)
    _emit(audit_table(frame, **kwargs), frame, cases, fmt, out)


def audit_request(path: str, table: pd.DataFrame, settings: AuditOptions) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table ``duetfair audit`` audits and the keyword arguments of
    :func:`~duetfair.audit.audit_table`: a run's cases.csv with the run's attributes, metrics,
    granularity and settings (:class:`~duetfair.engine.run_audit.RunAudit`), any other table with
    the options' defaults."""
    from duetfair.data.groups import GroupSpec
    from duetfair.engine.run_audit import RunAudit
    from duetfair.metrics.cases import audit_view
    from duetfair.options import Granularity
    from duetfair.rundir import RunDir

    run = RunDir.containing(path)
    plan = RunAudit.of_run(run) if run is not None else None
    spec_path = settings.group_spec or (str(run.group_spec) if run is not None else None)
    spec = GroupSpec.load(spec_path) if spec_path is not None else None
    hidden = _audit_hidden(settings.hidden, plan, table, path)
    if spec_path is not None:
        note(f"groups: {spec_path}")
    by = settings.by or (list(plan.attributes) if plan is not None else [])
    if not by:
        raise DuetfairError("--by: expected an attribute to audit, e.g. --by race (a run's cases.csv needs none)")
    metrics = list(settings.metric or (plan.present(table) if plan is not None else ()) or ["dice"])
    granularity = Granularity.CASE if plan is not None and settings.class_ is None else Granularity.CLASS
    present = [m for m in metrics if m in table.columns]  # a metric not in the table: the audit names it
    frame = audit_view(table, granularity, present) if present else table
    if plan is not None:
        kwargs = settings.audit_kwargs(es_variant=plan.es_variant, n_boot=plan.n_boot, seed=plan.seed)
    else:
        kwargs = settings.audit_kwargs()
    return frame, {"by": by, "metrics": tuple(metrics), "spec": spec, "hidden": hidden, **kwargs}


def _audit_hidden(hidden: Optional[str], plan: Optional[RunAudit], table: pd.DataFrame, cases: str) -> HiddenColumn:
    """The hidden column of ``duetfair audit``: ``--hidden`` (which must be a column of the table),
    else the run's ``data.hidden_column`` when CASES is a run's cases.csv, else ``hidden_subtype``."""
    from duetfair.data.groups import HiddenColumn

    if hidden is not None:
        column = HiddenColumn.parse(hidden)
        column.check(table, f"--hidden {hidden}: {cases}")
        return column
    return plan.hidden if plan is not None else HiddenColumn.parse(None)


def _emit(result: dict[str, Any], frame: pd.DataFrame, cases: str, fmt: ReportFormat, out: Optional[str]) -> None:
    """Print the audit (JSON or Markdown) or write it to ``out`` (any format)."""
    from duetfair.io import to_json_text, write_text

    title = f"duetfair audit of {cases}"
    if fmt is ReportFormat.HTML:
        from duetfair.audit.report import render_html

        console.print(f"wrote {render_html(result, str(out), cases=frame, title=title)}")
        return
    if fmt is ReportFormat.MD:
        from duetfair.audit.report import render_markdown

        text = render_markdown(result, title=title)
    else:
        text = to_json_text(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text(out, text)
        console.print(f"wrote {out}")


@app.command("score")
@with_options(inputs=ScoreInputs, settings=AuditOptions)
def score_cmd(
    pred_dir: PredDirArg = None, ref_dir: RefDirArg = None, *, inputs: ScoreInputs, settings: AuditOptions
) -> None:
    """Score predicted masks against reference masks and audit them by patient group, in one go.

    Matching: a file's case id is its name without the extension (.nii.gz counts as one), so
    preds/case_01.nii.gz pairs with labels/case_01.nii.gz; other files (json, pkl, csv) are ignored.
    --pattern / --pred-pattern / --ref-pattern change the rule, e.g. --ref-pattern '{case}-seg.nii.gz'.
    Metadata ids are compared as text (an extension is stripped); metadata rows without a case are
    ignored with a warning; cases without a metadata row get unknown attributes (counted, reported).

    HD95 and NSD use the voxel spacing of the reference (mm); Dice, IoU, HD95, NSD come from MONAI.
    Missing or extra files, shape or spacing mismatches and unexpected label values are errors.
    Instead of two folders, --nnunet summary.json or --monai-csv FILE audits scores already computed.
    Every audit setting of 'duetfair audit' applies (--fail, --hidden, --fdr, --group-spec, ...).

    Examples:
      duetfair score preds/ labelsTs/ --meta patients.csv --out audit --bins age=40,60,80

      duetfair score preds/ refs/ --meta fairseg.csv --out audit --labels 1,2 --label-names rim,cup --region disc=1+2

      duetfair score --nnunet fold_0/validation/summary.json --meta patients.csv --out audit

      duetfair score preds/ labelsTs/ --shard 3/8 --out parts/3   (task 3 of a job array; docs/cluster.md)

      duetfair score --merge parts --meta patients.csv --out audit
    """
    run_score(pred_dir, ref_dir, inputs, settings)
