"""Harvard-FairSeg loader: ``data_00001.npz`` ... ``data_10000.npz`` (2D SLO fundus, optic disc and cup).

Three spellings of the npz keys exist (Harvard-Ophthalmology-AI-Lab/FairSeg: ``README.md`` and its
history, ``SAMed/datasets/dataset_fairseg.py``, ``TransUNet/datasets/dataset_fairseg.py``); all
are read:

* current release (README since 2024-02-07): ``slo_fundus``, ``disc_cup_mask``, ``ethnicity``,
  ``maritalstatus``; race 0 Asian, 1 Black, 2 White;
* first public README (2024-02-04): ``fundus_slo``, ``disc_cup_borders``, ``ethnicity``,
  ``marriagestatus``; race 0 / 1 / 2 as above;
* internal copy read by the official training code: ``fundus_slo``, ``disc_cup``, ``hispanic``,
  ``maritalstatus``; race 2 Asian, 3 Black, 7 White in the SAMed loader (``{2: 0, 3: 1, 7: 2}``),
  0 / 1 / 2 in the TransUNet one.

Internal-key files (mask ``disc_cup`` or key ``hispanic``) are decoded with the coding their race
values prove (3 or 7: internal; 0 or 1: public). Code 2 alone is ambiguous (Asian or White) and is
refused unless ``race_coding`` names the coding. Other codes, every version: ``gender`` (or
``male``) 0 Female / 1 Male; ethnicity 0 Non-Hispanic / 1 Hispanic; ``language`` 0 English /
1 Spanish / 2 Other; marital status 0 Married or Partnered / 1 Single / 2 Divorced / 3 Widowed /
4 Legally Separated; -1 or a missing key is unknown, any other code is an error. ``age`` in days
(values > 150) becomes years by / 365, as the official loaders divide.

Mask: 0 background, -1 rim (disc outside the cup), -2 cup -> classes 0 / 1 / 2 (disc = rim + cup);
values 1 / 2 pass through as rim / cup, as in the official loaders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.data.dataset import CaseDataset, ReadFn, drop_bad_cases
from duetfair.data.groups import FAIRSEG_AGE_EDGES, FAIRSEG_AGE_LABELS, AttributeSpec, GroupSpec
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import DuetfairError, require

IMAGE_KEYS = ("slo_fundus", "fundus_slo")
MASK_KEYS = ("disc_cup_mask", "disc_cup_borders", "disc_cup")
INTERNAL_MARKERS = ("disc_cup", "hispanic")
"""Keys found only in the internal copy read by the official training code."""
LABEL_MAP = {0: 0, -1: 1, -2: 2}
RACE_NAMES = ("Asian", "Black", "White")
RACE_CODINGS: dict[str, dict[int, str]] = {
    "public": {0: "Asian", 1: "Black", 2: "White"},
    "internal": {2: "Asian", 3: "Black", 7: "White"},
}
CODES: dict[str, tuple[tuple[str, ...], dict[int, str]]] = {
    # attribute: (npz keys, code -> name); -1 = unknown
    "gender": (("gender", "male"), {0: "Female", 1: "Male"}),
    "ethnicity": (("ethnicity", "hispanic"), {0: "Non-Hispanic", 1: "Hispanic"}),
    "language": (("language",), {0: "English", 1: "Spanish", 2: "Other"}),
    "maritalstatus": (
        ("maritalstatus", "marriagestatus"),
        {0: "Married or Partnered", 1: "Single", 2: "Divorced", 3: "Widowed", 4: "Legally Separated"},
    ),
}
ATTRIBUTES = ("race", "age", "gender", "ethnicity", "language", "maritalstatus")
DAYS_PER_YEAR = 365.0
SPLIT_LIST_NAMES = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}
_SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test", "testing")}


def fairseg_spec(attributes: Sequence[str] = ATTRIBUTES) -> GroupSpec:
    """Group spec of Harvard-FairSeg (age: < 60 / >= 60 years)."""
    specs = {a: AttributeSpec(a, list(m.values())) for a, (_, m) in CODES.items()}
    specs["race"] = AttributeSpec("race", list(RACE_NAMES))
    specs["age"] = AttributeSpec("age", list(FAIRSEG_AGE_LABELS), edges=list(FAIRSEG_AGE_EDGES))
    for a in attributes:
        require(a in specs, f"unknown FairSeg attribute '{a}'; expected some of {list(ATTRIBUTES)}")
    return GroupSpec([specs[a] for a in attributes])


# -- files and splits ------------------------------------------------------------------------------


def index_files(root: Path) -> dict[str, Path]:
    """One walk of ``root``: file name -> path of every ``data_*.npz`` (each name at most once)."""
    index: dict[str, Path] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if not (name.startswith("data_") and name.endswith(".npz")):
                continue
            path = Path(folder) / name
            if name in index:
                raise DuetfairError(
                    f"FairSeg folder '{root}': '{name}' is both '{index[name]}' and '{path}'; "
                    f"expected each data_*.npz once"
                )
            index[name] = path
    return index


def _list_paths(split_files: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str]) -> dict[str, Path]:
    """``{split: list file}`` from a mapping or from a folder of ``train.txt`` / ``val.txt`` / ``test.txt``."""
    if isinstance(split_files, Mapping):
        for split in split_files:
            require(split in SPLITS, f"split_files key '{split}' is not one of {list(SPLITS)}")
        return {s: Path(p) for s, p in split_files.items()}
    folder = Path(split_files)
    require(
        folder.is_dir(), f"split list folder '{folder}' does not exist; expected the folder of train.txt / test.txt"
    )
    found = {s: folder / n for s, n in SPLIT_LIST_NAMES.items() if (folder / n).is_file()}
    require(bool(found), f"split list folder '{folder}' has none of {list(SPLIT_LIST_NAMES.values())}")
    return found


def read_split_list(path: Path) -> list[str]:
    """File names of one split list: one name per line (the official ``train.txt`` / ``test.txt``);
    blank lines and ``#`` comments are skipped, a CSV keeps its first column, a header line is allowed."""
    require(path.is_file(), f"split list '{path}' does not exist")
    names: list[str] = []
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        name = line.split(",")[0].strip()
        if not name or name.startswith("#"):
            continue
        if not name.lower().endswith(".npz"):
            require(not names, f"split list '{path}' line {no}: '{name[:60]}' is not an .npz file name")
            continue  # header
        names.append(Path(name.replace("\\", "/")).name)
    require(bool(names), f"split list '{path}' names no .npz file")
    dup = pd.Index(names)[pd.Index(names).duplicated()]
    if len(dup):
        raise DuetfairError(f"split list '{path}' names '{dup[0]}' more than once")
    return names


def _resolve_lists(root: Path, index: Mapping[str, Path], lists: Mapping[str, Path]) -> dict[str, list[Path]]:
    """Paths of the listed names (dictionary look-ups in ``index``); lists must be disjoint."""
    out: dict[str, list[Path]] = {}
    owner: dict[str, str] = {}
    for split, lst in lists.items():
        names = read_split_list(lst)
        missing = [n for n in names if n not in index]
        if missing:
            raise DuetfairError(
                f"split list '{lst}': {len(missing)} of {len(names)} files not found under "
                f"'{root}' (first: {', '.join(missing[:3])})"
            )
        both = [n for n in names if n in owner]
        if both:
            raise DuetfairError(
                f"split list '{lst}': '{both[0]}' is also in the {owner[both[0]]} list; expected disjoint splits"
            )
        owner.update({n: split for n in names})
        out[split] = [index[n] for n in names]
    return out


def _split_of_folder(root: Path, path: Path) -> str | None:
    top = path.relative_to(root).parts[0].lower()
    return next((s for s, names in _SPLIT_DIRS.items() if top in names), None)


def _resolve_folders(root: Path, index: Mapping[str, Path]) -> dict[str, list[Path]]:
    """Files per split folder (Training / Test ...); ``{"": files}`` when no split folder is used."""
    split = {n: _split_of_folder(root, p) for n, p in index.items()}
    outside = sorted(n for n, s in split.items() if s is None)
    if len(outside) == len(split):
        return {"": [index[n] for n in sorted(index)]}
    if outside:
        raise DuetfairError(
            f"FairSeg folder '{root}': {len(outside)} files (e.g. '{index[outside[0]]}') lie outside "
            f"the split folders; expected all or none under Training/Test folders"
        )
    out: dict[str, list[Path]] = {}
    for n in sorted(index):
        out.setdefault(split[n] or "", []).append(index[n])
    return out


def files_by_split(
    root: Path, split_files: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None
) -> dict[str, list[Path]]:
    """Files per split from split lists (resolved through one index of ``root``) or split folders."""
    index = index_files(root)
    require(bool(index), f"FairSeg folder '{root}' has no data_*.npz files")
    if split_files:
        return _resolve_lists(root, index, _list_paths(split_files))
    return _resolve_folders(root, index)


# -- attributes ------------------------------------------------------------------------------------


def _first_key(files: Sequence[str], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in files), None)


def _code(data: Any, key: str | None, path: Path) -> int | None:
    """Integer code of a scalar key; ``None`` when the key is absent or NaN."""
    if key is None:
        return None
    arr = np.asarray(data[key])
    require(arr.size == 1, f"FairSeg file '{path}': key '{key}' has shape {arr.shape}; expected a scalar code")
    try:
        value = float(arr.reshape(-1)[0])
    except (TypeError, ValueError):
        raise DuetfairError(
            f"FairSeg file '{path}': key '{key}' holds {arr.reshape(-1)[0]!r}; expected a number code"
        ) from None
    if not np.isfinite(value):
        return None
    require(value == int(value), f"FairSeg file '{path}': key '{key}' holds {value}; expected an integer code")
    return int(value)


def read_npz_raw(path: Path) -> dict[str, Any]:
    """Raw attribute codes of one file, its key version (``internal`` or not) and age in years."""
    try:
        with np.load(path, allow_pickle=False) as data:
            files = data.files
            image, mask = _first_key(files, IMAGE_KEYS), _first_key(files, MASK_KEYS)
            require(
                image is not None and mask is not None,
                f"FairSeg file '{path}' lacks image/mask keys {IMAGE_KEYS} / {MASK_KEYS}; has {files}",
            )
            row: dict[str, Any] = {
                "internal": any(k in files for k in INTERNAL_MARKERS),
                "race": _code(data, _first_key(files, ("race",)), path),
            }
            for attr, (keys, _) in CODES.items():
                row[attr] = _code(data, _first_key(files, keys), path)
            age = np.asarray(data["age"]).reshape(-1) if "age" in files else np.array([np.nan])
            row["age"] = _years(float(age[0]) if age.size == 1 else np.nan)
    except DuetfairError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt archive
        raise DuetfairError(f"FairSeg file '{path}' cannot be read: {' '.join(str(exc).split())[:200]}") from exc
    return row


def _years(age: float) -> float:
    return age / DAYS_PER_YEAR if age > 150 else age


def _infer_internal_coding(codes: set[int], root: Path) -> str:
    """Race coding of internal-key files, from the codes they hold."""
    seen = codes - {-1}
    internal, public = seen & {3, 7}, seen & {0, 1}
    require(
        not (internal and public),
        f"FairSeg folder '{root}': internal-key files mix race codes {sorted(seen)}; "
        f"expected either 2/3/7 (internal) or 0/1/2 (public)",
    )
    if internal or public:
        return "internal" if internal else "public"
    require(
        not seen,
        f"FairSeg folder '{root}': internal-key files (disc_cup / hispanic) only hold race code 2, "
        f"Asian under the internal coding 2/3/7 but White under 0/1/2; "
        f"pass race_coding='internal' or 'public'",
    )
    return "public"


def _decode(raw: pd.DataFrame, root: Path, race_coding: str) -> pd.DataFrame:
    """Attribute codes -> names (``None`` = unknown); unknown codes raise naming file, key and value."""
    require(
        race_coding in ("auto", "public", "internal"),
        f"race_coding='{race_coding}'; expected 'auto', 'public' or 'internal'",
    )
    coding = pd.Series("public", index=raw.index)
    if race_coding != "auto":
        coding[:] = race_coding
    elif raw["internal"].any():
        internal_codes = set(raw.loc[raw["internal"], "race"].dropna().astype(int))
        coding[raw["internal"]] = _infer_internal_coding(internal_codes, root)
    out = raw.copy()
    out["race"] = [
        _name(c, RACE_CODINGS[k], f, f"race ({k} coding)") for c, k, f in zip(raw["race"], coding, raw["file"])
    ]
    for attr, (keys, names) in CODES.items():
        out[attr] = [_name(c, names, f, "/".join(keys)) for c, f in zip(raw[attr], raw["file"])]
    return out.drop(columns=["internal"])


def _name(code: Any, names: Mapping[int, str], file: str, key: str) -> str | None:
    """Name of one code; -1 or missing -> ``None`` (unknown)."""
    if code is None or pd.isna(code) or int(code) == -1:
        return None
    if int(code) not in names:
        raise DuetfairError(
            f"FairSeg file '{file}': key {key} holds code {int(code)}; expected one of {sorted(names)} or -1 (unknown)"
        )
    return names[int(code)]


# -- datasets --------------------------------------------------------------------------------------


def _case_reader(reader: CaseReader, files: Sequence[str], ids: Sequence[str]) -> ReadFn:
    """``i -> _read_case(reader, files[i], ids[i])``: a dataset's read function over the case files."""
    return lambda i: _read_case(reader, Path(files[i]), ids[i])


def fairseg_datasets(
    root: str | os.PathLike[str],
    *,
    attributes: Sequence[str] = ("race",),
    split_files: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
    race_coding: str = "auto",
    crop_size: int | None = 512,
    image_size: int | None = 224,
    channels: int | None = 3,
    normalize: Normalize = "auto",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    val_fraction: float = 0.1,
    seed: int = 0,
    on_error: str = "raise",
    cache: bool = False,
) -> dict[str, CaseDataset]:
    """Harvard-FairSeg datasets keyed by split.

    Args:
        root: the dataset folder as downloaded (searched recursively, once, for ``data_*.npz``).
        attributes: attributes of the group spec (default ``("race",)``; all: ``race, age, gender,
            ethnicity, language, maritalstatus``).
        split_files: the official split: the folder holding ``train.txt`` / ``test.txt`` (FairSeg
            ``TransUNet/lists/FairSeg_final``; ``val.txt`` is used if present) or ``{split: list
            file}``. Without it, sub-folders named train/training, val/validation, test/testing give
            the split, else ``fractions``.
        race_coding: ``"auto"`` (default; see the module docstring), ``"public"`` (0/1/2) or
            ``"internal"`` (2/3/7) for every file.
        crop_size / image_size / channels: the papers' protocol (centre crop 512, resize 224,
            grayscale repeated to 3 channels); ``None`` keeps.
        normalize: intensity normalisation (default ``"auto"``: uint8 -> [0, 1], as the official
            ``/ 255``).
        fractions: train/val/test fractions without any split (default 0.8/0.1/0.1).
        val_fraction: share of train moved to val when only train/test exist (default 0.1; the
            official split has no validation set).
        seed: split seed.
        on_error: ``"raise"`` or ``"skip"`` (report in ``.skipped``).
    """
    root = Path(root)
    require(root.is_dir(), f"FairSeg folder '{root}' does not exist")
    spec = fairseg_spec(attributes)
    rows = [
        {"case_id": f.stem, "file": str(f), "split": split or None, **read_npz_raw(f)}
        for split, files in files_by_split(root, split_files).items()
        for f in files
    ]
    meta = _decode(pd.DataFrame(rows), root, race_coding)
    meta = _fill_splits(meta, spec, fractions, val_fraction, seed)
    reader = CaseReader(
        num_classes=3,
        spatial_dims=2,
        label_map=LABEL_MAP,
        normalize=normalize,
        image_size=image_size,
        crop_size=crop_size,
        channels=channels,
    )
    out: dict[str, CaseDataset] = {}
    for split in SPLITS:
        part = meta[meta["split"] == split].reset_index(drop=True)
        if len(part):
            files, ids = part["file"].tolist(), part["case_id"].tolist()
            ds = CaseDataset(
                part,
                spec,
                _case_reader(reader, files, ids),
                num_classes=3,
                in_channels=channels or 1,
                spatial_dims=2,
                cache=cache,
                channel_source="repeat" if (channels or 1) > 1 else "native",
            )
            out[split] = drop_bad_cases(ds, on_error=on_error)
    return out


def _fill_splits(
    meta: pd.DataFrame, spec: GroupSpec, fractions: Sequence[float], val_fraction: float, seed: int
) -> pd.DataFrame:
    meta = meta.copy()
    if meta["split"].isna().all():
        meta["split"] = assign_group_splits(meta, spec, fractions=fractions, seed=seed)
    elif "val" not in set(meta["split"]) and val_fraction > 0:
        tr = meta["split"] == "train"
        meta.loc[tr, "split"] = assign_group_splits(
            meta[tr], spec, fractions=(1 - val_fraction, val_fraction, 0.0), seed=seed
        )
    return meta


def _read_case(reader: CaseReader, path: Path, case_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as data:
            image = np.asarray(data[_first_key(data.files, IMAGE_KEYS)])
            mask = np.asarray(data[_first_key(data.files, MASK_KEYS)])
    except Exception as exc:  # noqa: BLE001
        raise DuetfairError(
            f"case '{case_id}': cannot read FairSeg file '{path}': {' '.join(str(exc).split())[:200]}"
        ) from exc
    img = torch.as_tensor(image)
    img = img[None] if img.ndim == 2 else img.permute(2, 0, 1) if img.ndim == 3 and img.shape[-1] in (1, 3) else img
    if mask.ndim != 2:
        raise DuetfairError(f"case '{case_id}': mask in '{path}' has shape {mask.shape}; expected 2-D")
    lab = torch.as_tensor(mask if mask.dtype.kind == "f" else mask.astype(np.int64))[None]
    return reader.process(img, lab, str(path), str(path), case_id)
