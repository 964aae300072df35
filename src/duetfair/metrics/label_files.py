"""Label-map files: which file is which case, reading one, and which labels are scored.

Case ids from file names (:func:`strip_suffix`, :func:`compile_pattern`, :func:`list_cases`), pairs
of prediction and reference files (:func:`match_folders` -> :class:`CasePair`), reading a label map
(:func:`read_label_map`, :func:`read_label_image`, :func:`label_values`) and the labels and regions
to score (:func:`parse_labels`, :func:`parse_regions`, :func:`parse_label_names`). The rules are
documented in :mod:`duetfair.metrics.folders`, which re-exports every name here.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duetfair.errors import DuetfairError, require
from duetfair.metrics.score_checks import check_label_names

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".bmp", ".tif", ".tiff", ".npy", ".npz")
"""Extensions of label-map files (longest first where one ends another)."""

NO_SPACING_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".npy", ".npz")
"""Formats that carry no voxel spacing (a prediction in one takes the reference's spacing)."""

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


# ---- reading ----------------------------------------------------------------------


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
