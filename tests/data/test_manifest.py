from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from duetfair.data import build_datasets
from duetfair.errors import DuetfairError


def _rewrite(manifest: Path, old: str, new: str) -> None:
    manifest.write_text(manifest.read_text().replace(old, new, 1))


def test_png_manifest_loads_with_inferred_spec_and_patient_split(png_manifest):
    ds = build_datasets(
        "manifest", path=str(png_manifest), attributes=["race", "age"], bins={"age": [60]}, group_by="patient", seed=0
    )
    cases = {c: s for s, d in ds.items() for c in d.case_ids}
    assert len(cases) == 6
    for p in range(3):  # c0,c1 -> p0 ...: one patient, one split
        assert cases[f"c{2 * p}"] == cases[f"c{2 * p + 1}"]
    d = next(iter(ds.values()))
    case = d[0]
    assert case["image"].shape == (1, 12, 16) and case["label"].shape == (1, 12, 16)
    assert 0.0 <= float(case["image"].min()) and float(case["image"].max()) <= 1.0  # uint8 scaled
    assert d.num_classes == 2 and d.spatial_dims == 2 and d.in_channels == 1
    assert d.group_spec.group_names("age") == ["<60", ">=60"]
    raw = np.asarray(Image.open(png_manifest.parent / "img" / f"{case['case_id']}.png"), dtype=np.float32) / 255
    assert np.allclose(case["image"][0].numpy(), raw)  # numpy axis order, no transpose


def test_rgb_jpg_npy_npz_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (10, 14, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.jpg")
    lab = np.zeros((10, 14), np.uint8)
    lab[2:5, 3:8] = 255
    Image.fromarray(lab).save(tmp_path / "a_mask.png")
    np.save(tmp_path / "b.npy", rng.random((10, 14)).astype(np.float32))
    np.savez(tmp_path / "b_lab.npz", mask=(lab > 0).astype(np.int64))
    (tmp_path / "m.csv").write_text(
        "image,label,case_id,sex,split\na.jpg,a_mask.png,a,F,train\nb.npy,b_lab.npz,b,M,train\n"
    )
    with pytest.raises(DuetfairError, match="holds values \\[255\\]"):
        build_datasets("manifest", path=str(tmp_path / "m.csv"), num_classes=2)["train"][0]
    ds = build_datasets(
        "manifest", path=str(tmp_path / "m.csv"), num_classes=2, label_map={255: 1}, image_size=(8, 8), channels=3
    )["train"]
    a, b = ds[0], ds[1]
    assert a["image"].shape == (3, 8, 8) and b["image"].shape == (3, 8, 8)
    assert set(torch.unique(a["label"]).tolist()) == {0, 1} and a["label"].shape == (1, 8, 8)
    assert abs(float(b["image"].mean())) < 1e-4  # float npy -> z-scored in "auto" mode


def test_nifti_multiphase_manifest_with_spacing(tmp_path):
    rng = np.random.default_rng(2)
    lab = np.zeros((8, 8, 6), np.uint8)
    lab[2:5, 2:5, 1:4] = 1
    for k in range(2):
        nib.save(
            nib.Nifti1Image(rng.random((8, 8, 6)).astype(np.float32), np.diag([1, 1, 2, 1])), tmp_path / f"x_{k}.nii.gz"
        )
    nib.save(nib.Nifti1Image(lab, np.diag([1, 1, 2, 1])), tmp_path / "x_seg.nii.gz")
    (tmp_path / "m.csv").write_text("image,label,case_id,site,split\nx_0.nii.gz;x_1.nii.gz,x_seg.nii.gz,x,A,test\n")
    ds = build_datasets(
        "manifest", path=str(tmp_path / "m.csv"), num_classes=2, pixdim=(1, 1, 1), normalize="zscore_global"
    )["test"]
    case = ds[0]
    assert ds.spatial_dims == 3 and ds.in_channels == 2
    assert case["image"].shape[0] == 2 and case["image"].shape[1:] == case["label"].shape[1:]
    assert case["image"].shape[-1] in (11, 12)  # 6 slices of 2 mm -> about 12 of 1 mm
    assert abs(float(case["image"].mean())) < 1e-4


def test_paths_escaping_or_missing_are_refused(png_manifest):
    _rewrite(png_manifest, "img/c0.png", "../c0.png")
    with pytest.raises(DuetfairError, match="escapes"):
        build_datasets("manifest", path=str(png_manifest), attributes=["race"])
    _rewrite(png_manifest, "../c0.png", "img/gone.png")
    with pytest.raises(DuetfairError, match="case 'c0'.*gone.png.*does not exist"):
        build_datasets("manifest", path=str(png_manifest), attributes=["race"])
    ds = build_datasets("manifest", path=str(png_manifest), attributes=["race"], on_error="skip", seed=0)
    total = sum(len(d) for d in ds.values())
    skipped = next(iter(ds.values())).skipped
    assert total == 5 and skipped["case_id"].tolist() == ["c0"] and "gone.png" in skipped["reason"][0]


def test_bad_cases_name_case_and_file(png_manifest):
    root = png_manifest.parent
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "lab" / "c1.png")  # shape mismatch
    lab = np.zeros((12, 16), np.uint8)
    lab[0, 0] = 4
    Image.fromarray(lab).save(root / "lab" / "c2.png")  # class outside 0..1
    (root / "img" / "c3.png").write_bytes(b"not a png")  # corrupt
    np.save(root / "c4.npy", np.full((12, 16), np.nan, np.float32))
    _rewrite(png_manifest, "img/c4.png", "c4.npy")
    kw = dict(path=str(png_manifest), attributes=["race"], num_classes=2, seed=0)
    ds = build_datasets("manifest", **kw, on_error="skip")
    rep = next(iter(ds.values())).skipped.set_index("case_id")["reason"]
    assert sorted(rep.index) == ["c1", "c2", "c3", "c4"]
    assert "spatial shape" in rep["c1"] and "c1.png" in rep["c1"]
    assert "outside the declared classes" in rep["c2"]
    assert "cannot read image" in rep["c3"] and "c3.png" in rep["c3"]
    assert "NaN" in rep["c4"]
    ds = build_datasets("manifest", **kw)  # raise mode: error when the case is read
    where = {c: (s, i) for s, d in ds.items() for i, c in enumerate(d.case_ids)}
    s, i = where["c1"]
    with pytest.raises(DuetfairError, match="case 'c1'"):
        ds[s][i]


def test_manifest_structure_errors(tmp_path, png_manifest):
    (tmp_path / "x.csv").write_text("image,case_id\na.png,a\n")
    with pytest.raises(DuetfairError, match="column 'label' is missing"):
        build_datasets("manifest", path=str(tmp_path / "x.csv"))
    with pytest.raises(DuetfairError, match="attribute column 'sex' not in the table"):
        build_datasets("manifest", path=str(png_manifest), attributes=["sex"])
    with pytest.raises(DuetfairError, match="does not exist"):
        build_datasets("manifest", path=str(tmp_path / "none.csv"))
    _rewrite(png_manifest, "c1,B", "c0,B")
    with pytest.raises(DuetfairError, match="duplicate case_id"):
        build_datasets("manifest", path=str(png_manifest), attributes=["race"])


def test_png_loads_into_writable_memory(tmp_path: Path) -> None:
    """PIL's read-only buffers are copied: in-place edits are safe and torch does not warn."""
    import warnings

    from duetfair.data.transforms import make_loader

    path = tmp_path / "x.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = make_loader()(str(path))
    assert tuple(image.shape) == (1, 3, 4)
    image += 1  # must not touch a read-only buffer
    assert int(image.max()) == 12


# ---- own column names, a named hidden column, channel sources --------------------------------


def test_columns_map_other_names_and_detect_columns_finds_them(png_manifest: Path) -> None:
    from duetfair.data.manifest import detect_columns

    df = pd.read_csv(png_manifest).rename(columns={"image": "img_path", "label": "Mask", "case_id": "subject"})
    df.to_csv(png_manifest, index=False)
    assert detect_columns(df, png_manifest) == {"image": "img_path", "label": "Mask", "case_id": "subject"}
    ds = build_datasets(
        "manifest",
        path=str(png_manifest),
        attributes=["race"],
        columns={"image": "img_path", "label": "Mask", "case_id": "subject"},
    )
    assert sum(len(d) for d in ds.values()) == 6
    with pytest.raises(DuetfairError, match=r"column 'scan' \(the image column\) is missing"):
        build_datasets("manifest", path=str(png_manifest), columns={"image": "scan"})
    with pytest.raises(DuetfairError, match="no case_id column found; expected a column named like case_id"):
        detect_columns(df.drop(columns=["subject"]), png_manifest)
    # unnamed file columns: the first is the image, the next the label
    files = df.rename(columns={"img_path": "a", "Mask": "b"})
    assert detect_columns(files, png_manifest)["image"] == "a" and detect_columns(files, png_manifest)["label"] == "b"


def test_named_hidden_column_is_read_and_never_an_attribute(png_manifest: Path) -> None:
    df = pd.read_csv(png_manifest)
    df["morphology"] = ["irregular", "regular", "regular", "irregular", "", "regular"]
    df.to_csv(png_manifest, index=False)
    ds = build_datasets(
        "manifest", path=str(png_manifest), hidden_column="morphology=irregular", bins={"age": [60]}, group_by="patient"
    )
    cases = {c["case_id"]: c for d in ds.values() for c in (d[i] for i in range(len(d)))}
    assert cases["c0"]["hidden"] == 1 and cases["c1"]["hidden"] == 0 and "hidden" not in cases["c4"]
    assert "morphology" not in next(iter(ds.values())).group_spec.attributes
    with pytest.raises(DuetfairError, match="hidden column 'shape' is missing"):
        build_datasets("manifest", path=str(png_manifest), hidden_column="shape", bins={"age": [60]})
    with pytest.raises(DuetfairError, match="value 'irregular' is not 0/1"):
        build_datasets("manifest", path=str(png_manifest), hidden_column="morphology", bins={"age": [60]})


def test_channel_source_of_manifests(png_manifest: Path) -> None:
    ds = build_datasets("manifest", path=str(png_manifest), attributes=["race"])
    assert next(iter(ds.values())).channel_source == "native"
    ds = build_datasets("manifest", path=str(png_manifest), attributes=["race"], channels=3)
    assert next(iter(ds.values())).channel_source == "repeat" and next(iter(ds.values())).in_channels == 3
    df = pd.read_csv(png_manifest)
    df["image"] = df["image"] + ";" + df["image"]
    df.to_csv(png_manifest, index=False)
    ds = build_datasets("manifest", path=str(png_manifest), attributes=["race"])
    d = next(iter(ds.values()))
    assert d.channel_source == "files" and d.in_channels == 2


def test_stray_label_value_is_refused_naming_the_file(png_manifest):
    """One mask with value 7 among 0/1 masks must not silently make an 8-class model."""
    lab = np.zeros((12, 16), dtype=np.uint8)
    lab[2:4, 2:4] = 7
    Image.fromarray(lab).save(png_manifest.parent / "lab" / "c3.png")
    with pytest.raises(DuetfairError, match=r"label file '.*c3.png' holds value 7.*never \[2, 3, 4, 5, 6\]"):
        build_datasets("manifest", path=str(png_manifest), attributes=["race"], seed=0)
    ds = build_datasets("manifest", path=str(png_manifest), attributes=["race"], seed=0, label_map={7: 1})
    assert next(iter(ds.values())).num_classes == 2
