"""Where a label map lies in physical space: a prediction is compared to its reference voxel by
voxel only when both lie on the same grid.

Two NIfTI files can hold the same mask in different voxel orders (RAS and LAS: one axis stored
backwards), and two files of the same shape can lie at different places (an origin 100 mm away).
Comparing their arrays voxel by voxel gives Dice 0 for the first pair and 1 for the second: silent
wrong numbers. :func:`align_to_reference` brings the prediction into the reference's voxel order
(axis flips and permutations, computed with nibabel's orientation tools from both affines) and then
requires the two affines to agree within :data:`AFFINE_TOL` of a voxel; anything else (another
origin, spacing, rotation or field of view) is refused with one line naming the case and both
affines, since resampling is a modelling choice the user must make.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duetfair.errors import DuetfairError

AFFINE_TOL = 1e-3
"""Largest difference of two affines still read as the same grid, as a fraction of the voxel size
(each column of the voxel axes relative to its length, the origin relative to the smallest voxel)."""


def affine_matrix(image: Any) -> np.ndarray | None:
    """The ``(D+1, D+1)`` voxel-to-world affine of a MONAI ``MetaTensor`` (None without one)."""
    affine = getattr(image, "affine", None)
    if affine is None:
        return None
    arr = np.asarray(affine.detach().cpu().numpy() if hasattr(affine, "detach") else affine, dtype=np.float64)
    return arr if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and np.isfinite(arr).all() else None


def same_grid(a: np.ndarray, b: np.ndarray, tol: float = AFFINE_TOL) -> bool:
    """True when affines ``a`` and ``b`` place every voxel at the same point, within ``tol`` voxels."""
    if a.shape != b.shape:
        return False
    d = a.shape[0] - 1
    size = np.linalg.norm(b[:d, :d], axis=0)
    if not (size > 0).all():
        return bool(np.allclose(a, b, rtol=0.0, atol=tol))
    axes = np.abs(a[:d, :d] - b[:d, :d]).max(axis=0) <= tol * size
    origin = np.abs(a[:d, d] - b[:d, d]).max() <= tol * size.min()
    return bool(axes.all() and origin)


def fmt_affine(a: np.ndarray) -> str:
    """An affine on one line: rows of its upper part, ``[[2 0 0 -90] [0 2 0 -126] [0 0 2 -72]]``."""
    rows = [" ".join(f"{v:.4g}" for v in row) for row in a[:-1]]
    return "[" + " ".join(f"[{r}]" for r in rows) + "]"


def align_to_reference(
    pred: np.ndarray,
    pred_affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    *,
    case_id: str,
    pred_name: str,
    ref_name: str,
) -> np.ndarray:
    """``pred`` ``[*S']`` in the voxel order of the reference ``[*S]``, or a one-line error.

    Returns ``pred`` itself when the affines agree; otherwise its axes flipped and permuted to the
    reference's orientation (nibabel ``io_orientation`` / ``ornt_transform`` /
    ``apply_orientation``), which must then lie on the reference's grid (:func:`same_grid`).
    """
    if pred_affine.shape == ref_affine.shape and tuple(pred.shape) == tuple(ref_shape):
        if same_grid(pred_affine, ref_affine):
            return pred
    moved, affine = pred, pred_affine
    if pred_affine.shape == ref_affine.shape and pred.ndim == ref_affine.shape[0] - 1:
        from nibabel import orientations as ornt

        transform = ornt.ornt_transform(ornt.io_orientation(pred_affine), ornt.io_orientation(ref_affine))
        moved = ornt.apply_orientation(pred, transform)
        affine = pred_affine @ ornt.inv_ornt_aff(transform, pred.shape)
    if tuple(moved.shape) == tuple(ref_shape) and same_grid(affine, ref_affine):
        return np.ascontiguousarray(moved)
    raise DuetfairError(
        f"case '{case_id}': the prediction ({pred_name}, shape {tuple(pred.shape)}) and the reference "
        f"({ref_name}, shape {tuple(ref_shape)}) lie on different grids in physical space: affine "
        f"{fmt_affine(pred_affine)} vs {fmt_affine(ref_affine)}; resample the prediction onto the reference grid"
    )
