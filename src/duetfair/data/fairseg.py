"""Harvard-FairSeg loader: a folder of ``data_00001.npz`` ... ``data_10000.npz`` (2D SLO fundus, optic disc and cup).

Keys of the public release: ``slo_fundus`` (image), ``disc_cup_mask`` (0 background, -1 rim,
-2 cup), ``age``, ``gender``, ``race``, ``ethnicity``, ``language``, ``maritalstatus``; older copies
use ``fundus_slo``, ``disc_cup`` and ``hispanic`` - both spellings are accepted. The mask becomes
classes 0 background / 1 rim / 2 cup; ages in days (> 150) become years. Attribute codes are
decoded to names in ``meta`` (-1 / missing -> unknown).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.data.dataset import CaseDataset, drop_bad_cases
from duetfair.data.groups import FAIRSEG_AGE_EDGES, FAIRSEG_AGE_LABELS, AttributeSpec, GroupSpec
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import DuetfairError, require

IMAGE_KEYS = ("slo_fundus", "fundus_slo")
MASK_KEYS = ("disc_cup_mask", "disc_cup")
LABEL_MAP = {0: 0, -1: 1, -2: 2}
CODES: dict[str, tuple[tuple[str, ...], dict[int, str]]] = {
    # attribute: (npz keys, code -> name)
    "race": (("race",), {0: "Asian", 1: "Black", 2: "White"}),
    "gender": (("gender", "male"), {0: "Female", 1: "Male"}),
    "ethnicity": (("ethnicity", "hispanic"), {0: "Non-Hispanic", 1: "Hispanic"}),
    "language": (("language",), {0: "English", 1: "Spanish", 2: "Other"}),
    "maritalstatus": (("maritalstatus", "marital_status"),
                      {0: "Married or Partnered", 1: "Single", 2: "Divorced", 3: "Widowed", 4: "Legally Separated"}),
}
ATTRIBUTES = ("race", "age", "gender", "ethnicity", "language", "maritalstatus")
_SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test", "testing")}


def fairseg_spec(attributes: Sequence[str] = ATTRIBUTES) -> GroupSpec:
    """Group spec of Harvard-FairSeg (age: < 60 / >= 60 years)."""
    specs = {a: AttributeSpec(a, list(m.values())) for a, (_, m) in CODES.items()}
    specs["age"] = AttributeSpec("age", list(FAIRSEG_AGE_LABELS), edges=list(FAIRSEG_AGE_EDGES))
    for a in attributes:
        require(a in specs, f"unknown FairSeg attribute '{a}'; expected some of {list(ATTRIBUTES)}")
    return GroupSpec([specs[a] for a in attributes])


def _first_key(data: Any, keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in data.files), None)


def read_npz_meta(path: Path) -> dict[str, Any]:
    """Attributes of one npz file (decoded names, age in years); a clear error if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            require(_first_key(data, IMAGE_KEYS) is not None and _first_key(data, MASK_KEYS) is not None,
                    f"FairSeg file '{path}' lacks image/mask keys {IMAGE_KEYS} / {MASK_KEYS}; has {data.files}")
            row: dict[str, Any] = {}
            for attr, (keys, names) in CODES.items():
                k = _first_key(data, keys)
                v = data[k].item() if k is not None else None
                row[attr] = names.get(int(v)) if v is not None and np.isfinite(float(v)) else None
            k = _first_key(data, ("age",))
            age = float(data[k].item()) if k is not None else float("nan")
            row["age"] = age / 365.25 if age > 150 else age
    except DuetfairError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt archive
        raise DuetfairError(f"FairSeg file '{path}' cannot be read: {' '.join(str(exc).split())[:200]}") from exc
    return row


def _split_of_files(root: Path, split_files: Mapping[str, str] | None) -> dict[str, list[Path]]:
    """Files per split from split folders or split lists; ``{"": files}`` when there is no split."""
    if split_files:
        out: dict[str, list[Path]] = {}
        for split, lst in split_files.items():
            require(split in SPLITS, f"split_files key '{split}' is not one of {list(SPLITS)}")
            p = Path(lst)
            require(p.is_file(), f"split list '{p}' does not exist")
            names = [ln.split(",")[0].strip() for ln in p.read_text().splitlines() if ln.strip()]
            names = [n for n in names if n.lower().endswith(".npz")]
            out[split] = [_find(root, n, p) for n in names]
        return out
    subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir()}
    found = {s: subdirs[n] for s, names in _SPLIT_DIRS.items() for n in names if n in subdirs}
    if found:
        return {s: sorted(d.rglob("data_*.npz")) for s, d in found.items()}
    return {"": sorted(root.rglob("data_*.npz"))}


def _find(root: Path, name: str, listing: Path) -> Path:
    direct = root / name
    if direct.is_file():
        return direct
    hits = list(root.rglob(Path(name).name))
    require(len(hits) == 1, f"split list '{listing}': file '{name}' {'not found' if not hits else 'is ambiguous'} under {root}")
    return hits[0]


def fairseg_datasets(root: str | os.PathLike[str], *, attributes: Sequence[str] = ("race",),
                     split_files: Mapping[str, str] | None = None, crop_size: int | None = 512,
                     image_size: int | None = 224, channels: int | None = 3, normalize: Normalize = "auto",
                     fractions: Sequence[float] = (0.8, 0.1, 0.1), val_fraction: float = 0.1, seed: int = 0,
                     on_error: str = "raise", cache: bool = False) -> dict[str, CaseDataset]:
    """Harvard-FairSeg datasets keyed by split.

    Args:
        root: folder of ``data_*.npz`` (searched recursively); sub-folders named train/training,
            val/validation, test/testing give the split.
        attributes: attributes of the group spec (default ``("race",)``; all: ``race, age, gender,
            ethnicity, language, maritalstatus``).
        split_files: ``{split: list file}`` (one npz name per line) instead of folders.
        crop_size / image_size / channels: the papers' protocol (centre crop 512, resize 224,
            grayscale repeated to 3 channels); ``None`` keeps.
        normalize: intensity normalisation (default ``"auto"``: uint8 -> [0, 1]).
        fractions: train/val/test fractions without any split (default 0.8/0.1/0.1).
        val_fraction: share of train moved to val when only train/test exist (default 0.1; the
            official release has no validation split).
        seed: split seed. on_error: ``"raise"`` or ``"skip"`` (report in ``.skipped``).
    """
    root = Path(root)
    require(root.is_dir(), f"FairSeg folder '{root}' does not exist")
    spec = fairseg_spec(attributes)
    by_split = _split_of_files(root, split_files)
    rows = []
    for split, files in by_split.items():
        for f in files:
            rows.append({"case_id": f.stem, "file": str(f), "split": split or None, **read_npz_meta(f)})
    require(rows, f"FairSeg folder '{root}' has no data_*.npz files")
    meta = pd.DataFrame(rows)
    dup = meta["case_id"][meta["case_id"].duplicated()].tolist()
    require(not dup, f"FairSeg folder '{root}': file names {dup[:3]} appear more than once")
    meta = _fill_splits(meta, spec, fractions, val_fraction, seed)
    reader = CaseReader(num_classes=3, spatial_dims=2, label_map=LABEL_MAP, normalize=normalize,
                        image_size=image_size, crop_size=crop_size, channels=channels)
    out: dict[str, CaseDataset] = {}
    for split in SPLITS:
        part = meta[meta["split"] == split].reset_index(drop=True)
        if len(part):
            files, ids = part["file"].tolist(), part["case_id"].tolist()
            ds = CaseDataset(part, spec, lambda i, f=files, c=ids: _read_case(reader, Path(f[i]), c[i]),
                             num_classes=3, in_channels=channels or 1, spatial_dims=2, cache=cache)
            out[split] = drop_bad_cases(ds, on_error=on_error)
    return out


def _fill_splits(meta: pd.DataFrame, spec: GroupSpec, fractions: Sequence[float], val_fraction: float,
                 seed: int) -> pd.DataFrame:
    meta = meta.copy()
    if meta["split"].isna().all():
        meta["split"] = assign_group_splits(meta, spec, fractions=fractions, seed=seed)
    elif "val" not in set(meta["split"]) and val_fraction > 0:
        tr = meta["split"] == "train"
        meta.loc[tr, "split"] = assign_group_splits(meta[tr], spec, fractions=(1 - val_fraction, val_fraction, 0.0),
                                                    seed=seed)
    return meta


def _read_case(reader: CaseReader, path: Path, case_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as data:
            image = np.asarray(data[_first_key(data, IMAGE_KEYS)])
            mask = np.asarray(data[_first_key(data, MASK_KEYS)])
    except Exception as exc:  # noqa: BLE001
        raise DuetfairError(f"case '{case_id}': cannot read FairSeg file '{path}': "
                            f"{' '.join(str(exc).split())[:200]}") from exc
    img = torch.as_tensor(image)
    img = img[None] if img.ndim == 2 else img.permute(2, 0, 1) if img.ndim == 3 and img.shape[-1] in (1, 3) else img
    lab = torch.as_tensor(mask.astype(np.int64))[None]
    if lab.ndim != 3:
        raise DuetfairError(f"case '{case_id}': mask in '{path}' has shape {mask.shape}; expected 2-D")
    return reader.process(img, lab, str(path), str(path), case_id)
