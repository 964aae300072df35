"""Command-line interface: ``duetfair train|evaluate|predict|audit|score|compare|benchmark|init-config|synth|demo``.

Every command turns :class:`~duetfair.errors.DuetfairError` (bad user input) into a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from duetfair.cli_certify import CONFIDENCE, DETECT, REFERENCE, certify_options
from duetfair.errors import DuetfairError

if TYPE_CHECKING:
    import pandas as pd

    from duetfair.data.groups import HiddenColumn
    from duetfair.rundir import RunDir

app = typer.Typer(
    name="duetfair",
    help="Fair medical image segmentation: audit subgroup performance, train fair models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

MISSING_HELP = (
    "A word your table uses for a missing attribute value, e.g. NA (repeatable). Empty cells, nan, "
    "unknown, missing and -1 are always missing; NA, None or null are group names unless given here."
)


@app.callback()
def _root() -> None:
    """Fair medical image segmentation: audit subgroup performance, train fair models."""


ADJUST_HELP = (
    "Also stratify every group gap by this column (repeatable, e.g. site), besides structure size "
    "(desc_size): a confounder-controlled gap next to the raw one."
)


# ---- audit -------------------------------------------------------------------------------------
@app.command("audit")
def audit_cmd(
    cases: str = typer.Argument(
        ..., help="Per-case table (CSV, TSV or Parquet): one row per case (and class), metric and attribute columns."
    ),
    by: list[str] = typer.Option(
        ..., "--by", help="Attribute to audit (repeatable); 'race+sex' audits the intersection."
    ),
    metric: Optional[list[str]] = typer.Option(
        None, "--metric", help="Per-case metric column (repeatable; default dice)."
    ),
    bins: Optional[list[str]] = typer.Option(
        None, "--bins", help="Bin a continuous attribute, e.g. age=20,40,60,80 -> <20, 20-39, ..., >=80 (repeatable)."
    ),
    es_variant: str = typer.Option(
        "sum_abs", "--es-variant", help="Equity-scaled variant: sum_abs (FairSeg/dMoE/DuetFair) or std (FairMedFM)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    min_support: float = typer.Option(0.05, "--min-support", help="Minimum share of cases of a divergent subgroup."),
    max_length: int = typer.Option(3, "--max-length", help="Longest attribute conjunction of a divergent subgroup."),
    class_: Optional[str] = typer.Option(
        None, "--class", help="Audit only this class of a multi-class table (default: every class)."
    ),
    no_discovery: bool = typer.Option(False, "--no-discovery", help="Skip divergent subgroup discovery."),
    fail: Optional[list[str]] = typer.Option(
        None,
        "--fail",
        help=(
            "Failure cut-off of a metric, e.g. hd95>10 or dice<0.6 (repeatable; "
            "defaults: Dice 0.5, IoU 1/3, NSD 0.5, none for distances)."
        ),
    ),
    cvar_method: str = typer.Option(
        "fractional",
        "--cvar-method",
        help=(
            "CVaR of a group's tail: fractional (exactly 10 % of the cases, "
            "the boundary case weighted) or discrete (worst ceil(0.1 n) cases)."
        ),
    ),
    redundancy_z: float = typer.Option(
        3.0,
        "--redundancy-z",
        help=(
            "Drop a subgroup whose divergence changes by at most this many "
            "standard errors when one attribute is removed (0: keep all)."
        ),
    ),
    fdr: float = typer.Option(
        0.05, "--fdr", help="False discovery rate of the Benjamini-Hochberg 'significant' flag of subgroups."
    ),
    confidence: float = CONFIDENCE,
    detect: Optional[list[str]] = DETECT,
    reference: Optional[str] = REFERENCE,
    fmt: str = typer.Option("json", "--format", help="Output format: json, md or html."),
    out: Optional[str] = typer.Option(
        None, "--out", help="Write the report to this file (default: print JSON/Markdown; html needs --out)."
    ),
    missing: Optional[list[str]] = typer.Option(None, "--missing", help=MISSING_HELP),
    group_spec: Optional[str] = typer.Option(
        None,
        "--group-spec",
        help=(
            "Group spec (group_spec.json of a run) that defines the attributes' "
            "groups; default: the run's own when CASES is a run's cases.csv."
        ),
    ),
    hidden: Optional[str] = typer.Option(
        None,
        "--hidden",
        help="Analysis-only column of known hard cases, shown as hidden failures: COLUMN (values "
        "0/1, yes/no) or COLUMN=VALUE[,VALUE] (those values are hard), e.g. morphology=irregular. Default: "
        "hidden_subtype, or the run's data.hidden_column.",
    ),
    adjust: Optional[list[str]] = typer.Option(None, "--adjust", help=ADJUST_HELP),
) -> None:
    """Audit subgroup performance from a per-case results table of any model.

    Prints or writes overall, per-group (mean, 95% CI, CVaR10, failure rate), worst group, gap,
    equity-scaled value with its interval, and the most divergent attribute subgroups.

    The cases.csv of a run is audited with the run's group spec (its bins, its unknown groups), so
    the groups are exactly those the run was trained and selected with. --bins age=40,50,60,70 is
    left-closed ([40, 50) -> 40-49); add :right for right-closed bins (age=40,50,60,70:right).
    --hidden names your own column of known hard cases (e.g. morphology); the audit reports how
    those cases fare against the rest and how many of the worst 10% they are.

    Example: duetfair audit cases.csv --by race --by sex --bins age=20,40,60,80 --by age --metric dice --format md

    A table with case descriptors (desc_* columns, written by duetfair score and evaluate) also
    gets its hidden failure slices: cases described in words (small, low-contrast, ...) that fail,
    overall and inside every group, and each group gap stratified by structure size (--adjust: also
    by other columns).

    Example: duetfair audit cases.csv --by race --hidden morphology=irregular --format md
    """
    from duetfair.audit import audit_table, load_case_table
    from duetfair.data.groups import GroupSpec, parse_bins
    from duetfair.io import to_json_text, write_text
    from duetfair.rundir import RunDir

    if fmt not in ("json", "md", "html"):
        raise DuetfairError(f"--format {fmt}: expected json, md or html")
    if fmt == "html" and out is None:
        raise DuetfairError("--format html: expected --out FILE.html")
    if bootstrap < 0:
        raise DuetfairError(f"--bootstrap {bootstrap}: expected a number of resamples >= 0")
    table = load_case_table(cases, missing=missing or ())
    edges = dict(parse_bins(spec) for spec in (bins or []))
    run = RunDir.containing(cases)
    spec_path = group_spec or (str(run.group_spec) if run is not None else None)
    hidden_col = _audit_hidden(hidden, run, table, cases)
    spec = GroupSpec.load(spec_path) if spec_path is not None else None
    if spec_path is not None:
        err_console.print(f"groups: {spec_path}", highlight=False)
    result = audit_table(
        table,
        by,
        metrics=tuple(metric or ("dice",)),
        bins=edges,
        es_variant=es_variant,
        n_boot=bootstrap,
        seed=seed,
        min_support=min_support,
        max_length=max_length,
        discovery=not no_discovery,
        class_=class_,
        spec=spec,
        failure_threshold=fail,
        cvar_method=cvar_method,
        redundancy_z=redundancy_z or None,
        fdr=fdr,
        hidden=hidden_col,
        **certify_options(confidence, detect, reference),
        adjust=list(adjust or []),
    )
    if fmt == "html":
        from duetfair.audit.report import render_html

        console.print(f"wrote {render_html(result, out, cases=table, title=f'duetfair audit of {cases}')}")
        return
    if fmt == "md":
        from duetfair.audit.report import render_markdown

        text = render_markdown(result, title=f"duetfair audit of {cases}")
    else:
        text = to_json_text(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text(out, text)
        console.print(f"wrote {out}")


def _audit_hidden(hidden: Optional[str], run: Optional[RunDir], table: pd.DataFrame, cases: str) -> HiddenColumn:
    """The hidden column of ``duetfair audit``: ``--hidden`` (which must be a column of the table),
    else the run's ``data.hidden_column`` when CASES is a run's cases.csv, else ``hidden_subtype``."""
    from duetfair.data.groups import HiddenColumn

    if hidden is not None:
        column = HiddenColumn.parse(hidden)
        column.check(table, f"--hidden {hidden}: {cases}")
        return column
    if run is not None:
        from duetfair.engine.config import load_config

        return HiddenColumn.parse(load_config(run.config).data.hidden_column)
    return HiddenColumn.parse(None)


# ---- score -------------------------------------------------------------------------------------
@app.command("score")
def score_cmd(
    pred_dir: Optional[str] = typer.Argument(
        None, help="Folder of predicted masks, one label map per case (PNG/NPY/NPZ 2D; NIfTI, NRRD, MHA 3D)."
    ),
    ref_dir: Optional[str] = typer.Argument(
        None, help="Folder of reference masks, matched to the predictions by case id."
    ),
    meta: Optional[str] = typer.Option(
        None,
        "--meta",
        help="Metadata table (CSV, TSV, XLSX, Parquet): one row per case, an id column, attributes "
        "(required, except for --shard).",
    ),
    out: str = typer.Option(..., "--out", help="Output folder: cases.csv, audit.json, audit.md, report.html."),
    id_column: Optional[str] = typer.Option(
        None, "--id-column", help="Id column of --meta (default: case_id if present, else the first column)."
    ),
    by: Optional[list[str]] = typer.Option(
        None,
        "--by",
        help="Attribute to audit (repeatable; 'race+sex' = intersection). Default: every metadata "
        "column except the id.",
    ),
    bins: Optional[list[str]] = typer.Option(
        None,
        "--bins",
        help="Bin a continuous attribute, e.g. age=40,60,80 (repeatable); required for numeric "
        "columns with more than 12 distinct values.",
    ),
    metric: Optional[list[str]] = typer.Option(
        None,
        "--metric",
        help="dice, iou, hd95 or nsd (repeatable). Default: all four for folders, those present "
        "for --nnunet / --monai-csv.",
    ),
    labels: Optional[str] = typer.Option(
        None,
        "--labels",
        help="Label ids to score, e.g. 1,2 (default: every label in the references; only the "
        "regions when --region is given). Other non-zero values are then errors.",
    ),
    label_names: Optional[str] = typer.Option(
        None, "--label-names", help="Names of the labels, e.g. rim,cup (in --labels order) or 1=rim,2=cup."
    ),
    region: Optional[list[str]] = typer.Option(
        None, "--region", help="Union of labels scored as one structure, e.g. disc=1+2 or tc=1+3,wt=1+2+3 (repeatable)."
    ),
    pattern: Optional[str] = typer.Option(
        None,
        "--pattern",
        help="Case-id rule for file names: '{case}_seg.nii.gz' ({case} = the id, * = anything) "
        "or 're:REGEX' with a group (?P<case>...). Default: the name without its extension.",
    ),
    pred_pattern: Optional[str] = typer.Option(None, "--pred-pattern", help="--pattern for the predictions only."),
    ref_pattern: Optional[str] = typer.Option(None, "--ref-pattern", help="--pattern for the references only."),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Score a reference without prediction as an empty prediction (as challenges do) instead of failing.",
    ),
    empty: str = typer.Option(
        "nnunet",
        "--empty",
        help="Empty-mask policy: nnunet (nnU-Net v2: a structure predicted on a case without it, or missed, "
        "scores Dice 0, a failure), nan (undefined whenever the reference is empty), fairseg or mamamia.",
    ),
    nsd_tolerance: float = typer.Option(
        1.0, "--nsd-tolerance", help="NSD tolerance in the reference's unit (mm for NIfTI, pixels for PNG)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Worker processes for scoring (default: min(CPU cores, 8))."
    ),
    nnunet: Optional[str] = typer.Option(
        None, "--nnunet", help="Instead of folders: nnU-Net v2 summary.json (per-case Dice / IoU per label or region)."
    ),
    monai_csv: Optional[list[str]] = typer.Option(
        None,
        "--monai-csv",
        help="Instead of folders: MONAI per-case CSV, e.g. mean_dice_raw.csv or dice=FILE "
        "(repeatable, one per metric).",
    ),
    es_variant: str = typer.Option(
        "sum_abs", "--es-variant", help="Equity-scaled variant: sum_abs (FairSeg/dMoE/DuetFair) or std (FairMedFM)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    no_discovery: bool = typer.Option(False, "--no-discovery", help="Skip divergent subgroup discovery."),
    confidence: float = CONFIDENCE,
    detect: Optional[list[str]] = DETECT,
    reference: Optional[str] = REFERENCE,
    missing: Optional[list[str]] = typer.Option(None, "--missing", help=MISSING_HELP),
    images: Optional[str] = typer.Option(
        None,
        "--images",
        help="Folder of the images (matched by case id; nnU-Net's case_0000 too): image descriptors "
        "(contrast, texture, ...) for the hidden failure slices, and the worst cases of every group "
        "and slice drawn with both contours (folders input only).",
    ),
    fail: Optional[list[str]] = typer.Option(
        None,
        "--fail",
        help="Failure cut-off of a metric, e.g. hd95>10 or dice<0.6 (repeatable; defaults: Dice 0.5, IoU 1/3, "
        "NSD 0.5, none for distances).",
    ),
    shard: Optional[str] = typer.Option(
        None,
        "--shard",
        help="Score only shard K of N of the cases (a stable share by case id), e.g. 3/8 in a job array; writes "
        "a part (cases.csv, shard.json) to --out for --merge. See docs/cluster.md.",
    ),
    merge: Optional[list[str]] = typer.Option(
        None,
        "--merge",
        help="Instead of folders: the parts written by --shard (their folders, or the folder holding them; "
        "repeatable); all N must be there, each case once.",
    ),
    hd95_unit: Optional[str] = typer.Option(
        None,
        "--hd95-unit",
        help="Unit of HD95 in --monai-csv files: mm, voxels (MONAI's MetricsSaver: no spacing), pixels; "
        "default unknown (said in the report).",
    ),
    adjust: Optional[list[str]] = typer.Option(None, "--adjust", help=ADJUST_HELP),
    no_descriptors: bool = typer.Option(
        False, "--no-descriptors", help="Skip the case descriptors (desc_*) and the hidden failure slices: faster."
    ),
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

    Examples:
      duetfair score preds/ labelsTs/ --meta patients.csv --out audit --bins age=40,60,80

      duetfair score preds/ refs/ --meta fairseg.csv --out audit --labels 1,2 --label-names rim,cup --region disc=1+2

      duetfair score --nnunet fold_0/validation/summary.json --meta patients.csv --out audit

      duetfair score preds/ labelsTs/ --shard 3/8 --out parts/3   (task 3 of a job array; docs/cluster.md)

      duetfair score --merge parts --meta patients.csv --out audit
    """
    from duetfair.audit.inputs import choose_attributes, join_metadata, read_metadata, write_audit
    from duetfair.audit.report import render_summary
    from duetfair.cli_score import check_score_sources, units_of
    from duetfair.data.groups import parse_bins
    from duetfair.metrics.folders import SCORE_METRICS, parse_label_names, parse_labels, parse_regions

    check_score_sources(
        pred_dir=pred_dir,
        ref_dir=ref_dir,
        nnunet=nnunet,
        monai_csv=list(monai_csv or []),
        merge=list(merge or []),
        meta=meta,
        shard=shard,
        hd95_unit=hd95_unit,
        images=images,
    )
    if shard is not None:
        _score_shard(
            pred_dir,
            ref_dir,
            shard,
            labels,
            label_names,
            region,
            metric,
            empty,
            nsd_tolerance,
            out,
            pred_pattern or pattern,
            ref_pattern or pattern,
            allow_missing,
            workers,
            not no_descriptors,
        )
        return
    if bootstrap < 0:
        raise DuetfairError(f"--bootstrap {bootstrap}: expected a number of resamples >= 0")
    if images is not None and pred_dir is None:
        raise DuetfairError("--images draws the predicted and reference masks; it needs PRED_DIR REF_DIR")
    meta_df = read_metadata(str(meta), id_column, missing=missing or ())
    edges = dict(parse_bins(spec) for spec in (bins or []))
    label_list, regions = parse_labels(labels, background=bool(monai_csv)), parse_regions(region)
    names = parse_label_names(label_names, label_list)
    notes: list[str] = []
    if merge:
        from duetfair.metrics.shards import merge_parts

        table, source = merge_parts(list(merge))
    elif pred_dir is not None:
        table, source = _score_folders(
            pred_dir,
            str(ref_dir),
            label_list,
            regions,
            names,
            metric,
            empty,
            nsd_tolerance,
            pred_pattern or pattern,
            ref_pattern or pattern,
            allow_missing,
            workers,
            images,
            not no_descriptors,
        )
    else:
        table, source = _read_scores(
            nnunet, list(monai_csv or []), pred_pattern or pattern, label_list, regions, names, notes
        )
    cases, report = join_metadata(table, meta_df)
    attributes, skipped = choose_attributes(cases, meta_df, by, edges)
    for line in report.messages() + notes + skipped:
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)
    metrics = list(metric or [m for m in SCORE_METRICS if m in cases.columns])
    title = f"duetfair audit of {pred_dir or nnunet or (monai_csv or merge or [''])[0]}"
    audit, paths = write_audit(
        cases,
        out,
        by=attributes,
        metrics=metrics,
        bins=edges,
        es_variant=es_variant,
        n_boot=bootstrap,
        seed=seed,
        discovery=not no_discovery,
        title=title,
        inputs={**source, "metadata": meta, "join": report.to_dict(), **({"images": images} if images else {})},
        gallery=_folder_gallery(images, pred_dir, ref_dir, pred_pattern or pattern, ref_pattern or pattern),
        failure_threshold=fail,
        units=units_of(source, hd95_unit),
        **certify_options(confidence, detect, reference),
        adjust=list(adjust or []),
    )
    typer.echo(render_summary(audit), nl=False)
    console.print(f"wrote {', '.join(p.name for p in paths.values())} in {out}", highlight=False, markup=False)


def _folder_gallery(
    images: Optional[str],
    pred_dir: Optional[str],
    ref_dir: Optional[str],
    pred_pattern: Optional[str],
    ref_pattern: Optional[str],
) -> object:
    """``duetfair score --images``: the report's gallery source (None without images)."""
    if images is None or pred_dir is None or ref_dir is None:
        return None
    from pathlib import Path

    from duetfair.audit.gallery import FolderGallery

    if not Path(images).is_dir():
        raise DuetfairError(f"--images {images}: folder not found")
    return FolderGallery(Path(images), Path(pred_dir), Path(ref_dir), pred_pattern, ref_pattern)


def _read_scores(
    nnunet: Optional[str],
    monai_csv: list[str],
    pattern: Optional[str],
    labels: Optional[list[int]],
    regions: list,
    names: dict[int, str],
    notes: list[str],
) -> tuple[object, dict[str, object]]:
    """``duetfair score --nnunet`` / ``--monai-csv``: the per-case table of another tool's output."""
    from duetfair.audit.inputs import read_monai_csv, read_nnunet_summary

    if nnunet is not None:
        table = read_nnunet_summary(
            nnunet, pattern=pattern, label_names=names, regions={r.ids: r.name for r in regions}, labels=labels
        )
        return table, {"kind": "nnunet", "summary": nnunet}
    table = read_monai_csv(monai_csv, pattern=pattern, labels=labels, label_names=names, notes=notes)
    return table, {"kind": "monai_csv", "files": monai_csv}


def _score_folders(
    pred_dir: str,
    ref_dir: str,
    labels: Optional[list[int]],
    regions: list,
    names: dict[int, str],
    metric: Optional[list[str]],
    empty: str,
    nsd_tolerance: float,
    pred_pattern: Optional[str],
    ref_pattern: Optional[str],
    allow_missing: bool,
    workers: Optional[int],
    images: Optional[str] = None,
    descriptors: bool = True,
) -> tuple[object, dict[str, object]]:
    """``duetfair score`` on two folders: match, score (metrics and case descriptors, with image
    descriptors when ``images`` is given) in parallel with a progress bar on a terminal."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from duetfair.cli_score import folder_unit
    from duetfair.metrics.folders import SCORE_METRICS, ScoreSpec, match_folders, score_pairs
    from duetfair.procs import cap_workers

    pairs = match_folders(
        pred_dir, ref_dir, pred_pattern=pred_pattern, ref_pattern=ref_pattern, allow_missing=allow_missing
    )
    missing = [p.case_id for p in pairs if p.pred is None]
    if missing:
        err_console.print(
            f"warning: {len(missing)} references have no prediction; scored as empty predictions (--empty {empty})",
            highlight=False,
            markup=False,
        )
    spec = ScoreSpec(
        tuple(labels) if labels is not None else None,
        tuple(regions),
        tuple(metric or SCORE_METRICS),
        empty,
        float(nsd_tolerance),
        descriptors=descriptors,
        images=descriptors and images is not None,
    )
    n_workers, note = cap_workers(workers, n_tasks=len(pairs))
    if note:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    pairs = _with_images(pairs, images)
    bar = (
        Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        if console.is_terminal
        else None
    )
    with bar or nullcontext():
        task = bar.add_task("scoring", total=len(pairs)) if bar is not None else None
        step = (lambda k: bar.advance(task, k)) if bar is not None and task is not None else _log_progress(len(pairs))
        table = score_pairs(pairs, spec, workers=n_workers, label_names=names, progress=step)
    source = {
        "kind": "folders",
        "predictions": pred_dir,
        "references": ref_dir,
        "n_missing_predictions": len(missing),
        "missing_predictions": missing[:20],
        "empty": empty,
        "nsd_tolerance": float(nsd_tolerance),
        "hd95_unit": folder_unit([p.ref for p in pairs]),
    }
    return table, source


def _log_progress(total: int) -> object:
    """Plain progress lines on stdout when it is not a terminal (a log file, CI, a cluster job)."""
    from duetfair.cli_score import progress_step

    if console.is_terminal:
        return None
    return progress_step(total, lambda s: console.print(s, highlight=False, markup=False, soft_wrap=True))


def _score_shard(
    pred_dir: Optional[str],
    ref_dir: Optional[str],
    shard: str,
    labels: Optional[str],
    label_names: Optional[str],
    region: Optional[list[str]],
    metric: Optional[list[str]],
    empty: str,
    nsd_tolerance: float,
    out: str,
    pred_pattern: Optional[str],
    ref_pattern: Optional[str],
    allow_missing: bool,
    workers: Optional[int],
    descriptors: bool = True,
) -> None:
    """``duetfair score PRED REF --shard K/N --out PART`` (see :mod:`duetfair.metrics.shards`)."""
    from duetfair.cli_score import score_shard
    from duetfair.metrics.folders import SCORE_METRICS, ScoreSpec, parse_label_names, parse_labels, parse_regions
    from duetfair.procs import cap_workers

    label_list, regions = parse_labels(labels), parse_regions(region)
    spec = ScoreSpec(
        tuple(label_list) if label_list is not None else None,
        tuple(regions),
        tuple(metric or SCORE_METRICS),
        empty,
        float(nsd_tolerance),
        descriptors=descriptors,  # the mask and error descriptors, as unsharded scoring writes them
    )
    n_workers, note = cap_workers(workers)
    if note:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    line = score_shard(
        str(pred_dir),
        str(ref_dir),
        shard_text=shard,
        spec=spec,
        names=parse_label_names(label_names, label_list),
        pred_pattern=pred_pattern,
        ref_pattern=ref_pattern,
        allow_missing=allow_missing,
        workers=n_workers,
        out=out,
        make_progress=_log_progress,  # type: ignore[arg-type]
    )
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _with_images(pairs: list, images: Optional[str]) -> list:
    """Pairs with the image of each case from ``--images`` (matched by case id; a warning names
    the cases without one)."""
    if images is None:
        return pairs
    from dataclasses import replace
    from pathlib import Path

    from duetfair.audit.gallery import list_images

    if not Path(images).is_dir():
        raise DuetfairError(f"--images {images}: folder not found")
    found = list_images(images)
    lacking = [p.case_id for p in pairs if p.case_id not in found]
    if lacking:
        err_console.print(
            f"warning: {len(lacking)} cases have no image in {images} (e.g. {lacking[0]}); their image descriptors "
            "are unknown",
            highlight=False,
            markup=False,
        )
    return [replace(p, image=found.get(p.case_id)) for p in pairs]


# ---- synth -------------------------------------------------------------------------------------
@app.command("synth")
def synth(
    kind: str = typer.Argument(..., help="Synthetic task: fundus2d, lesion2d or tumor3d."),
    n: int = typer.Option(200, "--n", help="Number of cases."),
    out: str = typer.Option(..., "--out", help="Output folder (manifest.csv, images/, labels/)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed -> same files)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image side in pixels/voxels (default 64 2D, 32 3D)."),
    hidden_prob: Optional[float] = typer.Option(
        None, "--hidden-prob", help="Hidden hard subtype share (default 0.15)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing manifest in --out."),
) -> None:
    """Write a synthetic fairness benchmark as a CSV manifest with PNG / NIfTI files.

    The result loads like a user's own data (build_datasets("manifest", path=OUT/manifest.csv)).

    Example: duetfair synth fundus2d --n 500 --out data/fundus --seed 0 --size 96
    """
    from duetfair.data.synthetic import TASKS, write_synthetic

    if kind not in TASKS:
        raise DuetfairError(f"unknown synthetic task '{kind}'; expected one of {list(TASKS)}")
    params = {} if hidden_prob is None else {"hidden_prob": hidden_prob}
    path = write_synthetic(kind, n, out, seed=seed, image_size=size, overwrite=overwrite, **params)
    console.print(f"wrote {n} {kind} cases: {path}")


# ---- init-config -------------------------------------------------------------------------------
@app.command("init-config")
def init_config_cmd(
    manifest: str = typer.Argument(
        ...,
        help="Your manifest (CSV, TSV, XLSX, Parquet): one row per case, image / label / case-id columns, "
        "attribute columns.",
    ),
    out: str = typer.Option(..., "--out", help="Config file to write (.yaml)."),
    hidden: Optional[str] = typer.Option(
        None,
        "--hidden",
        help="Analysis-only column of known hard cases: COLUMN (0/1, yes/no) or COLUMN=VALUE "
        "(default: hidden_subtype when present).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Write a commented experiment config for your own manifest, ready for train and benchmark.

    Detects the image, label and case-id columns (also under names such as mask or patient_id),
    lists the attribute columns, suggests bins for a continuous one (many distinct numbers, e.g.
    age), picks 2D or 3D from the image files, and trains on the groups of the first categorical
    attribute; every key is explained in the file's comment header. Start from it and edit.

    Examples:
      duetfair init-config data/my_data/manifest.csv --out my.yaml
      duetfair init-config lesions.csv --out lesions.yaml --hidden morphology=irregular
    """
    from duetfair.engine.starter import write_starter_config

    path, summary = write_starter_config(manifest, out, hidden=hidden, overwrite=overwrite)
    bins = ", ".join(f"{a} at {edges}" for a, edges in summary.continuous.items()) or "none"
    console.print(
        f"wrote {path}: {summary.n_rows} cases, {summary.spatial_dims}D, attributes "
        f"{', '.join(summary.attributes)} (bins: {bins}), group attribute {summary.attributes[0]}, "
        f"hidden column {summary.hidden or 'none'}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for note in summary.notes:
        console.print(f"  left out {note}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"next: duetfair train {path} --out runs/{path.stem}", highlight=False, markup=False, soft_wrap=True)


# ---- train -------------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    config: str = typer.Argument(
        ..., help="Experiment YAML, a packaged config name (e.g. fundus2d_dmoe), or a run folder (with --resume)."
    ),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a config value, e.g. --set train.epochs=5 (repeatable)."
    ),
    out: Optional[str] = typer.Option(None, "--out", help="Run folder (default: output_dir of the config)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the run folder from checkpoints/last.pt."),
) -> None:
    """Train a segmentation model with a fairness objective; validate, select and checkpoint every epoch.

    Writes config.yaml, history.csv, checkpoints/{last,best}.pt, run.json and TensorBoard logs.
    Ctrl-C stops at the next step with a resumable checkpoint. Multi-GPU / multi-process:
    torchrun --nproc_per_node 2 -m duetfair train CONFIG

    Examples:
      duetfair train fundus2d_fair_dro --set train.epochs=5 --out runs/fair_dro
      duetfair train runs/fair_dro --resume
    """
    from pathlib import Path

    from duetfair.engine.config import load_config
    from duetfair.engine.distributed import cleanup, env_info
    from duetfair.engine.trainer import train

    source = Path(config)
    if source.is_dir():
        if not (source / "config.yaml").is_file():
            raise DuetfairError(f"{source} is a folder without config.yaml; expected a config file or a run folder")
        out = out or str(source)
        source = source / "config.yaml"
    cfg = load_config(source if source.exists() else config, list(set_ or []))
    run_dir = out or cfg.output_dir
    try:
        result = train(cfg, run_dir, resume=resume)
    finally:
        cleanup()
    if env_info().rank != 0:  # torchrun: only rank 0 reports
        return
    if result.status == "interrupted":
        err_console.print(
            f"interrupted at epoch {result.epochs_done + 1}; checkpoint kept. "
            f"Resume with: duetfair train {run_dir} --resume",
            highlight=False,
        )
        raise typer.Exit(130)
    console.print(
        f"done: {result.epochs_done} epochs, best epoch {result.best_epoch} "
        f"({cfg.select_rule} Dice {result.best_score:.4f}); run folder {run_dir}",
        highlight=False,
    )
    console.print(f"next: duetfair evaluate {run_dir}", highlight=False)


# ---- evaluate ----------------------------------------------------------------------------------
@app.command("evaluate")
def evaluate_cmd(
    run_dir: str = typer.Argument(..., help="Run folder written by 'duetfair train'."),
    split: Optional[str] = typer.Option(
        None, "--split", help="Split to evaluate (default: eval.split of the run, 'test')."
    ),
    data: Optional[str] = typer.Option(
        None, "--data", help="Evaluate on the data section of this config instead (external test set)."
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="'best' (selected on validation) or 'last'."),
    bootstrap: Optional[int] = typer.Option(
        None, "--bootstrap", help="Bootstrap resamples for the intervals (default eval.n_boot, 1000)."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    threads: Optional[int] = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads (default: one per core, at most 8; lower it when jobs share the machine).",
    ),
    out: Optional[str] = typer.Option(
        None, "--out", help="Folder of the outputs (default: RUN_DIR), e.g. RUN_DIR/eval-val for a validation audit."
    ),
) -> None:
    """Predict a split and audit it: cases.csv, summary.json, audit.json and report.html in RUN_DIR.

    cases.csv has one row per case and class (case_id, class, dice, iou, hd95, nsd, n_ref, n_pred,
    attribute columns, hidden_subtype when the data knows it).

    Examples:
      duetfair evaluate runs/fair_dro
      duetfair evaluate runs/fair_dro --split val --bootstrap 200 --out runs/fair_dro/eval-val
    """
    from duetfair.engine.evaluate import evaluate_run

    summary = evaluate_run(
        run_dir,
        split=split,
        data_config=data,
        checkpoint=checkpoint,
        n_boot=bootstrap,
        report=not no_report,
        threads=threads,
        out_dir=out,
        log=lambda s: console.print(s, highlight=False, markup=False, soft_wrap=True),
    )
    attr = summary.get("group_attribute")
    line = f"{summary['name']} [{summary['split']}, {summary['n_cases']} cases]: Dice {summary['dice']:.4f}"
    dice = summary["audit"]["metrics"]["dice"]["attributes"]
    if attr in dice:
        a = dice[attr]
        line += f", ES-Dice ({attr}) {a['es']:.4f}, worst group {a['worst_group']} {a['worst_mean']:.4f}"
    console.print(line, highlight=False, markup=False)
    console.print(
        f"wrote cases.csv, summary.json, audit.json{'' if no_report else ', report.html'} in {out or run_dir}",
        highlight=False,
    )


# ---- predict -----------------------------------------------------------------------------------
@app.command("predict")
def predict_cmd(
    run_dir: str = typer.Argument(..., help="Run folder written by 'duetfair train'."),
    inputs: Optional[list[str]] = typer.Argument(
        None,
        help="Cases to segment: an image file (PNG/JPG/NPY/NPZ 2D, NIfTI 3D), or a case's files joined with "
        "';' (stacked as channels, e.g. MRI phases).",
    ),
    out: str = typer.Option(..., "--out", help="Output folder for the masks and predictions.csv."),
    manifest: Optional[str] = typer.Option(
        None,
        "--manifest",
        help="Table of cases to segment (CSV/TSV/XLSX/Parquet): an image column (';'-joined "
        "files), optional case_id, attribute columns; every case gets its own attributes.",
    ),
    attr: Optional[list[str]] = typer.Option(
        None,
        "--attr",
        help="Patient attribute NAME=VALUE of every input, for attribute-aware models (repeatable, "
        "one value per name).",
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="'best' or 'last'."),
    normalize: str = typer.Option(
        "auto", "--normalize", help="auto (as the training data), scale, zscore, zscore_global or none."
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads (default: one per core, at most 8)."
    ),
) -> None:
    """Segment images with a trained run; masks keep the input's size (PNG) or geometry (NIfTI affine).

    A run trained on several files per case (MRI phases) needs all of them, joined with ';' in the
    training order; a single file is repeated to fill the channels only when the run was trained on
    repeated grayscale images. --manifest segments each case with its own attributes (its row);
    --attr gives every input the same ones. Without attributes, attribute-aware models (dMoE) use
    their attribute-free fallback, and say so.

    Examples:
      duetfair predict runs/fair_dro scan1.png scan2.png --out masks --attr race=Black
      duetfair predict runs/tumour "pre.nii.gz;post1.nii.gz;post2.nii.gz" --out masks
      duetfair predict runs/tumour --manifest cases.csv --out masks
    """
    from duetfair.engine.predict import parse_attrs, predict_files

    attrs = parse_attrs(list(attr or []))
    if not inputs and manifest is None:
        raise DuetfairError("expected input images or --manifest FILE: duetfair predict RUN IMAGE... --out DIR")
    table = predict_files(
        run_dir,
        list(inputs or []),
        out,
        attrs=attrs,
        manifest=manifest,
        checkpoint=checkpoint,
        normalize=normalize,
        threads=threads,
    )
    fallback = table["group_source"].astype(str).str.startswith("none given")
    if fallback.any():
        err_console.print(
            f"note: {int(fallback.sum())} of {len(table)} cases without attributes; attribute-aware "
            f"models used their attribute-free fallback (group unknown)",
            highlight=False,
        )
    for _, row in table.iterrows():
        console.print(f"{row['input']} -> {row['mask']} (group: {row['group']})", highlight=False, markup=False)


# ---- compare -----------------------------------------------------------------------------------
@app.command("compare")
def compare_cmd(
    run_dirs: list[str] = typer.Argument(..., help="Evaluated run folders (one per method)."),
    fmt: str = typer.Option("md", "--format", help="md, csv, json, latex or html (a report; needs --out)."),
    by: Optional[str] = typer.Option(
        None, "--by", help="Attribute of the groups (default: the runs' training attribute)."
    ),
    name: Optional[list[str]] = typer.Option(None, "--name", help="Display name per run, in order (repeatable)."),
    out: Optional[str] = typer.Option(None, "--out", help="Also write the table to this file."),
) -> None:
    """Compare evaluated runs in the papers' table format; best value per column marked.

    Columns: ES-Dice, Dice, ES-IoU, IoU with bootstrap intervals, per-group Dice / IoU, worst group,
    worst-group CVaR10 (hidden failures) and the hidden-subtype Dice when the data knows it.
    --format html writes a report: the methods side by side with intervals, paired differences to
    the first run (same test cases) with verdicts, and the table.

    Examples:
      duetfair compare runs/erm runs/dmoe runs/fair_dro
      duetfair compare runs/* --format latex --out table.tex
      duetfair compare runs/erm runs/fair_dro --format html --out comparison.html
    """
    from duetfair.audit.compare import FORMATS, compare_runs, comparison_report, format_table
    from duetfair.io import write_text

    if fmt == "html":
        if not out:
            raise DuetfairError("--format html writes a report file; give --out FILE.html")
        console.print(
            f"wrote {comparison_report(run_dirs, out, names=name or None, attribute=by)}", highlight=False, markup=False
        )
        return
    if fmt not in FORMATS:
        raise DuetfairError(f"--format '{fmt}': expected one of {', '.join(FORMATS)} or html")
    table = format_table(compare_runs(run_dirs, attribute=by, names=name or None), fmt)
    if out:
        write_text(out, table)
    typer.echo(table, nl=False)


# ---- benchmark ---------------------------------------------------------------------------------
@app.command("benchmark")
def benchmark_cmd(
    config: Optional[str] = typer.Argument(
        None,
        help="Experiment config to benchmark (your own data, e.g. made by 'duetfair init-config'); default: "
        "the synthetic --task.",
    ),
    config_opt: Optional[str] = typer.Option(None, "--config", help="Same as the CONFIG argument."),
    out: str = typer.Option("runs/benchmark", "--out", help="Output folder (one sub-folder per seed and method)."),
    task: Optional[str] = typer.Option(
        None, "--task", help="Synthetic task: fundus2d (default), lesion2d or tumor3d; not with CONFIG."
    ),
    method: Optional[list[str]] = typer.Option(
        None,
        "--method",
        help="Method to include (repeatable; default: the demo's six; 'all': the published benchmark's twelve, "
        "oracle included).",
    ),
    seeds: int = typer.Option(
        3,
        "--seeds",
        help="Number of seeds (0..N-1): training, and the data / split where the config's data.args has a seed.",
    ),
    size: Optional[str] = typer.Option(
        None,
        "--size",
        help="--task only: quick (default), default, bench (the published benchmark) or paper (GPU); see "
        "duetfair.experiments.methods.SIZES.",
    ),
    split: str = typer.Option(
        "test",
        "--split",
        help="Split the table reports: test, or val to choose defaults and hyper-parameters without touching test.",
    ),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Extra config override for every run (repeatable)."),
) -> None:
    """Compare fairness methods over several seeds, on a synthetic task or on any config (your data).

    Per method: mean and bootstrap interval across seeds, paired difference to ERM and a verdict
    (better / worse / no clear difference; none from fewer than 5 seeds: too thin); writes methods.md and
    methods.json. On a CONFIG each
    method is the config with the method shortcut applied (its model variant and objective), all
    else identical. Re-running the same command reuses finished runs and resumes interrupted ones.

    Examples:
      duetfair benchmark --seeds 3
      duetfair benchmark --task lesion2d --method erm --method fair_dro --seeds 5 --size default
      duetfair benchmark my_data.yaml --method erm --method fair_dro --seeds 5 --out runs/my_bench
      duetfair benchmark --task tumor3d --method all --size bench --seeds 5 --out runs/bench/tumor3d
    """
    from duetfair.experiments.methods import BENCH_METHODS, DEMO_METHODS, run_benchmark

    if seeds < 1:
        raise DuetfairError(f"--seeds {seeds}: expected at least 1")
    if config is not None and config_opt is not None and config != config_opt:
        raise DuetfairError(f"config given twice ({config} and --config {config_opt}); give one")
    source = config or config_opt
    if source is not None and task is not None:
        raise DuetfairError(f"--task {task}: a synthetic task or a CONFIG ({source}), not both")
    result = run_benchmark(
        out,
        task=task or "fundus2d",
        config=source,
        methods=list(BENCH_METHODS) if method == ["all"] else method or list(DEMO_METHODS),
        seeds=list(range(seeds)),
        size=size if source is not None else (size or "quick"),
        extra=list(set_ or []),
        split=split,
        log=lambda s: console.print(s, highlight=False, markup=False, soft_wrap=True),
    )
    typer.echo(result["markdown"], nl=False)
    stem = "methods" if split == "test" else f"methods-{split}"
    console.print(f"wrote {out}/{stem}.md and {out}/{stem}.json", highlight=False, markup=False)


# ---- demo --------------------------------------------------------------------------------------
@app.command("demo")
def demo_cmd(
    out: str = typer.Option(
        "runs/demo", "--out", help="Output folder (one run per method, comparison.md/json/csv, report.html)."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Small sizes (what make demo runs): about 2 minutes on 2 CPU cores (default size: 8 to 10).",
    ),
    table_only: bool = typer.Option(
        False, "--table-only", help="No training: simulate a per-case results table and audit it (seconds)."
    ),
    n: Optional[int] = typer.Option(
        None, "--n", help="Number of simulated cases of the table demo (implies --table-only; default 2000)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="--table-only: bootstrap resamples for the intervals."),
) -> None:
    """Train six methods on the synthetic benchmark, compare them and write the report.

    ERM, GroupDRO, FEBS, MoE, dMoE and FairDRO (dMoE + subgroup-conditioned DRO) on the synthetic
    fundus task (race groups, hidden hard subtype), CPU-sized; prints the comparison table.

    Examples:
      duetfair demo --quick
      duetfair demo --out runs/demo
      duetfair demo --table-only --out demo_table
    """
    if table_only or n is not None:
        from duetfair.audit.report import render_summary
        from duetfair.audit.simulate import run_table_demo

        n = 2000 if n is None else n
        if n < 10:
            raise DuetfairError(f"--n {n}: expected at least 10 cases")
        result = run_table_demo(out, n=n, seed=seed, n_boot=bootstrap)
        typer.echo(render_summary(result["audit"]), nl=False)
        for name, path in result["paths"].items():
            console.print(f"wrote {name}: {path}")
        return
    from duetfair.experiments.methods import run_demo

    table = run_demo(
        out, quick=quick, seed=seed, log=lambda s: console.print(s, highlight=False, markup=False, soft_wrap=True)
    )
    typer.echo(table, nl=False)
    console.print(
        f"wrote {out}/comparison.md, comparison.json, comparison.csv and report.html "
        f"(per-method runs in {out}/<method>/)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if quick:
        console.print(
            "This was the quick size (8 epochs). The full comparison: make demo-full, or duetfair demo "
            "--out runs/demo-full (20 epochs, HD95/NSD; about 8 to 10 minutes on 2 cores).",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


MAX_MESSAGE = 400
"""Longest error message echoed (a value echoed from a hostile input is cut, never expanded)."""


def _fail(message: str, code: int) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    from rich.markup import escape

    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)


def os_error_message(exc: OSError) -> str:
    """One line naming the path and what is wrong with it (a folder where a file goes, no space, ...)."""
    import errno

    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reasons = {
        errno.EISDIR: "it is a folder; expected a file path",
        errno.ENOTDIR: "a parent of it is a file, not a folder",
        errno.EEXIST: "a file of that name exists where a folder is needed",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.ENOENT: "no such file or folder",
    }
    reason = reasons.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    return f"cannot use '{path}': {reason}" if path is not None else f"file system error: {reason}"


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``duetfair`` console script.

    Input errors (:class:`DuetfairError`), file-system errors (a folder where a file goes, no
    permission, disk full) and memory exhaustion end in one line on stderr and exit code 2; any other
    exception is a bug: one line, exit code 1, the traceback with ``DUETFAIR_DEBUG=1``.
    """
    import os

    try:
        app(args=argv)
    except DuetfairError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(os_error_message(exc), 2)
    except MemoryError:
        _fail("out of memory; reduce the request (sizes, --bootstrap, --n) or free memory", 2)
    except RecursionError:
        _fail("an input is nested too deeply to be read (JSON / YAML nesting); expected an ordinary file", 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must still not print a traceback
        if os.environ.get("DUETFAIR_DEBUG"):
            raise
        _fail(
            f"internal error ({type(exc).__name__}: {exc}); rerun with DUETFAIR_DEBUG=1 for the traceback "
            f"and report it",
            1,
        )


@app.command("version")
def version() -> None:
    """Print the duetfair version."""
    from duetfair import __version__

    console.print(f"duetfair {__version__}")
