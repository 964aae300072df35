"""Generic CSV manifest: the path for a user's own 2D or 3D data.

Columns: ``image`` (one path, or several joined with ``;`` stacked as channels, e.g. MRI phases),
``label``, ``case_id`` (other names via ``columns``, e.g. ``{"label": "mask"}``), attribute columns,
optional ``split`` (train/val/test), an optional analysis-only hidden column (``hidden_subtype``, or
the one named by ``hidden_column``) and any other columns (kept in ``meta``). Paths are relative to
the manifest's folder and refused if absolute or escaping it. Files: PNG/JPG/NPY/NPZ (2D) and NIfTI
(3D), read through MONAI ``LoadImaged``. :func:`detect_columns` finds the three roles in a table
whose columns are named otherwise (``duetfair init-config``).

An optional ``<manifest>.json`` beside the CSV (written by ``duetfair synth``) may give
``num_classes``, ``spatial_dims`` and ``group_spec``; explicit arguments win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from duetfair.data.dataset import CaseDataset, ChannelSource, drop_bad_cases
from duetfair.data.groups import GroupSpec, HiddenColumn, is_missing
from duetfair.data.splits import SPLITS, assign_group_splits
from duetfair.data.transforms import CaseReader, Normalize
from duetfair.errors import DuetfairError, require
from duetfair.io import read_json, read_table, resolve_inside
from duetfair.options import OnError, parse

SUFFIXES_2D = (".png", ".jpg", ".jpeg", ".npy", ".npz", ".bmp", ".tif", ".tiff")
SUFFIXES_3D = (".nii", ".nii.gz", ".mha", ".nrrd")
RESERVED = ("image", "label", "case_id", "split")
#: names (case-insensitive) of each role's column, in order of preference (:func:`detect_columns`)
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "image": ("image", "image_path", "image_file", "images", "img", "img_path", "scan", "path", "file", "filename"),
    "label": (
        "label",
        "label_path",
        "label_file",
        "labels",
        "mask",
        "mask_path",
        "seg",
        "segmentation",
        "gt",
        "ground_truth",
    ),
    "case_id": ("case_id", "case", "id", "case_name", "image_id", "subject_id", "subject", "patient_id", "name"),
}


def spatial_dims_of(path: str) -> int:
    """2 or 3 from a file suffix (``;``-joined lists: the first path)."""
    first = path.split(";")[0].strip().lower()
    if first.endswith(SUFFIXES_3D):
        return 3
    if first.endswith(SUFFIXES_2D):
        return 2
    raise DuetfairError(f"file '{first}' has an unsupported type; expected one of {list(SUFFIXES_2D + SUFFIXES_3D)}")


def manifest_datasets(
    path: str | os.PathLike[str],
    *,
    attributes: Sequence[str] | None = None,
    group_spec: GroupSpec | Mapping[str, Any] | None = None,
    bins: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    label_map: Mapping[int, int] | None = None,
    image_size: Sequence[int] | int | None = None,
    pixdim: Sequence[float] | None = None,
    normalize: Normalize = "auto",
    channels: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    group_by: str | None = None,
    seed: int = 0,
    on_error: str = "raise",
    cache: bool = False,
    hidden_column: str | HiddenColumn | None = None,
    columns: Mapping[str, str] | None = None,
) -> dict[str, CaseDataset]:
    """Datasets of a CSV manifest, keyed by split.

    Args:
        path: the manifest CSV (or XLSX / Parquet).
        attributes: attribute columns (default: the sidecar's group spec, else every column that
            is not ``image``/``label``/``case_id``/``split``/the hidden column or ``group_by``).
        group_spec: explicit spec (object or ``to_dict()`` mapping); default: sidecar or inferred.
        bins: continuous attributes for an inferred spec, e.g. ``{"age": [60]}``.
        num_classes: classes incl. background (default: sidecar, else max label value + 1 from
            reading every label once).
        label_map: raw label value -> class, e.g. ``{255: 1}`` for 0/255 masks (default none).
        image_size: resize to this spatial size (default: keep; batches need one shape).
        pixdim: resample 3D images to this spacing (default: keep).
        normalize: intensity normalisation (see :class:`~duetfair.data.transforms.CaseReader`).
        channels: repeat single-channel images to this many channels (default: keep).
        fractions: train/val/test fractions when the manifest has no ``split`` (default 0.8/0.1/0.1).
        group_by: patient id column for splitting (no patient in two splits; default none).
        seed: split seed (default 0).
        on_error: ``"raise"`` (default) or ``"skip"``: read every case now, leave out bad ones and
            report them in each dataset's ``.skipped`` table.
        cache: keep read cases in memory (default ``False``).
        hidden_column: analysis-only column of known hard cases, ``"morphology"`` (0/1, yes/no)
            or ``"morphology=irregular"`` (that value is hard); default ``hidden_subtype`` when
            present. Never an attribute or an input; audits report those cases as hidden failures.
        columns: manifest column of a role not named ``image`` / ``label`` / ``case_id``, e.g.
            ``{"image": "t1_path", "label": "mask", "case_id": "patient"}``.
    """
    path = Path(path)
    ids = {n.lower() for n in ROLE_ALIASES["case_id"]} | {str((columns or {}).get("case_id", "")).lower()}
    df = rename_roles(read_table(path, text_columns=lambda cols: [c for c in cols if c.lower() in ids]), columns, path)
    sidecar = _sidecar(path)
    hidden = HiddenColumn.parse(hidden_column)
    if hidden_column is not None:
        hidden.check(df, f"manifest '{path}'")
    for col in ("image", "label", "case_id"):
        require(col in df.columns, f"manifest '{path}': column '{col}' is missing; columns are {list(df.columns)}")
    df = df.copy()
    df["case_id"] = df["case_id"].astype(str)
    dup = df["case_id"][df["case_id"].duplicated()].tolist()
    require(not dup, f"manifest '{path}': duplicate case_id values {dup[:5]}")
    spec = _spec(df, path, sidecar, attributes, group_spec, bins, group_by, hidden.name)
    _report_unknown(spec, df, path)
    root = path.parent
    skipped_rows: list[dict[str, str]] = []
    df["image_path"], df["label_path"], keep = _resolve(df, root, path, on_error, skipped_rows)
    df = df[keep].reset_index(drop=True)
    require(len(df) > 0, f"manifest '{path}': no usable cases")
    dims = int(sidecar.get("spatial_dims") or spatial_dims_of(str(df["image"].iloc[0])))
    if "split" not in df.columns or df["split"].isna().all():
        df["split"] = assign_group_splits(df, spec, fractions=fractions, group_by=group_by, seed=seed)
    else:
        bad = sorted(set(df["split"].dropna().astype(str)) - set(SPLITS))
        require(
            not bad and not df["split"].isna().any(),
            f"manifest '{path}': column 'split' holds {bad or ['missing values']}; expected {list(SPLITS)}",
        )
    if num_classes is None:
        num_classes = sidecar.get("num_classes") or _infer_num_classes(df, dims, label_map)
    reader = CaseReader(
        num_classes=int(num_classes),
        spatial_dims=dims,
        label_map=label_map,
        normalize=normalize,
        image_size=image_size,
        pixdim=pixdim,
        channels=channels,
    )
    in_channels, channel_source = _probe_channels(df, reader, on_error)
    skipped = pd.DataFrame(skipped_rows, columns=["case_id", "file", "reason"])
    out: dict[str, CaseDataset] = {}
    for split in SPLITS:
        part = df[df["split"].astype(str) == split].reset_index(drop=True)
        if len(part) == 0:
            continue
        read = _row_reader(part, reader)
        ds = CaseDataset(
            part,
            spec,
            read,
            num_classes=int(num_classes),
            in_channels=in_channels,
            spatial_dims=dims,
            cache=cache,
            skipped=skipped.copy(),
            hidden=hidden,
            channel_source=channel_source,
        )
        out[split] = drop_bad_cases(ds, on_error=on_error)
    return out


def _probe_channels(df: pd.DataFrame, reader: CaseReader, on_error: str) -> tuple[int, ChannelSource]:
    """Channels of the first readable case and where they come from: ``files`` (several files per
    case), ``repeat`` (one single-channel file repeated to ``channels``) or ``native``."""
    for i in range(len(df)):
        try:
            image_path, case_id = df.at[i, "image_path"], df.at[i, "case_id"]
            image, _ = reader(image_path, df.at[i, "label_path"], case_id)
            if isinstance(image_path, list):
                return int(image.shape[0]), "files"
            raw = int(reader.load(image_path, case_id, "image").shape[0])
            return int(image.shape[0]), "repeat" if raw < int(image.shape[0]) else "native"
        except DuetfairError:
            if on_error == "raise":
                raise
    raise DuetfairError("manifest: no case could be read")


def rename_roles(df: pd.DataFrame, columns: Mapping[str, str] | None, path: Path) -> pd.DataFrame:
    """``df`` with the columns named in ``columns`` (role -> column) renamed to their role."""
    if not columns:
        return df
    for role, col in columns.items():
        require(role in ROLE_ALIASES, f"manifest '{path}': columns: '{role}' is not one of {list(ROLE_ALIASES)}")
        require(
            col in df.columns,
            f"manifest '{path}': column '{col}' (the {role} column) is missing; columns are {list(df.columns)}",
        )
        require(
            col == role or role not in df.columns,
            f"manifest '{path}': columns: {role}={col}, but the manifest also has a column '{role}'",
        )
    return df.rename(columns={col: role for role, col in columns.items()})


def detect_columns(df: pd.DataFrame, path: str | os.PathLike[str]) -> dict[str, str]:
    """Column of each role (``image``, ``label``, ``case_id``): a known name (:data:`ROLE_ALIASES`,
    case-insensitive), else for ``image`` / ``label`` the first columns holding image file names."""
    lower = {str(c).lower(): str(c) for c in df.columns}
    found: dict[str, str] = {}
    for role, names in ROLE_ALIASES.items():
        hit = next((lower[n] for n in names if n in lower and lower[n] not in found.values()), None)
        if hit is not None:
            found[role] = hit
    files = [str(c) for c in df.columns if str(c) not in found.values() and _holds_files(df[c])]
    for role in ("image", "label"):
        if role not in found and files:
            found[role] = files.pop(0)
    for role in ROLE_ALIASES:
        require(
            role in found,
            f"manifest '{path}': no {role} column found; expected a column named like "
            f"{', '.join(ROLE_ALIASES[role][:5])} (columns are {list(map(str, df.columns))})",
        )
    return found


def _holds_files(col: pd.Series) -> bool:
    """True when every known value of ``col`` is a file name with an image suffix."""
    values = [str(v).split(";")[0].strip().lower() for v in col if not is_missing(v)]
    return bool(values) and all(v.endswith(SUFFIXES_2D + SUFFIXES_3D) for v in values)


def _row_reader(part: pd.DataFrame, reader: CaseReader):  # noqa: ANN202 - closure
    images, labels, ids = part["image_path"].tolist(), part["label_path"].tolist(), part["case_id"].tolist()
    return lambda i: reader(images[i], labels[i], ids[i])


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    data = read_json(side, "a manifest sidecar (a JSON object)")
    require(isinstance(data, dict), f"manifest sidecar '{side}' must hold a JSON object")
    return data


def _spec(
    df: pd.DataFrame,
    path: Path,
    sidecar: Mapping[str, Any],
    attributes: Sequence[str] | None,
    group_spec: GroupSpec | Mapping[str, Any] | None,
    bins: Mapping[str, Any] | None,
    group_by: str | None,
    hidden: str,
) -> GroupSpec:
    if group_spec is not None:
        spec = group_spec if isinstance(group_spec, GroupSpec) else GroupSpec.from_dict(group_spec)
    elif "group_spec" in sidecar and not bins:
        spec = GroupSpec.from_dict(sidecar["group_spec"])
    else:
        if attributes is None:
            skip = set(RESERVED) | {hidden, group_by}
            attributes = [c for c in df.columns if c not in skip]
        spec = GroupSpec.infer(df, list(attributes), bins=bins)
    if attributes is not None:
        spec = spec.select(list(attributes))
    for a in spec.attributes:
        require(
            a in df.columns, f"manifest '{path}': attribute column '{a}' is missing; columns are {list(df.columns)}"
        )
    require(
        hidden not in spec.attributes,
        f"manifest '{path}': column '{hidden}' is the analysis-only hidden column and cannot also be an attribute",
    )
    return spec


def _report_unknown(spec: GroupSpec, df: pd.DataFrame, path: Path) -> None:
    """Log how many cases have an unknown attribute (they stay in, coded -1)."""
    import logging

    counts = {a: n for a, n in spec.unknown_counts(df).items() if n}
    if counts:
        unseen = spec.unseen_values(df)
        logging.getLogger("duetfair.data").warning(
            "manifest '%s': cases with unknown attribute values (coded -1): %s; unseen values: %s", path, counts, unseen
        )


def _resolve(
    df: pd.DataFrame, root: Path, path: Path, on_error: str, skipped: list[dict[str, str]]
) -> tuple[list[Any], list[str], list[bool]]:
    """Resolve image/label paths inside ``root``; missing files raise or are skipped."""
    on_error = parse(OnError, on_error, "on_error")
    images: list[Any] = []
    labels: list[str] = []
    keep: list[bool] = []
    for i, row in enumerate(df.itertuples(index=False)):
        what = f"manifest '{path.name}' row {i + 2} (case '{row.case_id}')"
        try:
            require(not is_missing(row.image) and not is_missing(row.label), f"{what}: empty image or label path")
            parts = [s.strip() for s in str(row.image).split(";") if s.strip()]
            imgs = [str(resolve_inside(root, s, what)) for s in parts]
            lab = str(resolve_inside(root, str(row.label).strip(), what))
            for f in [*imgs, lab]:
                require(Path(f).is_file(), f"{what}: file '{f}' does not exist")
        except DuetfairError as exc:
            if on_error == "raise":
                raise
            skipped.append({"case_id": str(row.case_id), "file": str(row.image), "reason": str(exc)})
            images.append(None)
            labels.append("")
            keep.append(False)
            continue
        images.append(imgs[0] if len(imgs) == 1 else imgs)
        labels.append(lab)
        keep.append(True)
    return images, labels, keep


def _infer_num_classes(df: pd.DataFrame, dims: int, label_map: Mapping[int, int] | None) -> int:
    """Number of classes: max label value + 1 over all labels (after ``label_map``), refusing a class
    set with gaps (``0, 1, 7``: a stray value would silently make an 8-class model); the file that
    holds the first value beyond the others is named. Declare ``num_classes`` (or map the value with
    ``label_map``) when the gaps are meant."""
    import numpy as np

    from duetfair.data.transforms import make_loader

    loader = make_loader()
    first_file: dict[int, str] = {}
    for f, cid in zip(df["label_path"], df["case_id"]):
        try:
            arr = np.asarray(loader(f))
        except Exception as exc:  # noqa: BLE001
            raise DuetfairError(
                f"case '{cid}': cannot read label file '{f}': {' '.join(str(exc).split())[:200]}"
            ) from exc
        vals = np.unique(arr)
        if label_map:
            vals = np.array([label_map.get(int(v), int(v)) for v in vals])
        for v in vals.tolist():
            first_file.setdefault(int(v), str(f))
    present = sorted(first_file)
    missing = sorted(set(range(present[-1] + 1)) - set(present)) if present else []
    if missing:
        top = present[-1]
        raise DuetfairError(
            f"label file '{first_file[top]}' holds value {top}, but the labels use "
            f"{present[:-1]} and never {missing[:5]}; expected class ids 0..K-1: fix the file, map "
            f"the value with label_map, or declare num_classes"
        )
    return max(2, (present[-1] + 1) if present else 2)
