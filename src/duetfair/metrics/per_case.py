"""Per-case segmentation metrics: Dice, IoU, HD95, NormHD, NSD and voxel counts, per class.

Input is a batch of integer label maps ``pred`` and ``target`` of shape [B, H, W] or [B, H, W, D]
(class ids, 0 = background). Output is the per-case table: one row per (case, class).

* Dice and IoU come from voxel counts (identical to MONAI ``compute_dice`` / ``compute_iou``).
* HD95 (symmetric 95th percentile surface distance) and NSD (surface Dice at ``nsd_tolerance``)
  are MONAI's ``compute_hausdorff_distance(percentile=95)`` and ``compute_surface_dice``, in the
  unit of ``spacing`` (pixels/voxels when None); the ``"fairseg"`` policy pools HD95 (see below).
* NormHD = HD95 / ``hd_max`` (150 mm, MAMA-MIA); 1 when HD95 is inf.

Empty masks (``n_ref`` or ``n_pred`` = 0) follow the named ``empty`` policy (the values are
``EMPTY_FILL``, derived from :mod:`duetfair.metrics.registry`):

============== =========================== =========================== ===========================
policy         ref empty, pred empty       ref empty, pred not         ref not, pred empty
============== =========================== =========================== ===========================
``"nnunet"``   all NaN                     Dice/IoU/NSD 0, HD95 inf    Dice/IoU/NSD 0, HD95 inf
``"nan"``      all NaN                     all NaN                     Dice/IoU/NSD 0, HD95 inf
``"fairseg"``  Dice/IoU/HD95 0, NSD NaN    Dice/IoU 1, HD95 0, NSD 0   Dice/IoU/HD95 0, NSD 0
``"mamamia"``  Dice/IoU/NSD 0, HD95 0      Dice/IoU/NSD 0, HD95 inf    Dice/IoU/NSD 0, HD95 inf
============== =========================== =========================== ===========================

``"nnunet"`` (default) is nnU-Net v2's evaluator (``compute_metrics`` in
``nnunetv2/evaluation/evaluate_predictions.py``): Dice = 2 TP / (2 TP + FP + FN) and IoU = TP /
(TP + FP + FN), NaN only when TP + FP + FN = 0, so a structure predicted on a case that has none (a
false positive on a healthy case) scores 0 and counts as a failure, as a total miss does. NSD is 0
there too (MONAI ``compute_surface_dice`` with one surface empty) and HD95, which nnU-Net does not
compute, is infinite: the audit counts infinite distances as failures and leaves them out of the
means (see ``docs/conventions.md``). ``"nan"`` treats every metric as undefined when the reference
is empty (MONAI ``DiceMetric``'s ``ignore_empty=True`` for Dice and IoU): such cases leave the means,
so a false positive on a healthy case is not seen. ``"mamamia"`` reproduces the MAMA-MIA challenge
scoring.

``"fairseg"`` reproduces the Harvard-FairSeg evaluation (``calculate_metric_percase`` in
``TransUNet/utils.py`` / ``SAMed/utils.py`` of Harvard-Ophthalmology-AI-Lab/FairSeg, also used by
the dMoE code): Dice, HD95 and Jaccard (IoU) are (1, 0, 1) when only the prediction is non-empty
and (0, 0, 0) whenever the prediction is empty; NSD there is MONAI ``compute_surface_dice``, whose
own convention is kept (NaN without any surface, 0 when one mask is empty). For non-empty pairs the
policy also takes HD95 as that code does (medpy ``binary.hd95``): the 95th percentile of the pooled
distances of both surfaces, where MONAI takes the larger of the two directed 95th percentiles.
The FairSeg code computes NSD with a 5-pixel tolerance (``nsd_tolerance=5``); it also reports
ASD (0 whenever a mask is empty), which this module does not compute.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import require
from duetfair.metrics.registry import EMPTY_FILL, SCORED_METRICS, TABLE_METRICS, check_scored
from duetfair.options import EmptyPolicy, parse

METRICS = SCORED_METRICS
"""Metric names accepted by :func:`per_case_metrics` (``normhd`` comes with ``hd95``; from the registry)."""

HD_MAX_MAMAMIA = 150.0
"""Normalisation of HD95 in the MAMA-MIA challenge (mm)."""


def _as_long(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    require(
        not t.is_floating_point() or bool(torch.all(t == t.round())),
        f"{name}: expected an integer label map, got non-integer values",
    )
    return t.long().cpu()


def _spacing_list(
    spacing: float | Sequence[float] | Sequence[Sequence[float]] | None, batch: int, dims: int
) -> list[list[float]] | None:
    if spacing is None:
        return None
    arr = np.asarray(spacing, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((batch, dims), float(arr))
    elif arr.ndim == 1:
        require(arr.shape[0] == dims, f"spacing: {arr.shape[0]} values for {dims} spatial dimensions")
        arr = np.broadcast_to(arr, (batch, dims))
    else:
        require(
            arr.shape == (batch, dims),
            f"spacing: shape {tuple(arr.shape)}; expected ({batch}, {dims}) for per-case spacing",
        )
    require(bool(np.all(arr > 0)), "spacing: values must be > 0")
    return [list(map(float, row)) for row in arr]


def _one_hot(labels: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """[B, *S] class map -> [B, C+1, *S] float one-hot with a dummy background channel 0."""
    masks = [labels == c for c in classes]
    background = ~torch.stack(masks, 0).any(0)
    return torch.stack([background, *masks], 1).float()


def _surface_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    classes: Sequence[int],
    spacing: list[list[float]] | None,
    want: set[str],
    nsd_tolerance: float,
) -> dict[str, np.ndarray]:
    """MONAI HD95 / NSD per (case, class) -> arrays [B, C] (NaN where MONAI leaves them undefined)."""
    if not want & {"hd95", "nsd"}:
        return {}
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    p, t = _one_hot(pred, classes), _one_hot(target, classes)
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "hd95" in want:
            hd = compute_hausdorff_distance(p, t, include_background=False, percentile=95, spacing=spacing)
            out["hd95"] = hd.double().numpy()
        if "nsd" in want:
            nsd = compute_surface_dice(
                p, t, [float(nsd_tolerance)] * len(classes), include_background=False, spacing=spacing
            )
            out["nsd"] = nsd.double().numpy()
    return out


def _apply_empty_policy(values: dict[str, np.ndarray], n_ref: np.ndarray, n_pred: np.ndarray, empty: str) -> None:
    """Overwrite metrics of empty-mask (case, class) pairs in place, following ``EMPTY_FILL[empty]``."""
    ref_empty, pred_empty = n_ref == 0, n_pred == 0
    cells = {"both": ref_empty & pred_empty, "ref": ref_empty & ~pred_empty, "pred": ~ref_empty & pred_empty}
    for cell, fill in EMPTY_FILL[empty].items():
        for name, val in fill.items():
            if name in values:
                values[name][cells[cell]] = val


def overlap_metrics(
    tp: np.ndarray, n_ref: np.ndarray, n_pred: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Dice = 2 TP / (n_ref + n_pred) and IoU = TP / (n_ref + n_pred - TP) from voxel counts (any
    shape, float64; NaN where both masks are empty, before the empty-mask policy)."""
    tp = np.asarray(tp, dtype=np.float64)
    values: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "dice" in metrics:
            values["dice"] = 2.0 * tp / (n_pred + n_ref)
        if "iou" in metrics:
            values["iou"] = tp / (n_pred + n_ref - tp)
    return values


def apply_empty_policy(values: dict[str, np.ndarray], n_ref: np.ndarray, n_pred: np.ndarray, empty: str) -> None:
    """Overwrite metrics of empty-mask pairs in place following the named policy (``EMPTY_FILL``)."""
    _apply_empty_policy(values, np.asarray(n_ref), np.asarray(n_pred), str(parse(EmptyPolicy, empty, "empty")))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface pixels/voxels: the mask minus its erosion by the face-connected structure."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def _pooled_hd95_pair(a: np.ndarray, b: np.ndarray, spacing: list[float] | None) -> float:
    """95th percentile of the distances of both surfaces to each other, pooled (medpy ``hd95``)."""
    from scipy import ndimage

    sa, sb = _surface(a), _surface(b)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))


def pooled_hd95(
    pred: torch.Tensor, target: torch.Tensor, classes: Sequence[int], spacing: list[list[float]] | None = None
) -> np.ndarray:
    """HD95 as the Harvard-FairSeg evaluation computes it, per (case, class) -> [B, C].

    Pairs where either mask is empty are NaN (the empty policy fills them).
    """
    p, t = pred.numpy(), target.numpy()
    out = np.full((p.shape[0], len(classes)), np.nan)
    for b in range(p.shape[0]):
        for j, c in enumerate(classes):
            a, r = p[b] == c, t[b] == c
            if a.any() and r.any():
                out[b, j] = _pooled_hd95_pair(a, r, spacing[b] if spacing else None)
    return out


def per_case_metrics(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    *,
    num_classes: int,
    classes: Sequence[int] | None = None,
    spacing: float | Sequence[float] | Sequence[Sequence[float]] | None = None,
    metrics: Sequence[str] = ("dice", "iou", "hd95", "nsd"),
    nsd_tolerance: float = 1.0,
    empty: str = "nnunet",
    hd_max: float = HD_MAX_MAMAMIA,
    case_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-case, per-class metrics of a batch of label maps.

    Args:
        pred: predicted class map [B, H, W] or [B, H, W, D] (int; a [B, 1, ...] channel is squeezed).
        target: reference class map of the same shape.
        num_classes: number of classes including background (class ids in ``[0, num_classes)``).
        classes: classes to score (default: every foreground class ``1..num_classes-1``).
        spacing: voxel size: a scalar, one value per spatial axis, or [B, dims] per case. Distances
            (HD95, NSD tolerance) are in this unit (pixels/voxels when None).
        metrics: subset of ``("dice", "iou", "hd95", "nsd")``; ``hd95`` also yields ``normhd``.
        nsd_tolerance: NSD tolerance in the unit of ``spacing``.
        empty: empty-mask policy ``"nnunet"`` (default: nnU-Net v2's Dice / IoU; a structure
            predicted where the reference has none scores 0), ``"nan"`` (undefined whenever the
            reference is empty), ``"fairseg"`` (also pooled HD95, as the FairSeg code) or
            ``"mamamia"``; see the module docstring.
        hd_max: NormHD normaliser (MAMA-MIA: 150 mm).
        case_ids: optional B case ids, written as a ``case_id`` column.

    Returns:
        DataFrame with one row per (case, class): ``case`` (batch index), [``case_id``], ``class``,
        the requested metrics (``dice, iou, hd95, normhd, nsd``), ``n_ref``, ``n_pred`` (voxels).
    """
    empty = parse(EmptyPolicy, empty, "empty")
    metrics = check_scored(list(metrics))
    require(
        isinstance(num_classes, int) and num_classes >= 2,
        f"num_classes={num_classes!r}; expected an integer >= 2 (background included)",
    )
    require(nsd_tolerance >= 0, f"nsd_tolerance={nsd_tolerance!r}; expected >= 0")
    p, t = _as_long(pred, "pred"), _as_long(target, "target")
    if p.ndim in (4, 5) and p.shape[1] == 1:
        p = p[:, 0]
    if t.ndim in (4, 5) and t.shape[1] == 1:
        t = t[:, 0]
    require(p.shape == t.shape, f"pred shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}")
    require(p.ndim in (3, 4), f"pred shape {tuple(p.shape)}: expected [B, H, W] or [B, H, W, D]")
    for name, x in (("pred", p), ("target", t)):
        require(bool(((x >= 0) & (x < num_classes)).all()), f"{name}: class ids must lie in [0, {num_classes})")
    classes = list(range(1, num_classes)) if classes is None else [int(c) for c in classes]
    require(
        len(classes) >= 1 and all(0 <= c < num_classes for c in classes),
        f"classes={classes}; expected ids in [0, {num_classes})",
    )
    batch, dims = p.shape[0], p.ndim - 1
    require(case_ids is None or len(case_ids) == batch, f"case_ids: {len(case_ids or [])} ids for a batch of {batch}")
    spacing_list = _spacing_list(spacing, batch, dims)

    flat_p, flat_t = p.reshape(batch, -1), t.reshape(batch, -1)
    cls = torch.tensor(classes).view(1, -1, 1)
    pm, tm = flat_p.unsqueeze(1) == cls, flat_t.unsqueeze(1) == cls  # [B, C, N]
    tp = (pm & tm).sum(-1).double().numpy()
    n_pred = pm.sum(-1).numpy().astype(np.int64)
    n_ref = tm.sum(-1).numpy().astype(np.int64)
    values = overlap_metrics(tp, n_ref, n_pred, metrics)
    pooled = empty == "fairseg" and "hd95" in metrics
    want = set(metrics) - ({"hd95"} if pooled else set())
    values.update(_surface_metrics(p, t, classes, spacing_list, want, nsd_tolerance))
    if pooled:
        values["hd95"] = pooled_hd95(p, t, classes, spacing_list)
    _apply_empty_policy(values, n_ref, n_pred, empty)
    if "hd95" in values:
        hd = values["hd95"]
        with np.errstate(invalid="ignore"):
            values["normhd"] = np.where(np.isinf(hd), 1.0, hd / float(hd_max))

    case_idx = np.repeat(np.arange(batch), len(classes))
    table: dict[str, object] = {"case": case_idx}
    if case_ids is not None:
        table["case_id"] = np.repeat(np.asarray(list(case_ids), dtype=object), len(classes))
    table["class"] = np.tile(np.asarray(classes, dtype=np.int64), batch)
    for name in TABLE_METRICS:
        if name in values:
            table[name] = values[name].reshape(-1)
    table["n_ref"] = n_ref.reshape(-1)
    table["n_pred"] = n_pred.reshape(-1)
    return pd.DataFrame(table)
