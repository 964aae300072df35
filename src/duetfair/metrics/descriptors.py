"""Case descriptors: what a scored structure, its image and its error look like, in numbers.

For every scored case and structure (a binary reference mask, the prediction, optionally the
image) :func:`describe` returns a dict of ``desc_*`` values that ``cases.csv`` carries next to the
metrics. The audit bins them into plain-word levels and looks for slices of cases that fail
(:mod:`duetfair.audit.slices`). Every length is in the unit of the voxel spacing (mm for NIfTI,
NRRD, MHA; pixels / voxels where the format has no spacing); 2D and 3D alike.

The structure (reference mask; NaN when it is empty)
    ``size`` (area mm^2 in 2D, volume mm^3 in 3D: voxel count x voxel size), ``size_fraction``
    (share of the image's voxels), ``components`` (connected components, full connectivity: 8 in
    2D, 26 in 3D), ``compactness`` (2D: isoperimetric quotient ``4 pi A / P^2``; 3D: sphericity
    ``pi^(1/3) (6 V)^(2/3) / A``; 1 for a disk / ball, lower for elongated or ragged shapes; ``A``,
    ``P``, ``V`` of the marching-squares contour / marching-cubes surface in physical units,
    scikit-image), ``irregularity`` (``1 - solidity``: the share of the convex hull the structure
    does not fill; 0 for a convex shape), ``centroid_0``, ``centroid_1`` (, ``centroid_2``) (the
    centre of mass along each array axis, 0 at the first voxel and 1 at the last),
    ``centre_distance`` (distance of the centre of mass from the image centre over the distance of
    a corner, physical units, in [0, 1]), ``border_distance`` (mm from the structure to the nearest
    image border).

The image around it (only with an image; channels averaged, each in its own standard deviation)
    ``contrast`` (signed: mean inside minus mean in a ring of ``ring_width`` voxels around the
    structure, over the image's standard deviation: > 0 lighter than its surroundings, < 0
    darker), ``heterogeneity`` (standard deviation inside over the image's), ``edge_sharpness``
    (mean gradient magnitude on the structure's boundary, image standard deviations per mm),
    ``blur`` (standard deviation of the image over that of its Laplacian, in the box around the
    structure; larger = smoother / blurrier, voxel units), ``noise`` (robust noise estimate from
    neighbour differences, 1.4826 MAD / sqrt 2, over the image's standard deviation),
    ``intensity`` (mean image value inside the structure, the image's own units).

The error (prediction against reference)
    ``fp_size`` and ``fn_size`` (false-positive and false-negative area / volume, mm^2 / mm^3),
    ``volume_error`` (signed: predicted minus reference size over the reference size),
    ``error_boundary_share`` (share of the wrong voxels within ``boundary_width`` voxels of the
    reference's surface, on either side; the rest lie deeper inside or farther out; NaN without
    error or without reference).

Everything is vectorised (scikit-image ``find_contours`` / ``marching_cubes`` /
``mesh_surface_area``, scipy ``ndimage`` labels and distance transforms, a qhull convex hull);
the work happens in a box around the structure, so a case costs a few milliseconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

PREFIX = "desc_"
"""Common prefix of the descriptor columns of ``cases.csv``."""

RING_WIDTH = 3
"""Width of the ring around a structure that its contrast is measured against (voxels: face-connected
steps from its surface)."""

BOUNDARY_WIDTH = 2
"""Distance from the reference surface within which an error counts as a boundary error (voxels:
face-connected steps, inside or outside)."""

IMAGE_MARGIN = 8
"""Voxels kept around the foreground when an image is described (the ring and the blur / noise box)."""


@dataclass(frozen=True)
class Descriptor:
    """One descriptor: its column (``desc_<name>``), unit, source and words.

    ``levels``: plain words of its low / middle / high tertile for the audit's slices (None: not
    used to define slices, e.g. error descriptors, which describe how a slice fails, not what it is).
    ``attributive``: the words go before the noun ("small structures"), else after it
    ("structures near the image border").
    """

    name: str
    unit: str
    source: str
    meaning: str
    levels: tuple[str, str, str] | None = None
    attributive: bool = True

    @property
    def column(self) -> str:
        """Column name in the per-case table (``desc_`` + name)."""
        return PREFIX + self.name


DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("size", "mm^2 (2D) / mm^3 (3D)", "reference", "area or volume", ("small", "medium-sized", "large")),
    Descriptor("size_fraction", "fraction", "reference", "share of the image's voxels"),
    Descriptor("components", "count", "reference", "connected components", ("one-piece", "", "fragmented")),
    Descriptor(
        "compactness", "[0, 1]", "reference", "isoperimetric quotient / sphericity", ("elongated", "", "compact")
    ),
    Descriptor(
        "irregularity", "[0, 1]", "reference", "1 - solidity", ("convex", "slightly concave", "irregular-outlined")
    ),
    Descriptor(
        "centre_distance",
        "[0, 1]",
        "reference",
        "centroid distance from the image centre",
        ("central", "off-centre", "peripheral"),
    ),
    Descriptor("border_distance", "mm", "reference", "distance to the nearest image border"),
    Descriptor(
        "contrast",
        "image std",
        "image",
        "signed contrast against a surrounding ring",
        ("low-contrast", "mid-contrast", "high-contrast"),
    ),
    Descriptor(
        "heterogeneity",
        "image std",
        "image",
        "standard deviation inside",
        ("homogeneous", "moderately textured", "heterogeneous"),
    ),
    Descriptor(
        "edge_sharpness",
        "image std / mm",
        "image",
        "mean gradient on the boundary",
        ("soft-edged", "medium-edged", "sharp-edged"),
    ),
    Descriptor(
        "blur", "voxels", "image", "std of the image / std of its Laplacian", ("crisp", "moderately smooth", "blurred")
    ),
    Descriptor("noise", "image std", "image", "robust noise estimate", ("low-noise", "moderately noisy", "noisy")),
    Descriptor("intensity", "image units", "image", "mean image value inside", ("dark", "mid-intensity", "bright")),
    Descriptor("fp_size", "mm^2 / mm^3", "error", "false-positive area / volume"),
    Descriptor("fn_size", "mm^2 / mm^3", "error", "false-negative area / volume"),
    Descriptor("volume_error", "fraction", "error", "(predicted - reference) / reference size"),
    Descriptor("error_boundary_share", "[0, 1]", "error", "share of the error near the reference surface"),
)
"""Every descriptor (the centroids ``centroid_0``.. are added per axis)."""

BY_COLUMN = {d.column: d for d in DESCRIPTORS}

POLARITY_WORDS = ("darker than the surroundings", "lighter than the surroundings")
"""Words of the sign of ``contrast`` (a slice attribute of its own; ``contrast`` levels are tertiles
of its magnitude)."""


def is_descriptor(column: Any) -> bool:
    """Whether a table column is a descriptor (``desc_...``, also per class: ``desc_size[cup]``)."""
    return isinstance(column, str) and column.startswith(PREFIX)


def descriptor_of(column: str) -> Descriptor | None:
    """The :class:`Descriptor` of a column (``desc_size[cup]`` -> size), None for centroids / unknown."""
    return BY_COLUMN.get(column.partition("[")[0])


# ---- geometry ----------------------------------------------------------------------------------


def _spacing(spacing: Sequence[float] | np.ndarray | None, ndim: int) -> np.ndarray:
    s = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=np.float64).reshape(-1)
    if s.size != ndim or not np.all(s > 0):
        raise ValueError(f"spacing {tuple(s)}: expected {ndim} values > 0")
    return s


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels, ``margin`` voxels wider (clipped); None when empty."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed triangle mesh (divergence theorem)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


HULL_POINTS = 1000
"""At most this many boundary points (an even subsample) span the convex hull of :func:`shape_measures`."""


def _hull_volume(points: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    points = points[:: max(1, math.ceil(len(points) / HULL_POINTS))]
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):
        return float("nan")


SMOOTHING = 1.0
"""Gaussian sigma (voxels) applied to a mask before its boundary is traced: the 0.5 level of the
smoothed mask follows the structure without the staircase of the voxel grid, which otherwise makes
a digital disk's perimeter about 6-14 % too long (a disk's compactness 0.80-0.88 instead of 1)."""


def _trace(sub: np.ndarray, s: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """``(boundary, enclosed, points)`` of the 0.5 level of ``sub`` (padded float mask), physical
    units; None when the level is not crossed."""
    from skimage import measure

    if sub.max() <= 0.5:
        return None
    if sub.ndim == 2:
        contours = [c * s for c in measure.find_contours(sub, 0.5)]
        boundary = float(sum(np.linalg.norm(np.diff(c, axis=0), axis=1).sum() for c in contours))
        signed = sum(0.5 * float(np.dot(c[:-1, 0], c[1:, 1]) - np.dot(c[1:, 0], c[:-1, 1])) for c in contours)
        return boundary, abs(signed), np.concatenate(contours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verts, faces, _, _ = measure.marching_cubes(sub, 0.5, spacing=tuple(float(v) for v in s))
    return float(measure.mesh_surface_area(verts, faces)), abs(_signed_volume(verts, faces)), verts


def shape_measures(
    mask: np.ndarray, spacing: Sequence[float] | np.ndarray | None = None, *, smoothing: float = SMOOTHING
) -> dict[str, float]:
    """Boundary length / area, enclosed size, compactness and solidity of a binary mask.

    The boundary is the 0.5 level of the mask smoothed with a Gaussian of ``smoothing`` voxels
    (:data:`SMOOTHING`; a structure too thin to survive it, enclosing less than half its voxel
    count, is traced unsmoothed). 2D: marching-squares contours (``skimage.measure.find_contours``),
    perimeter ``P`` and polygon area ``A`` -> compactness ``4 pi A / P^2``. 3D: marching-cubes
    surface (``skimage.measure.marching_cubes``, ``mesh_surface_area``), area ``A`` and enclosed
    volume ``V`` -> sphericity ``pi^(1/3) (6 V)^(2/3) / A``. Solidity: enclosed size over that of
    the convex hull of the contour / surface points. All in physical units (``spacing``).

    Returns ``{"boundary", "enclosed", "compactness", "solidity"}`` (NaN for an empty mask).
    """
    from scipy import ndimage

    box = bounding_box(mask)
    if box is None:
        return {"boundary": math.nan, "enclosed": math.nan, "compactness": math.nan, "solidity": math.nan}
    s = _spacing(spacing, mask.ndim)
    pad = max(2, int(math.ceil(3 * smoothing)))
    sub = np.pad(mask[box], pad).astype(np.float32)
    traced = _trace(ndimage.gaussian_filter(sub, smoothing), s) if smoothing > 0 else None
    if traced is None or traced[1] < 0.5 * float(mask[box].sum()) * float(np.prod(s)):
        traced = _trace(sub, s)
    assert traced is not None
    boundary, enclosed, points = traced
    if boundary <= 0:
        compact = math.nan
    elif mask.ndim == 2:
        compact = 4.0 * math.pi * enclosed / boundary**2
    else:
        compact = math.pi ** (1 / 3) * (6.0 * enclosed) ** (2 / 3) / boundary
    hull = _hull_volume(points)
    solidity = min(enclosed / hull, 1.0) if hull > 0 else math.nan
    return {"boundary": boundary, "enclosed": enclosed, "compactness": compact, "solidity": solidity}


def _structure(ref: np.ndarray, s: np.ndarray, shape: np.ndarray, offset: np.ndarray) -> dict[str, float]:
    """The ``reference`` descriptors of a non-empty mask (a crop at ``offset`` of an image of ``shape``)."""
    from scipy import ndimage

    n = int(ref.sum())
    geo = shape_measures(ref, s)
    _, components = ndimage.label(ref, structure=ndimage.generate_binary_structure(ref.ndim, ref.ndim))
    centre = np.asarray(ndimage.center_of_mass(ref), dtype=np.float64) + offset
    span = np.maximum(shape - 1, 1)
    mid = (shape - 1) / 2.0
    corner = float(np.linalg.norm(mid * s))
    box = bounding_box(ref)
    assert box is not None
    lo = np.array([b.start for b in box]) + offset
    hi = np.array([b.stop - 1 for b in box]) + offset
    out = {
        "size": n * float(np.prod(s)),
        "size_fraction": n / float(np.prod(shape)),
        "components": float(components),
        "compactness": geo["compactness"],
        "irregularity": 1.0 - geo["solidity"],
    }
    out.update({f"centroid_{i}": float(c / span[i]) if shape[i] > 1 else 0.5 for i, c in enumerate(centre)})
    out["centre_distance"] = float(np.linalg.norm((centre - mid) * s) / corner) if corner > 0 else 0.0
    out["border_distance"] = float(np.min(np.minimum(lo, shape - 1 - hi) * s))
    return out


# ---- image -------------------------------------------------------------------------------------


def _shell(ref: np.ndarray, width: int, *, outside: bool = True, inside: bool = False) -> np.ndarray:
    """Voxels within ``width`` face-connected steps of the mask's surface: outside it, inside it or
    both (iterated 6- / 4-connected dilation and erosion: the taxicab distance on the voxel grid)."""
    from scipy import ndimage

    face = ndimage.generate_binary_structure(ref.ndim, 1)
    band = np.zeros_like(ref)
    if outside:
        band |= ndimage.binary_dilation(ref, face, iterations=width) & ~ref
    if inside:
        band |= ref & ~ndimage.binary_erosion(ref, face, iterations=width)
    return band


def _robust_noise(channel: np.ndarray) -> float:
    """Noise standard deviation from neighbour differences: median over axes of 1.4826 MAD / sqrt 2."""
    sigmas = []
    for axis in range(channel.ndim):
        if channel.shape[axis] < 2:
            continue
        d = np.diff(channel, axis=axis).reshape(-1)
        sigmas.append(1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0))
    return float(np.median(sigmas)) if sigmas else math.nan


def _image(image: np.ndarray, ref: np.ndarray, s: np.ndarray, ring: int, std: np.ndarray) -> dict[str, float]:
    """The ``image`` descriptors of a non-empty mask: ``image [C, *S]`` over the crop of ``ref``,
    ``ring`` the width of the contrast ring (voxels), ``std [C]`` the standard deviation of each
    channel over the whole image."""
    from scipy import ndimage

    ring_mask = _shell(ref, ring)
    edge = _shell(ref, 1, outside=True, inside=True)
    vals: dict[str, list[float]] = {k: [] for k in ("contrast", "heterogeneity", "edge_sharpness", "blur", "noise")}
    for c, channel in enumerate(image):
        sd = float(std[c]) if std[c] > 0 else math.nan
        inside = channel[ref]
        around = channel[ring_mask]
        vals["contrast"].append((inside.mean() - around.mean()) / sd if around.size else math.nan)
        vals["heterogeneity"].append(float(inside.std()) / sd)
        grads = np.gradient(channel, *s) if min(channel.shape) > 1 else [np.zeros_like(channel)]
        magnitude = np.sqrt(sum(g**2 for g in grads))
        vals["edge_sharpness"].append(float(magnitude[edge].mean()) / sd)
        lap = float(ndimage.laplace(channel).std())
        vals["blur"].append(float(channel.std()) / lap if lap > 0 else math.nan)
        vals["noise"].append(_robust_noise(channel) / sd)
    out = {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in vals.items()}
    out["intensity"] = float(image[:, ref].mean())
    return out


# ---- error -------------------------------------------------------------------------------------


def _error(ref: np.ndarray, pred: np.ndarray, s: np.ndarray, width: int) -> dict[str, float]:
    """The ``error`` descriptors (``width``: the boundary band, voxels)."""
    voxel = float(np.prod(s))
    fp, fn = pred & ~ref, ref & ~pred
    n_ref, n_fp, n_fn = int(ref.sum()), int(fp.sum()), int(fn.sum())
    out = {
        "fp_size": n_fp * voxel,
        "fn_size": n_fn * voxel,
        "volume_error": (int(pred.sum()) - n_ref) / n_ref if n_ref else math.nan,
        "error_boundary_share": math.nan,
    }
    if n_ref and n_fp + n_fn:
        near = int((fp & _shell(ref, width)).sum()) if n_fp else 0
        near += int((fn & _shell(ref, width, outside=False, inside=True)).sum()) if n_fn else 0
        out["error_boundary_share"] = near / (n_fp + n_fn)
    return out


# ---- one structure -----------------------------------------------------------------------------


def describe(
    ref: np.ndarray,
    pred: np.ndarray | None = None,
    image: np.ndarray | None = None,
    *,
    spacing: Sequence[float] | None = None,
    shape: Sequence[int] | None = None,
    offset: Sequence[int] | None = None,
    image_std: Sequence[float] | np.ndarray | None = None,
    with_image: bool | None = None,
    ring_width: int = RING_WIDTH,
    boundary_width: int = BOUNDARY_WIDTH,
) -> dict[str, float]:
    """Descriptors of one structure -> ``{"desc_size": ..., ...}`` (module docstring; NaN = undefined).

    Args:
        ref: reference mask ``[*S]`` (bool or 0/1; 2D or 3D), possibly a crop of the image that
            keeps at least ``ring_width`` voxels around the structure.
        pred: predicted mask ``[*S]`` (None: no error descriptors).
        image: ``[C, *S]`` or ``[*S]`` over the same grid (None: no image descriptors).
        spacing: voxel size per axis (mm; None: 1).
        shape: shape of the whole image when ``ref`` is a crop (default ``ref.shape``).
        offset: index of the crop's first voxel in the whole image (default zeros).
        image_std: standard deviation of each channel over the whole image (default: over ``image``).
        with_image: include the image columns (NaN without an image); default: when ``image`` is given.
        ring_width: width of the contrast ring (voxels, face-connected steps).
        boundary_width: boundary band of ``error_boundary_share`` (voxels, face-connected steps).
    """
    ref = np.asarray(ref).astype(bool, copy=False)
    ndim = ref.ndim
    if ndim not in (2, 3):
        raise ValueError(f"reference shape {ref.shape}: expected a 2D or 3D mask")
    s = _spacing(spacing, ndim)
    full = np.asarray(ref.shape if shape is None else shape, dtype=np.float64)
    start = np.zeros(ndim) if offset is None else np.asarray(offset, dtype=np.float64)
    with_image = image is not None if with_image is None else with_image
    out: dict[str, float] = {name: math.nan for name in column_names(ndim, image=with_image, error=pred is not None)}
    mask = None if pred is None else np.asarray(pred).astype(bool, copy=False)
    box = bounding_box(ref, margin=max(int(ring_width), int(boundary_width)) + 1)
    if box is None:  # no reference: only the false positives
        if mask is not None:
            out.update(_error(ref, mask, s, int(boundary_width)))
        return {PREFIX + k: float(v) for k, v in out.items()}
    sub = ref[box]
    out.update(_structure(sub, s, full, start + np.array([b.start for b in box])))
    if image is not None:
        img = np.asarray(image, dtype=np.float64)
        img = img[None] if img.ndim == ndim else img
        std = np.asarray(image_std, dtype=np.float64) if image_std is not None else img.reshape(len(img), -1).std(1)
        out.update(_image(img[(slice(None), *box)], sub, s, int(ring_width), std))
    if mask is not None:
        out.update(_error(sub, mask[box], s, int(boundary_width)))
        outside = int(mask.sum()) - int(mask[box].sum())  # predicted far from the reference: false positives
        if outside:
            _add_far_positives(out, outside, float(np.prod(s)), int(sub.sum()))
    return {PREFIX + k: float(v) for k, v in out.items()}


def _add_far_positives(out: dict[str, float], n: int, voxel: float, n_ref: int) -> None:
    """Count ``n`` false positives beyond the reference's box (none of them near its surface)."""
    wrong = (out["fp_size"] + out["fn_size"]) / voxel
    near = out["error_boundary_share"] * wrong if wrong else 0.0
    out["fp_size"] += n * voxel
    out["volume_error"] += n / n_ref
    out["error_boundary_share"] = near / (wrong + n)


def column_names(ndim: int, *, image: bool = True, error: bool = True) -> list[str]:
    """Descriptor names (without the prefix) of a ``ndim``-D structure, in column order."""
    names = [d.name for d in DESCRIPTORS if d.source == "reference"]
    names[names.index("centre_distance") : names.index("centre_distance")] = [f"centroid_{i}" for i in range(ndim)]
    if image:
        names += [d.name for d in DESCRIPTORS if d.source == "image"]
    if error:
        names += [d.name for d in DESCRIPTORS if d.source == "error"]
    return names


# ---- cases -------------------------------------------------------------------------------------


def read_image(path: Any) -> np.ndarray:
    """An image file as ``[C, *S]`` float32 (MONAI ``LoadImage`` through the data layer's reader,
    the reader of the label maps, so that both share one orientation)."""
    from duetfair.data.transforms import make_loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = make_loader()(str(path))
    return np.asarray(img.detach().cpu().numpy() if hasattr(img, "detach") else img, dtype=np.float32)


def image_std(image: np.ndarray) -> np.ndarray:
    """Standard deviation of each channel of ``image [C, *S]`` -> ``[C]``."""
    return image.reshape(len(image), -1).std(1)


def describe_crop(
    ref: np.ndarray,
    pred: np.ndarray,
    box: Sequence[slice],
    shape: Sequence[int],
    spacing: Sequence[float] | None,
    image: np.ndarray | None = None,
    std: np.ndarray | None = None,
    *,
    with_image: bool = False,
) -> dict[str, float]:
    """:func:`describe` of masks cropped to ``box`` of an image of ``shape`` (``image [C, *shape]``,
    the whole image, cropped here; ``std`` its channels' standard deviations)."""
    crop = None if image is None else image[(slice(None), *box)]
    return describe(
        ref,
        pred,
        crop,
        spacing=spacing,
        shape=shape,
        offset=[b.start or 0 for b in box],
        image_std=std,
        with_image=with_image,
    )


def describe_batch(
    pred: np.ndarray,
    target: np.ndarray,
    classes: Sequence[int],
    *,
    image: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Descriptors of a batch, one row per (case, class) in the order of
    :func:`~duetfair.metrics.per_case.per_case_metrics`: ``pred`` / ``target`` ``[B, *S]`` class
    maps, ``image [B, C, *S]`` (optional)."""
    rows = []
    for b in range(pred.shape[0]):
        fg = (pred[b] > 0) | (target[b] > 0)
        box = bounding_box(fg, IMAGE_MARGIN) or tuple(slice(0, n) for n in fg.shape)
        img = None if image is None else np.asarray(image[b], dtype=np.float64)
        std = None if img is None else image_std(img)
        p, t = pred[b][box], target[b][box]
        for c in classes:
            rows.append(describe_crop(t == c, p == c, box, fg.shape, spacing, img, std, with_image=img is not None))
    return pd.DataFrame(rows)


# ---- tables ------------------------------------------------------------------------------------


def descriptor_columns(table: pd.DataFrame) -> list[str]:
    """The descriptor columns of a table, in table order."""
    return [c for c in table.columns if is_descriptor(c)]


def case_descriptors(cases: pd.DataFrame) -> pd.DataFrame:
    """One row per case: ``case_id`` and its descriptors.

    A table with one structure per case (no ``class`` column, or one class) keeps the columns as
    they are; with several classes every descriptor becomes one column per class,
    ``desc_<name>[<class>]`` (e.g. ``desc_contrast[cup]``), as the audit names per-class metrics.
    """
    cols = descriptor_columns(cases)
    if "class" not in cases.columns or cases["class"].nunique(dropna=True) <= 1:
        return cases[["case_id", *cols]].drop_duplicates("case_id").reset_index(drop=True)
    wide = cases.pivot_table(index="case_id", columns="class", values=cols, aggfunc="first", dropna=False, sort=False)
    classes = list(dict.fromkeys(cases["class"].dropna()))
    ordered = [(c, k) for k in classes for c in cols if (c, k) in wide.columns]
    wide = wide[ordered]
    wide.columns = [f"{c}[{k}]" for c, k in ordered]
    return wide.reset_index()
