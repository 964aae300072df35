"""``duetfair predict``: segment image files with a trained run, masks written with the input's geometry.

2D inputs (PNG/JPG/NPY/NPZ) give PNG class maps (pixel value = class index), 3D NIfTI inputs give
NIfTI class maps with the input's affine and header. Each image is normalised like the training
data (the run's ``data.args.normalize``; otherwise integer 2D images scaled to [0, 1], everything
else z-scored per channel; ``normalize`` to override), resized to the run's training size,
segmented, and the prediction resized back (nearest) to the input's own size.

A case is one input: a file, or several files joined with ``;`` stacked as channels in that order
(MRI phases: ``"pre.nii.gz;post1.nii.gz;post2.nii.gz"``), as in a training manifest. The channels
are given the way the run was trained (``RunRecord.channel_source``): a run trained on one file per
channel needs all of a case's files, and a single-channel file is repeated only for a run trained on
repeated grayscale images. A prediction manifest (:func:`manifest_cases`: an image column and
attribute columns) gives every case its own attributes.

Attributes (``{"race": "Black"}``) are encoded with the run's saved group spec. Without them (or
with missing values) the group is unknown (-1) and attribute-aware models (dMoE) use their
documented attribute-free fallback; the result table says so in ``group_source``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require
from duetfair.options import NormalizeMode, choices

MASK_SUFFIX = "_mask"
MIN_SIDE = 8
"""Smallest image side (pixels / voxels) accepted for segmentation."""
NORMALIZE = tuple(choices(NormalizeMode))


@dataclass(frozen=True)
class PredictCase:
    """One case to segment: ``files`` stacked as channels in order, its ``attrs``, and ``where``
    names it in errors (``input 'a.png'``, ``manifest 'cases.csv' row 3 (case 'p1')``)."""

    case_id: str
    files: tuple[Path, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    where: str = ""


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".npy", ".npz", ".tif", ".tiff", ".bmp"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def split_files(item: str | os.PathLike[str]) -> tuple[Path, ...]:
    """The files of one input: a path, or paths joined with ``;`` (one per channel group)."""
    parts = tuple(Path(s.strip()) for s in str(item).split(";") if s.strip())
    require(len(parts) > 0, f"input '{item}': no file named; expected a path or paths joined with ';'")
    return parts


def parse_attrs(items: Sequence[str]) -> dict[str, str]:
    """``--attr NAME=VALUE`` options as a dict; a malformed item or a name given twice is refused."""
    attrs: dict[str, str] = {}
    for item in items:
        require("=" in item, f"--attr '{item}': expected NAME=VALUE, e.g. --attr race=Black")
        key, value = (x.strip() for x in item.split("=", 1))
        require(bool(key), f"--attr '{item}': expected NAME=VALUE, e.g. --attr race=Black")
        require(
            key not in attrs,
            f"--attr {key} given twice ({key}={attrs.get(key)}, {key}={value}); --attr "
            f"applies to every input: give one value, or per-case values with --manifest",
        )
        attrs[key] = value
    return attrs


def input_cases(
    inputs: Sequence[str | os.PathLike[str]], attrs: Optional[Mapping[str, Any]] = None
) -> list[PredictCase]:
    """Cases of command-line inputs (each a file or ``;``-joined files), all with ``attrs``; the
    case id (and mask name) is the first file's name without its extension."""
    cases = []
    for item in inputs:
        files = split_files(item)
        cases.append(PredictCase(_stem(files[0]), files, dict(attrs or {}), f"input '{item}'"))
    return cases


def manifest_cases(
    path: str | os.PathLike[str], attributes: Sequence[str], attrs: Optional[Mapping[str, Any]] = None
) -> list[PredictCase]:
    """Cases of a prediction manifest: an image column (``image``, or a known alias; ``;``-joined
    paths relative to the manifest's folder), optional ``case_id`` (default: first file's name) and
    the run's ``attributes`` as columns (missing values: unknown). ``attrs`` (``--attr``) fill
    attributes the manifest has no column for."""
    from duetfair.data.groups import is_missing
    from duetfair.data.manifest import ROLE_ALIASES
    from duetfair.io import read_table, resolve_inside

    path = Path(path)
    ids = set(ROLE_ALIASES["case_id"])
    df = read_table(path, text_columns=lambda cols: [c for c in cols if c.lower() in ids])  # "007" stays "007"
    image_col = _role_column(df, "image")
    require(
        image_col is not None,
        f"manifest '{path}': no image column; expected one named "
        f"{', '.join(ROLE_ALIASES['image'][:4])} (columns are {list(map(str, df.columns))})",
    )
    id_col = _role_column(df, "case_id")
    both = sorted(set(attrs or {}) & set(df.columns))
    require(
        not both,
        f"--attr {both[0] if both else ''}: the manifest '{path}' has a column of that name; give "
        f"per-case values in the manifest or one value with --attr, not both",
    )
    cases = []
    for i, row in enumerate(df.to_dict("records")):
        where = f"manifest '{path.name}' row {i + 2}"
        require(not is_missing(row[image_col]), f"{where}: empty {image_col}; expected a file or files joined with ';'")
        files = tuple(resolve_inside(path.parent, f, where) for f in split_files(row[image_col]))
        case_id = str(row[id_col]).strip() if id_col is not None and not is_missing(row[id_col]) else _stem(files[0])
        own = {a: row[a] for a in attributes if a in row and not is_missing(row[a])}
        cases.append(PredictCase(case_id, files, {**(attrs or {}), **own}, f"{where} (case '{case_id}')"))
    require(len(cases) > 0, f"manifest '{path}': no rows; expected one row per case to segment")
    return cases


def _role_column(df: pd.DataFrame, role: str) -> Optional[str]:
    from duetfair.data.manifest import ROLE_ALIASES

    lower = {str(c).lower(): str(c) for c in df.columns}
    return next((lower[n] for n in ROLE_ALIASES[role] if n in lower), None)


def _load_file(path: Path, spatial_dims: int, where: str) -> torch.Tensor:
    """One image file, channel first ``[c, *S]``, in the file's own dtype."""
    from duetfair.data.transforms import make_loader

    require(path.is_file(), f"{where}: file '{path}' does not exist")
    try:
        arr = np.asarray(make_loader()(str(path)))
    except Exception as exc:  # unreadable / corrupt file
        raise DuetfairError(f"{where}: cannot read image '{path}' ({str(exc).splitlines()[0][:120]})") from None
    img = torch.as_tensor(np.array(arr))
    require(
        img.ndim == spatial_dims + 1,
        f"{where}: image '{path}' has shape {tuple(img.shape)} (channel first); the run expects {spatial_dims}D images",
    )
    return img


def fit_channels(img: torch.Tensor, in_channels: int, channel_source: Optional[str], where: str) -> torch.Tensor:
    """``img [c, *S]`` with the run's ``in_channels``, given the way the run was trained: a single
    channel repeated only for ``repeat`` runs (and, for runs that did not record it, to 3 channels:
    grayscale to RGB), RGB averaged to gray for a single-channel run; anything else refused."""
    c, dims = int(img.shape[0]), img.ndim - 1
    if c == in_channels:
        return img
    if c == 1 and (channel_source == "repeat" or (channel_source is None and in_channels == 3)):
        return img.repeat(in_channels, *([1] * dims))
    if in_channels == 1 and c in (3, 4):
        return img[:3].mean(0, keepdim=True)
    if channel_source == "files":
        hint = (
            f"the run was trained on {in_channels} channels from separate files (e.g. MRI phases); give all of "
            f"a case's {in_channels} files joined with ';' in the training order, e.g. \"pre.nii.gz;post1.nii.gz\""
        )
    elif channel_source == "repeat":
        hint = f"the run was trained on single-channel images repeated to {in_channels} channels; give one channel"
    else:
        hint = f"the run was trained on {in_channels}-channel images; give images with {in_channels} channels"
    raise DuetfairError(f"{where}: {c} channel{'s' if c != 1 else ''}; {hint}")


def read_case(
    case: PredictCase,
    spatial_dims: int,
    in_channels: int,
    normalize: str = "auto",
    channel_source: Optional[str] = None,
) -> torch.Tensor:
    """Channel-first float image ``[C, *S]`` of a case (its files stacked), with the run's channels
    (:func:`fit_channels`) and normalised like the training data."""
    from duetfair.data.transforms import normalize_image

    parts = [_load_file(f, spatial_dims, case.where) for f in case.files]
    shapes = {tuple(p.shape[1:]) for p in parts}
    require(
        len(shapes) == 1,
        f"{case.where}: files {[str(f) for f in case.files]} have different spatial shapes "
        f"{sorted(shapes)}; expected one shape (stacked as channels)",
    )
    shape = next(iter(shapes))
    require(
        min(shape) >= MIN_SIDE,
        f"{case.where}: image of size {'x'.join(map(str, shape))} is too small to "
        f"segment; expected at least {MIN_SIDE} pixels per side",
    )
    raw_dtype = parts[0].dtype
    img = fit_channels(torch.cat([p.float() for p in parts]), in_channels, channel_source, case.where)
    img = normalize_image(img, raw_dtype, normalize, spatial_dims)  # type: ignore[arg-type]
    require(bool(torch.isfinite(img).all()), f"{case.where}: image contains NaN or inf values")
    return img.contiguous()


def _resize(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize ``[C, *S]`` to ``size`` (``mode``: ``area``/``trilinear`` for images, ``nearest``)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    from monai.transforms import Resize

    return torch.as_tensor(np.asarray(Resize(spatial_size=list(size), mode=mode)(x)))


def encode_attributes(spec: Any, attrs: Optional[Mapping[str, Any]], where: str = "--attr") -> tuple[list[int], str]:
    """Codes ``[A]`` of ``attrs`` under the run's spec and a note on where the group came from;
    ``where`` starts the errors (``--attr``, or the manifest row)."""
    if not attrs:
        return [-1] * len(spec.attributes), "none given (attribute-free fallback)"
    for name in attrs:
        require(
            name in spec.attributes, f"{where} {name}: not an attribute of this run; expected one of {spec.attributes}"
        )
    codes = spec.encode(dict(attrs))
    for attr, code in zip(spec.attributes, codes):
        if attr in attrs and code < 0:
            raise DuetfairError(
                f"{where} {attr}={attrs[attr]}: value not known to the run; expected one of {spec.group_names(attr)}"
            )
    missing = [a for a in spec.attributes if a not in attrs]
    return codes, "given" if not missing else f"given; {', '.join(missing)} unknown"


def write_mask(mask: np.ndarray, source: Path, out_dir: Path, name: Optional[str] = None) -> Path:
    """Write a class map ``out_dir/<name>_mask.(png|nii.gz)`` (``name``: default the source's name
    without extension): PNG for 2D, NIfTI with the source's affine and header for 3D."""
    from duetfair.io import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name if name is not None else _stem(source)
    if mask.ndim == 3:
        import nibabel as nib

        target = out_dir / f"{stem}{MASK_SUFFIX}.nii.gz"
        affine, header = np.eye(4), None
        if _is_nifti(source):
            ref: Any = nib.load(str(source))
            affine, header = ref.affine, ref.header.copy()
        img = nib.Nifti1Image(mask.astype(np.uint8), affine, header)
        img.set_data_dtype(np.uint8)
        # nibabel picks the format from the extension: write a hidden .nii.gz, then rename (atomic)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial.nii.gz")
        try:
            nib.save(img, str(tmp))
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return target
    from PIL import Image

    target = out_dir / f"{stem}{MASK_SUFFIX}.png"
    with atomic_path(target) as tmp:
        Image.fromarray(mask.astype(np.uint8), mode="L").save(tmp, format="PNG")
    return target


def _check_names(cases: Sequence[PredictCase]) -> None:
    """Refuse two cases that would write the same mask file."""
    seen: dict[str, str] = {}
    for case in cases:
        key = _mask_key(case.case_id)
        require(
            key not in seen,
            f"{case.where} and {seen.get(key)} would both write {case.case_id}{MASK_SUFFIX}; "
            f"give the cases distinct names (a case_id column of --manifest)",
        )
        seen[key] = case.where


def _mask_key(case_id: str) -> str:
    require(
        bool(case_id) and "/" not in case_id and "\\" not in case_id and case_id not in (".", ".."),
        f"case id '{case_id}': expected a name usable as a file name",
    )
    return case_id.lower()


def _normalize_mode(normalize: str, cfg: Any) -> str:
    """``--normalize``; ``auto`` follows the run's ``data.args.normalize`` when it set one."""
    require(normalize in NORMALIZE, f"--normalize '{normalize}': expected one of {', '.join(NORMALIZE)}")
    trained = cfg.data.args.get("normalize")
    return str(trained) if normalize == "auto" and trained in NORMALIZE else normalize


@torch.no_grad()
def predict_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    attrs: Optional[Mapping[str, Any]] = None,
    manifest: Optional[str | Path] = None,
    checkpoint: str = "best",
    normalize: str = "auto",
    device: str = "auto",
    threads: Optional[int] = None,
) -> pd.DataFrame:
    """Segment cases with the run's model; write masks and ``predictions.csv`` into ``out_dir``.

    Args:
        run_dir: folder written by ``duetfair train``.
        inputs: image files; each a path or paths joined with ``;`` (one case, stacked as channels).
        out_dir: output folder (``<case>_mask.png`` / ``.nii.gz`` and ``predictions.csv``).
        attrs: attributes of every input (``--attr``), or of every manifest row lacking the column.
        manifest: table of cases (``image`` column, optional ``case_id``, attribute columns), each
            segmented with its own attributes; instead of or besides ``inputs``.
        checkpoint: ``best`` or ``last``.
        normalize: ``auto`` (as the run's data), ``scale``, ``zscore``, ``zscore_global`` or ``none``.
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: CPU threads (default: one per core, at most 8).

    Returns the table: ``case_id``, ``input``, ``mask``, ``shape``, ``group_source``, ``group``
    (``subclass`` too for a run routed on subclasses), and the predicted voxel count of every
    foreground class (``n_pred_<k>``).
    """
    from duetfair.engine.evaluate import load_model
    from duetfair.engine.subclasses import SubclassOfImage
    from duetfair.io import staged_outputs

    require(len(inputs) > 0 or manifest is not None, "predict: give at least one input image or --manifest")
    from duetfair.engine.distributed import set_threads

    set_threads(threads)
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, cfg, run, spec = load_model(run_dir, checkpoint, dev)
    subclass = SubclassOfImage.of_run(Path(run_dir), cfg, dev)
    mode = _normalize_mode(normalize, cfg)
    cases = input_cases(inputs, attrs)
    if manifest is not None:
        cases += manifest_cases(manifest, spec.attributes, attrs)
    _check_names(cases)
    out = Path(out_dir)
    with staged_outputs(out) as stage:  # all masks and predictions.csv, or nothing
        rows = [_predict_case(case, model, cfg, run, spec, mode, dev, stage, subclass) for case in cases]
        table = pd.DataFrame(rows)
        table["mask"] = [str(out / Path(m).name) for m in table["mask"]]
        table.to_csv(stage / "predictions.csv", index=False)
    return table


def _predict_case(
    case: PredictCase,
    model: Any,
    cfg: Any,
    run: Any,
    spec: Any,
    normalize: str,
    dev: torch.device,
    out: Path,
    subclass: Any = None,
) -> dict[str, Any]:
    """Segment one case with its own group (and, for a run routed on subclasses, the subclass of
    its image: ``subclass``, a :class:`~duetfair.engine.subclasses.SubclassOfImage`); the row of
    ``predictions.csv``."""
    from duetfair.engine import adapters

    dims = run.spatial_dims
    where = "--attr" if case.where.startswith("input") else f"{case.where}:"
    image = read_case(case, dims, run.in_channels, normalize, run.channel_source)
    size = list(image.shape[1:])
    train_size = [int(s) for s in run.image_shape[1:]]
    x = _resize(image, train_size, "area" if dims == 2 else "trilinear").unsqueeze(0).to(dev)
    if subclass is None:
        codes, source = encode_attributes(spec, case.attrs, where)
    else:  # the derived attribute (the spec's last) comes from the image, never from the user
        codes, source = encode_attributes(spec.select(spec.attributes[:-1]), case.attrs, where)
        codes = [*codes, subclass.code(x, codes)]
    grouping = adapters.grouping(spec, cfg)
    batch_codes = torch.tensor([codes], dtype=torch.long)
    route, gid = grouping.route_codes(batch_codes), int(grouping.group_ids(batch_codes)[0])
    pred = model(x, group=route.to(dev)).argmax(1).cpu()
    mask = _resize(pred.float(), size, "nearest")[0].round().to(torch.uint8).numpy()
    target = write_mask(mask, case.files[0], out, case.case_id)
    row: dict[str, Any] = {
        "case_id": case.case_id,
        "input": ";".join(map(str, case.files)),
        "mask": str(target),
        "shape": "x".join(map(str, size)),
        "group_source": source,
        "group": grouping.names[gid] if gid >= 0 else "unknown",
    }
    if subclass is not None:  # the subclass the model routed on
        row["subclass"] = subclass.router.names[codes[-1]] if codes[-1] >= 0 else "unknown"
    for k in range(1, run.num_classes):
        row[f"n_pred_{k}"] = int((mask == k).sum())
    return row
