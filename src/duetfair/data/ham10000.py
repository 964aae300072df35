"""HAM10000 loader: dermoscopy JPGs, ``_segmentation.png`` masks (0/255) and the metadata CSV.

Layout (names configurable)::

    root/HAM10000_images/ISIC_xxxxxxx.jpg
    root/HAM10000_segmentations/ISIC_xxxxxxx_segmentation.png
    root/HAM10000_metadata.csv       (lesion_id, image_id, dx, dx_type, age, sex, localization)

Rows with missing age or sex are kept with an unknown (-1) code (the MEDFAIR convention drops
them). Without a split file the split is 80/10/10 by ``lesion_id`` (no lesion in two splits),
stratified by the first attribute.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from duetfair.data.dataset import CaseDataset, drop_bad_cases
from duetfair.data.groups import HAM_AGE_EDGES, HAM_AGE_LABELS, AttributeSpec, GroupSpec, is_missing
from duetfair.data.manifest import read_table
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import require

SEXES = ("female", "male")
SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand", "lower extremity",
         "neck", "scalp", "trunk", "upper extremity")


def ham10000_spec(attributes: Sequence[str] = ("age", "sex")) -> GroupSpec:
    """Group spec of HAM10000: age in 5 bins (<20, 20-39, 40-59, 60-79, >=80), sex, localization."""
    specs = {"age": AttributeSpec("age", list(HAM_AGE_LABELS), edges=list(HAM_AGE_EDGES)),
             "sex": AttributeSpec("sex", list(SEXES)),
             "localization": AttributeSpec("localization", list(SITES))}
    for a in attributes:
        require(a in specs, f"unknown HAM10000 attribute '{a}'; expected some of {list(specs)}")
    return GroupSpec([specs[a] for a in attributes])


def ham10000_datasets(root: str | os.PathLike[str], *, attributes: Sequence[str] = ("age", "sex"),
                      metadata: str = "HAM10000_metadata.csv", images_dir: str = "HAM10000_images",
                      masks_dir: str = "HAM10000_segmentations", split_file: str | None = None,
                      image_size: int | None = 224, normalize: Normalize = "auto",
                      fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, on_error: str = "raise",
                      cache: bool = False) -> dict[str, CaseDataset]:
    """HAM10000 datasets keyed by split.

    Args:
        root: dataset folder.
        attributes: group attributes (default ``("age", "sex")``; also ``localization``).
        metadata / images_dir / masks_dir: names inside ``root`` (defaults: the release's).
        split_file: CSV with ``image_id`` and ``split`` columns (default: split by lesion).
        image_size: resize to a square of this side (default 224, the dMoE protocol); ``None`` keeps.
        normalize: intensity normalisation (default ``"auto"``: 8-bit -> [0, 1]).
        fractions: train/val/test fractions (default 0.8/0.1/0.1, MEDFAIR).
        seed: split seed. on_error: ``"raise"`` or ``"skip"`` (report in ``.skipped``).
    """
    root = Path(root)
    meta = read_table(root / metadata)
    for col in ("lesion_id", "image_id"):
        require(col in meta.columns, f"HAM10000 metadata '{root / metadata}': column '{col}' is missing")
    spec = ham10000_spec(attributes)
    meta = meta.copy()
    meta.insert(0, "case_id", meta["image_id"].astype(str))
    if "sex" in meta.columns:
        meta["sex"] = meta["sex"].map(lambda v: None if is_missing(v) else str(v).strip().lower())
    if "localization" in meta.columns:
        meta["localization"] = meta["localization"].map(lambda v: None if is_missing(v) else str(v).strip().lower())
    meta["image"] = [str(root / images_dir / f"{i}.jpg") for i in meta["case_id"]]
    meta["label"] = [str(root / masks_dir / f"{i}_segmentation.png") for i in meta["case_id"]]
    if split_file is not None:
        splits = read_table(split_file)
        require({"image_id", "split"} <= set(splits.columns), f"split file '{split_file}' needs columns image_id, split")
        meta["split"] = meta["case_id"].map(dict(zip(splits["image_id"].astype(str), splits["split"].astype(str))))
        missing = meta.loc[meta["split"].isna(), "case_id"].tolist()
        require(not missing, f"split file '{split_file}' has no split for images {missing[:5]}")
    else:
        meta["split"] = assign_group_splits(meta, spec, fractions=fractions, group_by="lesion_id", seed=seed)
    reader = CaseReader(num_classes=2, spatial_dims=2, label_map={255: 1}, normalize=normalize, image_size=image_size)
    out: dict[str, CaseDataset] = {}
    for split in SPLITS:
        part = meta[meta["split"] == split].reset_index(drop=True)
        if len(part):
            im, lb, ids = part["image"].tolist(), part["label"].tolist(), part["case_id"].tolist()
            ds = CaseDataset(part, spec, lambda i, im=im, lb=lb, ids=ids: reader(im[i], lb[i], ids[i]),
                             num_classes=2, in_channels=3, spatial_dims=2, cache=cache)
            out[split] = drop_bad_cases(ds, on_error=on_error)
    return out
