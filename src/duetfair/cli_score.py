"""Parts of ``duetfair score`` beyond one process and one terminal: scoring one shard of a
cohort (``--shard K/N``), the unit of the distances, and plain progress lines in logs.

Kept apart from :mod:`duetfair.cli` so that the command there stays a thin layer of options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from duetfair.errors import DuetfairError, require

HD95_UNITS = ("mm", "voxels", "pixels", "unknown")
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
    source = {
        "kind": "folders",
        "predictions": pred_dir,
        "references": ref_dir,
        "n_missing_predictions": len(missing),
        "missing_predictions": missing[:20],
        "empty": str(spec.empty),
        "nsd_tolerance": float(spec.nsd_tolerance),
        "hd95_unit": folder_unit([p.ref for p in pairs]),
    }
    write_part(out, scores, shard=shard, cohort=[p.case_id for p in pairs], spec=spec, label_names=names, source=source)
    return (
        f"scored {len(mine)} of {len(pairs)} cases (shard {shard}) into {out}; when all {shard.count} parts are "
        f"written: duetfair score --merge PARTS_FOLDER --meta FILE --out DIR"
    )
