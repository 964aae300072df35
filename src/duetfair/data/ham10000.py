"""HAM10000 loader: dermoscopy JPGs, lesion masks (0/255 PNG) and the metadata table.

Layout of the Harvard Dataverse release (doi:10.7910/DVN/DBW86T), read as downloaded and unzipped::

    root/HAM10000_images_part_1/ISIC_xxxxxxx.jpg     root/HAM10000_images_part_2/ISIC_xxxxxxx.jpg
    root/HAM10000_segmentations_lesion_tschandl/ISIC_xxxxxxx_segmentation.png
    root/HAM10000_metadata.tab   (Dataverse's tab-separated export; the original ``.csv`` also works)
    root/split/                  (optional paper splits, see ``split``)

Columns used: ``lesion_id``, ``image_id``, ``age``, ``sex``, ``localization`` (also present:
``dx``, ``dx_type``, ``dataset``). Folder names are matched case-insensitively, a folder unzipped
into a same-named folder is found, and the older names ``HAM10000_images`` /
``HAM10000_segmentations`` are accepted. Rows with missing age or sex are kept with an unknown (-1)
code (MEDFAIR's split files leave them out).

This module also holds the missing-file and skip-share checks shared with the MAMA-MIA loader.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from duetfair.data.dataset import CaseDataset, build_split_datasets, keep_readable
from duetfair.data.groups import HAM_AGE_EDGES, HAM_AGE_LABELS, AttributeSpec, GroupSpec, is_missing
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import DuetfairError, require
from duetfair.io import read_table

log = logging.getLogger("duetfair.data")

SEXES = ("female", "male")
SITES = (
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "upper extremity",
)
METADATA_NAMES = ("HAM10000_metadata.tab", "HAM10000_metadata.csv", "HAM10000_metadata.tsv", "HAM10000_metadata")
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")
MASK_DIRS = ("HAM10000_segmentations_lesion_tschandl", "HAM10000_segmentations")
SPLIT_CHOICES = ("auto", "lesion", "medfair", "dmoe")
PAPER_SPLITS = {
    "medfair": {"train": "new_train.csv", "val": "new_val.csv", "test": "new_test.csv"},  # MEDFAIR notebook
    "dmoe": {"train": "train.csv", "val": "val.csv", "test": "test.csv"},  # dMoE reads train.csv, test.csv
}
OPTIONAL_SPLIT_FILES = {"dmoe": ("val",)}


def ham10000_spec(attributes: Sequence[str] = ("age", "sex")) -> GroupSpec:
    """Group spec of HAM10000: age in 5 bins (<20, 20-39, 40-59, 60-79, >=80), sex, localization."""
    specs = {
        "age": AttributeSpec("age", list(HAM_AGE_LABELS), edges=list(HAM_AGE_EDGES)),
        "sex": AttributeSpec("sex", list(SEXES)),
        "localization": AttributeSpec("localization", list(SITES)),
    }
    for a in attributes:
        require(a in specs, f"unknown HAM10000 attribute '{a}'; expected some of {list(specs)}")
    return GroupSpec([specs[a] for a in attributes])


def ham10000_datasets(
    root: str | os.PathLike[str],
    *,
    attributes: Sequence[str] = ("age", "sex"),
    metadata: str | None = None,
    images_dirs: Sequence[str] | str | None = None,
    masks_dir: str | None = None,
    split: str = "auto",
    split_dir: str | None = None,
    split_files: Mapping[str, str] | None = None,
    split_file: str | None = None,
    image_size: int | None = 224,
    normalize: Normalize = "auto",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    val_fraction: float = 0.1,
    seed: int = 0,
    on_error: str = "raise",
    max_skip_fraction: float = 0.05,
    cache: bool = False,
) -> dict[str, CaseDataset]:
    """HAM10000 datasets keyed by split.

    Args:
        root: the folder holding the unzipped release.
        attributes: group attributes (default ``("age", "sex")``; also ``localization``).
        metadata: metadata file inside ``root`` (default: the first of ``HAM10000_metadata.tab``,
            ``.csv``, ``.tsv`` found; ``.tab``/``.tsv`` are tab-separated).
        images_dirs: image folders inside ``root`` (default: those of ``HAM10000_images_part_1``,
            ``HAM10000_images_part_2``, ``HAM10000_images`` that exist).
        masks_dir: mask folder (default ``HAM10000_segmentations_lesion_tschandl``, else
            ``HAM10000_segmentations``); masks are ``<image_id>_segmentation.png``.
        split: ``"auto"`` (default: the paper split files found in ``split_dir``, else
            ``"lesion"``), ``"lesion"`` (own split: ``fractions`` by ``lesion_id``, stratified by the
            first attribute), ``"medfair"`` (``new_train.csv``, ``new_val.csv``, ``new_test.csv``)
            or ``"dmoe"`` (``train.csv``, ``test.csv``, optional ``val.csv``).
        split_dir: folder of the paper split files (default ``root/split``).
        split_files: ``{split: CSV with an image_id column}``, overrides ``split``.
        split_file: one CSV with ``image_id`` and ``split`` columns, overrides ``split``.
        image_size: resize to a square of this side (default 224, the dMoE protocol); ``None`` keeps.
        normalize: intensity normalisation (default ``"auto"``: 8-bit -> [0, 1]).
        fractions: train/val/test fractions of the lesion split (default 0.8/0.1/0.1, MEDFAIR).
        val_fraction: share of the train lesions used for validation when the split files have no
            validation part (dMoE; default 0.1).
        seed: split seed (default 0).
        on_error: ``"raise"`` (default; missing files are reported before any reading) or
            ``"skip"`` (bad cases left out, reported in ``.skipped``).
        max_skip_fraction: with ``"skip"``, refuse when more than this share of the cases is left
            out (default 0.05; 1.0 accepts any number, still with a warning).
        cache: keep read cases in memory.

    Every returned dataset says in ``split_source`` which split was used (``"lesion"``,
    ``"medfair"``, ``"dmoe"``, ``"files"`` or ``"file"``).
    """
    root = Path(root)
    require(root.is_dir(), f"HAM10000 folder '{root}' does not exist")
    require(0.0 <= val_fraction < 1.0, f"val_fraction must be in [0, 1), got {val_fraction}")
    spec = ham10000_spec(attributes)
    meta = _metadata_table(root, metadata)
    meta, hint = _attach_files(meta, root, images_dirs, masks_dir)
    meta["split"], source = _assign_split(
        meta, root, spec, split, split_dir, split_files, split_file, fractions, val_fraction, seed
    )
    meta = meta[meta["split"].notna()].reset_index(drop=True)
    meta, skipped = keep_readable(
        meta, ("image", "label"), what="HAM10000", on_error=on_error, max_skip_fraction=max_skip_fraction, hint=hint
    )
    reader = CaseReader(num_classes=2, spatial_dims=2, label_map={255: 1}, normalize=normalize, image_size=image_size)
    return build_split_datasets(
        meta,
        spec,
        lambda row: reader(row["image"], row["label"], row["case_id"]),
        source=source,
        in_channels=3,
        spatial_dims=2,
        skipped=skipped,
        what="HAM10000",
        on_error=on_error,
        max_skip_fraction=max_skip_fraction,
        cache=cache,
    )


# ---- metadata and files ----------------------------------------------------------------------


def _metadata_table(root: Path, name: str | None) -> pd.DataFrame:
    """The metadata with ``case_id`` first; sex and localization lower-cased."""
    names = (name,) if name else METADATA_NAMES
    path = next((root / n for n in names if (root / n).is_file()), None)
    if path is None:
        raise DuetfairError(f"HAM10000 folder '{root}' has no metadata file; looked for {list(names)}")
    meta = read_table(path)
    for col in ("lesion_id", "image_id"):
        require(
            col in meta.columns,
            f"HAM10000 metadata '{path}': column '{col}' is missing; columns are {list(meta.columns)}",
        )
    meta = meta[meta["image_id"].map(lambda v: not is_missing(v))].copy()
    meta.insert(0, "case_id", meta["image_id"].astype(str).str.strip())
    dup = meta["case_id"][meta["case_id"].duplicated()].tolist()
    require(not dup, f"HAM10000 metadata '{path}': image_id {dup[:3]} appears more than once")
    for col in ("sex", "localization"):
        if col in meta.columns:
            meta[col] = meta[col].map(lambda v: None if is_missing(v) else str(v).strip().lower())
    return meta.reset_index(drop=True)


def _find_dir(root: Path, name: str) -> Path | None:
    """``root/name`` matched case-insensitively; ``root/name/name`` when unzipped into itself."""
    entries = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    found = entries.get(name.lower())
    if found is not None:
        inner = {p.name.lower(): p for p in found.iterdir() if p.is_dir()}.get(name.lower())
        return inner if inner is not None else found
    return None


def _attach_files(
    meta: pd.DataFrame, root: Path, images_dirs: Sequence[str] | str | None, masks_dir: str | None
) -> tuple[pd.DataFrame, str]:
    """Add ``image`` and ``label`` paths; also return a note naming the image folders searched."""
    wanted = [images_dirs] if isinstance(images_dirs, str) else list(images_dirs or IMAGE_DIRS)
    folders = [d for d in (_find_dir(root, n) for n in wanted) if d is not None]
    require(
        bool(folders),
        f"HAM10000 folder '{root}' has none of the image folders {wanted} (unzip "
        f"HAM10000_images_part_1.zip and HAM10000_images_part_2.zip into folders of those names)",
    )
    mask_names = [masks_dir] if masks_dir else list(MASK_DIRS)
    masks = next((d for d in (_find_dir(root, n) for n in mask_names) if d is not None), None)
    if masks is None:
        raise DuetfairError(
            f"HAM10000 folder '{root}' has no mask folder {mask_names} "
            f"(unzip HAM10000_segmentations_lesion_tschandl.zip)"
        )
    index: dict[str, Path] = {}
    for folder in reversed(folders):  # the first folder wins for an image found twice
        index.update({p.name.lower(): p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg")})
    masks_index = {p.name.lower(): p for p in masks.glob("*.png")}
    meta = meta.copy()
    meta["image"] = [str(index.get(f"{i.lower()}.jpg", folders[0] / f"{i}.jpg")) for i in meta["case_id"]]
    meta["label"] = [
        str(masks_index.get(f"{i.lower()}_segmentation.png", masks / f"{i}_segmentation.png")) for i in meta["case_id"]
    ]
    found = [str(f.relative_to(root)) for f in folders]
    absent = [n for n in wanted if _find_dir(root, n) is None]
    return meta, f"image folders searched: {found}" + (f"; not present: {absent}" if absent else "")


# ---- splits ----------------------------------------------------------------------------------


def _assign_split(
    meta: pd.DataFrame,
    root: Path,
    spec: GroupSpec,
    split: str,
    split_dir: str | None,
    split_files: Mapping[str, str] | None,
    split_file: str | None,
    fractions: Sequence[float],
    val_fraction: float,
    seed: int,
) -> tuple[pd.Series, str]:
    """Split per row (``None`` = in no split file, left out) and the name of its source."""
    require(split in SPLIT_CHOICES, f"split must be one of {list(SPLIT_CHOICES)}, got '{split}'")
    if split_file is not None:
        return _split_from_table(meta, Path(split_file)), "file"
    source, files = _split_source(root, split, split_dir, split_files)
    if not files:
        return assign_group_splits(meta, spec, fractions=fractions, group_by="lesion_id", seed=seed), "lesion"
    assignment = _read_split_files(files, meta)
    out = meta["case_id"].map(assignment)
    left_out = int(out.isna().sum())
    if left_out:
        log.info(
            "HAM10000: %d of %d metadata images are in no split file and are left out (MEDFAIR drops images "
            "with missing age or sex)",
            left_out,
            len(meta),
        )
    if "val" not in files and val_fraction > 0:
        train = out == "train"
        out[train] = assign_group_splits(
            meta[train], spec, fractions=(1 - val_fraction, val_fraction, 0.0), group_by="lesion_id", seed=seed
        )
    log.info(
        "HAM10000: %s split from %s: %s", source, sorted(str(f) for f in files.values()), out.value_counts().to_dict()
    )
    return out, source


def _split_source(
    root: Path, split: str, split_dir: str | None, split_files: Mapping[str, str] | None
) -> tuple[str, dict[str, Path]]:
    """``(source name, {split: file})``; no files for the lesion split."""
    if split_files:
        bad = sorted(set(split_files) - set(SPLITS))
        require(not bad, f"split_files keys {bad} are not among {list(SPLITS)}")
        return "files", {s: Path(f) for s, f in split_files.items()}
    folder = Path(split_dir) if split_dir else root / "split"
    found = {name: _paper_files(folder, name) for name in PAPER_SPLITS}
    if split == "auto":
        present = [name for name, files in found.items() if files]
        require(
            len(present) < 2,
            f"HAM10000: '{folder}' holds both MEDFAIR (new_*.csv) and dMoE (train.csv, "
            f"test.csv) split files; pass split='medfair' or split='dmoe'",
        )
        split = present[0] if present else "lesion"
    if split == "lesion":
        return "lesion", {}
    need = [f for s, f in PAPER_SPLITS[split].items() if s not in OPTIONAL_SPLIT_FILES.get(split, ())]
    require(bool(found[split]), f"HAM10000: split='{split}' needs {need} in '{folder}'")
    return split, found[split]


def _paper_files(folder: Path, name: str) -> dict[str, Path]:
    """The split files of one paper in ``folder`` (empty unless all required ones exist)."""
    files = {s: folder / f for s, f in PAPER_SPLITS[name].items() if (folder / f).is_file()}
    required = set(PAPER_SPLITS[name]) - set(OPTIONAL_SPLIT_FILES.get(name, ()))
    return files if required <= set(files) else {}


def _read_split_files(files: Mapping[str, Path], meta: pd.DataFrame) -> dict[str, str]:
    """image_id -> split from one ``image_id`` CSV per split (extra columns ignored)."""
    known = set(meta["case_id"])
    out: dict[str, str] = {}
    for split, path in files.items():
        table = read_table(Path(path))
        require(
            "image_id" in table.columns,
            f"split file '{path}': column 'image_id' is missing; columns are {list(table.columns)}",
        )
        ids = [str(v).strip() for v in table["image_id"] if not is_missing(v)]
        unknown = [i for i in ids if i not in known]
        require(not unknown, f"split file '{path}': {len(unknown)} images ({unknown[:3]}) are not in the metadata")
        twice = [i for i in ids if i in out and out[i] != split]
        require(not twice, f"split file '{path}': images {twice[:3]} are in more than one split")
        out.update({i: split for i in ids})
    return out


def _split_from_table(meta: pd.DataFrame, path: Path) -> pd.Series:
    """Split per row from one CSV with ``image_id`` and ``split`` columns (every image listed)."""
    table = read_table(path)
    require({"image_id", "split"} <= set(table.columns), f"split file '{path}' needs columns image_id, split")
    out = meta["case_id"].map(dict(zip(table["image_id"].astype(str), table["split"].astype(str))))
    missing = meta.loc[out.isna(), "case_id"].tolist()
    require(not missing, f"split file '{path}' has no split for images {missing[:5]}")
    bad = sorted(set(out) - set(SPLITS))
    require(not bad, f"split file '{path}': column 'split' holds {bad}; expected {list(SPLITS)}")
    return out
