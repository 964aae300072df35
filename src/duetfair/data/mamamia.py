"""MAMA-MIA loader: 3D breast DCE-MRI phases, expert tumour segmentations, clinical table.

Layout::

    root/images/<PATIENT_ID>/<patient_id>_0000.nii.gz ... _000k   (0 pre-contrast, 1.. post)
    root/segmentations/expert/<patient_id>.nii.gz                  (tumour = 1)
    root/clinical_and_imaging_info.xlsx  (sheet dataset_info; or a CSV)
    root/patient_info_files/<patient_id>.json                      (optional breast bounding box)

Names are matched case-insensitively. Selected phases are stacked as channels and z-scored with
one mean/std over all phases; optional resampling to isotropic spacing (MONAI ``Spacingd``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from duetfair.data.dataset import CaseDataset, drop_bad_cases
from duetfair.data.groups import MAMAMIA_AGE_EDGES, MAMAMIA_AGE_LABELS, AttributeSpec, GroupSpec
from duetfair.data.manifest import read_table
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize, make_loader
from duetfair.errors import DuetfairError, require

DATASETS = ("DUKE", "ISPY1", "ISPY2", "NACT")
BOX_KEYS = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")


def mamamia_spec(attributes: Sequence[str] = ("age", "menopause", "dataset")) -> GroupSpec:
    """Group spec of MAMA-MIA: age bins 0-40 / 41-50 / 51-60 / 61-70 / 71+ (right-closed),
    menopause free text -> pre (pre, peri) / post / unknown (missing, its own group, as in the
    challenge), source ``dataset`` (institution), ``breast_density`` a-d (missing -> -1)."""
    specs = {
        "age": AttributeSpec("age", list(MAMAMIA_AGE_LABELS), edges=list(MAMAMIA_AGE_EDGES), right=True),
        "menopause": AttributeSpec("menopause", ["pre", "post", "unknown"],
                                   value_map={"pre": "pre", "peri": "pre", "post": "post", "unknown": "unknown"},
                                   match="prefix", missing="unknown"),
        "dataset": AttributeSpec("dataset", list(DATASETS)),
        "breast_density": AttributeSpec("breast_density", ["a", "b", "c", "d"]),
    }
    for a in attributes:
        require(a in specs, f"unknown MAMA-MIA attribute '{a}'; expected some of {list(specs)}")
    return GroupSpec([specs[a] for a in attributes])


def _index(folder: Path) -> dict[str, Path]:
    """Lower-case name -> path of the entries of ``folder`` (empty if it does not exist)."""
    return {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}


def mamamia_datasets(root: str | os.PathLike[str], *, attributes: Sequence[str] = ("age", "menopause", "dataset"),
                     clinical: str = "clinical_and_imaging_info.xlsx", sheet: str | None = "dataset_info",
                     phases: Sequence[int] = (0, 1, 2), pixdim: Sequence[float] | None = (1.0, 1.0, 1.0),
                     spatial_size: Sequence[int] | int | None = None, crop_to_breast: bool = False,
                     normalize: Normalize = "zscore_global", fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0, on_error: str = "raise", cache: bool = False) -> dict[str, CaseDataset]:
    """MAMA-MIA datasets keyed by split (stratified by the first attribute, one case per patient).

    Args:
        root: dataset folder.
        attributes: group attributes (default ``age, menopause, dataset``; also ``breast_density``).
        clinical: clinical table inside ``root`` (xlsx or CSV; default the release's xlsx).
        sheet: xlsx sheet (default ``"dataset_info"``).
        phases: phase indices stacked as channels (default 0, 1, 2: pre-contrast + 2 post-contrast,
            as in FairMedSeg).
        pixdim: resample to this spacing in mm (default 1 mm isotropic); ``None`` keeps.
        spatial_size: resize to this size (default ``None``: keep).
        crop_to_breast: crop to the breast box of ``patient_info_files/<id>.json``
            (``primary_lesion.breast_coordinates`` with ``x_min .. z_max`` voxel indices; default off).
        normalize: default ``"zscore_global"`` (one mean/std over all phases).
        fractions / seed: split when the table has no ``split`` column.
        on_error: ``"raise"`` or ``"skip"`` (report in ``.skipped``).
    """
    root = Path(root)
    require(len(phases) >= 1, "phases must name at least one phase")
    table_path = root / clinical
    table = read_table(table_path, sheet=sheet if table_path.suffix.lower() in (".xlsx", ".xls") else None)
    require("patient_id" in table.columns, f"clinical table '{table_path}': column 'patient_id' is missing")
    spec = mamamia_spec(attributes)
    for a in spec.attributes:
        require(a in table.columns, f"clinical table '{table_path}': attribute column '{a}' is missing")
    meta = table.copy()
    meta.insert(0, "case_id", meta["patient_id"].astype(str))
    images, segs, infos = _index(root / "images"), _index(root / "segmentations" / "expert"), _index(root / "patient_info_files")
    meta["image"] = [_phase_files(images, pid, phases) for pid in meta["case_id"]]
    meta["label"] = [str(segs.get(f"{pid.lower()}.nii.gz", root / "segmentations" / "expert" / f"{pid}.nii.gz"))
                     for pid in meta["case_id"]]
    meta["info"] = [str(infos[f"{pid.lower()}.json"]) if f"{pid.lower()}.json" in infos else None for pid in meta["case_id"]]
    if "split" not in meta.columns:
        meta["split"] = assign_group_splits(meta, spec, fractions=fractions, seed=seed)
    reader = CaseReader(num_classes=2, spatial_dims=3, normalize=normalize, image_size=spatial_size, pixdim=pixdim)
    out: dict[str, CaseDataset] = {}
    for split in SPLITS:
        part = meta[meta["split"] == split].reset_index(drop=True)
        if len(part):
            rows = part[["case_id", "image", "label", "info"]].to_dict("records")
            ds = CaseDataset(part, spec, lambda i, r=rows: _read_case(reader, r[i], crop_to_breast),
                             num_classes=2, in_channels=len(phases), spatial_dims=3, cache=cache)
            out[split] = drop_bad_cases(ds, on_error=on_error)
    return out


def _phase_files(images: dict[str, Path], pid: str, phases: Sequence[int]) -> list[str]:
    folder = images.get(pid.lower())
    files = _index(folder) if folder is not None else {}
    base = folder if folder is not None else Path("images") / pid
    return [str(files.get(f"{pid.lower()}_{k:04d}.nii.gz", base / f"{pid.lower()}_{k:04d}.nii.gz")) for k in phases]


def _read_case(reader: CaseReader, row: dict[str, Any], crop: bool) -> tuple[torch.Tensor, torch.Tensor]:
    cid = row["case_id"]
    image = reader.load(row["image"], cid, "image")
    label = reader.load(row["label"], cid, "label")
    if crop:
        require(row["info"] is not None, f"case '{cid}': crop_to_breast needs patient_info_files/{cid}.json")
        box = _breast_box(Path(row["info"]), cid)
        sl = (slice(None), slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5]))
        image, label = image[sl], label[sl]
    return reader.process(image, label, row["image"], row["label"], cid)


def _breast_box(path: Path, cid: str) -> list[int]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        coords = info["primary_lesion"]["breast_coordinates"]
        box = [int(coords[k]) for k in BOX_KEYS]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DuetfairError(f"case '{cid}': breast box in '{path}' unreadable ({exc}); expected "
                            f"primary_lesion.breast_coordinates with {list(BOX_KEYS)}") from exc
    require(box[0] < box[1] and box[2] < box[3] and box[4] < box[5], f"case '{cid}': empty breast box {box} in '{path}'")
    return box
