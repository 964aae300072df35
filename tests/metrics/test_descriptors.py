"""Case descriptors against independent computations on hand-made masks (2D and 3D, anisotropic).

Every expected value is computed here from geometry (areas, volumes, perimeters of a disk, a
sphere, two blobs, a ring and a hollow ball in physical units) or directly from the arrays with
numpy, never with the module's own helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duetfair.metrics.cases import case_level
from duetfair.metrics.descriptors import case_descriptors, describe, describe_batch, is_descriptor

SPACING_2D = (0.5, 1.0)
SPACING_3D = (2.5, 0.8, 0.8)


def grid(shape, spacing):
    """Physical coordinates (mm) of the voxel centres, one array per axis."""
    return np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")


def ball(shape, spacing, centre, radius):
    return sum((g - c) ** 2 for g, c in zip(grid(shape, spacing), centre)) <= radius**2


# ---- structure ------------------------------------------------------------------------------------


def test_disk_of_known_radius_2d_anisotropic():
    shape, r, centre = (160, 120), 20.0, (40.0, 60.0)
    disk = ball(shape, SPACING_2D, centre, r)
    d = describe(disk, spacing=SPACING_2D)
    assert d["desc_size"] == pytest.approx(math.pi * r**2, rel=0.01)
    assert d["desc_size_fraction"] == pytest.approx(disk.sum() / disk.size)
    assert d["desc_components"] == 1
    assert d["desc_compactness"] == pytest.approx(1.0, abs=0.05)
    assert d["desc_irregularity"] == pytest.approx(0.0, abs=0.02)
    # centroid: index of the centre over (n - 1) along each axis
    assert d["desc_centroid_0"] == pytest.approx(centre[0] / SPACING_2D[0] / (shape[0] - 1), abs=0.005)
    assert d["desc_centroid_1"] == pytest.approx(centre[1] / SPACING_2D[1] / (shape[1] - 1), abs=0.005)
    mid = np.array([(n - 1) * s / 2 for n, s in zip(shape, SPACING_2D)])
    expected = np.linalg.norm(np.array(centre) - mid) / np.linalg.norm(mid)
    assert d["desc_centre_distance"] == pytest.approx(expected, abs=0.01)
    ys, xs = np.nonzero(disk)  # nearest border: axis 0 at the top, 20 mm from the centre
    border = min(ys.min() * 0.5, (shape[0] - 1 - ys.max()) * 0.5, xs.min() * 1.0, (shape[1] - 1 - xs.max()) * 1.0)
    assert d["desc_border_distance"] == pytest.approx(border)
    assert not any(k in d for k in ("desc_contrast", "desc_fp_size"))  # no image, no prediction


def test_sphere_of_known_radius_3d_anisotropic():
    shape, r = (36, 110, 110), 30.0
    sphere = ball(shape, SPACING_3D, (45.0, 44.0, 44.0), r)
    d = describe(sphere, spacing=SPACING_3D)
    assert d["desc_size"] == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    assert d["desc_compactness"] == pytest.approx(1.0, abs=0.05)  # sphericity
    assert d["desc_irregularity"] == pytest.approx(0.0, abs=0.02)
    assert d["desc_components"] == 1
    assert {f"desc_centroid_{i}" for i in range(3)} <= set(d)


def test_an_elongated_box_is_less_compact_than_a_cube():
    cube = np.zeros((40, 40, 40), dtype=bool)
    cube[10:30, 10:30, 10:30] = True
    rod = np.zeros((40, 40, 40), dtype=bool)
    rod[2:38, 18:22, 18:22] = True
    c, r = describe(cube)["desc_compactness"], describe(rod)["desc_compactness"]
    # sphericity of a cube (pi / 6)^(1/3) = 0.806 (the smoothed boundary rounds the edges a little)
    assert c == pytest.approx((math.pi / 6) ** (1 / 3), abs=0.08) and r < c - 0.2


@pytest.mark.parametrize("dims", [2, 3])
def test_two_blobs(dims):
    spacing = SPACING_2D if dims == 2 else (1.5, 1.0, 1.0)
    shape = tuple(int(80 / s) for s in spacing)  # 80 mm along every axis
    a = ball(shape, spacing, [20.0] * dims, 8.0)
    b = ball(shape, spacing, [50.0] * dims, 10.0)
    d = describe(a | b, spacing=spacing)
    one = describe(b, spacing=spacing)
    assert d["desc_components"] == 2
    assert d["desc_size"] == pytest.approx((a.sum() + b.sum()) * np.prod(spacing))
    assert d["desc_compactness"] < one["desc_compactness"] - 0.1  # two blobs: more boundary per size
    assert d["desc_irregularity"] > 0.3  # the hull spans the gap between them


def test_ring_2d():
    outer, inner = 24.0, 12.0
    shape = (140, 90)
    g = grid(shape, SPACING_2D)
    rho2 = (g[0] - 35.0) ** 2 + (g[1] - 45.0) ** 2
    ring = (rho2 <= outer**2) & (rho2 > inner**2)
    d = describe(ring, spacing=SPACING_2D)
    assert d["desc_size"] == pytest.approx(math.pi * (outer**2 - inner**2), rel=0.02)
    assert d["desc_compactness"] == pytest.approx((outer - inner) / (outer + inner), abs=0.03)
    assert d["desc_irregularity"] == pytest.approx(inner**2 / outer**2, abs=0.03)  # the hole of the hull
    assert d["desc_components"] == 1


def test_hollow_ball_3d():
    outer, inner = 24.0, 14.0
    shape = (30, 80, 80)
    g = grid(shape, SPACING_3D)
    rho2 = sum((x - c) ** 2 for x, c in zip(g, (36.0, 32.0, 32.0)))
    shell = (rho2 <= outer**2) & (rho2 > inner**2)
    d = describe(shell, spacing=SPACING_3D)
    volume = 4 / 3 * math.pi * (outer**3 - inner**3)
    area = 4 * math.pi * (outer**2 + inner**2)
    assert d["desc_size"] == pytest.approx(volume, rel=0.03)
    assert d["desc_compactness"] == pytest.approx(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area, abs=0.05)
    assert d["desc_irregularity"] == pytest.approx(inner**3 / outer**3, abs=0.04)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(3, 30),
    w=st.integers(3, 30),
    sy=st.floats(0.3, 3.0),
    sx=st.floats(0.3, 3.0),
)
def test_rectangles_size_is_exact_and_compactness_bounded(h, w, sy, sx):
    mask = np.zeros((h + 8, w + 8), dtype=bool)
    mask[4 : 4 + h, 4 : 4 + w] = True
    d = describe(mask, spacing=(sy, sx))
    assert d["desc_size"] == pytest.approx(h * w * sy * sx)
    assert 0 < d["desc_compactness"] <= 1.02 and d["desc_irregularity"] <= 0.02  # a rectangle is convex


def test_empty_reference_has_undefined_structure():
    ref = np.zeros((20, 20), dtype=bool)
    pred = np.zeros_like(ref)
    pred[5:8, 5:8] = True
    d = describe(ref, pred)
    assert math.isnan(d["desc_size"]) and math.isnan(d["desc_volume_error"])
    assert d["desc_fp_size"] == 9 and d["desc_fn_size"] == 0


# ---- image ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_contrast_heterogeneity_noise_intensity(sign):
    rng = np.random.default_rng(0)
    shape = (120, 120)
    disk = ball(shape, (1.0, 1.0), (60.0, 60.0), 25.0)
    sigma = 0.05
    image = 0.5 + sign * 0.3 * disk + rng.normal(0, sigma, shape)
    d = describe(disk, image=image)
    std = image.std()
    expected = (image[disk].mean() - image[~disk].mean()) / std
    assert d["desc_contrast"] == pytest.approx(expected, rel=0.05) and np.sign(d["desc_contrast"]) == sign
    assert d["desc_heterogeneity"] == pytest.approx(image[disk].std() / std, rel=1e-6)
    assert d["desc_noise"] == pytest.approx(sigma / std, rel=0.1)
    assert d["desc_intensity"] == pytest.approx(image[disk].mean())


def test_edge_sharpness_and_blur_follow_the_edge():
    from scipy import ndimage

    disk = ball((100, 100), (1.0, 1.0), (50.0, 50.0), 20.0).astype(np.float64)
    sharp = describe(disk > 0, image=disk)
    soft_image = ndimage.gaussian_filter(disk, 3.0)
    soft = describe(disk > 0, image=soft_image)
    assert soft["desc_edge_sharpness"] < 0.7 * sharp["desc_edge_sharpness"]
    assert soft["desc_blur"] > sharp["desc_blur"]


def test_multi_channel_contrast_is_the_channel_mean():
    disk = ball((80, 80), (1.0, 1.0), (40.0, 40.0), 15.0)
    bright = 1.0 * disk + 0.01 * np.random.default_rng(1).normal(size=disk.shape)
    dark = -bright
    d = describe(disk, image=np.stack([bright, dark]))
    assert d["desc_contrast"] == pytest.approx(0.0, abs=1e-9)  # +c and -c average out


# ---- error ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_error_descriptors(dims):
    spacing = SPACING_2D if dims == 2 else SPACING_3D
    shape = (60,) * dims
    ref = ball(shape, [1.0] * dims, [30.0] * dims, 12.0)
    shifted = np.roll(ref, 3, axis=dims - 1)
    d = describe(ref, shifted, spacing=spacing)
    voxel = float(np.prod(spacing))
    assert d["desc_fp_size"] == (shifted & ~ref).sum() * voxel
    assert d["desc_fn_size"] == (ref & ~shifted).sum() * voxel
    assert d["desc_volume_error"] == pytest.approx(0.0)
    far = shifted.copy()
    far[(slice(0, 4),) * dims] = True  # a false-positive island in a corner
    share = describe(ref, far, spacing=spacing)["desc_error_boundary_share"]
    # errors within 2 face-connected steps of the surface: the 3-voxel shift puts some farther
    assert 0 < share < 1
    grown = describe(ref, np.asarray(__import__("scipy").ndimage.binary_dilation(ref)), spacing=spacing)
    assert grown["desc_fn_size"] == 0 and grown["desc_error_boundary_share"] == 1.0
    assert grown["desc_volume_error"] == pytest.approx((grown["desc_fp_size"] / voxel) / ref.sum())


def test_batch_rows_follow_cases_then_classes():
    labels = np.zeros((2, 40, 40), dtype=np.int64)
    labels[0, 5:15, 5:15] = 1
    labels[0, 20:30, 20:35] = 2
    labels[1, 10:30, 10:30] = 1
    image = np.random.default_rng(0).normal(size=(2, 1, 40, 40))
    rows = describe_batch(labels, labels, [1, 2], image=image)
    assert len(rows) == 4 and list(rows["desc_size"].iloc[:3]) == [100.0, 150.0, 400.0]
    assert math.isnan(rows["desc_size"].iloc[3])  # case 1 has no class 2
    assert "desc_contrast" in rows.columns


# ---- tables ---------------------------------------------------------------------------------------


def test_case_level_keeps_descriptors_per_class_and_never_as_attributes():
    cases = pd.DataFrame(
        {
            "case_id": ["a", "a", "b", "b"],
            "class": ["rim", "cup", "rim", "cup"],
            "dice": [0.9, 0.5, 0.8, 0.7],
            "desc_size": [100.0, 20.0, 90.0, 30.0],
            "race": ["X", "X", "Y", "Y"],
        }
    )
    frame = case_level(cases, ["dice"])
    assert list(frame.columns) == ["case_id", "dice", "race", "desc_size[rim]", "desc_size[cup]"]
    assert frame["desc_size[cup]"].tolist() == [20.0, 30.0] and frame["dice"].tolist() == [0.7, 0.75]
    one = case_descriptors(cases[cases["class"] == "rim"])
    assert one.columns.tolist() == ["case_id", "desc_size"] and is_descriptor("desc_size[cup]")
