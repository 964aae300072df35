r"""Score a folder of predicted masks against a folder of reference masks -> the per-case table.

This is the path for models trained anywhere (nnU-Net, MONAI, own code): no model is loaded, only
label maps are read (MONAI ``LoadImage``) and scored with
:func:`duetfair.metrics.per_case.per_case_metrics`, in parallel worker processes.

Matching rule (case ids)
    A file's case id is its name without the extension; compound extensions count as one
    (``BraTS-001.nii.gz`` -> ``BraTS-001``). Files with other extensions (``.json``, ``.pkl``,
    ``.csv``, ...) and hidden files are ignored; sub-folders are not searched. A pattern changes
    the rule: ``{case}_seg.nii.gz`` (``{case}`` is the id, ``*`` matches anything, the rest is
    literal) or a regular expression prefixed with ``re:`` whose group ``case`` (or first group)
    is the id, e.g. ``re:(?P<case>.+)_0000\.nii\.gz``. Files that do not match are ignored.

Files
    2D: PNG, BMP, TIFF, NPY, NPZ; 3D: NIfTI (``.nii``, ``.nii.gz``), NRRD and MHA/MHD (read by
    MONAI when ``itk`` or ``pynrrd`` is installed). A single-channel map per file (identical
    channels, e.g. a grey PNG saved as RGB, are accepted). JPEG is lossy and not accepted.

Geometry
    HD95 and the NSD tolerance are in the unit of the REFERENCE's voxel spacing (mm for NIfTI,
    NRRD, MHA; pixels for PNG / NPY). A prediction whose format has a spacing must have the
    reference's (checked, relative tolerance 1e-3); PNG / NPY / NPZ predictions take the
    reference's.

Labels
    ``labels`` (e.g. ``[1, 2]``) are scored one by one; without them, every label present in the
    references is scored. A :class:`Region` (``disc=1+2``) is scored as the union of its labels
    (FairSeg disc = rim + cup, BraTS TC / WT). With regions and no explicit labels only the
    regions are scored. With labels or regions given, any other non-zero value in a mask is an
    error; without them, a prediction label that no reference has is an error.

Speed
    Each case is cropped to the bounding box of the foreground of both maps (plus 2 voxels) before
    scoring, which changes no metric (MONAI crops the same way inside); cases are scored in worker
    processes (``workers``), one torch thread each.

Output (:func:`score_pairs`): one row per case and scored structure with ``case_id``, ``class``
(label id, or its name / the region's name), the requested metrics (``dice``, ``iou``, ``hd95``,
``normhd``, ``nsd``), ``n_ref`` and ``n_pred`` (voxels) -- the schema of ``duetfair evaluate``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.errors import DuetfairError, require
from duetfair.metrics.label_files import (
    LABEL_SUFFIXES,
    MAX_LISTED,
    NO_SPACING_SUFFIXES,
    CasePair,
    Region,
    compile_pattern,
    label_values,
    list_cases,
    match_folders,
    parse_label_names,
    parse_labels,
    parse_regions,
    read_label_image,
    read_label_map,
    resolve_label_names,
    strip_suffix,
)
from duetfair.metrics.registry import SCORED_METRICS
from duetfair.metrics.score_checks import check_nsd_tolerance
from duetfair.options import EmptyPolicy, parse

__all__ = [  # the names of duetfair.metrics.label_files are part of this module's interface
    "LABEL_SUFFIXES", "MAX_LISTED", "NO_SPACING_SUFFIXES", "CasePair", "Region", "compile_pattern",
    "list_cases", "match_folders", "parse_label_names", "parse_labels", "parse_regions", "read_label_image",
    "read_label_map", "resolve_label_names", "strip_suffix", "label_values", "SCORE_METRICS", "CaseScore",
    "ScoreSpec", "check_spec", "finish_table", "foreground_box", "load_pair", "score_case", "score_cases",
    "score_folders", "score_pairs",
]  # fmt: skip

SCORE_METRICS = SCORED_METRICS
"""Metrics :func:`score_pairs` can compute (``hd95`` also yields ``normhd``)."""

SPACING_RTOL = 1e-3
"""Relative tolerance of the prediction / reference spacing check."""

CROP_MARGIN = 2
"""Voxels kept around the foreground when a case is cropped before scoring (MONAI uses 1)."""

OVERLAP_MAX_LABEL = 256
"""Dice / IoU only: label maps whose labels are all below this are scored from one joint histogram."""


# ---- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSpec:
    """What to score (picklable, sent to the workers).

    Attributes:
        labels: label ids scored one by one (None: those present in the case; see the module doc).
        regions: unions scored as one structure.
        metrics: subset of :data:`SCORE_METRICS`.
        empty: empty-mask policy of :func:`~duetfair.metrics.per_case.per_case_metrics`.
        nsd_tolerance: NSD tolerance in the reference's unit (mm for NIfTI).
        descriptors: add the case descriptors (``desc_*`` columns, :mod:`duetfair.metrics.descriptors`).
        images: add the image descriptors too (from ``CasePair.image``; NaN for a case without one).
    """

    labels: tuple[int, ...] | None = None
    regions: tuple[Region, ...] = ()
    metrics: tuple[str, ...] = SCORE_METRICS
    empty: str = "nnunet"
    nsd_tolerance: float = 1.0
    descriptors: bool = False
    images: bool = False

    @property
    def allowed(self) -> frozenset[int] | None:
        """Non-zero values a mask may hold (None: any)."""
        if self.labels is None and not self.regions:
            return None
        ids = set(self.labels or ()) | {i for r in self.regions for i in r.ids}
        return frozenset(ids)


@dataclass
class CaseScore:
    """Result of one case: its rows and the non-zero labels present in the reference / prediction."""

    case_id: str
    rows: pd.DataFrame
    ref_labels: list[int] = field(default_factory=list)
    pred_labels: list[int] = field(default_factory=list)


def _check_allowed(values: Sequence[int], allowed: frozenset[int] | None, path: Path) -> None:
    if allowed is None:
        return
    bad = [v for v in values if v not in allowed]
    if bad:
        raise DuetfairError(
            f"{path}: label value {bad[0]} is out of range; expected 0 or one of "
            f"{', '.join(map(str, sorted(allowed)))} (--labels / --region must name every label the masks use)"
        )


def _fmt_tuple(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def load_pair(
    pair: CasePair, allowed: frozenset[int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], list[int], list[int]]:
    """Read and check one case -> ``(pred [*S], ref [*S], reference spacing, pred labels, ref labels)``."""
    ref, spacing, ref_affine = read_label_image(pair.ref)
    ref, ref_labels = label_values(ref, pair.ref)
    _check_allowed(ref_labels, allowed, pair.ref)
    if pair.pred is None:
        return np.zeros_like(ref), ref, spacing, [], ref_labels
    pred, pred_spacing, pred_affine = read_label_image(pair.pred)
    geometry = None
    if pred_affine is not None and ref_affine is not None:  # both placed in space: compare there
        from duetfair.metrics.geometry import align_to_reference

        try:
            pred = align_to_reference(
                pred,
                pred_affine,
                ref.shape,
                ref_affine,
                case_id=pair.case_id,
                pred_name=pair.pred.name,
                ref_name=pair.ref.name,
            )
            pred_spacing = spacing
        except DuetfairError as exc:  # reported after the plainer shape and spacing messages
            geometry = exc
    require(
        pred.shape == ref.shape,
        f"case '{pair.case_id}': prediction shape {tuple(pred.shape)} ({pair.pred.name}) differs from "
        f"reference shape {tuple(ref.shape)} ({pair.ref.name})",
    )
    if not pair.pred.name.lower().endswith(NO_SPACING_SUFFIXES):
        same = np.allclose(pred_spacing, spacing, rtol=SPACING_RTOL, atol=0.0)
        require(
            same,
            f"case '{pair.case_id}': prediction spacing {_fmt_tuple(pred_spacing)} ({pair.pred.name}) differs from "
            f"reference spacing {_fmt_tuple(spacing)} ({pair.ref.name}); resample the prediction to the reference grid",
        )
    if geometry is not None:
        raise geometry
    pred, pred_labels = label_values(pred, pair.pred)
    _check_allowed(pred_labels, allowed, pair.pred)
    return pred, ref, spacing, pred_labels, ref_labels


def foreground_box(pred: np.ndarray, ref: np.ndarray, margin: int = CROP_MARGIN) -> tuple[slice, ...]:
    """Bounding box of the non-zero voxels of both maps, ``margin`` voxels wider (clipped to the image).

    Scoring inside it changes no metric: counts keep every foreground voxel, and MONAI's surface
    distances only look at mask edges, which it finds inside its own (smaller) box with a 1-voxel
    margin. Whole image when both maps are empty.
    """
    fg = (pred != 0) | (ref != 0)
    if not fg.any():
        return tuple(slice(None) for _ in fg.shape)
    box = []
    for axis in range(fg.ndim):
        hits = np.flatnonzero(fg.any(axis=tuple(a for a in range(fg.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, fg.shape[axis])))
    return tuple(box)


def _structures(spec: ScoreSpec, present: Sequence[int]) -> list[Region]:
    """Structures scored in one case: given labels (or those present) and the regions."""
    if spec.labels is not None:
        labels: Sequence[int] = spec.labels
    else:
        labels = [] if spec.regions else present
    return [Region(int(lab), (int(lab),)) for lab in labels] + list(spec.regions)


def score_case(pair: CasePair, spec: ScoreSpec) -> CaseScore:
    """Read, check and score one case -> one row per structure (``case_id``, ``class``, metrics, counts)."""
    from duetfair.metrics import descriptors as desc
    from duetfair.metrics.per_case import per_case_metrics

    pred, ref, spacing, pred_labels, ref_labels = load_pair(pair, spec.allowed)
    structures = _structures(spec, sorted(set(pred_labels) | set(ref_labels)))
    fast = set(spec.metrics) <= {"dice", "iou"} and max([0, *pred_labels, *ref_labels]) < OVERLAP_MAX_LABEL
    if fast and not spec.descriptors:  # the descriptors need the masks themselves
        from duetfair.metrics.overlap import overlap_rows  # one histogram pass, no crop needed

        rows = overlap_rows(pred, ref, structures, metrics=spec.metrics, empty=spec.empty)
        if not rows.empty:
            rows.insert(0, "case_id", pair.case_id)
        return CaseScore(pair.case_id, rows if structures else pd.DataFrame(), ref_labels, pred_labels)
    image = _case_image(pair, ref.shape) if spec.descriptors and spec.images else None
    std = desc.image_std(image) if image is not None else None
    shape = ref.shape
    box = foreground_box(pred, ref, desc.IMAGE_MARGIN if image is not None else CROP_MARGIN)
    pred, ref = pred[box], ref[box]
    frames = []
    for region in structures:
        p = np.isin(pred, region.ids) if len(region.ids) > 1 else pred == region.ids[0]
        r = np.isin(ref, region.ids) if len(region.ids) > 1 else ref == region.ids[0]
        df = per_case_metrics(
            p[None],
            r[None],
            num_classes=2,
            classes=[1],
            spacing=spacing,
            metrics=spec.metrics,
            nsd_tolerance=spec.nsd_tolerance,
            empty=spec.empty,
        )
        if spec.descriptors:
            df = df.assign(**desc.describe_crop(r, p, box, shape, spacing, image, std, with_image=spec.images))
        frames.append(df.drop(columns=["case"]).assign(**{"class": [region.name]}))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frames:
        rows.insert(0, "case_id", pair.case_id)
    return CaseScore(pair.case_id, rows, ref_labels, pred_labels)


def _case_image(pair: CasePair, shape: tuple[int, ...]) -> np.ndarray | None:
    """The case's image ``[C, *S]`` for its descriptors (None without one); a shape that differs
    from the reference's is an error naming both."""
    from duetfair.metrics.descriptors import read_image

    if pair.image is None:
        return None
    try:
        image = read_image(pair.image)
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
        raise DuetfairError(f"{pair.image}: cannot read the image ({' '.join(str(exc).split())[:200]})") from None
    require(
        tuple(image.shape[1:]) == tuple(shape),
        f"case '{pair.case_id}': image shape {tuple(image.shape[1:])} ({pair.image.name}) differs from the "
        f"reference shape {tuple(shape)} ({pair.ref.name})",
    )
    return image


def score_chunk(pairs: Sequence[CasePair], spec: ScoreSpec) -> list[CaseScore]:
    """Score several cases (one worker task)."""
    return [score_case(p, spec) for p in pairs]


# ---- parallel scoring --------------------------------------------------------------------------


def default_workers() -> int:
    """``min(available CPU cores, 8)``, fewer when memory is short (:func:`duetfair.procs.cap_workers`)."""
    from duetfair.procs import cap_workers

    return cap_workers(None)[0]


def _init_worker() -> None:
    """Worker start: one torch / BLAS thread per process (the processes are the parallelism)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def _chunks(items: Sequence[CasePair], workers: int) -> list[list[CasePair]]:
    size = max(1, min(16, math.ceil(len(items) / (workers * 8))))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _run_here(pairs: Sequence[CasePair], spec: ScoreSpec, progress: Callable[[int], None] | None) -> list[CaseScore]:
    """Score in this process with one torch thread (as the workers do: the per-case tensor work is
    too small for intra-op threads, which only contend with other processes), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scores = []
        for pair in pairs:
            scores.append(score_case(pair, spec))
            if progress is not None:
                progress(1)
        return scores
    finally:
        torch.set_num_threads(threads)


def _run_pool(
    pairs: Sequence[CasePair], spec: ScoreSpec, workers: int, progress: Callable[[int], None] | None
) -> list[CaseScore]:
    from duetfair.procs import worker_pool

    chunks = _chunks(pairs, workers)
    results: dict[int, list[CaseScore]] = {}
    try:  # workers die with this process, and at once on Ctrl-C (duetfair.procs)
        with worker_pool(min(workers, len(chunks)), initializer=_init_worker) as pool:
            futures = {pool.submit(score_chunk, chunk, spec): i for i, chunk in enumerate(chunks)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[futures[fut]] = fut.result()
                    if progress is not None:
                        progress(len(chunks[futures[fut]]))
    except BrokenProcessPool:
        raise DuetfairError(
            f"a scoring worker process died (out of memory?); retry with fewer --workers than {workers}"
        ) from None
    return [s for i in range(len(chunks)) for s in results[i]]


def _empty_row(spec: ScoreSpec) -> dict[str, Any]:
    """Metrics of a structure absent from both masks, under ``spec.empty``."""
    from duetfair.metrics.per_case import per_case_metrics

    zeros = np.zeros((1, 2, 2), dtype=np.int64)
    df = per_case_metrics(zeros, zeros, num_classes=2, classes=[1], metrics=spec.metrics, empty=spec.empty)
    return df.drop(columns=["case", "class"]).iloc[0].to_dict()


def _complete(scores: Sequence[CaseScore], spec: ScoreSpec) -> tuple[pd.DataFrame, list[int]]:
    """Concatenate case rows; with labels found in the data, add the rows of labels a case lacks."""
    frames = [s.rows for s in scores if not s.rows.empty]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["case_id", "class"])
    if spec.labels is not None or spec.regions:
        return table, list(spec.labels or [])
    ref_labels = sorted({v for s in scores for v in s.ref_labels})
    for s in scores:
        extra = [v for v in s.pred_labels if v not in ref_labels]
        require(
            not extra,
            f"case '{s.case_id}': the prediction has label {extra[0] if extra else ''}, which no reference has "
            f"(labels in the references: {', '.join(map(str, ref_labels)) or 'none'}); pass --labels to score it",
        )
    require(len(ref_labels) > 0, "the references hold no label (every mask is empty); pass --labels to score them")
    have = set(zip(table["case_id"], table["class"]))
    fill = _empty_row(spec)
    extra_rows = [
        {"case_id": s.case_id, "class": lab, **fill}
        for s in scores
        for lab in ref_labels
        if (s.case_id, lab) not in have
    ]
    if extra_rows:
        table = pd.concat([table, pd.DataFrame(extra_rows)], ignore_index=True)
    return table, ref_labels


def score_pairs(
    pairs: Sequence[CasePair],
    spec: ScoreSpec = ScoreSpec(),
    *,
    workers: int = 1,
    label_names: Mapping[int, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Score matched cases -> per-case table (``case_id``, ``class``, metrics, ``n_ref``, ``n_pred``).

    Args:
        pairs: cases from :func:`match_folders`.
        spec: labels, regions, metrics, empty-mask policy and NSD tolerance.
        workers: worker processes (1: in this process). Cases are scored with one torch thread per
            process, in chunks of up to 16 cases per task.
        label_names: label id -> name written in ``class`` (positional names: see
            :func:`parse_label_names`).
        progress: called with the number of cases finished after each chunk.

    Returns:
        Rows sorted by case id, then labels (ascending) and regions (given order).
    """
    require(len(pairs) > 0, "no case to score")
    check_spec(spec, label_names)
    return finish_table(score_cases(pairs, spec, workers=workers, progress=progress), spec, label_names)


def check_spec(spec: ScoreSpec, label_names: Mapping[int, str] | None = None) -> None:
    """One-line errors for an unknown metric or empty-mask policy, or positional names that cannot apply."""
    unknown = [m for m in spec.metrics if m not in SCORE_METRICS]
    require(not unknown, f"--metric {unknown[0] if unknown else ''}: expected one of {', '.join(SCORE_METRICS)}")
    check_nsd_tolerance(spec.nsd_tolerance)
    positional = bool(label_names) and any(k < 0 for k in (label_names or {}))
    require(
        not (positional and spec.labels is None and spec.regions),
        "--label-names: with --region and without --labels only the regions are scored; give --labels or ID=NAME pairs",
    )
    parse(EmptyPolicy, spec.empty, "--empty")


def score_cases(
    pairs: Sequence[CasePair],
    spec: ScoreSpec,
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[CaseScore]:
    """Score every case (in ``workers`` processes) -> one :class:`CaseScore` per pair, in order."""
    require(isinstance(workers, int) and workers >= 1, f"--workers {workers}: expected a number >= 1")
    if not pairs:
        return []
    if workers == 1 or len(pairs) == 1:
        return _run_here(pairs, spec, progress)
    return _run_pool(pairs, spec, workers, progress)


def finish_table(
    scores: Sequence[CaseScore], spec: ScoreSpec, label_names: Mapping[int, str] | None = None
) -> pd.DataFrame:
    """The per-case table of scored cases: rows of labels a case lacks added (labels found in the
    references), sorted, labels named (see :func:`score_pairs`)."""
    table, labels = _complete(scores, spec)
    return _order(table, labels, spec, resolve_label_names(label_names or {}, labels))


def _order(table: pd.DataFrame, labels: Sequence[int], spec: ScoreSpec, names: Mapping[int, str]) -> pd.DataFrame:
    rank = {lab: i for i, lab in enumerate(labels)}
    rank.update({r.name: len(labels) + i for i, r in enumerate(spec.regions)})
    table = table.assign(_rank=table["class"].map(lambda c: rank.get(c, -1)))
    table = table.sort_values(["case_id", "_rank"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    if names:
        table["class"] = [names.get(int(c), c) if isinstance(c, (int, np.integer)) else c for c in table["class"]]
    for col in ("n_ref", "n_pred"):
        if col in table.columns:
            table[col] = table[col].astype(np.int64)
    return table


def score_folders(
    pred_dir: str | os.PathLike[str],
    ref_dir: str | os.PathLike[str],
    *,
    labels: Sequence[int] | None = None,
    regions: Sequence[Region] = (),
    label_names: Mapping[int, str] | None = None,
    metrics: Sequence[str] = SCORE_METRICS,
    empty: str = "nnunet",
    nsd_tolerance: float = 1.0,
    pred_pattern: str | None = None,
    ref_pattern: str | None = None,
    allow_missing: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    descriptors: bool = False,
) -> pd.DataFrame:
    """Match and score two folders in one call (see :func:`match_folders` and :func:`score_pairs`;
    ``descriptors``: add the mask and error descriptors, ``desc_*``; image descriptors need pairs
    with ``CasePair.image`` and ``ScoreSpec(images=True)``).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> ref = np.zeros((8, 8), dtype=np.uint8)
        >>> ref[2:7, 2:7], ref[3:5, 3:5] = 1, 2  # rim around a cup
        >>> pred = ref.copy()
        >>> pred[5:7, 2:7] = 0  # the lower rim missed
        >>> for folder, mask in (("preds", pred), ("refs", ref)):
        ...     (root / folder).mkdir()
        ...     np.save(root / folder / "case1.npy", mask)
        >>> table = score_folders(
        ...     root / "preds", root / "refs", labels=[1, 2], label_names={1: "rim", 2: "cup"},
        ...     regions=[Region("disc", (1, 2))], metrics=("dice",),
        ... )
        >>> table[["case_id", "class", "dice", "n_ref", "n_pred"]].round(3).values.tolist()
        [['case1', 'rim', 0.688, 21, 11], ['case1', 'cup', 1.0, 4, 4], ['case1', 'disc', 0.75, 25, 15]]
    """
    pairs = match_folders(
        pred_dir, ref_dir, pred_pattern=pred_pattern, ref_pattern=ref_pattern, allow_missing=allow_missing
    )
    spec = ScoreSpec(
        tuple(int(v) for v in labels) if labels is not None else None,
        tuple(regions),
        tuple(metrics),
        empty,
        float(nsd_tolerance),
        descriptors=bool(descriptors),
    )
    return score_pairs(pairs, spec, workers=workers, label_names=label_names, progress=progress)
