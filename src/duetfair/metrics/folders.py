"""Score a folder of predicted masks against a folder of reference masks -> the per-case table.

This is the path for models trained anywhere (nnU-Net, MONAI, own code): no model is loaded, only
label maps are read (MONAI ``LoadImage``) and scored with
:func:`duetfair.metrics.per_case.per_case_metrics`, in parallel worker processes.

Matching rule (case ids)
    A file's case id is its name without the extension; compound extensions count as one
    (``BraTS-001.nii.gz`` -> ``BraTS-001``). Files with other extensions (``.json``, ``.pkl``,
    ``.csv``, ...) and hidden files are ignored; sub-folders are not searched. A pattern changes
    the rule: ``{case}_seg.nii.gz`` (``{case}`` is the id, ``*`` matches anything, the rest is
    literal) or a regular expression prefixed with ``re:`` whose group ``case`` (or first group)
    is the id, e.g. ``re:(?P<case>.+)_0000\\.nii\\.gz``. Files that do not match are ignored.

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
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.errors import DuetfairError, require
from duetfair.metrics.registry import SCORED_METRICS
from duetfair.metrics.score_checks import check_label_names, check_nsd_tolerance
from duetfair.options import EmptyPolicy, parse

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".bmp", ".tif", ".tiff", ".npy", ".npz")
"""Extensions of label-map files (longest first where one ends another)."""

NO_SPACING_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".npy", ".npz")
"""Formats that carry no voxel spacing (a prediction in one takes the reference's spacing)."""

SCORE_METRICS = SCORED_METRICS
"""Metrics :func:`score_pairs` can compute (``hd95`` also yields ``normhd``)."""

SPACING_RTOL = 1e-3
"""Relative tolerance of the prediction / reference spacing check."""

CROP_MARGIN = 2
"""Voxels kept around the foreground when a case is cropped before scoring (MONAI uses 1)."""

OVERLAP_MAX_LABEL = 256
"""Dice / IoU only: label maps whose labels are all below this are scored from one joint histogram."""

MAX_LISTED = 5
"""How many names an error lists before ``and N more``."""


# ---- labels and regions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """One scored structure: ``name`` (the ``class`` value) and the label ids whose union it is."""

    name: Any
    ids: tuple[int, ...]


def _int_list(text: str, what: str, background: bool = False) -> list[int]:
    try:
        values = [int(v) for v in re.split(r"[,+\s]+", text.strip()) if v != ""]
    except ValueError:
        raise DuetfairError(f"{what} '{text}': expected integer label ids such as 1,2") from None
    require(len(values) > 0, f"{what} '{text}': expected at least one label id")
    lowest = 0 if background else 1
    require(all(v >= lowest for v in values), f"{what} '{text}': label ids must be > 0 (0 is the background)")
    return values


def parse_labels(text: str | None, *, background: bool = False) -> list[int] | None:
    """``"1,2"`` -> ``[1, 2]`` (None stays None: labels found in the references). ``background``:
    0 is accepted (it marks the background column of a MONAI CSV)."""
    if text is None or text.strip() == "":
        return None
    values = _int_list(text, "--labels", background)
    require(len(set(values)) == len(values), f"--labels '{text}': a label is listed twice")
    return values


def parse_regions(specs: Iterable[str] | None) -> list[Region]:
    """``["disc=1+2", "tc=1+3,wt=1+2+3"]`` -> regions (``NAME=ID+ID+...``, comma-separated or repeated)."""
    out: list[Region] = []
    for spec in specs or []:
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            require("=" in item, f"--region '{item}': expected NAME=ID+ID, e.g. disc=1+2")
            name, _, ids = item.partition("=")
            require(name.strip() != "", f"--region '{item}': missing the region name before '='")
            out.append(Region(name.strip(), tuple(sorted(set(_int_list(ids, "--region"))))))
    names = [r.name for r in out]
    require(len(set(names)) == len(names), f"--region: a region name is used twice ({', '.join(map(str, names))})")
    return out


def parse_label_names(text: str | None, labels: Sequence[int] | None) -> dict[int, str]:
    """``"rim,cup"`` (aligned with ``labels``) or ``"1=rim,2=cup"`` -> ``{1: "rim", 2: "cup"}``.

    Without ``labels``, plain names are aligned with the sorted labels found in the references:
    the mapping is returned with keys ``-1, -2, ...`` (positions) and resolved by
    :func:`resolve_label_names`.
    """
    if text is None or text.strip() == "":
        return {}
    items = [s.strip() for s in text.split(",") if s.strip()]
    if all("=" in s for s in items):
        pairs = [s.split("=", 1) for s in items]
        try:
            ids = [int(k) for k, _ in pairs]
        except ValueError:
            raise DuetfairError(f"--label-names '{text}': expected ID=NAME pairs such as 1=rim,2=cup") from None
        twice = sorted({i for i in ids if ids.count(i) > 1})
        require(not twice, f"--label-names '{text}': label {twice[0] if twice else ''} is named twice; name each once")
        return check_label_names(text, {i: v.strip() for i, (_, v) in zip(ids, pairs)})
    require(
        not any("=" in s for s in items),
        f"--label-names '{text}': use either names (rim,cup) or ID=NAME pairs, not both",
    )
    if labels is None:
        return check_label_names(text, {-(i + 1): name for i, name in enumerate(items)})
    require(
        len(items) == len(labels),
        f"--label-names '{text}': {len(items)} names for {len(labels)} labels ({', '.join(map(str, labels))})",
    )
    return check_label_names(text, dict(zip(labels, items)))


def resolve_label_names(names: Mapping[int, str], labels: Sequence[int]) -> dict[int, str]:
    """Positional names (keys < 0, see :func:`parse_label_names`) -> names keyed by ``labels``."""
    if not names or all(k > 0 for k in names):
        return dict(names)
    require(
        len(names) == len(labels),
        f"--label-names: {len(names)} names for the {len(labels)} labels found in the "
        f"references ({', '.join(map(str, labels))}); pass --labels or ID=NAME pairs",
    )
    return {lab: names[-(i + 1)] for i, lab in enumerate(labels)}


# ---- matching ----------------------------------------------------------------------------------


def strip_suffix(name: str) -> str | None:
    """File name without its label-map extension (``a.nii.gz`` -> ``a``); None if not a label map."""
    lower = name.lower()
    for ext in LABEL_SUFFIXES:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def compile_pattern(pattern: str | None) -> Callable[[str], str | None]:
    """Case-id function of a file name: default rule, ``{case}`` template or ``re:`` regex (module doc)."""
    if pattern is None or pattern == "":
        return strip_suffix
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as exc:
            raise DuetfairError(f"--pattern '{pattern}': invalid regular expression ({exc})") from None
        require(rx.groups >= 1, f"--pattern '{pattern}': expected a group (?P<case>...) that captures the case id")
        group: int | str = "case" if "case" in rx.groupindex else 1
    else:
        require(
            pattern.count("{case}") == 1,
            f"--pattern '{pattern}': expected {{case}} exactly once, e.g. {{case}}_seg.nii.gz",
        )
        parts = [re.escape(p).replace(r"\*", ".*") for p in pattern.split("{case}")]
        rx = re.compile(f"{parts[0]}(?P<case>.+?){parts[1]}")
        group = "case"

    def case_of(name: str) -> str | None:
        m = rx.fullmatch(name)
        return m.group(group) if m and m.group(group) else None

    return case_of


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def list_cases(folder: str | os.PathLike[str], pattern: str | None = None, *, what: str = "folder") -> dict[str, Path]:
    """``{case_id: file}`` of the label maps in ``folder`` (not recursive), with one-line errors."""
    root = Path(folder)
    require(root.is_dir(), f"{what} {root}: folder not found")
    case_of = compile_pattern(pattern)
    found: dict[str, list[Path]] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        cid = case_of(path.name)
        if cid is not None and (pattern or strip_suffix(path.name) is not None):
            found.setdefault(cid, []).append(path)
    rule = f"--pattern '{pattern}'" if pattern else f"a label-map extension ({', '.join(LABEL_SUFFIXES)})"
    require(len(found) > 0, f"{what} {root}: no file matches {rule}")
    dupes = {k: v for k, v in found.items() if len(v) > 1}
    if dupes:
        cid, paths = next(iter(dupes.items()))
        raise DuetfairError(
            f"{what} {root}: {len(dupes)} case ids have several files, e.g. '{cid}': "
            f"{', '.join(p.name for p in paths)}; select one kind with --pattern, e.g. '{{case}}.nii.gz'"
        )
    return {k: v[0] for k, v in found.items()}


@dataclass(frozen=True)
class CasePair:
    """A case to score: its id, the prediction file (None: missing, scored as empty) and the reference."""

    case_id: str
    pred: Path | None
    ref: Path
    image: Path | None = None


def match_folders(
    pred_dir: str | os.PathLike[str],
    ref_dir: str | os.PathLike[str],
    *,
    pred_pattern: str | None = None,
    ref_pattern: str | None = None,
    allow_missing: bool = False,
) -> list[CasePair]:
    """Pair predictions with references by case id, sorted by case id.

    A prediction without a reference is always an error; a reference without a prediction is an
    error unless ``allow_missing`` (the case is then scored with an empty prediction).
    """
    preds = list_cases(pred_dir, pred_pattern, what="predictions")
    refs = list_cases(ref_dir, ref_pattern, what="references")
    orphans = sorted(set(preds) - set(refs))
    require(
        not orphans,
        f"{len(orphans)} predictions have no reference in {ref_dir}: {_listing(orphans)} "
        f"(references are matched by case id; see --pattern)",
    )
    missing = sorted(set(refs) - set(preds))
    require(
        allow_missing or not missing,
        f"{len(missing)} references have no prediction in {pred_dir}: {_listing(missing)} "
        f"(--allow-missing scores them as empty predictions)",
    )
    return [CasePair(cid, preds.get(cid), refs[cid]) for cid in sorted(refs)]


# ---- reading and checking ----------------------------------------------------------------------


def read_label_map(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a label map with MONAI ``LoadImage`` -> ``(array [*S], spacing)`` (one value per axis;
    mm from the header of NIfTI / NRRD / MHA, 1.0 for formats without spacing)."""
    arr, spacing, _ = read_label_image(path)
    return arr, spacing


def read_label_image(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray | None]:
    """:func:`read_label_map` and the voxel-to-world affine ``(D+1, D+1)`` of formats with a
    header (None for PNG / NPY / NPZ). A volume with a 4th axis of several values is refused."""
    from duetfair.data.transforms import make_loader
    from duetfair.metrics.geometry import affine_matrix
    from duetfair.metrics.overlap import read_nifti_labels

    try:
        fast = read_nifti_labels(path)  # NIfTI as MONAI's NibabelReader reads it, without its copies
    except Exception:  # noqa: BLE001 - MONAI's path below reports the unreadable file
        fast = None
    if fast is not None:
        return fast[0], fast[1], fast[2] if fast[2].shape[0] == fast[0].ndim + 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = make_loader()(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        hint = (
            " (MONAI reads NRRD / MHA with the itk or pynrrd package)"
            if path.suffix.lower() in (".nrrd", ".nhdr", ".mha", ".mhd")
            else ""
        )
        raise DuetfairError(f"{path}: cannot read the label map ({text}){hint}") from None
    arr = np.asarray(img.detach().cpu().numpy() if hasattr(img, "detach") else img)
    spacing = (
        tuple(float(s) for s in np.asarray(img.pixdim, dtype=np.float64).reshape(-1)) if hasattr(img, "pixdim") else ()
    )
    headered = not path.name.lower().endswith(NO_SPACING_SUFFIXES)
    require(
        arr.shape[0] == 1 or not headered,
        f"{path}: a {arr.ndim}D image of shape {tuple(arr.shape[1:]) + (arr.shape[0],)}; expected a 2D or 3D "
        f"label map (one value per voxel), not a series or several channels",
    )
    if arr.shape[0] > 1:
        require(
            bool((arr == arr[:1]).all()),
            f"{path}: {arr.shape[0]} different channels; expected a single-channel label map",
        )
    arr = arr[0]
    require(arr.ndim in (2, 3), f"{path}: shape {tuple(arr.shape)}; expected a 2D or 3D label map")
    if len(spacing) != arr.ndim:
        spacing = (1.0,) * arr.ndim
    affine = affine_matrix(img) if headered else None
    return arr, spacing, affine if affine is not None and affine.shape[0] == arr.ndim + 1 else None


def label_values(arr: np.ndarray, path: Path) -> tuple[np.ndarray, list[int]]:
    """Integer label map and its sorted non-zero values; an error names the file and a bad value."""
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise DuetfairError(
                f"{path}: label value {arr[bad].flat[0]:g} is not an integer; expected an integer label map"
            )
        arr = arr.astype(np.int64)
    require(arr.dtype.kind in "iu", f"{path}: data type {arr.dtype}; expected an integer label map")
    lo = int(arr.min()) if arr.size else 0
    require(lo >= 0, f"{path}: label value {lo} is negative; expected label ids >= 0 (0 = background)")
    hi = int(arr.max()) if arr.size else 0
    if hi < 1 << 16:
        values = np.flatnonzero(np.bincount(arr.ravel(order="K"), minlength=1)).tolist()
    else:
        values = np.unique(arr).tolist()
    return arr, [int(v) for v in values if v != 0]


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

    Example::

        table = score_folders("preds", "labelsTs", labels=[1, 2], label_names={1: "rim", 2: "cup"},
                              regions=[Region("disc", (1, 2))], workers=4)
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
