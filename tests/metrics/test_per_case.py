"""Per-case metrics: agreement with MONAI, empty-mask policies, spacing, shapes."""

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

from duetfair.errors import DuetfairError
from duetfair.metrics.per_case import per_case_metrics


def _random_maps(shape, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    # blobs: smooth random fields thresholded, so surfaces are non-trivial
    field = torch.rand((2, *shape), generator=g)
    pred = torch.zeros(shape, dtype=torch.long)
    target = torch.zeros(shape, dtype=torch.long)
    for c in range(1, num_classes):
        pred[field[0] > 1 - c / (num_classes + 1)] = c
        target[field[1] > 1 - c / (num_classes + 1)] = c
    return pred, target


def _onehot(x, k):
    return torch.nn.functional.one_hot(x, k).movedim(-1, 1).float()


@pytest.mark.parametrize("shape,spacing", [((3, 24, 20), None), ((2, 12, 10, 8), (1.5, 0.8, 2.0))])
def test_agrees_with_monai(shape, spacing):
    k = 3
    pred, target = _random_maps(shape, k, seed=len(shape))
    df = per_case_metrics(pred, target, num_classes=k, spacing=spacing, nsd_tolerance=1.5)
    p, t = _onehot(pred, k), _onehot(target, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {
            "dice": compute_dice(p, t, include_background=False),
            "iou": compute_iou(p, t, include_background=False),
            "hd95": compute_hausdorff_distance(p, t, include_background=False, percentile=95, spacing=spacing),
            "nsd": compute_surface_dice(p, t, [1.5, 1.5], include_background=False, spacing=spacing),
        }
    for name, val in ref.items():
        np.testing.assert_allclose(df[name].to_numpy(), val.numpy().reshape(-1), atol=1e-6, rtol=0, err_msg=name)
    assert list(df["class"]) == [1, 2] * shape[0]
    np.testing.assert_allclose(df["normhd"], df["hd95"] / 150.0)
    assert (df["n_ref"] == [(target[b] == c).sum().item() for b in range(shape[0]) for c in (1, 2)]).all()


def _pair(ref_empty, pred_empty):
    pred = torch.zeros(1, 10, 10, dtype=torch.long)
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    if not pred_empty:
        pred[0, 2:6, 2:6] = 1
    if not ref_empty:
        target[0, 3:7, 3:7] = 1
    return pred, target


# (ref_empty, pred_empty) -> expected (dice, iou, hd95, nsd, normhd) per policy; the "fairseg" row is
# calculate_metric_percase of the FairSeg code (Dice, HD95, Jaccard) plus MONAI's own NSD convention
EXPECTED = {
    # nnU-Net v2: Dice = IoU = 0 whenever TP + FP + FN > 0, NaN only when both masks are empty
    "nnunet": {
        (True, True): (np.nan,) * 5,
        (True, False): (0, 0, np.inf, 0, 1),
        (False, True): (0, 0, np.inf, 0, 1),
    },
    "nan": {(True, True): (np.nan,) * 5, (True, False): (np.nan,) * 5, (False, True): (0, 0, np.inf, 0, 1)},
    "fairseg": {(True, True): (0, 0, 0, np.nan, 0), (True, False): (1, 1, 0, 0, 0), (False, True): (0, 0, 0, 0, 0)},
    "mamamia": {
        (True, True): (0, 0, 0, 0, 0),
        (True, False): (0, 0, np.inf, 0, 1),
        (False, True): (0, 0, np.inf, 0, 1),
    },
}


@pytest.mark.parametrize("empty", ["nnunet", "nan", "fairseg", "mamamia"])
@pytest.mark.parametrize("ref_empty,pred_empty", [(True, True), (True, False), (False, True), (False, False)])
def test_empty_policies(empty, ref_empty, pred_empty):
    pred, target = _pair(ref_empty, pred_empty)
    row = per_case_metrics(pred, target, num_classes=2, empty=empty).iloc[0]
    assert row["n_ref"] == (0 if ref_empty else 16) and row["n_pred"] == (0 if pred_empty else 16)
    got = tuple(row[m] for m in ("dice", "iou", "hd95", "nsd", "normhd"))
    if not ref_empty and not pred_empty:
        assert row["dice"] == pytest.approx(2 * 9 / 32) and row["iou"] == pytest.approx(9 / 23)
        assert np.isfinite(row["hd95"]) and 0 < row["nsd"] <= 1
        return
    np.testing.assert_array_equal(
        np.array(got, dtype=float), np.array(EXPECTED[empty][(ref_empty, pred_empty)], dtype=float)
    )


def test_default_policy_is_nnunets_dice():
    """The default scores a false positive on a case without the structure as nnU-Net v2 does:
    Dice = 2 TP / (2 TP + FP + FN) = 0, a failure, not an undefined value that leaves the means."""
    pred, target = _pair(ref_empty=True, pred_empty=False)
    row = per_case_metrics(pred, target, num_classes=2).iloc[0]
    assert row["dice"] == 0.0 and row["iou"] == 0.0 and row["hd95"] == np.inf


def _blob_maps(shape, seed):
    """Two maps of smooth random blobs with classes 1 (ring) and 2 (core), both non-empty."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(2):
        f = np.stack([gaussian_filter(x, 2.5) for x in rng.random(shape)])
        lo, hi = (np.quantile(f.reshape(shape[0], -1), q, axis=1)[:, None, None] for q in (0.6, 0.85))
        maps.append(torch.as_tensor((f > lo).astype(np.int64) + (f > hi)))
    return maps[0], maps[1]


def _surface_points(mask, spacing):
    """Surface pixels (a 4-neighbour outside the mask or the image) as physical coordinates."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return np.argwhere(mask & ~inner) * np.asarray(spacing)


def _brute_pooled_hd95(a, b, spacing=(1.0, 1.0)):
    """Pooled 95th percentile of both directed surface distances, by brute force."""
    pa, pb = _surface_points(a, spacing), _surface_points(b, spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return np.percentile(np.concatenate([d.min(1), d.min(0)]), 95)


@pytest.mark.parametrize("spacing", [None, (0.5, 2.0)])
def test_fairseg_hd95_is_pooled_like_the_fairseg_code(spacing):
    pred, target = _blob_maps((4, 30, 26), seed=7)
    pred[1, 10:20, 5:15] = 1  # a filled square among blobs: unequal directed distances
    df = per_case_metrics(
        pred, target, num_classes=3, metrics=("dice", "iou", "hd95"), empty="fairseg", spacing=spacing
    )
    ref = [
        _brute_pooled_hd95((pred[b] == c).numpy(), (target[b] == c).numpy(), spacing or (1.0, 1.0))
        for b in range(4)
        for c in (1, 2)
    ]
    np.testing.assert_allclose(df["hd95"], ref, rtol=0, atol=1e-9)
    monai = per_case_metrics(pred, target, num_classes=3, metrics=("dice", "iou", "hd95"), spacing=spacing)
    assert (df["hd95"] != monai["hd95"]).any()  # MONAI: max of the two directed percentiles
    np.testing.assert_array_equal(df[["dice", "iou"]], monai[["dice", "iou"]])  # same counts-based Dice / IoU


def test_fairseg_policy_mixed_batch_cells():
    """Every empty cell of the FairSeg table in one batch, next to a scored pair."""
    pred = torch.zeros(4, 12, 12, dtype=torch.long)
    target = torch.zeros(4, 12, 12, dtype=torch.long)
    pred[0, 2:6, 2:6] = 1  # only the reference empty
    target[1, 2:6, 2:6] = 1  # only the prediction empty
    pred[3, 2:8, 2:8] = 1  # both present
    target[3, 3:8, 3:8] = 1
    df = per_case_metrics(pred, target, num_classes=2, empty="fairseg", nsd_tolerance=5.0)
    np.testing.assert_array_equal(df["dice"][:3], [1, 0, 0])
    np.testing.assert_array_equal(df["iou"][:3], [1, 0, 0])
    np.testing.assert_array_equal(df["hd95"][:3], [0, 0, 0])
    np.testing.assert_array_equal(df["nsd"][:3], [0, 0, np.nan])
    assert df["dice"][3] == pytest.approx(2 * 25 / 61) and df["iou"][3] == pytest.approx(25 / 36)
    assert df["hd95"][3] == pytest.approx(_brute_pooled_hd95((pred[3] == 1).numpy(), (target[3] == 1).numpy()))


def test_spacing_scales_distances_and_case_ids():
    pred, target = _pair(False, False)
    a = per_case_metrics(pred, target, num_classes=2, metrics=("hd95",))
    b = per_case_metrics(pred, target, num_classes=2, metrics=("hd95",), spacing=2.0, case_ids=["x"])
    assert b["hd95"].iloc[0] == pytest.approx(2 * a["hd95"].iloc[0])
    assert list(b.columns) == ["case", "case_id", "class", "hd95", "normhd", "n_ref", "n_pred"]


def test_channel_dim_and_numpy_input():
    pred, target = _pair(False, False)
    df = per_case_metrics(pred.numpy()[:, None], target[:, None], num_classes=2, metrics=("dice",))
    assert df["dice"].iloc[0] == pytest.approx(18 / 32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"empty": "zero"}, "empty"),
        ({"metrics": ("dice", "ssim")}, "ssim"),
        ({"num_classes": 1}, "num_classes"),
        ({"classes": [5]}, "classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    pred, target = _pair(False, False)
    args = {"num_classes": 2, **kwargs}
    with pytest.raises(DuetfairError, match=match):
        per_case_metrics(pred, target, **args)


def test_shape_and_range_errors():
    with pytest.raises(DuetfairError, match="differs"):
        per_case_metrics(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long), num_classes=2)
    with pytest.raises(DuetfairError, match="class ids"):
        per_case_metrics(torch.full((1, 4, 4), 3), torch.zeros(1, 4, 4, dtype=torch.long), num_classes=2)
