"""The Dice / IoU fast path: the same numbers as per_case_metrics, the same arrays and spacing as
MONAI's reader."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from duetfair.data.transforms import make_loader
from duetfair.metrics.folders import Region
from duetfair.metrics.overlap import overlap_rows, read_nifti_labels
from duetfair.metrics.per_case import per_case_metrics

STRUCTURES = [Region(1, (1,)), Region(2, (2,)), Region(3, (3,)), Region("wt", (1, 2, 3)), Region("tc", (2, 3))]


def _reference_rows(pred: np.ndarray, ref: np.ndarray, empty: str) -> list[tuple]:
    out = []
    for s in STRUCTURES:
        p, r = np.isin(pred, s.ids), np.isin(ref, s.ids)
        row = per_case_metrics(p[None], r[None], num_classes=2, metrics=("dice", "iou"), empty=empty).iloc[0]
        out.append((row["dice"], row["iou"], int(row["n_ref"]), int(row["n_pred"])))
    return out


@given(
    maps=hnp.arrays(
        np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)), elements=st.integers(0, 3)
    ),
    other=st.integers(0, 2**32 - 1),
    empty=st.sampled_from(["nnunet", "nan", "fairseg", "mamamia"]),
    fortran=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_overlap_rows_equal_per_case_metrics(maps, other, empty, fortran):
    rng = np.random.default_rng(other)
    ref = maps
    pred = np.where(rng.random(ref.shape) < 0.3, rng.integers(0, 4, ref.shape), ref).astype(np.uint8)
    if fortran:  # NIfTI data is column-major; the two maps may differ in layout
        ref = np.asfortranarray(ref)
    rows = overlap_rows(pred, ref, STRUCTURES, metrics=("dice", "iou"), empty=empty)
    got = list(zip(rows["dice"], rows["iou"], rows["n_ref"], rows["n_pred"]))
    expected = _reference_rows(pred, ref, empty)
    for g, e in zip(got, expected):
        assert g[2:] == e[2:]
        np.testing.assert_array_equal(np.array(g[:2], dtype=float), np.array(e[:2], dtype=float))


@pytest.mark.parametrize(
    "shape,affine",
    [
        ((9, 7, 5), np.diag([0.8, 0.8, 2.5, 1.0])),
        ((9, 7, 5, 1), np.diag([1.2, 0.7, 3.0, 1.0])),  # a trailing channel axis
        ((9, 7), np.diag([0.5, 0.25, 1.0, 1.0])),  # 2D NIfTI
        ((6, 6, 4), np.array([[0, -0.9, 0, 10], [1.1, 0, 0, -3], [0, 0, 2.0, 5], [0, 0, 0, 1]])),  # rotated
    ],
)
def test_nifti_reader_equals_monai(tmp_path, shape, affine):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, shape).astype(np.uint8)
    path = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    got = read_nifti_labels(path)
    assert got is not None
    img = make_loader()(str(path))
    monai = np.asarray(img)[0]
    np.testing.assert_array_equal(got[0], monai)
    np.testing.assert_allclose(got[1], np.asarray(img.pixdim, dtype=float).reshape(-1)[: monai.ndim], rtol=1e-6)
    assert read_nifti_labels(tmp_path / "m.png") is None
