"""MONAI dictionary transforms per dataset kind, and the checked file reader behind every loader.

A file-based case is read in three steps (:class:`CaseReader`):

1. load: MONAI ``LoadImaged`` + ``EnsureChannelFirstd`` (PNG/JPG through ``PILReader`` with the
   numpy axis order, NPY/NPZ through ``NumpyReader``, NIfTI through ``NibabelReader``; several
   image files, e.g. MRI phases, are stacked as channels);
2. check (before any resampling, so the error names the file as it is): image and label spatial
   shapes match, pixels are finite, the label (after ``label_map``) only holds the declared
   classes;
3. preprocess: optional ``Spacingd`` (isotropic resampling), crop, ``Resized``, intensity
   normalisation (``NormalizeIntensityd`` z-score, or scaling of integer images to [0, 1]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch

from duetfair.errors import DuetfairError
from duetfair.options import NormalizeMode, choices

Normalize = Literal["auto", "scale", "zscore", "zscore_global", "none"]
"""The values of :class:`~duetfair.options.NormalizeMode`, for type checkers."""
NORMALIZE_CHOICES = tuple(choices(NormalizeMode))


def make_loader(npz_key: str | None = None) -> Callable[[Any], torch.Tensor]:
    """MONAI ``LoadImage`` returning channel-first arrays with the file's own dtype.

    Args:
        npz_key: array to read from ``.npz`` files (default ``None``: all arrays, stacked).
    """
    from monai.data import NumpyReader, PILReader
    from monai.transforms import LoadImage

    class WritablePILReader(PILReader):
        """PIL hands out read-only buffers; copy them so the tensors built on top own writable
        memory (in-place transforms are then safe, and torch does not warn)."""

        def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
            data, meta = super().get_data(img)
            return (data if data.flags.writeable else data.copy()), meta

    loader = LoadImage(image_only=True, dtype=None, ensure_channel_first=True)
    loader.register(NumpyReader(npz_keys=[npz_key] if npz_key else None))
    loader.register(WritablePILReader(reverse_indexing=False))  # (H, W) like numpy, not PIL's (W, H)
    return loader


def _describe(paths: str | Sequence[str]) -> str:
    return paths if isinstance(paths, str) else ", ".join(str(p) for p in paths)


class CaseReader:
    """Read, check and preprocess one file-based case -> ``(image [C, *S] float32, label [1, *S] int64)``.

    Args:
        num_classes: number of classes incl. background; label values must lie in
            ``0 .. num_classes - 1`` after ``label_map``.
        spatial_dims: 2 or 3.
        label_map: raw label value -> class (e.g. FairSeg ``{0: 0, -1: 1, -2: 2}``, HAM10000
            ``{255: 1}``); values not in the map are kept as they are (default ``None``).
        normalize: ``"auto"`` (default: integer-typed 2D images scaled by their dtype maximum to
            [0, 1], everything else z-scored per channel), ``"scale"``, ``"zscore"`` (per channel),
            ``"zscore_global"`` (one mean/std over all channels, e.g. MRI phases), ``"none"``.
        image_size: 2D/3D output spatial size via ``Resized`` (image: area/trilinear, label:
            nearest); ``None`` (default) keeps the size.
        crop_size: centre crop before resizing (FairSeg protocol: 512); ``None`` = no crop.
        pixdim: resample to this voxel spacing with ``Spacingd`` (e.g. ``(1, 1, 1)`` mm);
            ``None`` (default) keeps the spacing.
        channels: repeat a single-channel image to this many channels (FairSeg: 3); ``None`` keeps.
        image_npz_key / label_npz_key: arrays to read from ``.npz`` files.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        spatial_dims: int,
        label_map: Mapping[int, int] | None = None,
        normalize: Normalize = "auto",
        image_size: Sequence[int] | int | None = None,
        crop_size: Sequence[int] | int | None = None,
        pixdim: Sequence[float] | None = None,
        channels: int | None = None,
        image_npz_key: str | None = None,
        label_npz_key: str | None = None,
    ) -> None:
        if normalize not in NORMALIZE_CHOICES:
            raise DuetfairError(f"normalize must be one of {NORMALIZE_CHOICES}, got '{normalize}'")
        if spatial_dims not in (2, 3):
            raise DuetfairError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if num_classes < 2:
            raise DuetfairError(f"num_classes must be >= 2 (background + one class), got {num_classes}")
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.label_map = dict(label_map) if label_map else None
        self.normalize = normalize
        self.image_size = _tuple(image_size, spatial_dims)
        self.crop_size = _tuple(crop_size, spatial_dims)
        self.pixdim = tuple(float(p) for p in pixdim) if pixdim is not None else None
        self.channels = channels
        self._image_loader = make_loader(image_npz_key)
        self._label_loader = make_loader(label_npz_key)
        self._post = self._build_post()

    def _build_post(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        from monai.transforms import CenterSpatialCropd, Compose, Resized, Spacingd

        ts: list[Any] = []
        if self.pixdim is not None:
            ts.append(Spacingd(keys=["image", "label"], pixdim=self.pixdim, mode=("bilinear", "nearest")))
        if self.crop_size is not None:
            ts.append(CenterSpatialCropd(keys=["image", "label"], roi_size=self.crop_size))
        if self.image_size is not None:
            ts.append(
                Resized(
                    keys=["image", "label"],
                    spatial_size=self.image_size,
                    mode=("area" if self.spatial_dims == 2 else "trilinear", "nearest"),
                )
            )
        return Compose(ts) if ts else (lambda d: d)

    def __call__(
        self, image_path: str | Sequence[str], label_path: str, case_id: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Read one case; any problem raises :class:`DuetfairError` naming the case and file."""
        image = self._load(self._image_loader, image_path, case_id, "image")
        label = self._load(self._label_loader, label_path, case_id, "label")
        return self.process(image, label, image_path, label_path, case_id)

    def load(self, path: str | Sequence[str], case_id: str, what: Literal["image", "label"]) -> torch.Tensor:
        """Load an image (several paths: stacked channels) or a label, channel first, unchecked."""
        return self._load(self._image_loader if what == "image" else self._label_loader, path, case_id, what)

    def process(
        self, image: torch.Tensor, label: torch.Tensor, image_path: Any, label_path: Any, case_id: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check and preprocess an already loaded ``image [C, *S]`` / ``label [1, *S]`` pair
        (paths only name the source in errors)."""
        label = self._check(image, label, image_path, str(label_path), case_id)
        raw_dtype = image.dtype
        data = {"image": image.float(), "label": label}
        try:
            data = self._post(data)
        except Exception as exc:  # noqa: BLE001 - MONAI raises many types
            raise DuetfairError(
                f"case '{case_id}': preprocessing of {_describe(image_path)} failed: {_one_line(exc)}"
            ) from exc
        img = torch.as_tensor(np.asarray(data["image"]), dtype=torch.float32)
        lab = torch.as_tensor(np.asarray(data["label"])).round().long()
        img = self._normalize(img, raw_dtype)
        if self.channels is not None and img.shape[0] != self.channels:
            if img.shape[0] != 1:
                raise DuetfairError(
                    f"case '{case_id}': image {_describe(image_path)} has {img.shape[0]} "
                    f"channels; expected 1 or {self.channels}"
                )
            img = img.repeat(self.channels, *([1] * self.spatial_dims))
        return img.contiguous(), lab.contiguous()

    def _load(self, loader: Callable[[Any], Any], path: str | Sequence[str], case_id: str, what: str) -> torch.Tensor:
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        for p in paths:
            if not Path(p).is_file():
                raise DuetfairError(f"case '{case_id}': {what} file '{p}' does not exist")
        try:
            arr = loader(str(paths[0]) if len(paths) == 1 else [str(p) for p in paths])
        except Exception as exc:  # noqa: BLE001 - corrupt / unreadable file
            raise DuetfairError(
                f"case '{case_id}': cannot read {what} file {_describe(path)}: {_one_line(exc)}"
            ) from exc
        t = arr if isinstance(arr, torch.Tensor) else torch.as_tensor(np.asarray(arr))  # keep MetaTensor affine
        if t.ndim != self.spatial_dims + 1:
            raise DuetfairError(
                f"case '{case_id}': {what} file {_describe(path)} has shape "
                f"{tuple(t.shape)} (channel first); expected {self.spatial_dims} spatial dims"
            )
        return t

    def _check(
        self, image: torch.Tensor, label: torch.Tensor, image_path: Any, label_path: str, case_id: str
    ) -> torch.Tensor:
        if image.shape[1:] != label.shape[1:]:
            raise DuetfairError(
                f"case '{case_id}': image {_describe(image_path)} has spatial shape "
                f"{tuple(image.shape[1:])} but label '{label_path}' has {tuple(label.shape[1:])}"
            )
        if image.is_floating_point() and not bool(torch.isfinite(image).all()):
            raise DuetfairError(f"case '{case_id}': image {_describe(image_path)} contains NaN or inf pixels")
        if label.shape[0] > 1:  # RGB(A) masks: accept when all colour channels agree
            if not bool((label[:3] == label[:1]).all()):
                raise DuetfairError(
                    f"case '{case_id}': label '{label_path}' has {label.shape[0]} differing "
                    f"channels; expected a single-channel class map"
                )
            label = label[:1]
        lab = label.double() if label.is_floating_point() else label.long()
        if lab.is_floating_point():
            if not bool(torch.isfinite(lab).all()) or not bool((lab == lab.round()).all()):
                raise DuetfairError(
                    f"case '{case_id}': label '{label_path}' holds non-integer values; expected a class map"
                )
            lab = lab.long()
        if self.label_map:
            out = lab.clone()
            for src, dst in self.label_map.items():
                out[lab == int(src)] = int(dst)
            lab = out
        values = torch.unique(lab)
        bad = [int(v) for v in values if v < 0 or v >= self.num_classes]
        if bad:
            raise DuetfairError(
                f"case '{case_id}': label '{label_path}' holds values {bad[:5]} outside the "
                f"declared classes 0..{self.num_classes - 1}"
            )
        return lab

    def _normalize(self, img: torch.Tensor, raw_dtype: torch.dtype) -> torch.Tensor:
        return normalize_image(img, raw_dtype, self.normalize, self.spatial_dims)


def normalize_image(img: torch.Tensor, raw_dtype: torch.dtype, mode: Normalize, spatial_dims: int) -> torch.Tensor:
    """Intensity normalisation of ``img [C, *S]`` (float) read from a file of dtype ``raw_dtype``
    (see :class:`CaseReader`; ``predict`` uses the same so inference matches training)."""
    if mode == "auto":
        mode = "scale" if (spatial_dims == 2 and not raw_dtype.is_floating_point) else "zscore"
    if mode == "scale":
        if not raw_dtype.is_floating_point and raw_dtype != torch.bool:
            return img / float(torch.iinfo(raw_dtype).max)
        return img
    if mode == "zscore":
        return zscore(img, channel_wise=True)
    if mode == "zscore_global":
        return zscore(img, channel_wise=False)
    return img


def zscore(img: torch.Tensor, *, channel_wise: bool) -> torch.Tensor:
    """Z-score ``img [C, *S]`` per channel or over all channels (constant images -> zeros)."""
    from monai.transforms import NormalizeIntensity

    out = NormalizeIntensity(channel_wise=channel_wise)(img)
    return torch.as_tensor(np.asarray(out), dtype=torch.float32)


def _tuple(v: Sequence[int] | int | None, n: int) -> tuple[int, ...] | None:
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    t = tuple(int(x) for x in v)
    if len(t) != n:
        raise DuetfairError(f"size {list(t)} has {len(t)} entries; expected {n} (one per spatial dim)")
    return t


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
