"""What ``duetfair score`` does: its input options (:class:`ScoreInputs`) and its steps (score or
read the per-case table, join the metadata, choose the attributes, audit and write the folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from duetfair.cli.app import console, err_console
from duetfair.errors import DuetfairError
from duetfair.options import DistanceUnit, EmptyPolicy

if TYPE_CHECKING:
    import pandas as pd

    from duetfair.cli.options import AuditOptions
    from duetfair.data.groups import GroupSpec, HiddenColumn


@dataclass(frozen=True)
class ScoreInputs:
    """The options of ``duetfair score`` that say what to score and where to write it."""

    out: Annotated[str, typer.Option("--out", help="Output folder: cases.csv, audit.json, audit.md, report.html.")]
    meta: Annotated[
        Optional[str],
        typer.Option(
            "--meta",
            help="Metadata table (CSV, TSV, XLSX, Parquet): one row per case, an id column, attributes "
            "(required, except for --shard).",
        ),
    ] = None
    id_column: Annotated[
        Optional[str],
        typer.Option("--id-column", help="Id column of --meta (default: case_id if present, else the first column)."),
    ] = None
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels",
            help="Label ids to score, e.g. 1,2 (default: every label in the references; only the regions when "
            "--region is given). Other non-zero values are then errors.",
        ),
    ] = None
    label_names: Annotated[
        Optional[str],
        typer.Option("--label-names", help="Names of the labels, e.g. rim,cup (in --labels order) or 1=rim,2=cup."),
    ] = None
    region: Annotated[
        Optional[list[str]],
        typer.Option(
            "--region",
            help="Union of labels scored as one structure, e.g. disc=1+2 or tc=1+3,wt=1+2+3 (repeatable).",
        ),
    ] = None
    pattern: Annotated[
        Optional[str],
        typer.Option(
            "--pattern",
            help="Case-id rule for file names: '{case}_seg.nii.gz' ({case} = the id, * = anything) or "
            "'re:REGEX' with a group (?P<case>...). Default: the name without its extension.",
        ),
    ] = None
    pred_pattern: Annotated[
        Optional[str], typer.Option("--pred-pattern", help="--pattern for the predictions only.")
    ] = None
    ref_pattern: Annotated[Optional[str], typer.Option("--ref-pattern", help="--pattern for the references only.")] = (
        None
    )
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Score a reference without prediction as an empty prediction (as challenges do) instead of failing.",
        ),
    ] = False
    empty: Annotated[
        EmptyPolicy,
        typer.Option(
            "--empty",
            help="Empty-mask policy: nnunet (nnU-Net v2: a structure predicted on a case without it, or missed, "
            "scores Dice 0, a failure), nan (undefined whenever the reference is empty), fairseg or mamamia.",
        ),
    ] = EmptyPolicy.NNUNET
    nsd_tolerance: Annotated[
        float,
        typer.Option("--nsd-tolerance", help="NSD tolerance in the reference's unit (mm for NIfTI, pixels for PNG)."),
    ] = 1.0
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Worker processes for scoring (default: min(CPU cores, 8)).")
    ] = None
    nnunet: Annotated[
        Optional[str],
        typer.Option(
            "--nnunet", help="Instead of folders: nnU-Net v2 summary.json (per-case Dice / IoU per label or region)."
        ),
    ] = None
    monai_csv: Annotated[
        Optional[list[str]],
        typer.Option(
            "--monai-csv",
            help="Instead of folders: MONAI per-case CSV, e.g. mean_dice_raw.csv or dice=FILE (repeatable, one "
            "per metric).",
        ),
    ] = None
    images: Annotated[
        Optional[str],
        typer.Option(
            "--images",
            help="Folder of the images (matched by case id; nnU-Net's case_0000 too): image descriptors "
            "(contrast, texture, ...) for the hidden failure slices, and the worst cases of every group and "
            "slice drawn with both contours (folders input only).",
        ),
    ] = None
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard",
            help="Score only shard K of N of the cases (a stable share by case id), e.g. 3/8 in a job array; "
            "writes a part (cases.csv, shard.json) to --out for --merge. See docs/cluster.md.",
        ),
    ] = None
    merge: Annotated[
        Optional[list[str]],
        typer.Option(
            "--merge",
            help="Instead of folders: the parts written by --shard (their folders, or the folder holding them; "
            "repeatable); all N must be there, each case once.",
        ),
    ] = None
    hd95_unit: Annotated[
        Optional[DistanceUnit],
        typer.Option(
            "--hd95-unit",
            help="Unit of HD95 in --monai-csv files: mm, voxels (MONAI's MetricsSaver: no spacing), pixels; "
            "default unknown (said in the report).",
        ),
    ] = None
    no_descriptors: Annotated[
        bool,
        typer.Option(
            "--no-descriptors", help="Skip the case descriptors (desc_*) and the hidden failure slices: faster."
        ),
    ] = False

    @property
    def pred_rule(self) -> Optional[str]:
        """Case-id rule of the prediction files."""
        return self.pred_pattern or self.pattern

    @property
    def ref_rule(self) -> Optional[str]:
        """Case-id rule of the reference files."""
        return self.ref_pattern or self.pattern


def run_score(pred_dir: Optional[str], ref_dir: Optional[str], inputs: ScoreInputs, settings: AuditOptions) -> None:
    """``duetfair score``: check the inputs, score one shard, or score, join, audit and write."""
    from duetfair.cli.scoring import check_score_sources, score_shard_command

    check_score_sources(
        pred_dir=pred_dir,
        ref_dir=ref_dir,
        nnunet=inputs.nnunet,
        monai_csv=list(inputs.monai_csv or []),
        merge=list(inputs.merge or []),
        meta=inputs.meta,
        shard=inputs.shard,
        hd95_unit=None if inputs.hd95_unit is None else str(inputs.hd95_unit),
        images=inputs.images,
    )
    if inputs.shard is not None:
        score_shard_command(pred_dir, ref_dir, inputs, settings.metric)
        return
    settings.check_bootstrap()
    if inputs.images is not None and pred_dir is None:
        raise DuetfairError("--images draws the predicted and reference masks; it needs PRED_DIR REF_DIR")
    _score_and_audit(pred_dir, ref_dir, inputs, settings)


def _score_and_audit(
    pred_dir: Optional[str], ref_dir: Optional[str], inputs: ScoreInputs, settings: AuditOptions
) -> None:
    """Score (or read) the per-case table, join the metadata, audit it and write the output folder."""
    from duetfair.audit.inputs import read_metadata
    from duetfair.audit.report import render_summary
    from duetfair.audit.writer import write_audit
    from duetfair.cli.scoring import folder_gallery, units_of
    from duetfair.metrics.cases import join_metadata
    from duetfair.metrics.folders import SCORE_METRICS

    meta_df = read_metadata(str(inputs.meta), inputs.id_column, missing=settings.missing or ())
    kwargs = settings.audit_kwargs()
    notes: list[str] = []
    table, source = _per_case_table(pred_dir, ref_dir, inputs, settings.metric, notes)
    cases, report = join_metadata(table, meta_df)
    spec, hidden = _spec_and_hidden(settings, cases)
    attributes, skipped = _attributes(cases, meta_df, settings, kwargs["bins"], spec, hidden)
    for line in report.messages() + notes + skipped:
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)
    metrics = list(settings.metric or [m for m in SCORE_METRICS if m in cases.columns])
    first = pred_dir or inputs.nnunet or (inputs.monai_csv or inputs.merge or [""])[0]
    extra = {"images": inputs.images} if inputs.images else {}
    audit, paths = write_audit(
        cases,
        inputs.out,
        by=attributes,
        metrics=metrics,
        title=f"duetfair audit of {first}",
        inputs={**source, "metadata": inputs.meta, "join": report.to_dict(), **extra},
        gallery=folder_gallery(inputs.images, pred_dir, ref_dir, inputs.pred_rule, inputs.ref_rule),
        units=units_of(source, None if inputs.hd95_unit is None else str(inputs.hd95_unit)),
        spec=spec,
        hidden=hidden,
        **kwargs,
    )
    typer.echo(render_summary(audit), nl=False)
    console.print(f"wrote {', '.join(p.name for p in paths.values())} in {inputs.out}", highlight=False, markup=False)


def _per_case_table(
    pred_dir: Optional[str], ref_dir: Optional[str], inputs: ScoreInputs, metrics: Optional[list[str]], notes: list[str]
) -> tuple[Any, dict[str, Any]]:
    """The per-case table and its source: merged shard parts, scored folders or another tool's scores."""
    from duetfair.cli.scoring import read_scores, score_folders
    from duetfair.metrics.folders import parse_label_names, parse_labels, parse_regions

    label_list = parse_labels(inputs.labels, background=bool(inputs.monai_csv))
    regions = parse_regions(inputs.region)
    names = parse_label_names(inputs.label_names, label_list)
    if inputs.merge:
        from duetfair.metrics.shards import merge_parts

        return merge_parts(list(inputs.merge))
    if pred_dir is not None:
        return score_folders(pred_dir, str(ref_dir), label_list, regions, names, inputs, metrics)
    return read_scores(inputs.nnunet, list(inputs.monai_csv or []), inputs.pred_rule, label_list, regions, names, notes)


def _spec_and_hidden(settings: AuditOptions, cases: pd.DataFrame) -> tuple[Optional[GroupSpec], HiddenColumn]:
    """``--group-spec`` (the groups of the attributes it defines) and ``--hidden`` (a column of the
    metadata; default ``hidden_subtype`` when present)."""
    from duetfair.data.groups import GroupSpec, HiddenColumn

    spec = GroupSpec.load(settings.group_spec) if settings.group_spec is not None else None
    hidden = HiddenColumn.parse(settings.hidden)
    if settings.hidden is not None:
        hidden.check(cases, f"--hidden {settings.hidden}: --meta")
    return spec, hidden


def _attributes(
    cases: pd.DataFrame,
    meta: pd.DataFrame,
    settings: AuditOptions,
    bins: dict[str, Any],
    spec: Optional[GroupSpec],
    hidden: HiddenColumn,
) -> tuple[list[str], list[str]]:
    """The attributes to audit (``--by``, else every metadata column that makes groups) and notes
    on the columns skipped; the group spec's binned attributes count as binned, the hidden column
    is no attribute unless asked for."""
    from duetfair.audit.inputs import choose_attributes

    binned = {a.name: a.edges for a in (spec.specs if spec is not None else []) if a.edges is not None}
    binned = {name: edges for name, edges in binned.items() if name in meta.columns}
    columns = meta.drop(columns=[hidden.name]) if settings.by is None and hidden.name in meta.columns else meta
    return choose_attributes(cases, columns, settings.by, {**binned, **bins})
