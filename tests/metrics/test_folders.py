"""Scoring folders of predicted / reference masks: matching, reading, checks, and every metric
against MONAI's functions called directly."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from duetfair.errors import DuetfairError
from duetfair.metrics.folders import (
    Region,
    ScoreSpec,
    compile_pattern,
    list_cases,
    match_folders,
    parse_label_names,
    parse_labels,
    parse_regions,
    score_folders,
    score_pairs,
)

SPACING = (0.8, 0.9, 2.5)
SHAPE3 = (22, 20, 10)
SHAPE2 = (28, 24)


def blob(shape, center, radius, spacing=None):
    """Boolean ellipsoid / ellipse mask (radius in mm when spacing is given)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    sp = spacing or (1.0,) * len(shape)
    d = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, sp))
    return d <= radius**2


def label_map(shape, rng, spacing=None, cup=True):
    """Disc (label 1) with an inner cup (label 2), jittered."""
    c = [n / 2 + rng.uniform(-2, 2) for n in shape]
    unit = min(spacing) if spacing else 1.0
    out = blob(shape, c, rng.uniform(5, 7) * unit, spacing).astype(np.uint8)
    if cup:
        out[blob(shape, c, rng.uniform(2, 3.5) * unit, spacing)] = 2
    return out


def perturb(ref, rng):
    pred = np.roll(ref, int(rng.integers(-2, 3)), axis=0).copy()
    pred[tuple(int(rng.integers(0, n)) for n in ref.shape)] = 1  # an island
    return pred


def save_nifti(arr, path, spacing=SPACING, dtype=np.uint8):
    nib.save(nib.Nifti1Image(arr.astype(dtype), np.diag([*spacing, 1.0])), str(path))


def make_3d(root, n=5, seed=0):
    """preds/ and refs/ with NIfTI label maps; case 'c3' has no cup at all (label 2 absent in both)."""
    rng = np.random.default_rng(seed)
    (root / "preds").mkdir(parents=True)
    (root / "refs").mkdir()
    for i in range(n):
        ref = label_map(SHAPE3, rng, SPACING, cup=i != 3)
        pred = perturb(ref, rng)
        if i == 3:
            pred[pred == 2] = 1
        save_nifti(ref, root / "refs" / f"c{i}.nii.gz")
        save_nifti(pred, root / "preds" / f"c{i}.nii.gz")
    (root / "preds" / "plans.json").write_text("{}")  # ignored: not a label map
    return root / "preds", root / "refs"


def make_2d(root, n=4, seed=1):
    rng = np.random.default_rng(seed)
    (root / "p2").mkdir(parents=True)
    (root / "r2").mkdir()
    for i in range(n):
        ref = label_map(SHAPE2, rng)
        Image.fromarray(ref).save(root / "r2" / f"img{i}_seg.png")
        Image.fromarray(perturb(ref, rng)).save(root / "p2" / f"img{i}.png")
    return root / "p2", root / "r2"


def monai_reference(pred, ref, ids, spacing, tol=1.0):
    """Every metric with MONAI's functions directly on the binary masks of ``ids``."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

    def onehot(x):
        m = torch.as_tensor(np.isin(x, ids))
        return torch.stack([~m, m])[None].float()

    p, r = onehot(pred), onehot(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "dice": float(compute_dice(p, r, include_background=False)[0, 0]),
            "iou": float(compute_iou(p, r, include_background=False)[0, 0]),
            "hd95": float(
                compute_hausdorff_distance(p, r, include_background=False, percentile=95, spacing=list(spacing))[0, 0]
            ),
            "nsd": float(compute_surface_dice(p, r, [tol], include_background=False, spacing=list(spacing))[0, 0]),
        }


def assert_matches_monai(table, pred_dir, ref_dir, structures, spacing, suffix=".nii.gz", ref_suffix=None, tol=1.0):
    from duetfair.metrics.folders import read_label_map

    for cid, part in table.groupby("case_id"):
        pred, _ = read_label_map(pred_dir / f"{cid}{suffix}")
        ref, _ = read_label_map(ref_dir / f"{cid}{ref_suffix or suffix}")
        for cls, ids in structures.items():
            row = part[part["class"] == cls].iloc[0]
            expected = monai_reference(pred, ref, ids, spacing, tol)
            for name, value in expected.items():
                np.testing.assert_allclose(
                    row[name], value, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=f"{cid} {cls} {name}"
                )
            assert row["n_ref"] == int(np.isin(ref, ids).sum()) and row["n_pred"] == int(np.isin(pred, ids).sum())


@pytest.fixture(scope="module")
def folders3d(tmp_path_factory):
    return make_3d(tmp_path_factory.mktemp("f3"))


def test_3d_multiclass_and_region_match_monai(folders3d):
    preds, refs = folders3d
    table = score_folders(preds, refs, regions=[Region("disc", (1, 2))], labels=[1, 2], nsd_tolerance=2.0)
    assert list(table.columns) == ["case_id", "class", "dice", "iou", "hd95", "normhd", "nsd", "n_ref", "n_pred"]
    assert table["case_id"].tolist() == [f"c{i}" for i in range(5) for _ in range(3)]
    assert table["class"].tolist()[:3] == [1, 2, "disc"]
    assert_matches_monai(table, preds, refs, {1: (1,), 2: (2,), "disc": (1, 2)}, SPACING, tol=2.0)
    absent = table[(table["case_id"] == "c3") & (table["class"] == 2)].iloc[0]
    assert absent["n_ref"] == 0 and absent["n_pred"] == 0 and np.isnan(absent["dice"])  # both empty: NaN


def test_labels_found_in_references_and_names(folders3d):
    preds, refs = folders3d
    table = score_folders(preds, refs, label_names=parse_label_names("rim,cup", None), metrics=("dice", "iou"))
    assert list(table.columns) == ["case_id", "class", "dice", "iou", "n_ref", "n_pred"]
    assert table["class"].tolist() == ["rim", "cup"] * 5  # c3 lacks label 2 in both masks: row filled
    row = table[(table["case_id"] == "c3") & (table["class"] == "cup")].iloc[0]
    assert np.isnan(row["dice"]) and row["n_ref"] == 0
    mamamia = score_folders(preds, refs, metrics=("dice", "hd95"), empty="mamamia")
    filled = mamamia[(mamamia["case_id"] == "c3") & (mamamia["class"] == 2)].iloc[0]
    assert filled["dice"] == 0.0 and filled["hd95"] == 0.0


def test_workers_give_the_same_table(folders3d):
    preds, refs = folders3d
    pairs = match_folders(preds, refs)
    spec = ScoreSpec(metrics=("dice", "hd95"))
    seen = []
    one = score_pairs(pairs, spec, workers=1)
    two = score_pairs(pairs, spec, workers=2, progress=seen.append)
    pd.testing.assert_frame_equal(one, two)
    assert sum(seen) == len(pairs)


def test_2d_png_with_patterns_match_monai(tmp_path):
    preds, refs = make_2d(tmp_path)
    table = score_folders(preds, refs, ref_pattern="{case}_seg.png", regions=parse_regions(["disc=1+2"]), labels=[1, 2])
    assert sorted(table["case_id"].unique()) == [f"img{i}" for i in range(4)]
    assert_matches_monai(
        table, preds, refs, {1: (1,), 2: (2,), "disc": (1, 2)}, (1.0, 1.0), suffix=".png", ref_suffix="_seg.png"
    )


def test_pattern_rules(tmp_path):
    assert compile_pattern(None)("BraTS-001.nii.gz") == "BraTS-001"
    assert compile_pattern(None)("a.b.npz") == "a.b"
    assert compile_pattern(None)("notes.json") is None
    assert compile_pattern("{case}_0000.nii.gz")("x_0000.nii.gz") == "x"
    assert compile_pattern("{case}_0000.nii.gz")("x.nii.gz") is None
    assert compile_pattern("*_{case}.png")("scan_17.png") == "17"
    assert compile_pattern(r"re:(?P<case>\d+)_seg\.nrrd")("12_seg.nrrd") == "12"
    with pytest.raises(DuetfairError, match="exactly once"):
        compile_pattern("{case}_{case}.png")
    (tmp_path / "a.nii.gz").touch()
    (tmp_path / "a.npz").touch()
    with pytest.raises(DuetfairError, match="several files, e.g. 'a': a.nii.gz, a.npz"):
        list_cases(tmp_path)
    assert list(list_cases(tmp_path, "{case}.nii.gz")) == ["a"]


def test_parsers():
    assert parse_labels("1, 2") == [1, 2] and parse_labels(None) is None
    assert parse_regions(["tc=1+3,wt=3+2+1"]) == [Region("tc", (1, 3)), Region("wt", (1, 2, 3))]
    assert parse_label_names("1=rim,2=cup", None) == {1: "rim", 2: "cup"}
    for bad, fn in (("0,1", parse_labels), ("a", parse_labels)):
        with pytest.raises(DuetfairError, match="--labels"):
            fn(bad)
    with pytest.raises(DuetfairError, match="--region 'disc'"):
        parse_regions(["disc"])
    with pytest.raises(DuetfairError, match="2 names for 1 labels"):
        parse_label_names("rim,cup", [1])


# ---- errors -------------------------------------------------------------------------------------


def test_missing_and_orphan_files(tmp_path):
    preds, refs = make_3d(tmp_path, n=8)
    for i in range(6):
        (preds / f"c{i}.nii.gz").unlink()
    with pytest.raises(DuetfairError) as exc:
        match_folders(preds, refs)
    assert "6 references have no prediction" in str(exc.value) and "c0, c1, c2, c3, c4 and 1 more" in str(exc.value)
    table = score_folders(preds, refs, allow_missing=True, labels=[1, 2])
    missed = table[(table["case_id"] == "c0") & (table["class"] == 1)].iloc[0]
    assert missed["dice"] == 0.0 and missed["n_pred"] == 0 and np.isinf(missed["hd95"])
    save_nifti(np.zeros(SHAPE3), preds / "extra.nii.gz")
    with pytest.raises(DuetfairError, match="1 predictions have no reference in .*: extra"):
        match_folders(preds, refs, allow_missing=True)


def _one_case(tmp_path, pred, ref, pred_spacing=SPACING, pred_name="a.nii.gz", dtype=np.uint8):
    (tmp_path / "p").mkdir(parents=True)
    (tmp_path / "r").mkdir()
    save_nifti(ref, tmp_path / "r" / "a.nii.gz")
    if pred_name.endswith(".npy"):
        np.save(tmp_path / "p" / pred_name, pred)
    else:
        save_nifti(pred, tmp_path / "p" / pred_name, pred_spacing, dtype)
    return tmp_path / "p", tmp_path / "r"


def test_shape_mismatch_names_case_and_shapes(tmp_path):
    ref = label_map(SHAPE3, np.random.default_rng(0), SPACING)
    p, r = _one_case(tmp_path, ref[:, :, :-1], ref)
    with pytest.raises(
        DuetfairError, match=r"case 'a': prediction shape \(22, 20, 9\) .* reference shape \(22, 20, 10\)"
    ):
        score_folders(p, r)


def test_spacing_mismatch_names_both(tmp_path):
    ref = label_map(SHAPE3, np.random.default_rng(0), SPACING)
    p, r = _one_case(tmp_path, ref, ref, pred_spacing=(1.0, 1.0, 1.0))
    with pytest.raises(
        DuetfairError, match=r"case 'a': prediction spacing \(1, 1, 1\) .* reference spacing \(0.8, 0.9, 2.5\)"
    ):
        score_folders(p, r)


def test_prediction_without_spacing_takes_the_reference(tmp_path):
    ref = label_map(SHAPE3, np.random.default_rng(0), SPACING)
    p, r = _one_case(tmp_path, ref, ref, pred_name="a.npy")
    table = score_folders(p, r, metrics=("dice", "hd95"))
    assert (table["dice"] == 1.0).all() and (table["hd95"] == 0.0).all()


def test_non_integer_and_out_of_range_labels(tmp_path):
    ref = label_map(SHAPE3, np.random.default_rng(0), SPACING)
    bad = ref.astype(np.float32)
    bad[0, 0, 0] = 0.5
    p, r = _one_case(tmp_path / "f", bad, ref, dtype=np.float32)
    with pytest.raises(DuetfairError, match=r"a.nii.gz: label value 0.5 is not an integer"):
        score_folders(p, r)
    three = ref.copy()
    three[0, 0, 0] = 3
    p, r = _one_case(tmp_path / "o", three, ref)
    with pytest.raises(DuetfairError, match=r"a.nii.gz: label value 3 is out of range; expected 0 or one of 1, 2"):
        score_folders(p, r, labels=[1, 2])
    with pytest.raises(DuetfairError, match="case 'a': the prediction has label 3, which no reference has"):
        score_folders(p, r)


def test_foreground_box_keeps_every_metric():
    from duetfair.metrics.folders import foreground_box
    from duetfair.metrics.per_case import per_case_metrics

    rng = np.random.default_rng(3)
    ref = label_map(SHAPE3, rng, SPACING)
    ref[0, 0, :3] = 1  # foreground on the image border
    pred = perturb(ref, rng)
    pred[-1, 5, -1] = 2
    box = foreground_box(pred, ref)
    assert box[0] == slice(0, SHAPE3[0]) and box[2] == slice(0, SHAPE3[2])
    for a, b in ((pred, ref), (pred[3:], ref[3:])):
        inner = foreground_box(a, b)
        full = per_case_metrics(a[None], b[None], num_classes=3, spacing=SPACING)
        cropped = per_case_metrics(a[inner][None], b[inner][None], num_classes=3, spacing=SPACING)
        pd.testing.assert_frame_equal(full, cropped)
    empty = np.zeros(SHAPE3, np.uint8)
    assert foreground_box(empty, empty) == (slice(None),) * 3


def test_unreadable_file_and_names_without_labels(folders3d, tmp_path):
    preds, refs = folders3d
    with pytest.raises(DuetfairError, match="with --region and without --labels only the regions are scored"):
        score_folders(preds, refs, regions=[Region("disc", (1, 2))], label_names=parse_label_names("rim,cup", None))
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "p" / "a.mha").write_bytes(b"not an image")
    (tmp_path / "r" / "a.mha").write_bytes(b"not an image")
    with pytest.raises(DuetfairError, match=r"a.mha: cannot read the label map .*itk or pynrrd"):
        score_folders(tmp_path / "p", tmp_path / "r")
