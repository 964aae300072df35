"""Scoring in physical space: NIfTI masks stored in another voxel order score as the same mask;
masks placed elsewhere are refused naming the case and both affines (real NIfTI files, nibabel)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nibabel import orientations as ornt

from duetfair.errors import DuetfairError
from duetfair.metrics.folders import score_folders
from duetfair.metrics.geometry import align_to_reference, same_grid

# anisotropic voxels (0.8 x 1.2 x 2.5 mm) at a scanner-like origin
AFFINE = np.array([[0.8, 0, 0, -90.0], [0, 1.2, 0, -126.0], [0, 0, 2.5, -72.0], [0, 0, 0, 1]])
SHAPE = (20, 16, 10)


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric reference and a prediction that misses part of it and adds a bit elsewhere."""
    ref = np.zeros(SHAPE, np.uint8)
    ref[3:12, 4:10, 2:7] = 1
    ref[5:8, 5:8, 3:5] = 2
    pred = np.zeros(SHAPE, np.uint8)
    pred[4:13, 4:11, 2:6] = 1
    pred[5:9, 6:8, 3:5] = 2
    return ref, pred


def _save(path: Path, img: nib.Nifti1Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _reoriented(arr: np.ndarray, codes: tuple[str, str, str]) -> nib.Nifti1Image:
    """The same mask in the same place, stored in the voxel order ``codes`` (e.g. L, A, S)."""
    img = nib.Nifti1Image(arr, AFFINE)
    return img.as_reoriented(ornt.ornt_transform(ornt.io_orientation(AFFINE), ornt.axcodes2ornt(codes)))


def _score(root: Path, pred_img: nib.Nifti1Image, ref: np.ndarray) -> dict:
    _save(root / "refs" / "case_007.nii.gz", nib.Nifti1Image(ref, AFFINE))
    _save(root / "preds" / "case_007.nii.gz", pred_img)
    table = score_folders(root / "preds", root / "refs", metrics=("dice", "iou", "hd95", "nsd"))
    return {(r["class"], m): r[m] for _, r in table.iterrows() for m in ("dice", "iou", "hd95", "nsd", "n_pred")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ref, pred = _masks()
    return _score(tmp_path_factory.mktemp("ras"), nib.Nifti1Image(pred, AFFINE), ref)


@pytest.mark.parametrize("codes", [("L", "A", "S"), ("R", "P", "I"), ("A", "S", "R"), ("S", "L", "P")])
def test_another_voxel_order_scores_as_the_same_mask(tmp_path: Path, baseline: dict, codes) -> None:
    ref, pred = _masks()
    stored = _reoriented(pred, codes)
    assert not np.array_equal(np.asarray(stored.dataobj), pred)  # the file's array differs
    got = _score(tmp_path, stored, ref)
    assert got == pytest.approx(baseline)  # Dice, IoU, HD95 (anisotropic mm) and NSD unchanged
    assert baseline[(1, "dice")] < 1.0


def test_ras_stored_las_is_not_dice_zero(tmp_path: Path) -> None:
    """The report of the issue: a mask stored LAS instead of RAS (physically identical) scored 0."""
    ref, _ = _masks()
    got = _score(tmp_path, _reoriented(ref, ("L", "A", "S")), ref)
    assert got[(1, "dice")] == 1.0 and got[(2, "dice")] == 1.0 and got[(1, "hd95")] == 0.0


def test_another_origin_is_refused_naming_the_case_and_both_affines(tmp_path: Path) -> None:
    ref, _ = _masks()
    moved = AFFINE.copy()
    moved[0, 3] += 100.0  # the same array 100 mm to the side: once scored Dice 1.000
    with pytest.raises(DuetfairError) as err:
        _score(tmp_path, nib.Nifti1Image(ref, moved), ref)
    text = str(err.value)
    assert "case 'case_007'" in text and "different grids in physical space" in text
    assert "[0.8 0 0 10]" in text and "[0.8 0 0 -90]" in text  # both affines, origin row first


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a @ np.diag([1.0, 1.0, 1.01, 1.0]),  # 1 % thicker slices: another grid
        lambda a: a @ np.array([[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),  # half a voxel
        lambda a: np.array([[0, -1.2, 0, -70.0], [0.8, 0, 0, -126.0], [0, 0, 2.5, -72.0], [0, 0, 0, 1]]),  # rotated
    ],
)
def test_grids_that_do_not_match_are_refused(tmp_path: Path, change) -> None:
    ref, pred = _masks()
    with pytest.raises(DuetfairError, match="case 'case_007'"):
        _score(tmp_path, nib.Nifti1Image(pred, change(AFFINE)), ref)


def test_float_noise_in_the_header_is_the_same_grid(tmp_path: Path, baseline: dict) -> None:
    ref, pred = _masks()
    noisy = AFFINE + np.array([[1e-6, 0, 0, 2e-5], [0, -1e-6, 0, -3e-5], [0, 0, 1e-6, 1e-5], [0, 0, 0, 0]])
    assert _score(tmp_path, nib.Nifti1Image(pred, noisy), ref) == pytest.approx(baseline)


def test_oblique_grids_that_agree_are_accepted(tmp_path: Path) -> None:
    ref, pred = _masks()
    c, s = np.cos(0.3), np.sin(0.3)
    oblique = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) @ AFFINE
    _save(tmp_path / "refs" / "a.nii.gz", nib.Nifti1Image(ref, oblique))
    _save(tmp_path / "preds" / "a.nii.gz", nib.Nifti1Image(pred, oblique))
    assert len(score_folders(tmp_path / "preds", tmp_path / "refs", metrics=("dice",))) == 2


def test_a_prediction_without_a_header_takes_the_reference_grid(tmp_path: Path) -> None:
    ref, pred = _masks()
    _save(tmp_path / "refs" / "a.nii.gz", nib.Nifti1Image(ref, AFFINE))
    (tmp_path / "preds").mkdir()
    np.save(tmp_path / "preds" / "a.npy", pred)
    table = score_folders(tmp_path / "preds", tmp_path / "refs", metrics=("dice",))
    assert table["dice"].between(0, 1).all() and len(table) == 2


def test_same_grid_tolerance_is_a_fraction_of_a_voxel() -> None:
    assert same_grid(AFFINE, AFFINE + np.pad(np.full((3, 1), 5e-4), ((0, 1), (3, 0))))  # 0.5 um origin
    assert not same_grid(AFFINE, AFFINE + np.pad(np.full((3, 1), 0.01), ((0, 1), (3, 0))))  # 10 um
    arr = np.zeros((4, 3, 2))
    with pytest.raises(DuetfairError, match="shape \\(4, 3, 2\\)"):
        align_to_reference(arr, AFFINE, (4, 3, 3), AFFINE, case_id="x", pred_name="p", ref_name="r")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    perm=st.permutations([0, 1, 2]),
    flips=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_any_voxel_order_gives_the_same_metrics(
    tmp_path_factory: pytest.TempPathFactory, baseline: dict, perm, flips
) -> None:
    """Property: storing the prediction in any of the 48 axis orders changes no metric."""
    ref, pred = _masks()
    names = [("R", "L"), ("A", "P"), ("S", "I")]
    codes = tuple(names[axis][int(flip)] for axis, flip in zip(perm, flips))
    got = _score(tmp_path_factory.mktemp("order"), _reoriented(pred, codes), ref)
    assert got == pytest.approx(baseline)
