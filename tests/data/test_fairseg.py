"""Harvard-FairSeg loader on tiny npz files written with the keys of each published version."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from duetfair.data import build_datasets
from duetfair.data import fairseg as fs
from duetfair.errors import DuetfairError

SMALL = dict(image_size=None, crop_size=None, channels=3)


def _image_and_mask(dtype=np.int8):
    img = (np.arange(20 * 24).reshape(20, 24) % 256).astype(np.uint8)
    mask = np.zeros((20, 24), dtype)
    mask[5:15, 6:16] = -1  # rim
    mask[8:12, 9:13] = -2  # cup
    return img, mask


def _npz(
    path, version="current", race=0, age=25000.0, gender=1, ethnicity=0, language=0, marital=0, mask_dtype=np.int8
):
    """One file with the keys of a published version (0-d arrays, as ``.item()`` reads them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img, mask = _image_and_mask(mask_dtype)
    a = np.array
    common = dict(age=a(age), gender=a(gender), race=a(race), language=a(language))
    if version == "current":  # README since 2024-02-07
        np.savez(path, slo_fundus=img, disc_cup_mask=mask, ethnicity=a(ethnicity), maritalstatus=a(marital), **common)
    elif version == "first":  # README of 2024-02-04
        np.savez(
            path, fundus_slo=img, disc_cup_borders=mask, ethnicity=a(ethnicity), marriagestatus=a(marital), **common
        )
    else:  # internal copy: the key list of the SAMed loader
        np.savez(
            path,
            fundus_slo=img,
            disc_cup=mask,
            axes_cup=a([1.0, 2.0]),
            axes_disc=a([3.0, 4.0]),
            md=a(-1.5),
            tds=np.zeros(52),
            pid=a(path.stem),
            maritalstatus=a(marital),
            hispanic=a(ethnicity),
            datadir=a("x"),
            **common,
        )


def _meta(ds):
    return pd.concat([d.meta for d in ds.values()]).set_index("case_id")


@pytest.mark.parametrize("version", ["current", "first", "internal"])
def test_keys_of_each_version_mask_and_image(tmp_path, version):
    races = [2, 3, 7, 2] if version == "internal" else [0, 1, 2, 0]
    for i, race in enumerate(races, start=1):
        _npz(tmp_path / f"data_{i:05d}.npz", version, race=race)
    ds = build_datasets("fairseg", root=str(tmp_path), fractions=(0.5, 0.25, 0.25), **SMALL)
    case = next(iter(ds.values()))[0]
    assert case["image"].shape == (3, 20, 24) and torch.equal(case["image"][0], case["image"][2])
    assert float(case["image"].max()) <= 1.0  # uint8 / 255, as the official loaders
    lab = case["label"][0]
    assert lab[0, 0] == 0 and lab[6, 7] == 1 and lab[10, 10] == 2  # -1 rim -> 1, -2 cup -> 2


def test_current_release_attribute_codes_and_unknowns(tmp_path):
    rows = [  # race, gender, ethnicity, language, maritalstatus
        (0, 0, 0, 0, 0),
        (1, 1, 1, 1, 1),
        (2, 0, -1, 2, 2),
        (-1, 1, 0, -1, 3),
        (2, 0, 0, 0, 4),
        (0, 1, 0, 0, -1),
    ]
    for i, (r, g, e, lang, m) in enumerate(rows, start=1):
        _npz(tmp_path / f"data_{i:05d}.npz", race=r, gender=g, ethnicity=e, language=lang, marital=m)
    ds = build_datasets(
        "fairseg", root=str(tmp_path), attributes=list(fs.ATTRIBUTES), fractions=(0.5, 0.25, 0.25), **SMALL
    )
    meta = _meta(ds)
    assert list(meta.loc[[f"data_{i:05d}" for i in range(1, 7)], "race"].fillna("?")) == [
        "Asian",
        "Black",
        "White",
        "?",
        "White",
        "Asian",
    ]
    assert meta.loc["data_00001", "gender"] == "Female" and meta.loc["data_00002", "gender"] == "Male"
    assert meta.loc["data_00002", "ethnicity"] == "Hispanic" and pd.isna(meta.loc["data_00003", "ethnicity"])
    assert meta.loc["data_00002", "language"] == "Spanish" and meta.loc["data_00003", "language"] == "Other"
    assert list(meta.loc[[f"data_{i:05d}" for i in range(1, 7)], "maritalstatus"].fillna("?")) == [
        "Married or Partnered",
        "Single",
        "Divorced",
        "Widowed",
        "Legally Separated",
        "?",
    ]


def test_first_public_release_keys(tmp_path):
    for i in range(1, 5):
        _npz(tmp_path / f"data_{i:05d}.npz", "first", race=i % 3, marital=i % 5, ethnicity=i % 2)
    ds = build_datasets(
        "fairseg",
        root=str(tmp_path),
        attributes=["race", "ethnicity", "maritalstatus"],
        fractions=(0.5, 0.25, 0.25),
        **SMALL,
    )
    meta = _meta(ds)
    assert meta.loc["data_00002", "race"] == "White" and meta.loc["data_00003", "race"] == "Asian"
    assert meta.loc["data_00004", "maritalstatus"] == "Legally Separated"
    assert meta.loc["data_00001", "ethnicity"] == "Hispanic"


def test_internal_keys_use_race_codes_2_3_7(tmp_path):
    for i, race in enumerate([2, 3, 7, 2, 7, -1], start=1):
        _npz(tmp_path / f"data_{i:05d}.npz", "internal", race=race, ethnicity=[1, 0, -1, 0, 0, 0][i - 1])
    ds = build_datasets(
        "fairseg", root=str(tmp_path), attributes=["race", "ethnicity"], fractions=(0.5, 0.25, 0.25), **SMALL
    )
    meta = _meta(ds)
    assert list(meta.loc[[f"data_{i:05d}" for i in range(1, 7)], "race"].fillna("?")) == [
        "Asian",
        "Black",
        "White",
        "Asian",
        "White",
        "?",
    ]  # 2 is Asian here, never White
    assert meta.loc["data_00001", "ethnicity"] == "Hispanic" and pd.isna(meta.loc["data_00003", "ethnicity"])


def test_internal_keys_with_public_race_codes(tmp_path):
    """The TransUNet copy reads the internal keys with race 0/1/2 unmapped: codes 0/1 prove that coding."""
    for i, race in enumerate([0, 1, 2, 2], start=1):
        _npz(tmp_path / f"data_{i:05d}.npz", "internal", race=race)
    meta = _meta(build_datasets("fairseg", root=str(tmp_path), fractions=(0.5, 0.25, 0.25), **SMALL))
    assert list(meta.sort_index()["race"]) == ["Asian", "Black", "White", "White"]


def test_internal_keys_ambiguous_or_mixed_race_codes(tmp_path):
    for i in (1, 2, 3, 4):
        _npz(tmp_path / f"data_{i:05d}.npz", "internal", race=2)
    with pytest.raises(DuetfairError, match="only hold race code 2.*race_coding="):
        build_datasets("fairseg", root=str(tmp_path), **SMALL)
    args = dict(root=str(tmp_path), fractions=(0.5, 0.25, 0.25), **SMALL)
    assert set(_meta(build_datasets("fairseg", race_coding="internal", **args))["race"]) == {"Asian"}
    assert set(_meta(build_datasets("fairseg", race_coding="public", **args))["race"]) == {"White"}
    _npz(tmp_path / "data_00005.npz", "internal", race=0)
    _npz(tmp_path / "data_00006.npz", "internal", race=7)
    with pytest.raises(DuetfairError, match=r"mix race codes \[0, 2, 7\]"):
        build_datasets("fairseg", root=str(tmp_path), **SMALL)


@pytest.mark.parametrize(
    "key,kwargs,match",
    [
        (
            "race",
            dict(race=7),
            r"data_00002.npz': key race \(public coding\) holds code 7; expected one of \[0, 1, 2\]",
        ),
        (
            "maritalstatus",
            dict(marital=9),
            r"data_00002.npz': key maritalstatus/marriagestatus holds code 9; expected one of \[0, 1, 2, 3, 4\] or -1",
        ),
        ("language", dict(language=3), r"data_00002.npz': key language holds code 3"),
    ],
)
def test_unknown_codes_are_refused(tmp_path, key, kwargs, match):
    _npz(tmp_path / "data_00001.npz")
    _npz(tmp_path / "data_00002.npz", **kwargs)
    with pytest.raises(DuetfairError, match=match):
        build_datasets("fairseg", root=str(tmp_path), **SMALL)


def test_age_in_days_uses_365_like_the_official_loaders(tmp_path):
    _npz(tmp_path / "data_00001.npz", age=21905.0)  # 60.01 years by / 365, 59.97 by / 365.25
    _npz(tmp_path / "data_00002.npz", age=45.0)  # already in years
    _npz(tmp_path / "data_00003.npz", age=25000.0)
    _npz(tmp_path / "data_00004.npz", age=float("nan"))
    ds = build_datasets("fairseg", root=str(tmp_path), attributes=["age"], fractions=(0.5, 0.25, 0.25), **SMALL)
    meta = _meta(ds)
    assert meta.loc["data_00001", "age"] == pytest.approx(21905 / 365)
    assert meta.loc["data_00002", "age"] == 45.0 and meta.loc["data_00003", "age"] == pytest.approx(25000 / 365)
    codes = {cid: int(c[0]) for d in ds.values() for cid, c in zip(d.case_ids, d.codes)}
    assert codes == {"data_00001": 1, "data_00002": 0, "data_00003": 1, "data_00004": -1}


def _official_lists(folder, train, test):
    folder.mkdir()
    (folder / "train.txt").write_text("".join(f"data_{i:05d}.npz\n" for i in train))
    (folder / "test.txt").write_text("".join(f"data_{i:05d}.npz\n" for i in test))
    return folder


def test_official_split_lists_resolved_through_one_index(tmp_path, monkeypatch):
    root = tmp_path / "Harvard-FairSeg"
    for i in range(1, 13):  # the folders disagree with the lists on purpose: the lists decide
        _npz(root / ("Training" if i <= 9 else "Test") / f"data_{i:05d}.npz", race=i % 3)
    (root / "ReadMe").mkdir()
    (root / "ReadMe" / "data_summary.csv").write_text("filename,race\n")
    lists = _official_lists(tmp_path / "FairSeg_final", train=[3, 1, 4, 5, 9, 2, 6, 12], test=[7, 8, 10, 11])
    walks = []
    real_walk = os.walk
    monkeypatch.setattr(fs.os, "walk", lambda *a, **k: walks.append(a) or real_walk(*a, **k))
    monkeypatch.setattr(fs.Path, "rglob", lambda *a, **k: pytest.fail("rglob per file"))
    ds = build_datasets("fairseg", root=str(root), split_files=str(lists), val_fraction=0.25, **SMALL)
    assert len(walks) == 1
    assert sorted(ds["test"].case_ids) == ["data_00007", "data_00008", "data_00010", "data_00011"]
    assert sorted(ds["train"].case_ids + ds["val"].case_ids) == sorted(
        f"data_{i:05d}" for i in [1, 2, 3, 4, 5, 6, 9, 12]
    )
    assert len(ds["val"]) >= 1  # the official split has no validation set: carved from train


def test_split_lists_as_mapping_with_csv_header_and_paths(tmp_path):
    for i in range(1, 5):
        _npz(tmp_path / "all" / f"data_{i:05d}.npz", race=i % 3)
    tr, te = tmp_path / "tr.csv", tmp_path / "te.txt"
    tr.write_text("file,race\nTraining/data_00001.npz,0\ndata_00002.npz,1\n\n# note\ndata_00003.npz,2\n")
    te.write_text("data_00004.npz")
    ds = build_datasets(
        "fairseg",
        root=str(tmp_path / "all"),
        split_files={"train": str(tr), "test": str(te)},
        val_fraction=0.0,
        **SMALL,
    )
    assert sorted(ds["train"].case_ids) == ["data_00001", "data_00002", "data_00003"] and ds["test"].case_ids == [
        "data_00004"
    ]


def test_split_list_errors(tmp_path):
    for i in range(1, 5):
        _npz(tmp_path / "d" / f"data_{i:05d}.npz")
    root = str(tmp_path / "d")
    lists = _official_lists(tmp_path / "l1", train=[1, 2, 77], test=[4])
    with pytest.raises(DuetfairError, match=r"train.txt': 1 of 3 files not found .*first: data_00077.npz"):
        build_datasets("fairseg", root=root, split_files=str(lists), **SMALL)
    lists = _official_lists(tmp_path / "l2", train=[1, 2, 3], test=[3, 4])
    with pytest.raises(DuetfairError, match=r"test.txt': 'data_00003.npz' is also in the train list"):
        build_datasets("fairseg", root=root, split_files=str(lists), **SMALL)
    bad = tmp_path / "bad.txt"
    bad.write_text("data_00001.npz\ndata_00002.png\n")
    with pytest.raises(DuetfairError, match=r"bad.txt' line 2: 'data_00002.png' is not an .npz"):
        build_datasets("fairseg", root=root, split_files={"train": str(bad)}, **SMALL)
    with pytest.raises(DuetfairError, match="has none of"):
        build_datasets("fairseg", root=root, split_files=str(tmp_path), **SMALL)
    with pytest.raises(DuetfairError, match="split_files key 'dev'"):
        build_datasets("fairseg", root=root, split_files={"dev": str(bad)}, **SMALL)


def test_split_folders_training_test(tmp_path):
    for i in range(1, 11):
        _npz(tmp_path / "Training" / f"data_{i:05d}.npz", race=i % 3)
    for i in range(11, 13):
        _npz(tmp_path / "Test" / f"data_{i:05d}.npz")
    ds = build_datasets("fairseg", root=str(tmp_path), **SMALL)
    assert sorted(ds["test"].case_ids) == ["data_00011", "data_00012"]
    assert len(ds["train"]) + len(ds["val"]) == 10 and len(ds["val"]) >= 1
    small = build_datasets("fairseg", root=str(tmp_path), image_size=16, crop_size=12, channels=1)
    assert small["test"][0]["image"].shape == (1, 16, 16)


def test_layout_errors(tmp_path):
    _npz(tmp_path / "Training" / "data_00001.npz")
    _npz(tmp_path / "data_00002.npz")
    with pytest.raises(DuetfairError, match="1 files .*data_00002.npz.* lie outside the split folders"):
        build_datasets("fairseg", root=str(tmp_path), **SMALL)
    _npz(tmp_path / "Test" / "data_00001.npz")
    with pytest.raises(DuetfairError, match="'data_00001.npz' is both"):
        build_datasets("fairseg", root=str(tmp_path), **SMALL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DuetfairError, match="has no data_\\*.npz files"):
        build_datasets("fairseg", root=str(tmp_path / "empty"), **SMALL)


def test_bad_files(tmp_path):
    _npz(tmp_path / "data_00001.npz")
    np.savez(tmp_path / "data_00002.npz", image=np.zeros((4, 4)))
    with pytest.raises(DuetfairError, match="data_00002.npz.*lacks image/mask"):
        build_datasets("fairseg", root=str(tmp_path))
    (tmp_path / "data_00002.npz").write_bytes(b"garbage")
    with pytest.raises(DuetfairError, match="data_00002.npz' cannot be read"):
        build_datasets("fairseg", root=str(tmp_path))


def test_mask_values_float_positive_and_invalid(tmp_path):
    for i in range(1, 5):
        _npz(tmp_path / f"data_{i:05d}.npz", mask_dtype=np.float64)
    ds = build_datasets("fairseg", root=str(tmp_path), fractions=(0.5, 0.25, 0.25), **SMALL)
    assert int(next(iter(ds.values()))[0]["label"][0, 10, 10]) == 2
    img, mask = _image_and_mask()
    np.savez(tmp_path / "data_00001.npz", slo_fundus=img, disc_cup_mask=np.abs(mask), race=np.array(0))
    mask[0, 0] = 5
    np.savez(tmp_path / "data_00002.npz", slo_fundus=img, disc_cup_mask=mask, race=np.array(0))
    ds = build_datasets("fairseg", root=str(tmp_path), split_files={"test": str(_one_list(tmp_path))}, **SMALL)
    assert int(ds["test"][0]["label"][0, 6, 7]) == 1 and int(ds["test"][0]["label"][0, 10, 10]) == 2
    with pytest.raises(DuetfairError, match=r"data_00002.npz' holds values \[5\]"):
        ds["test"][1]


def _one_list(tmp_path):
    p = tmp_path / "test.txt"
    p.write_text("data_00001.npz\ndata_00002.npz\n")
    return p
