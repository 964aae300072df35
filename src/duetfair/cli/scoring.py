"""The scoring of ``duetfair score``: which inputs fit together, mask folders scored in worker
processes (a progress bar on a terminal, plain lines in logs), another tool's scores read, one
shard of a cohort (``--shard K/N``), the unit of the distances, and the gallery of the report.

Kept apart from :mod:`duetfair.cli.audit` so that the command there stays a thin layer of options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from duetfair.cli.app import console, err_console
from duetfair.errors import DuetfairError, require
from duetfair.options import DistanceUnit, choices

if TYPE_CHECKING:
    from duetfair.cli.score import ScoreInputs

HD95_UNITS = tuple(choices(DistanceUnit))
"""Values of ``--hd95-unit`` (the unit of HD95 read from another tool's CSV)."""


def check_score_sources(
    *,
    pred_dir: Optional[str],
    ref_dir: Optional[str],
    nnunet: Optional[str],
    monai_csv: Sequence[str],
    merge: Sequence[str],
    meta: Optional[str],
    shard: Optional[str],
    hd95_unit: Optional[str],
    images: Optional[str] = None,
) -> None:
    """One-line errors for a ``score`` call whose inputs do not fit together."""
    given = {
        "PRED_DIR REF_DIR": pred_dir is not None,
        "--nnunet": nnunet is not None,
        "--monai-csv": bool(monai_csv),
        "--merge": bool(merge),
    }
    sources = [name for name, on in given.items() if on]
    if merge and pred_dir is not None and nnunet is None and not monai_csv:
        raise DuetfairError(
            f"--merge takes one folder each ('{pred_dir}' is extra): repeat --merge for every part, or give the "
            f"folder that holds all parts, e.g. --merge parts"
        )
    if len(sources) != 1:
        raise DuetfairError(
            "expected one input: PRED_DIR REF_DIR, --nnunet FILE, --monai-csv FILE or --merge PARTS "
            f"(got {', '.join(sources) or 'none'})"
        )
    if pred_dir is not None and ref_dir is None:
        raise DuetfairError("expected REF_DIR after PRED_DIR: duetfair score PRED_DIR REF_DIR --meta FILE --out DIR")
    require(
        shard is None or pred_dir is not None,
        f"--shard {shard}: shards split the scoring of mask folders (PRED_DIR REF_DIR); "
        f"{sources[0]} holds scores already",
    )
    require(
        shard is None or images is None,
        f"--images: a part of --shard {shard} is not audited; the report (and its gallery) comes from --merge",
    )
    require(
        meta is not None or shard is not None,
        "--meta FILE: expected the metadata table (one row per case); only --shard parts are written without it",
    )
    require(
        hd95_unit is None or hd95_unit in HD95_UNITS,
        f"--hd95-unit {hd95_unit}: expected one of {', '.join(HD95_UNITS)}",
    )
    require(
        hd95_unit is None or bool(monai_csv),
        "--hd95-unit: applies to --monai-csv only (mask folders give mm from the NIfTI header, pixels for 2D images)",
    )


def folder_unit(refs: Sequence[Path]) -> str:
    """Unit of distances scored from reference files: ``pixels`` when none carries a spacing
    (PNG / NPY / NPZ ...), else ``mm`` (NIfTI / NRRD / MHA headers)."""
    from duetfair.metrics.folders import NO_SPACING_SUFFIXES

    return "pixels" if all(p.name.lower().endswith(NO_SPACING_SUFFIXES) for p in refs) else "mm"


def units_of(source: Mapping[str, Any], hd95_unit: Optional[str]) -> dict[str, str]:
    """``{"hd95": unit}`` of a ``score`` input (folders and merged parts: from the files;
    MONAI CSV: ``--hd95-unit``, else unknown; MONAI's ``MetricsSaver`` computes without spacing,
    i.e. in voxels)."""
    if source.get("kind") == "folders":
        return {"hd95": str(source.get("hd95_unit", "unknown"))}
    return {"hd95": hd95_unit or "unknown"}


def progress_step(total: int, log: Callable[[str], None], *, every: float = 10.0) -> Callable[[int], None]:
    """A ``progress`` callback of scoring that prints a plain line every ``every`` seconds."""
    from duetfair.progress import ProgressLine

    line = ProgressLine("cases", total, log, label="scoring", every=every)
    return line.advance


def score_shard(
    pred_dir: str,
    ref_dir: str,
    *,
    shard_text: str,
    spec: Any,
    names: Mapping[int, str],
    pred_pattern: Optional[str],
    ref_pattern: Optional[str],
    allow_missing: bool,
    workers: int,
    out: str,
    make_progress: Optional[Callable[[int], Optional[Callable[[int], None]]]] = None,
) -> str:
    """``duetfair score PRED REF --shard K/N --out PART``: score this shard's cases and write the
    part (see :mod:`duetfair.metrics.shards`); returns the line to print."""
    from duetfair.metrics.folders import check_spec, match_folders, score_cases
    from duetfair.metrics.shards import Shard, select_shard, write_part

    shard = Shard.parse(shard_text)
    check_spec(spec, names)
    pairs = match_folders(
        pred_dir, ref_dir, pred_pattern=pred_pattern, ref_pattern=ref_pattern, allow_missing=allow_missing
    )
    mine = select_shard(pairs, shard)
    step = make_progress(len(mine)) if make_progress is not None else None
    scores = score_cases(mine, spec, workers=workers, progress=step)
    missing = [p.case_id for p in mine if p.pred is None]
    source = folder_source(pred_dir, ref_dir, pairs, missing, spec)
    write_part(out, scores, shard=shard, cohort=[p.case_id for p in pairs], spec=spec, label_names=names, source=source)
    return (
        f"scored {len(mine)} of {len(pairs)} cases (shard {shard}) into {out}; when all {shard.count} parts are "
        f"written: duetfair score --merge PARTS_FOLDER --meta FILE --out DIR"
    )


def folder_gallery(
    images: Optional[str],
    pred_dir: Optional[str],
    ref_dir: Optional[str],
    pred_pattern: Optional[str],
    ref_pattern: Optional[str],
) -> object:
    """``duetfair score --images``: the report's gallery source (None without images)."""
    if images is None or pred_dir is None or ref_dir is None:
        return None
    from duetfair.audit.gallery import FolderGallery

    if not Path(images).is_dir():
        raise DuetfairError(f"--images {images}: folder not found")
    return FolderGallery(Path(images), Path(pred_dir), Path(ref_dir), pred_pattern, ref_pattern)


def read_scores(
    nnunet: Optional[str],
    monai_csv: list[str],
    pattern: Optional[str],
    labels: Optional[list[int]],
    regions: list,
    names: dict[int, str],
    notes: list[str],
) -> tuple[Any, dict[str, Any]]:
    """``duetfair score --nnunet`` / ``--monai-csv``: the per-case table of another tool's output."""
    from duetfair.audit.inputs import read_monai_csv, read_nnunet_summary

    if nnunet is not None:
        table = read_nnunet_summary(
            nnunet, pattern=pattern, label_names=names, regions={r.ids: r.name for r in regions}, labels=labels
        )
        return table, {"kind": "nnunet", "summary": nnunet}
    table = read_monai_csv(monai_csv, pattern=pattern, labels=labels, label_names=names, notes=notes)
    return table, {"kind": "monai_csv", "files": monai_csv}


def score_spec(
    labels: Optional[list[int]],
    regions: list,
    inputs: ScoreInputs,
    metrics: Optional[list[str]],
    *,
    images: bool = False,
) -> Any:
    """The :class:`~duetfair.metrics.folders.ScoreSpec` of ``duetfair score``'s options."""
    from duetfair.metrics.folders import SCORE_METRICS, ScoreSpec

    return ScoreSpec(
        tuple(labels) if labels is not None else None,
        tuple(regions),
        tuple(metrics or SCORE_METRICS),
        str(inputs.empty),
        float(inputs.nsd_tolerance),
        descriptors=not inputs.no_descriptors,  # the mask and error descriptors, sharded or not
        images=images and not inputs.no_descriptors,
    )


def score_folders(
    pred_dir: str,
    ref_dir: str,
    labels: Optional[list[int]],
    regions: list,
    names: dict[int, str],
    inputs: ScoreInputs,
    metrics: Optional[list[str]],
) -> tuple[Any, dict[str, Any]]:
    """``duetfair score`` on two folders: match, score (metrics and case descriptors, with image
    descriptors when ``--images`` is given) in parallel with a progress bar on a terminal."""
    from duetfair.metrics.folders import match_folders, score_pairs
    from duetfair.procs import cap_workers

    pairs = match_folders(
        pred_dir,
        ref_dir,
        pred_pattern=inputs.pred_rule,
        ref_pattern=inputs.ref_rule,
        allow_missing=inputs.allow_missing,
    )
    missing = [p.case_id for p in pairs if p.pred is None]
    if missing:
        err_console.print(
            f"warning: {len(missing)} references have no prediction; scored as empty predictions "
            f"(--empty {inputs.empty!s})",
            highlight=False,
            markup=False,
        )
    spec = score_spec(labels, regions, inputs, metrics, images=inputs.images is not None)
    n_workers, note = cap_workers(inputs.workers, n_tasks=len(pairs))
    if note:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    pairs = with_images(pairs, inputs.images)
    with _progress(len(pairs)) as step:
        table = score_pairs(pairs, spec, workers=n_workers, label_names=names, progress=step)
    return table, folder_source(pred_dir, ref_dir, pairs, missing, spec)


def folder_source(pred_dir: str, ref_dir: str, pairs: Sequence[Any], missing: list[str], spec: Any) -> dict[str, Any]:
    """The ``inputs`` entry of the audit of scored folders."""
    return {
        "kind": "folders",
        "predictions": pred_dir,
        "references": ref_dir,
        "n_missing_predictions": len(missing),
        "missing_predictions": missing[:20],
        "empty": str(spec.empty),
        "nsd_tolerance": float(spec.nsd_tolerance),
        "hd95_unit": folder_unit([p.ref for p in pairs]),
    }


@contextmanager
def _progress(total: int) -> Iterator[Optional[Callable[[int], None]]]:
    """The ``progress`` callback of scoring ``total`` cases: a bar on a terminal, plain lines
    otherwise (a log file, CI, a cluster job)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not console.is_terminal:
        yield log_progress(total)
        return
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        yield lambda k: bar.advance(task, k)


def log_progress(total: int) -> Optional[Callable[[int], None]]:
    """Plain progress lines on stdout when it is not a terminal (a log file, CI, a cluster job)."""
    if console.is_terminal:
        return None
    return progress_step(total, lambda s: console.print(s, highlight=False, markup=False, soft_wrap=True))


def score_shard_command(
    pred_dir: Optional[str], ref_dir: Optional[str], inputs: ScoreInputs, metrics: Optional[list[str]]
) -> None:
    """``duetfair score PRED REF --shard K/N --out PART`` (see :mod:`duetfair.metrics.shards`)."""
    from duetfair.metrics.folders import parse_label_names, parse_labels, parse_regions
    from duetfair.procs import cap_workers

    label_list, regions = parse_labels(inputs.labels), parse_regions(inputs.region)
    spec = score_spec(label_list, regions, inputs, metrics)
    n_workers, note = cap_workers(inputs.workers)
    if note:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    line = score_shard(
        str(pred_dir),
        str(ref_dir),
        shard_text=str(inputs.shard),
        spec=spec,
        names=parse_label_names(inputs.label_names, label_list),
        pred_pattern=inputs.pred_rule,
        ref_pattern=inputs.ref_rule,
        allow_missing=inputs.allow_missing,
        workers=n_workers,
        out=inputs.out,
        make_progress=log_progress,
    )
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def with_images(pairs: list, images: Optional[str]) -> list:
    """Pairs with the image of each case from ``--images`` (matched by case id; a warning names
    the cases without one)."""
    if images is None:
        return pairs
    from dataclasses import replace

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
