"""Fast paths of mask-folder scoring when only overlap metrics (Dice, IoU) are asked for.

* :func:`read_nifti_labels`: a NIfTI label map read with nibabel as MONAI's ``NibabelReader``
  reads it (same values, index order, affine and spacing = the column norms of the affine, as
  MONAI's ``affine_to_spacing``), but without MONAI's conversions, which copy and transpose the
  whole volume several times (most of the reading time of a 128^3 mask). The array keeps the
  file's dtype and memory order.
* :func:`overlap_rows`: Dice, IoU, ``n_ref`` and ``n_pred`` of every scored structure (labels and
  unions of labels) from one joint histogram of (reference label, predicted label) over the
  volume: one pass, however many structures; the numbers are those of
  :func:`~duetfair.metrics.per_case.per_case_metrics` (same formulas on the same counts, same
  empty-mask policy; tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_nifti_labels(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray] | None:
    """``(array [*S] in the file's dtype, spacing per axis, affine 4x4)`` of a 2D / 3D NIfTI label
    map (a trailing axis of length 1 is dropped); None for anything else (the caller then reads it
    with MONAI, which refuses several volumes). Unreadable files raise nibabel's error."""
    import nibabel as nib

    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        return None
    img: Any = nib.load(str(path))
    arr = np.asanyarray(img.dataobj)
    if arr.ndim == 4 and arr.shape[-1] >= 1:
        if arr.shape[-1] > 1:
            return None  # several volumes (a 4D series, channels): MONAI's path refuses it
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or arr.dtype.kind not in "uib" or not isinstance(arr, np.ndarray):
        return None
    affine = np.asarray(img.affine, dtype=np.float64)
    rank = arr.ndim
    spacing = tuple(float(v) for v in np.sqrt((affine[:rank, :rank] ** 2).sum(axis=0)))
    return arr, spacing, affine


def joint_counts(pred: np.ndarray, ref: np.ndarray, k: int) -> np.ndarray:
    """``C[r, p]`` = voxels with reference label r and predicted label p ([k, k]; labels < k)."""
    r = ref.ravel(order="K")
    p = pred.ravel(order="K")
    if pred.flags.f_contiguous != ref.flags.f_contiguous:  # the same voxel order on both sides
        p = np.asarray(pred, order="C" if ref.flags.c_contiguous else "F").ravel(order="K")
    code = r.astype(np.intp) * k + p
    return np.bincount(code, minlength=k * k).reshape(k, k)


def overlap_rows(
    pred: np.ndarray, ref: np.ndarray, structures: Sequence[Any], *, metrics: Sequence[str], empty: str
) -> pd.DataFrame:
    """One row per structure (``class``, Dice / IoU as asked, ``n_ref``, ``n_pred``).

    Args:
        pred, ref: integer label maps of one case, same shape (labels >= 0).
        structures: objects with ``name`` and ``ids`` (:class:`~duetfair.metrics.folders.Region`):
            a label is a structure of one id, a region the union of its ids.
        metrics: subset of ``("dice", "iou")``.
        empty: empty-mask policy of :func:`~duetfair.metrics.per_case.per_case_metrics`.
    """
    from duetfair.metrics.per_case import apply_empty_policy, overlap_metrics

    k = int(max(int(pred.max(initial=0)), int(ref.max(initial=0)))) + 1
    counts = joint_counts(pred, ref, k)
    tp, n_ref, n_pred = [], [], []
    for s in structures:
        ids = [i for i in s.ids if i < k]
        tp.append(int(counts[np.ix_(ids, ids)].sum()) if ids else 0)
        n_ref.append(int(counts[ids, :].sum()) if ids else 0)
        n_pred.append(int(counts[:, ids].sum()) if ids else 0)
    nr, npd = np.asarray(n_ref, dtype=np.int64), np.asarray(n_pred, dtype=np.int64)
    values = overlap_metrics(np.asarray(tp), nr, npd, metrics)
    apply_empty_policy(values, nr, npd, empty)
    table: dict[str, Any] = {"class": [s.name for s in structures]}
    table.update({m: values[m] for m in ("dice", "iou") if m in values})
    table["n_ref"], table["n_pred"] = nr, npd
    return pd.DataFrame(table)
