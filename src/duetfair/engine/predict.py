"""``duetfair predict``: segment image files with a trained run, masks written with the input's geometry.

2D inputs (PNG/JPG/NPY/NPZ) give PNG class maps (pixel value = class index), 3D NIfTI inputs give
NIfTI class maps with the input's affine and header. Each image is normalised like the training
data (integer 2D images scaled to [0, 1], everything else z-scored per channel; ``normalize`` to
override), resized to the run's training size, segmented, and the prediction resized back
(nearest) to the input's own size.

Attributes (``{"race": "Black"}``) are encoded with the run's saved group spec. Without them (or
with values the spec does not know) the group is unknown (-1) and attribute-aware models (dMoE) use
their documented attribute-free fallback; the result table says so in ``group_source``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require

MASK_SUFFIX = "_mask"
NORMALIZE = ("auto", "scale", "zscore", "none")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".npy", ".npz", ".tif", ".tiff", ".bmp"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def read_image(path: Path, spatial_dims: int, in_channels: int, normalize: str = "auto") -> torch.Tensor:
    """Channel-first float image ``[C, *S]`` normalised like the training data."""
    from duetfair.data.transforms import make_loader, zscore

    require(path.is_file(), f"input '{path}' does not exist")
    try:
        arr = np.asarray(make_loader()(str(path)))
    except Exception as exc:  # unreadable / corrupt file
        raise DuetfairError(f"input '{path}': cannot read image ({str(exc).splitlines()[0][:120]})") from None
    img = torch.as_tensor(np.array(arr))
    require(img.ndim == spatial_dims + 1,
            f"input '{path}': image has shape {tuple(img.shape)} (channel first); the run expects {spatial_dims}D images")
    raw_dtype = img.dtype
    img = img.float()
    if img.shape[0] != in_channels:
        if img.shape[0] == 1:
            img = img.repeat(in_channels, *([1] * spatial_dims))
        elif in_channels == 1 and img.shape[0] in (3, 4):
            img = img[:3].mean(0, keepdim=True)
        else:
            raise DuetfairError(f"input '{path}': {img.shape[0]} channels; the run was trained on {in_channels}")
    mode = normalize
    if mode == "auto":
        mode = "scale" if (spatial_dims == 2 and not raw_dtype.is_floating_point) else "zscore"
    if mode == "scale" and not raw_dtype.is_floating_point and raw_dtype != torch.bool:
        img = img / float(torch.iinfo(raw_dtype).max)
    elif mode == "zscore":
        img = zscore(img, channel_wise=True)
    require(bool(torch.isfinite(img).all()), f"input '{path}': image contains NaN or inf values")
    return img.contiguous()


def _resize(x: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize ``[C, *S]`` to ``size`` (``mode``: ``area``/``trilinear`` for images, ``nearest``)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    from monai.transforms import Resize

    return torch.as_tensor(np.asarray(Resize(spatial_size=list(size), mode=mode)(x)))


def encode_attributes(spec: Any, attrs: Optional[Mapping[str, Any]]) -> tuple[list[int], str]:
    """Codes ``[A]`` of ``attrs`` under the run's spec and a note on where the group came from."""
    if not attrs:
        return [-1] * len(spec.attributes), "none given (attribute-free fallback)"
    for name in attrs:
        require(name in spec.attributes, f"--attr {name}: not an attribute of this run; expected one of {spec.attributes}")
    codes = spec.encode(dict(attrs))
    for attr, code in zip(spec.attributes, codes):
        if attr in attrs and code < 0:
            raise DuetfairError(f"--attr {attr}={attrs[attr]}: value not known to the run; expected one of "
                                f"{spec.group_names(attr)}")
    missing = [a for a in spec.attributes if a not in attrs]
    return codes, "given" if not missing else f"given; {', '.join(missing)} unknown"


def write_mask(mask: np.ndarray, source: Path, out_dir: Path) -> Path:
    """Write a class map next to the other outputs: PNG for 2D, NIfTI with the input's affine for 3D."""
    from duetfair.io import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    if mask.ndim == 3:
        import nibabel as nib

        target = out_dir / f"{_stem(source)}{MASK_SUFFIX}.nii.gz"
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

    target = out_dir / f"{_stem(source)}{MASK_SUFFIX}.png"
    with atomic_path(target) as tmp:
        Image.fromarray(mask.astype(np.uint8), mode="L").save(tmp, format="PNG")
    return target


@torch.no_grad()
def predict_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    attrs: Optional[Mapping[str, Any]] = None,
    checkpoint: str = "best",
    normalize: str = "auto",
    device: str = "auto",
) -> pd.DataFrame:
    """Segment ``inputs`` with the run's model; write masks and ``predictions.csv`` into ``out_dir``.

    Returns the table: ``input``, ``mask``, ``shape``, ``group_source``, ``group``, and the
    predicted voxel count of every foreground class (``n_pred_<k>``).
    """
    from duetfair.engine import adapters
    from duetfair.engine.evaluate import load_model
    from duetfair.io import atomic_path

    require(len(inputs) > 0, "predict: give at least one input image")
    require(normalize in NORMALIZE, f"--normalize '{normalize}': expected one of {', '.join(NORMALIZE)}")
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, cfg, run, spec = load_model(run_dir, checkpoint, dev)
    dims, channels = run.spatial_dims, run.in_channels
    train_size = [int(s) for s in run.image_shape[1:]]
    codes, source = encode_attributes(spec, attrs)
    grouping = adapters.grouping(spec, cfg)
    batch_codes = torch.tensor([codes], dtype=torch.long)
    route, gid = grouping.route_codes(batch_codes), int(grouping.group_ids(batch_codes)[0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in inputs:
        path = Path(item)
        image = read_image(path, dims, channels, normalize)
        size = list(image.shape[1:])
        x = _resize(image, train_size, "area" if dims == 2 else "trilinear").unsqueeze(0).to(dev)
        pred = model(x, group=route.to(dev)).argmax(1).cpu()
        mask = _resize(pred.float(), size, "nearest")[0].round().to(torch.uint8).numpy()
        target = write_mask(mask, path, out)
        row: dict[str, Any] = {"input": str(path), "mask": str(target), "shape": "x".join(map(str, size)),
                               "group_source": source, "group": grouping.names[gid] if gid >= 0 else "unknown"}
        for k in range(1, run.num_classes):
            row[f"n_pred_{k}"] = int((mask == k).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    with atomic_path(out / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False)
    return table
