"""FairSeg, HAM10000 and MAMA-MIA loaders on tiny files in each release's exact format."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from duetfair.data import build_datasets
from duetfair.errors import DuetfairError


def _fairseg_npz(path, i, old=False, race=2, age=25000.0):
    img = (np.arange(20 * 24).reshape(20, 24) % 256).astype(np.uint8)
    mask = np.zeros((20, 24), np.int8)
    mask[5:15, 6:16] = -1
    mask[8:12, 9:13] = -2
    keys = dict(age=np.array(age), gender=np.array(i % 2), race=np.array(race), language=np.array(-1),
                maritalstatus=np.array(3))
    if old:
        np.savez(path, fundus_slo=img, disc_cup=mask, hispanic=np.array(1), **keys)
    else:
        np.savez(path, slo_fundus=img, disc_cup_mask=mask, ethnicity=np.array(0), **keys)


def test_fairseg_both_spellings_mask_mapping_and_split_folders(tmp_path):
    (tmp_path / "Training").mkdir()
    (tmp_path / "Test").mkdir()
    for i in range(1, 11):
        _fairseg_npz(tmp_path / "Training" / f"data_{i:05d}.npz", i, old=i % 2 == 0, race=i % 3)
    for i in range(11, 13):
        _fairseg_npz(tmp_path / "Test" / f"data_{i:05d}.npz", i, age=45.0)
    ds = build_datasets("fairseg", root=str(tmp_path), attributes=["race", "age", "gender", "ethnicity", "language"],
                        image_size=None, crop_size=None, channels=3)
    assert len(ds["test"]) == 2 and len(ds["train"]) + len(ds["val"]) == 10 and len(ds["val"]) >= 1
    case = ds["test"][0]
    assert case["image"].shape == (3, 20, 24) and torch.equal(case["image"][0], case["image"][2])
    lab = case["label"][0]
    assert lab[0, 0] == 0 and lab[6, 7] == 1 and lab[10, 10] == 2
    assert case["attrs"]["age"] == 45.0 and case["group"][1] == 0  # age 45 years -> <60
    tr = ds["train"].meta.set_index("case_id")
    assert 60 < tr["age"].iloc[0] < 70  # 25000 days -> 68.4 years
    old = tr.loc["data_00002"]
    assert old["ethnicity"] == "Hispanic" and tr.loc["data_00001", "ethnicity"] == "Non-Hispanic"
    assert ds["train"].unknown_counts()["language"] == len(ds["train"])  # -1 -> unknown, counted
    small = build_datasets("fairseg", root=str(tmp_path), image_size=16, crop_size=12, channels=1)
    assert small["test"][0]["image"].shape == (1, 16, 16)


def test_fairseg_bad_files(tmp_path):
    _fairseg_npz(tmp_path / "data_00001.npz", 1)
    np.savez(tmp_path / "data_00002.npz", image=np.zeros((4, 4)))
    with pytest.raises(DuetfairError, match="data_00002.npz.*lacks image/mask"):
        build_datasets("fairseg", root=str(tmp_path))
    (tmp_path / "data_00002.npz").write_bytes(b"garbage")
    with pytest.raises(DuetfairError, match="data_00002.npz' cannot be read"):
        build_datasets("fairseg", root=str(tmp_path))


def _ham(root, n=10):
    (root / "HAM10000_images").mkdir()
    (root / "HAM10000_segmentations").mkdir()
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        iid = f"ISIC_{i:07d}"
        Image.fromarray(rng.integers(0, 255, (15, 20, 3), dtype=np.uint8)).save(root / "HAM10000_images" / f"{iid}.jpg")
        m = np.zeros((15, 20), np.uint8)
        m[4:10, 5:12] = 255
        Image.fromarray(m).save(root / "HAM10000_segmentations" / f"{iid}_segmentation.png")
        rows.append({"lesion_id": f"HAM_{i // 2:07d}", "image_id": iid, "dx": "nv", "dx_type": "histo",
                     "age": [15, 35, None, 85, 62][i % 5], "sex": ["male", "female", "unknown"][i % 3],
                     "localization": "back"})
    pd.DataFrame(rows).to_csv(root / "HAM10000_metadata.csv", index=False)


def test_ham10000_lesion_split_bins_and_masks(tmp_path):
    _ham(tmp_path)
    ds = build_datasets("ham10000", root=str(tmp_path), image_size=16, seed=0)
    lesion_split = pd.concat([d.meta for d in ds.values()]).groupby("lesion_id")["split"].nunique()
    assert (lesion_split == 1).all()
    d = next(iter(ds.values()))
    case = d[0]
    assert case["image"].shape == (3, 16, 16) and set(torch.unique(case["label"]).tolist()) == {0, 1}
    allm = pd.concat([x.meta for x in ds.values()])
    codes = d.group_spec.encode_frame(allm)
    assert (codes[allm["age"].isna().to_numpy(), 0] == -1).all()  # missing age kept as unknown
    assert (codes[(allm["sex"] == "unknown").to_numpy(), 1] == -1).all()
    assert set(codes[allm["age"].eq(85).to_numpy(), 0]) == {4}
    split = tmp_path / "split.csv"
    pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(10)], "split": ["test"] * 10}).to_csv(split, index=False)
    assert list(build_datasets("ham10000", root=str(tmp_path), split_file=str(split))) == ["test"]
    (tmp_path / "HAM10000_segmentations" / "ISIC_0000003_segmentation.png").unlink()
    skipped = build_datasets("ham10000", root=str(tmp_path), split_file=str(split), on_error="skip")["test"]
    assert len(skipped) == 9 and skipped.skipped["case_id"].tolist() == ["ISIC_0000003"]


def _mamamia(root, xlsx=True):
    ids = ["DUKE_001", "ISPY1_002", "NACT_003", "ISPY2_004"]
    for j, pid in enumerate(ids):
        d = root / "images" / pid
        d.mkdir(parents=True)
        for k in range(4):
            name = f"{pid.lower()}_{k:04d}.nii.gz" if j != 1 else f"{pid.upper()}_{k:04d}.NII.GZ"
            nib.save(nib.Nifti1Image(np.random.default_rng(k).random((10, 10, 5)).astype(np.float32) * (k + 1),
                                     np.diag([1, 1, 2, 1])), d / name)
        seg = np.zeros((10, 10, 5), np.uint8)
        seg[3:6, 3:6, 1:3] = 1
        (root / "segmentations" / "expert").mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(seg, np.diag([1, 1, 2, 1])), root / "segmentations" / "expert" / f"{pid.lower()}.nii.gz")
        (root / "patient_info_files").mkdir(exist_ok=True)
        box = {"x_min": 1, "x_max": 9, "y_min": 2, "y_max": 8, "z_min": 0, "z_max": 5}
        (root / "patient_info_files" / f"{pid.lower()}.json").write_text(json.dumps({"primary_lesion": {"breast_coordinates": box}}))
    table = pd.DataFrame({"patient_id": ids, "dataset": ["DUKE", "ISPY1", "NACT", "ISPY2"], "age": [38, 41, 71, None],
                          "menopause": ["pre", "peri-menopausal", None, "postmenopausal"],
                          "breast_density": ["a", None, "c", "d"], "split": ["train", "train", "val", "test"]})
    if xlsx:
        with pd.ExcelWriter(root / "clinical_and_imaging_info.xlsx", engine="openpyxl") as w:
            table.to_excel(w, sheet_name="dataset_info", index=False)
    else:
        table.to_csv(root / "clinical.csv", index=False)


def test_mamamia_phases_case_insensitive_xlsx_and_groups(tmp_path):
    _mamamia(tmp_path)
    ds = build_datasets("mamamia", root=str(tmp_path), pixdim=None, phases=(0, 1, 3))
    tr = ds["train"]
    assert len(tr) == 2 and tr.in_channels == 3 and tr.spatial_dims == 3
    case = tr[1]  # ISPY1_002: upper-case file names
    assert case["case_id"] == "ISPY1_002" and case["image"].shape == (3, 10, 10, 5)
    assert abs(float(case["image"].mean())) < 1e-4 and abs(float(case["image"].std()) - 1) < 0.05  # z-score over phases
    assert case["image"][2].mean() > case["image"][0].mean()  # phase order kept
    assert case["group"].tolist() == [1, 0, 1]  # age 41 -> 41-50, peri -> pre, ISPY1
    assert ds["val"][0]["group"].tolist() == [4, 2, 3]  # age 71 -> 71+, missing menopause -> unknown group
    assert ds["test"][0]["group"].tolist()[:2] == [-1, 1]
    iso = build_datasets("mamamia", root=str(tmp_path), pixdim=(1, 1, 1), crop_to_breast=True)["train"][0]
    assert iso["image"].shape[1:3] == (8, 6) and iso["image"].shape[-1] in (9, 10)


def test_mamamia_csv_and_missing_phase(tmp_path):
    _mamamia(tmp_path, xlsx=False)
    ds = build_datasets("mamamia", root=str(tmp_path), clinical="clinical.csv", pixdim=None,
                        attributes=["breast_density"], phases=(0, 5))
    with pytest.raises(DuetfairError, match="case 'DUKE_001'.*0005.nii.gz' does not exist"):
        ds["train"][0]
    with pytest.raises(DuetfairError, match="attribute column 'ethnicity'|unknown MAMA-MIA attribute"):
        build_datasets("mamamia", root=str(tmp_path), clinical="clinical.csv", attributes=["ethnicity"])
