"""MAMA-MIA loader on tiny files in the layout of the public release.

Release layout (LidiaGarrucho/MAMA-MIA, docs/_static/dataset_info.png)::

    images/DUKE_001/DUKE_001_0000.nii.gz ...   segmentations/expert/DUKE_001.nii.gz
    clinical_and_imaging_info.xlsx (sheet dataset_info)   train_test_splits.csv
    patient_info_files/duke_001.json (challenge release: primary_lesion.breast_coordinates)

The breast box follows the official sample submission: its x/y/z keys slice the SimpleITK array
(``GetArrayFromImage(img)[x_min:x_max, y_min:y_max, z_min:z_max]``), whose axes are the NIfTI
axes reversed, so on a NIfTI (nibabel / MONAI) array x indexes the last axis.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

import duetfair
from duetfair.data import build_datasets
from duetfair.data.mamamia import mamamia_spec
from duetfair.errors import DuetfairError

SHAPE = (20, 12, 8)  # NIfTI (i, j, k); the SimpleITK array of the same file is (8, 12, 20)
TUMOUR = (slice(13, 16), slice(5, 7), slice(3, 5))  # NIfTI i, j, k: 3 x 2 x 2 = 12 voxels
BOX = {"x_min": 2, "x_max": 6, "y_min": 3, "y_max": 9, "z_min": 12, "z_max": 18}  # official convention
AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])
MENO_PRE = "pre (<6 months since LMP AND no prior bilateral ovariectomy AND not on estrogen replacement)"
MENO_PERI = "peri (6-12 months since LMP AND no prior bilateral ovariectomy AND not on estrogen replacement)"
PATIENTS = [  # patient_id, dataset, age, menopause (2024 public table values)
    ("DUKE_001", "DUKE", 38.0, "pre"),
    ("DUKE_002", "DUKE", 40.0, MENO_PRE),
    ("DUKE_003", "DUKE", 41.0, MENO_PERI),
    ("ISPY1_1001", "ISPY1", 55.0, "post"),
    ("ISPY1_1002", "ISPY1", 62.0, None),
    ("ISPY2_125418", "ISPY2", 71.0, "post"),
    ("ISPY2_125419", "ISPY2", 47.0, "pre"),
    ("ISPY2_125420", "ISPY2", None, "post"),
    ("NACT_01", "NACT", 52.0, None),
    ("NACT_02", "NACT", 66.0, "post"),
]
TEST_IDS = ["ISPY1_1002", "NACT_02"]


def _volume(seed: int, scale: float) -> np.ndarray:
    return (np.random.default_rng(seed).random(SHAPE) * scale).astype(np.float32)


def _write_case(root: Path, pid: str, n_phases: int = 4, lower: bool = False) -> None:
    name = pid.lower() if lower else pid
    folder = root / "images" / name
    folder.mkdir(parents=True)
    for k in range(n_phases):
        nib.save(nib.Nifti1Image(_volume(k, k + 1.0), AFFINE), folder / f"{name}_{k:04d}.nii.gz")
    seg = np.zeros(SHAPE, np.uint8)
    seg[TUMOUR] = 1
    (root / "segmentations" / "expert").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(seg, AFFINE), root / "segmentations" / "expert" / f"{name}.nii.gz")
    (root / "patient_info_files").mkdir(exist_ok=True)
    info = {
        "patient_id": pid,
        "primary_lesion": {"breast_coordinates": dict(BOX)},
        "imaging_data": {"bilateral": True, "dataset": pid.split("_")[0], "field_strength": 1.5},
    }
    (root / "patient_info_files" / f"{pid.lower()}.json").write_text(json.dumps(info))


def _table_2024() -> pd.DataFrame:
    """Columns of the public clinical table (a subset, in release order); no breast_density."""
    return pd.DataFrame(
        {
            "patient_id": [p[0] for p in PATIENTS],
            "dataset": [p[1] for p in PATIENTS],
            "bilateral_breast_cancer": 0,
            "pcr": 1.0,
            "tumor_subtype": "luminal",
            "age": [p[2] for p in PATIENTS],
            "menopause": [p[3] for p in PATIENTS],
            "ethnicity": "caucasian",
            "num_phases": 4,
        }
    )


def _table_2025() -> pd.DataFrame:
    """The challenge's spelling: menopausal_status, plus breast_density."""
    t = _table_2024().rename(columns={"menopause": "menopausal_status"})
    t["breast_density"] = ["a", "b", "c", "d", None, "b", "c", "a", "d", "b"]
    return t


def _write_table(root: Path, table: pd.DataFrame) -> None:
    with pd.ExcelWriter(root / "clinical_and_imaging_info.xlsx", engine="openpyxl") as w:
        table.to_excel(w, sheet_name="dataset_info", index=False)


def _write_split(root: Path, train: list[str], test: list[str]) -> None:
    col = lambda ids, n: ids + [None] * (n - len(ids))  # noqa: E731 - shorter column padded with blanks
    n = max(len(train), len(test))
    pd.DataFrame({"train_split": col(train, n), "test_split": col(test, n)}).to_csv(
        root / "train_test_splits.csv", index=False
    )


def _release(root: Path, *, table: pd.DataFrame | None = None, split: bool = True) -> Path:
    for j, p in enumerate(PATIENTS):
        _write_case(root, p[0], lower=j == 3)
    _write_table(root, _table_2024() if table is None else table)
    if split:
        _write_split(root, [p[0] for p in PATIENTS if p[0] not in TEST_IDS], TEST_IDS)
    return root


def _all_meta(ds: dict) -> pd.DataFrame:
    return pd.concat([d.meta.assign(split=s) for s, d in ds.items()], ignore_index=True)


def _official_crop(nifti: np.ndarray, box: dict) -> np.ndarray:
    """The official crop: slice the SimpleITK array (NIfTI axes reversed) with x, y, z in that order."""
    sitk_array = nifti.transpose(2, 1, 0)
    return sitk_array[box["x_min"] : box["x_max"], box["y_min"] : box["y_max"], box["z_min"] : box["z_max"]]


def test_breast_box_uses_official_axes_and_keeps_the_tumour(tmp_path):
    _release(tmp_path)
    case = build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True)["test"][0]
    seg = np.zeros(SHAPE, np.uint8)
    seg[TUMOUR] = 1
    official = _official_crop(seg, BOX)
    assert int(official.sum()) == 12  # the official crop keeps every tumour voxel
    assert int(seg[BOX["x_min"] : BOX["x_max"], BOX["y_min"] : BOX["y_max"], BOX["z_min"] : BOX["z_max"]].sum()) == 0
    label = case["label"][0].numpy()
    assert label.shape == official.shape[::-1] == (6, 6, 4)
    assert np.array_equal(label, official.transpose(2, 1, 0)) and int(label.sum()) == 12
    image = case["image"]
    assert image.shape == (3, 6, 6, 4)


def test_breast_box_matches_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    _release(tmp_path)
    case = build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True, normalize="none")["test"][0]
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "images" / "ISPY1_1002" / "ISPY1_1002_0001.nii.gz")))
    official = arr[BOX["x_min"] : BOX["x_max"], BOX["y_min"] : BOX["y_max"], BOX["z_min"] : BOX["z_max"]]
    assert np.allclose(case["image"][1].numpy(), official.transpose(2, 1, 0))


@pytest.mark.parametrize("key, value", [("x_max", 9), ("z_max", 21), ("y_min", -1)])
def test_breast_box_outside_the_volume_is_refused(tmp_path, key, value):
    _release(tmp_path)
    info = tmp_path / "patient_info_files" / "ispy1_1002.json"
    data = json.loads(info.read_text())
    data["primary_lesion"]["breast_coordinates"][key] = value
    info.write_text(json.dumps(data))
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True)["test"]
    with pytest.raises(DuetfairError, match=rf"ispy1_1002\.json.*'{key}'={value}.*\(20, 12, 8\)") as err:
        ds[0]
    assert "\n" not in str(err.value)


def test_breast_box_missing_keys_and_file(tmp_path):
    _release(tmp_path)
    info = tmp_path / "patient_info_files" / "ispy1_1002.json"
    info.write_text(json.dumps({"primary_lesion": {"breast_coordinates": {"x_min": 1}}}))
    with pytest.raises(DuetfairError, match=r"ispy1_1002\.json.*primary_lesion\.breast_coordinates"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True)["test"][0]
    info.unlink()
    with pytest.raises(DuetfairError, match=r"ISPY1_1002.*patient_info_files"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True)


def test_crop_that_cuts_the_tumour_warns_or_raises(tmp_path, caplog):
    _release(tmp_path)
    info = tmp_path / "patient_info_files" / "ispy1_1002.json"
    data = json.loads(info.read_text())
    data["primary_lesion"]["breast_coordinates"]["z_min"] = 14  # cuts NIfTI i = 13: 4 of 12 voxels
    info.write_text(json.dumps(data))
    caplog.set_level(logging.WARNING, logger="duetfair.data")
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True)["test"]
    assert int(ds[0]["label"].sum()) == 8
    assert any("ISPY1_1002" in r.getMessage() and "4 of 12" in r.getMessage() for r in caplog.records)
    strict = build_datasets("mamamia", root=str(tmp_path), pixdim=None, crop_to_breast=True, on_crop_loss="raise")[
        "test"
    ]
    with pytest.raises(DuetfairError, match=r"ISPY1_1002.*removes 4 of 12 labelled voxels"):
        strict[0]


def test_official_split_file_is_used_and_val_comes_from_its_train_part(tmp_path):
    _release(tmp_path)
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None, val_fraction=0.25)
    assert sorted(ds) == ["test", "train", "val"]
    assert all(d.split_source == "official" for d in ds.values())
    assert sorted(ds["test"].case_ids) == sorted(TEST_IDS)
    train_part = {p[0] for p in PATIENTS} - set(TEST_IDS)
    assert set(ds["train"].case_ids) | set(ds["val"].case_ids) == train_part
    assert len(ds["val"]) >= 1 and not set(ds["train"].case_ids) & set(ds["val"].case_ids)
    again = build_datasets("mamamia", root=str(tmp_path), pixdim=None, val_fraction=0.25, seed=0)
    assert again["val"].case_ids == ds["val"].case_ids  # deterministic


def test_random_split_only_without_the_split_file(tmp_path, caplog):
    _release(tmp_path, split=False)
    caplog.set_level(logging.WARNING, logger="duetfair.data")
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None)
    assert all(d.split_source == "random" for d in ds.values())
    assert sum(len(d) for d in ds.values()) == len(PATIENTS)
    assert any("train_test_splits.csv" in r.getMessage() for r in caplog.records)


def test_split_file_problems(tmp_path, caplog):
    _release(tmp_path, split=False)
    _write_split(tmp_path, ["DUKE_001", "DUKE_002", "NACT_01"], ["DUKE_001"])
    with pytest.raises(DuetfairError, match=r"train_test_splits\.csv.*DUKE_001.*both"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None)
    _write_split(tmp_path, ["DUKE_001", "DUKE_002", "NACT_01", "DUKE_999"], ["NACT_02"])
    with pytest.raises(DuetfairError, match=r"train_test_splits\.csv.*DUKE_999.*not in the clinical table"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None)
    _write_split(tmp_path, ["DUKE_001", "DUKE_002", "NACT_01"], ["NACT_02"])
    caplog.set_level(logging.WARNING, logger="duetfair.data")
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None)
    assert sum(len(d) for d in ds.values()) == 4
    assert any("6 of 10" in r.getMessage() for r in caplog.records)
    (tmp_path / "train_test_splits.csv").write_text("patient_id,fold\nDUKE_001,1\n")
    with pytest.raises(DuetfairError, match=r"train_test_splits\.csv.*train_split.*test_split"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None)


def test_menopausal_status_alias_and_breast_density(tmp_path):
    _release(tmp_path, table=_table_2025())
    ds = build_datasets(
        "mamamia", root=str(tmp_path), pixdim=None, attributes=["age", "menopausal_status", "breast_density"]
    )
    assert ds["train"].group_spec.attributes == ["age", "menopause", "breast_density"]
    allm = _all_meta(ds)
    codes = dict(zip(allm["case_id"], ds["train"].group_spec.encode_frame(allm).tolist()))
    assert codes["DUKE_003"] == [1, 0, 2]  # 41 -> 41-50, peri -> pre, density c
    assert codes["ISPY1_1002"] == [3, 2, -1]  # 62 -> 61-70, missing -> its own unknown group, density missing
    assert allm.set_index("case_id").loc["DUKE_002", "menopause"] == MENO_PRE  # raw text kept in meta
    alias = build_datasets("mamamia", root=str(tmp_path), pixdim=None)  # default names 'menopause'
    assert alias["train"].group_spec.attributes == ["age", "menopause", "dataset"]


def test_public_table_has_no_breast_density(tmp_path):
    _release(tmp_path)
    msg = r"clinical_and_imaging_info\.xlsx.*no 'breast_density' column.*public"
    with pytest.raises(DuetfairError, match=msg) as err:
        build_datasets("mamamia", root=str(tmp_path), attributes=["age", "breast_density"])
    assert "\n" not in str(err.value)
    with pytest.raises(DuetfairError, match="unknown MAMA-MIA attribute 'ethnicity'"):
        build_datasets("mamamia", root=str(tmp_path), attributes=["ethnicity"])
    empty = _table_2025()
    empty["breast_density"] = None
    _write_table(tmp_path, empty)
    with pytest.raises(DuetfairError, match="'breast_density' has no values"):
        build_datasets("mamamia", root=str(tmp_path), attributes=["age", "breast_density"])


def test_default_config_runs_on_the_public_table(tmp_path):
    _release(tmp_path)
    cfg = yaml.safe_load((Path(duetfair.__file__).parent / "configs" / "mamamia.yaml").read_text())
    args = dict(cfg["data"]["args"], root=str(tmp_path))
    ds = build_datasets("mamamia", **args)
    attr = cfg["data"]["group_attribute"]
    assert attr in ds["train"].group_spec.attributes and ds["train"].split_source == "official"
    case = ds["test"][0]
    assert case["image"].shape == (3, *args["spatial_size"]) and int(case["label"].sum()) > 0


def test_spec_bins_and_groups():
    spec = mamamia_spec(("age", "menopause", "dataset"))
    age, meno = spec["age"], spec["menopause"]
    assert [age.encode(a) for a in (0, 40, 40.5, 41, 50, 51, 70, 71, 95)] == [0, 0, 1, 1, 1, 2, 3, 4, 4]
    assert [meno.encode(v) for v in ("pre", MENO_PRE, MENO_PERI, "post", None, "unknown")] == [0, 0, 0, 1, 2, 2]
    assert spec["dataset"].encode("NACT") == 3
    assert mamamia_spec(["menopausal_status"]).attributes == ["menopause"]


def test_phases_names_and_normalisation(tmp_path):
    _release(tmp_path)
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None, phases=(0, 1, 3))
    d = ds["train"] if "ISPY1_1001" in ds["train"].case_ids else ds["val"]
    case = d[d.case_ids.index("ISPY1_1001")]  # lower-case file names on disk
    assert d.in_channels == 3 and d.spatial_dims == 3 and case["image"].shape == (3, *SHAPE)
    assert abs(float(case["image"].mean())) < 1e-4 and abs(float(case["image"].std()) - 1) < 0.05  # one z-score
    assert case["image"][2].mean() > case["image"][0].mean()  # phase order kept (phase 3 brightest)
    iso = build_datasets("mamamia", root=str(tmp_path), pixdim=(1, 1, 1))["test"][0]
    assert iso["image"].shape[1:] == (16, 10, 15)  # 0.8 x 0.8 x 2 mm -> 1 mm (MONAI Spacingd)


def test_missing_phase_is_reported_before_training(tmp_path):
    _release(tmp_path)
    with pytest.raises(DuetfairError, match=r"10 of 10 cases.*DUKE_001.*0005\.nii\.gz"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None, phases=(0, 5))
    for f in (tmp_path / "images" / "DUKE_002").glob("*_0003.nii.gz"):
        f.unlink()
    with pytest.raises(DuetfairError, match=r"1 of 10 cases.*max_skip_fraction"):
        build_datasets("mamamia", root=str(tmp_path), pixdim=None, phases=(0, 3), on_error="skip")
    ds = build_datasets(
        "mamamia", root=str(tmp_path), pixdim=None, phases=(0, 3), on_error="skip", max_skip_fraction=0.2
    )
    assert sum(len(d) for d in ds.values()) == 9
    assert "DUKE_002" in pd.concat([d.skipped for d in ds.values()])["case_id"].tolist()


def test_csv_clinical_table_with_its_own_split_column(tmp_path):
    _release(tmp_path)
    table = _table_2024().assign(split=["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    table.to_csv(tmp_path / "clinical.csv", index=False)
    ds = build_datasets("mamamia", root=str(tmp_path), clinical="clinical.csv", pixdim=None)
    assert {s: len(d) for s, d in ds.items()} == {"train": 6, "val": 2, "test": 2}
    assert ds["test"].split_source == "table" and ds["test"].case_ids == ["NACT_01", "NACT_02"]
