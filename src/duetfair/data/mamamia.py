"""MAMA-MIA loader: 3D breast DCE-MRI phases, expert tumour segmentations, clinical table.

Layout of the public release (Synapse syn60868042), read as downloaded::

    root/images/<PATIENT_ID>/<PATIENT_ID>_0000.nii.gz ... _000k   (0 pre-contrast, 1.. post-contrast)
    root/segmentations/expert/<PATIENT_ID>.nii.gz                  (tumour = 1)
    root/clinical_and_imaging_info.xlsx                            (sheet ``dataset_info``)
    root/train_test_splits.csv                                     (columns train_split, test_split)
    root/patient_info_files/<patient_id>.json                      (challenge release: breast box)

File names are matched case-insensitively. Selected phases are stacked as channels and z-scored
with one mean/std over all phases; optional resampling to isotropic spacing (MONAI ``Spacingd``).

The breast box (``primary_lesion.breast_coordinates``: ``x_min .. z_max``) is written in the order
of a SimpleITK array: the challenge's sample submission slices
``GetArrayFromImage(img)[x_min:x_max, y_min:y_max, z_min:z_max]``, and a SimpleITK array lists the
NIfTI axes in reverse. On the NIfTI array read here (nibabel / MONAI, axes ``(i, j, k)``) the box
is therefore ``[z_min:z_max, y_min:y_max, x_min:x_max]``: its ``x`` keys index the last axis.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import pandas as pd
import torch

from duetfair.data.dataset import CaseDataset, build_split_datasets, keep_readable
from duetfair.data.groups import MAMAMIA_AGE_EDGES, MAMAMIA_AGE_LABELS, AttributeSpec, GroupSpec, is_missing
from duetfair.data.splits import assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import DuetfairError, require
from duetfair.io import read_json, read_table

log = logging.getLogger("duetfair.data")

DATASETS = ("DUKE", "ISPY1", "ISPY2", "NACT")
BOX_KEYS = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")
BOX_AXIS = {"x": 2, "y": 1, "z": 0}
"""NIfTI axis (of ``[i, j, k]``) each box letter indexes: SimpleITK order reversed."""
ALIASES = {"menopausal_status": "menopause"}
"""Attribute name -> canonical name (the challenge scripts spell menopause ``menopausal_status``)."""
COLUMNS = {"menopause": ("menopause", "menopausal_status")}
"""Canonical attribute -> clinical table columns that may hold it (first found wins)."""
SPLIT_FILE = "train_test_splits.csv"
CropPolicy = Literal["warn", "raise", "ignore"]


def mamamia_spec(attributes: Sequence[str] = ("age", "menopause", "dataset")) -> GroupSpec:
    """Group spec of MAMA-MIA: age bins 0-40 / 41-50 / 51-60 / 61-70 / 71+ (right-closed, 40 is
    ``0-40``), menopause free text -> pre (pre, peri) / post / unknown (missing, its own group, as
    in the challenge scoring), source ``dataset`` (DUKE / ISPY1 / ISPY2 / NACT), ``breast_density``
    a-d (missing -> -1). ``menopausal_status`` is accepted for ``menopause``."""
    specs = {
        "age": AttributeSpec("age", list(MAMAMIA_AGE_LABELS), edges=list(MAMAMIA_AGE_EDGES), right=True),
        "menopause": AttributeSpec(
            "menopause",
            ["pre", "post", "unknown"],
            value_map={"pre": "pre", "peri": "pre", "post": "post", "unknown": "unknown"},
            match="prefix",
            missing="unknown",
        ),
        "dataset": AttributeSpec("dataset", list(DATASETS)),
        "breast_density": AttributeSpec("breast_density", ["a", "b", "c", "d"]),
    }
    names = [ALIASES.get(a, a) for a in attributes]
    for a, n in zip(attributes, names):
        require(n in specs, f"unknown MAMA-MIA attribute '{a}'; expected some of {list(specs)} (or {list(ALIASES)})")
    return GroupSpec([specs[n] for n in names])


def mamamia_datasets(
    root: str | os.PathLike[str],
    *,
    attributes: Sequence[str] = ("age", "menopause", "dataset"),
    clinical: str = "clinical_and_imaging_info.xlsx",
    sheet: str | None = "dataset_info",
    split_file: str | None = SPLIT_FILE,
    phases: Sequence[int] = (0, 1, 2),
    pixdim: Sequence[float] | None = (1.0, 1.0, 1.0),
    spatial_size: Sequence[int] | int | None = None,
    crop_to_breast: bool = False,
    on_crop_loss: CropPolicy = "warn",
    normalize: Normalize = "zscore_global",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    val_fraction: float = 0.1,
    seed: int = 0,
    on_error: str = "raise",
    max_skip_fraction: float = 0.05,
    cache: bool = False,
) -> dict[str, CaseDataset]:
    """MAMA-MIA datasets keyed by split (one case per patient).

    Args:
        root: the downloaded dataset folder.
        attributes: group attributes (default ``age, menopause, dataset``, all in the public
            table; ``breast_density`` needs a table that has it; ``menopausal_status`` = ``menopause``).
        clinical: clinical table inside ``root`` (xlsx or CSV; default the release's xlsx).
        sheet: xlsx sheet (default ``"dataset_info"``, the release's).
        split_file: the official split inside ``root`` (default ``train_test_splits.csv``): its
            ``test_split`` patients are the test set, ``val_fraction`` of its ``train_split``
            patients (stratified by the first attribute) the validation set. Without the file
            (or with ``None``) the split is random (``fractions``); a ``split`` column in the
            clinical table wins over both. Each returned dataset says which in ``split_source``
            (``"official"``, ``"random"`` or ``"table"``).
        phases: phase indices stacked as channels (default 0, 1, 2: pre-contrast + 2 post-contrast,
            as in FairMedSeg).
        pixdim: resample to this spacing in mm (default 1 mm isotropic); ``None`` keeps.
        spatial_size: resize to this size after cropping/resampling (default ``None``: keep).
        crop_to_breast: crop to the breast box of ``patient_info_files/<id>.json`` (default off).
        on_crop_loss: when the box cuts off labelled voxels: ``"warn"`` (default, once per case),
            ``"raise"`` or ``"ignore"``.
        normalize: default ``"zscore_global"`` (one mean/std over all phases).
        fractions: train/val/test fractions of the random split (default 0.8/0.1/0.1).
        val_fraction: share of the official train part used for validation (default 0.1).
        seed: split seed (default 0).
        on_error: ``"raise"`` (default; missing files are reported before any reading) or
            ``"skip"`` (bad cases left out, reported in ``.skipped``).
        max_skip_fraction: with ``"skip"``, refuse when more than this share of the cases is left
            out (default 0.05; 1.0 accepts any number, still with a warning).
        cache: keep read cases in memory.
    """
    root = Path(root)
    require(
        on_crop_loss in ("warn", "raise", "ignore"),
        f"on_crop_loss must be 'warn', 'raise' or 'ignore', got '{on_crop_loss}'",
    )
    require(len(phases) >= 1, "phases must name at least one phase")
    require(0.0 <= val_fraction < 1.0, f"val_fraction must be in [0, 1), got {val_fraction}")
    table_path = root / clinical
    spec = mamamia_spec(attributes)
    meta = _clinical_meta(table_path, sheet, spec)
    meta = _attach_files(meta, root, phases, crop_to_breast)
    meta["split"], source = _assign_split(meta, root, split_file, spec, fractions, val_fraction, seed)
    meta = meta[meta["split"].notna()].reset_index(drop=True)
    files = ("image", "label", "info") if crop_to_breast else ("image", "label")
    meta, skipped = keep_readable(meta, files, what="MAMA-MIA", on_error=on_error, max_skip_fraction=max_skip_fraction)
    reader = CaseReader(num_classes=2, spatial_dims=3, normalize=normalize, image_size=spatial_size, pixdim=pixdim)
    warned: set[str] = set()
    read = lambda row: _read_case(reader, row, crop_to_breast, on_crop_loss, warned)  # noqa: E731
    return build_split_datasets(
        meta,
        spec,
        read,
        source=source,
        in_channels=len(phases),
        spatial_dims=3,
        skipped=skipped,
        what="MAMA-MIA",
        on_error=on_error,
        max_skip_fraction=max_skip_fraction,
        cache=cache,
        channel_source="files" if len(phases) > 1 else "native",
    )


# ---- clinical table --------------------------------------------------------------------------


def _clinical_meta(path: Path, sheet: str | None, spec: GroupSpec) -> pd.DataFrame:
    """The clinical table with ``case_id`` first and one column per (canonical) attribute."""
    table = read_table(path, sheet=sheet if path.suffix.lower() in (".xlsx", ".xls") else None)
    require("patient_id" in table.columns, f"clinical table '{path}': column 'patient_id' is missing")
    meta = table[table["patient_id"].map(lambda v: not is_missing(v))].copy()
    meta.insert(0, "case_id", meta["patient_id"].astype(str).str.strip())
    dup = meta["case_id"][meta["case_id"].str.lower().duplicated()].tolist()
    require(not dup, f"clinical table '{path}': patient_id {dup[:3]} appears more than once")
    for a in spec.attributes:
        meta[a] = _attribute_column(meta, a, path)
    return meta.reset_index(drop=True)


def _attribute_column(meta: pd.DataFrame, attr: str, path: Path) -> pd.Series:
    """The column holding ``attr`` (aliases resolved); a clear error when the table lacks it."""
    col = next((c for c in COLUMNS.get(attr, (attr,)) if c in meta.columns), None)
    if col is None and attr == "breast_density":
        raise DuetfairError(
            f"clinical table '{path}' has no 'breast_density' column: the public MAMA-MIA "
            f"clinical table does not include breast density; leave it out of attributes or "
            f"give a table that has it"
        )
    require(
        col is not None,
        f"clinical table '{path}': attribute column '{attr}' is missing "
        f"(looked for {list(COLUMNS.get(attr, (attr,)))})",
    )
    values = meta[col]
    require(
        not values.map(is_missing).all(),
        f"clinical table '{path}': column '{col}' for attribute '{attr}' has no values",
    )
    return values


# ---- files -----------------------------------------------------------------------------------


def _index(folder: Path) -> dict[str, Path]:
    """Lower-case name -> path of the entries of ``folder`` (empty if it does not exist)."""
    return {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}


def _attach_files(meta: pd.DataFrame, root: Path, phases: Sequence[int], need_info: bool) -> pd.DataFrame:
    """Add ``image`` (list of phase paths), ``label`` and ``info`` (JSON path or None) columns."""
    images, segs = _index(root / "images"), _index(root / "segmentations" / "expert")
    infos = _index(root / "patient_info_files")
    meta = meta.copy()
    meta["image"] = [_phase_files(root, images, pid, phases) for pid in meta["case_id"]]
    meta["label"] = [
        str(segs.get(f"{pid.lower()}.nii.gz", root / "segmentations" / "expert" / f"{pid}.nii.gz"))
        for pid in meta["case_id"]
    ]
    meta["info"] = [
        str(infos[f"{pid.lower()}.json"])
        if f"{pid.lower()}.json" in infos
        else (str(root / "patient_info_files" / f"{pid.lower()}.json") if need_info else None)
        for pid in meta["case_id"]
    ]
    return meta


def _phase_files(root: Path, images: dict[str, Path], pid: str, phases: Sequence[int]) -> list[str]:
    folder = images.get(pid.lower())
    files = _index(folder) if folder is not None else {}
    base = folder if folder is not None else root / "images" / pid
    return [str(files.get(f"{pid.lower()}_{k:04d}.nii.gz", base / f"{pid}_{k:04d}.nii.gz")) for k in phases]


# ---- split -----------------------------------------------------------------------------------


def _assign_split(
    meta: pd.DataFrame,
    root: Path,
    split_file: str | None,
    spec: GroupSpec,
    fractions: Sequence[float],
    val_fraction: float,
    seed: int,
) -> tuple[pd.Series, str]:
    """Split per row (``None`` = left out) and its source: ``"table"``, ``"official"`` or ``"random"``."""
    if "split" in meta.columns and not meta["split"].isna().all():
        return meta["split"], "table"
    path = root / split_file if split_file else None
    if path is None or not path.is_file():
        log.warning(
            "MAMA-MIA: no official split file '%s'; using a random %s split (seed %d), not comparable "
            "to results on the official split",
            path or SPLIT_FILE,
            "/".join(f"{f:g}" for f in fractions),
            seed,
        )
        return assign_group_splits(meta, spec, fractions=fractions, seed=seed), "random"
    split = meta["case_id"].str.lower().map(_official_split(path, meta))
    left_out = int(split.isna().sum())
    if left_out:
        log.warning(
            "MAMA-MIA: %d of %d patients of the clinical table are in neither column of '%s' and are left out",
            left_out,
            len(meta),
            path,
        )
    train = split == "train"
    if val_fraction > 0 and train.any():
        split[train] = assign_group_splits(
            meta[train], spec, fractions=(1 - val_fraction, val_fraction, 0.0), seed=seed
        )
    log.info("MAMA-MIA: official split '%s': %s", path, split.value_counts().to_dict())
    return split, "official"


def _official_split(path: Path, meta: pd.DataFrame) -> dict[str, str]:
    """Lower-case patient id -> ``"train"`` / ``"test"`` from the official split CSV."""
    table = read_table(path)
    require(
        {"train_split", "test_split"} <= set(table.columns),
        f"split file '{path}': expected columns 'train_split' and 'test_split', got {list(table.columns)}",
    )
    ids = {s: [str(v).strip() for v in table[f"{s}_split"] if not is_missing(v)] for s in ("train", "test")}
    test = {i.lower() for i in ids["test"]}
    both = [i for i in ids["train"] if i.lower() in test]
    require(not both, f"split file '{path}': patients {both[:3]} are in both train_split and test_split")
    known = set(meta["case_id"].str.lower())
    unknown = [i for s in ids.values() for i in s if i.lower() not in known]
    require(not unknown, f"split file '{path}': {len(unknown)} patients ({unknown[:3]}) are not in the clinical table")
    return {i.lower(): s for s, lst in ids.items() for i in lst}


# ---- reading ---------------------------------------------------------------------------------


def _read_case(
    reader: CaseReader, row: dict[str, Any], crop: bool, on_crop_loss: CropPolicy, warned: set[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image ``[P, I, J, K]`` (P phases) and label ``[1, I, J, K]``, cropped to the breast box if asked."""
    cid = row["case_id"]
    image = reader.load(row["image"], cid, "image")
    label = reader.load(row["label"], cid, "label")
    if crop:
        total = int((label > 0).sum())
        image, label = crop_to_box(image, label, breast_box(Path(row["info"]), cid), source=row["info"], case_id=cid)
        _check_crop_loss(row, total, int((label > 0).sum()), on_crop_loss, warned)
    return reader.process(image, label, row["image"], row["label"], cid)


def breast_box(path: Path, case_id: str) -> dict[str, int]:
    """The breast box of a patient JSON (``primary_lesion.breast_coordinates``, voxel indices)."""
    require(
        path.is_file(), f"case '{case_id}': crop_to_breast needs '{path}' (patient_info_files of the challenge release)"
    )
    try:
        coords = read_json(path, "a MAMA-MIA patient file")["primary_lesion"]["breast_coordinates"]
        return {k: int(coords[k]) for k in BOX_KEYS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DuetfairError(
            f"case '{case_id}': breast box in '{path}' unreadable ({type(exc).__name__}: {exc}); "
            f"expected primary_lesion.breast_coordinates with {list(BOX_KEYS)}"
        ) from exc


def crop_to_box(
    image: torch.Tensor, label: torch.Tensor, box: dict[str, int], *, source: str, case_id: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``image [C, I, J, K]`` and ``label [1, I, J, K]`` (NIfTI axis order) to a box in the
    challenge's convention (``x`` indexes K, ``y`` J, ``z`` I; upper bounds exclusive). A box
    reaching outside the volume is refused, never clipped."""
    shape = tuple(int(s) for s in image.shape[1:])
    require(
        tuple(label.shape[1:]) == shape,
        f"case '{case_id}': image shape {shape} and label shape {tuple(label.shape[1:])} differ",
    )
    sl: list[slice] = [slice(None)] * 4
    for letter, axis in BOX_AXIS.items():
        lo, hi = box[f"{letter}_min"], box[f"{letter}_max"]
        for key, v in ((f"{letter}_min", lo), (f"{letter}_max", hi)):
            require(
                0 <= v <= shape[axis],
                f"case '{case_id}': breast box in '{source}' has '{key}'={v} outside "
                f"the volume of shape {shape} ({letter} indexes axis {axis}, size "
                f"{shape[axis]})",
            )
        require(lo < hi, f"case '{case_id}': breast box in '{source}' is empty along {letter} ({lo}..{hi})")
        sl[axis + 1] = slice(lo, hi)
    return image[tuple(sl)], label[tuple(sl)]


def _check_crop_loss(row: dict[str, Any], total: int, kept: int, policy: CropPolicy, warned: set[str]) -> None:
    """Warn (once per case) or raise when the crop removed some of the ``total`` labelled voxels."""
    if policy == "ignore" or kept == total:
        return
    msg = (
        f"case '{row['case_id']}': the breast box in '{row['info']}' removes {total - kept} of {total} labelled voxels"
    )
    require(policy != "raise", f"{msg} (on_crop_loss='raise'; use 'warn' to keep such cases)")
    if row["case_id"] not in warned:
        warned.add(row["case_id"])
        log.warning("MAMA-MIA: %s", msg)
