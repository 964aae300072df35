"""HAM10000 loader on tiny files in the layout of the Harvard Dataverse release (doi:10.7910/DVN/DBW86T).

As downloaded and unzipped::

    HAM10000_images_part_1/ISIC_xxxxxxx.jpg     HAM10000_images_part_2/ISIC_xxxxxxx.jpg
    HAM10000_segmentations_lesion_tschandl/ISIC_xxxxxxx_segmentation.png   (0 / 255)
    HAM10000_metadata.tab   (Dataverse's tab-separated export, strings in double quotes)

Paper splits: MEDFAIR (ys-zong/MEDFAIR, notebooks/HAM10000-example.ipynb) writes
``split/new_train.csv``, ``new_val.csv``, ``new_test.csv`` (metadata rows with the pandas index, plus
Path, Sex, Age_multi, Age_binary, binaryLabel); the dMoE code (tvseg/dMoE,
2d/datasets/dataset_fairseg.py) reads ``split/train.csv`` and ``split/test.csv`` with the same columns.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import duetfair
from duetfair.data import build_datasets
from duetfair.errors import DuetfairError

IDS = [f"ISIC_{24306 + i:07d}" for i in range(10)]
AGES = [15.0, 35.0, None, 85.0, 60.0, 45.0, 50.0, 20.0, 75.0, 40.0]
SEXES = ["male", "female", "unknown", "male", "female", "male", "female", "male", "female", "male"]
SITES = ["back", "back", "unknown", "face", "lower extremity", "trunk", "scalp", "back", "foot", "chest"]
COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset"]


def _metadata() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lesion_id": [f"HAM_{i // 2:07d}" for i in range(10)],
            "image_id": IDS,
            "dx": ["nv", "nv", "bkl", "bkl", "mel", "mel", "bcc", "bcc", "nv", "nv"],
            "dx_type": "histo",
            "age": AGES,
            "sex": SEXES,
            "localization": SITES,
            "dataset": "vidir_modern",
        }
    )[COLUMNS]


def _write_tab(path: Path, meta: pd.DataFrame) -> None:
    """Dataverse's tabular export: tab-separated, header bare, strings quoted, numbers bare, NA empty."""

    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v}" if isinstance(v, float) else f'"{v}"'

    lines = ["\t".join(meta.columns)] + ["\t".join(cell(v) for v in row) for row in meta.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")


def _release(
    root: Path,
    *,
    images=("HAM10000_images_part_1", "HAM10000_images_part_2"),
    masks="HAM10000_segmentations_lesion_tschandl",
    tab: bool = True,
) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    for d in (*images, masks):
        (root / d).mkdir()
    for i, iid in enumerate(IDS):
        folder = root / images[min(i * len(images) // len(IDS), len(images) - 1)]
        Image.fromarray(rng.integers(0, 255, (15, 20, 3), dtype=np.uint8)).save(folder / f"{iid}.jpg")
        m = np.zeros((15, 20), np.uint8)
        m[4:10, 5:12] = 255
        Image.fromarray(m).save(root / masks / f"{iid}_segmentation.png")
    if tab:
        _write_tab(root / "HAM10000_metadata.tab", _metadata())
    else:
        _metadata().to_csv(root / "HAM10000_metadata.csv", index=False)
    return root


def _medfair_rows(lesions: set[int]) -> pd.DataFrame:
    """Rows as MEDFAIR's notebook writes them: age/sex nulls dropped, extra columns, pandas index kept."""
    meta = _metadata()
    meta = meta[meta["age"].notna() & meta["sex"].notna()]
    meta = meta[meta["lesion_id"].isin({f"HAM_{k:07d}" for k in lesions})].copy()
    meta["Path"] = "HAM10000_images/" + meta["image_id"] + ".jpg"
    meta["Sex"] = meta["sex"].map({"male": "M", "female": "F"}).fillna(meta["sex"])
    meta["Age_multi"] = np.digitize(meta["age"].astype(int), [20, 40, 60, 80])
    meta["Age_binary"] = (meta["age"] >= 60).astype(int)
    meta["binaryLabel"] = meta["dx"].isin(["akiec", "mel"]).astype(int)
    return meta


def _write_medfair(root: Path) -> dict[str, list[str]]:
    (root / "split").mkdir(exist_ok=True)
    parts = {"train": {0, 1, 2}, "val": {3}, "test": {4}}
    for split, lesions in parts.items():
        _medfair_rows(lesions).to_csv(root / "split" / f"new_{split}.csv")  # index written, as MEDFAIR does
    return {s: _medfair_rows(les)["image_id"].tolist() for s, les in parts.items()}


def _write_dmoe(root: Path) -> dict[str, list[str]]:
    (root / "split").mkdir(exist_ok=True)
    parts = {"train": {0, 1, 2, 3}, "test": {4}}
    for split, lesions in parts.items():
        _medfair_rows(lesions).to_csv(root / "split" / f"{split}.csv", index=False)
    return {s: _medfair_rows(les)["image_id"].tolist() for s, les in parts.items()}


def _ids(ds: dict) -> dict[str, list[str]]:
    return {s: sorted(d.case_ids) for s, d in ds.items()}


def test_reads_the_dataverse_layout_as_downloaded(tmp_path):
    _release(tmp_path)
    ds = build_datasets("ham10000", root=str(tmp_path), image_size=16, seed=0)
    allm = pd.concat([d.meta.assign(split=s) for s, d in ds.items()], ignore_index=True)
    assert sorted(allm["case_id"]) == IDS and all(d.split_source == "lesion" for d in ds.values())
    assert (allm.groupby("lesion_id")["split"].nunique() == 1).all()
    assert set(allm["dataset"]) == {"vidir_modern"} and not allm["image_id"].str.contains('"').any()
    spec = next(iter(ds.values())).group_spec
    codes = dict(zip(allm["case_id"], spec.encode_frame(allm).tolist()))
    assert codes[IDS[2]] == [-1, -1]  # missing age, sex 'unknown': kept, coded unknown
    assert codes[IDS[3]] == [4, 1] and codes[IDS[7]] == [1, 1] and codes[IDS[9]] == [2, 1] and codes[IDS[4]] == [3, 0]
    for d in ds.values():  # cases from both image folders read, masks 0/255 -> 0/1
        for i in range(len(d)):
            case = d[i]
            assert case["image"].shape == (3, 16, 16) and set(torch.unique(case["label"]).tolist()) == {0, 1}


def test_metadata_csv_and_the_older_folder_names(tmp_path):
    _release(tmp_path, images=("HAM10000_images",), masks="HAM10000_segmentations", tab=False)
    ds = build_datasets("ham10000", root=str(tmp_path), image_size=None)
    assert sum(len(d) for d in ds.values()) == 10
    assert next(iter(ds.values()))[0]["image"].shape == (3, 15, 20)


def test_folders_unzipped_into_a_folder_of_the_same_name(tmp_path):
    _release(tmp_path)
    masks = tmp_path / "HAM10000_segmentations_lesion_tschandl"
    masks.rename(tmp_path / "tmp")
    masks.mkdir()
    (tmp_path / "tmp").rename(masks / "HAM10000_segmentations_lesion_tschandl")
    (tmp_path / "HAM10000_images_part_2").rename(tmp_path / "ham10000_images_part_2")  # case differs
    ds = build_datasets("ham10000", root=str(tmp_path), image_size=16)
    assert sum(len(d) for d in ds.values()) == 10 and next(iter(ds.values()))[0]["label"].max() == 1


def test_medfair_split_files(tmp_path, caplog):
    _release(tmp_path)
    want = _write_medfair(tmp_path)
    caplog.set_level(logging.INFO, logger="duetfair.data")
    ds = build_datasets("ham10000", root=str(tmp_path), split="medfair", image_size=16)
    assert _ids(ds) == {s: sorted(v) for s, v in want.items()}
    assert all(d.split_source == "medfair" for d in ds.values()) and IDS[2] not in sum(_ids(ds).values(), [])
    assert any("1 of 10" in r.getMessage() and "no split file" in r.getMessage() for r in caplog.records)
    auto = build_datasets("ham10000", root=str(tmp_path), image_size=16)  # default 'auto' finds them
    assert _ids(auto) == _ids(ds) and auto["test"].split_source == "medfair"


def test_dmoe_split_files_with_validation_from_train(tmp_path):
    _release(tmp_path)
    want = _write_dmoe(tmp_path)
    ds = build_datasets("ham10000", root=str(tmp_path), split="dmoe", val_fraction=0.3, image_size=16)
    assert sorted(ds["test"].case_ids) == sorted(want["test"]) and ds["train"].split_source == "dmoe"
    assert sorted(ds["train"].case_ids + ds["val"].case_ids) == sorted(want["train"]) and len(ds["val"]) >= 1
    assert not set(ds["train"].meta["lesion_id"]) & set(ds["val"].meta["lesion_id"])
    assert _ids(build_datasets("ham10000", root=str(tmp_path), val_fraction=0.3, image_size=16)) == _ids(ds)


def test_split_files_are_checked(tmp_path):
    _release(tmp_path)
    with pytest.raises(DuetfairError, match=r"split='medfair'.*new_train\.csv"):
        build_datasets("ham10000", root=str(tmp_path), split="medfair")
    _write_medfair(tmp_path)
    _write_dmoe(tmp_path)
    with pytest.raises(DuetfairError, match=r"both MEDFAIR.*and dMoE.*split='medfair' or split='dmoe'"):
        build_datasets("ham10000", root=str(tmp_path))
    bad = pd.DataFrame({"image_id": [IDS[0], "ISIC_9999999"]})
    bad.to_csv(tmp_path / "split" / "test.csv", index=False)
    with pytest.raises(DuetfairError, match=r"test\.csv.*ISIC_9999999.*not in the metadata"):
        build_datasets("ham10000", root=str(tmp_path), split="dmoe")
    pd.DataFrame({"image_id": [IDS[0]]}).to_csv(tmp_path / "split" / "test.csv", index=False)
    with pytest.raises(DuetfairError, match=rf"{IDS[0]}.*more than one split"):
        build_datasets("ham10000", root=str(tmp_path), split="dmoe")
    pd.DataFrame({"name": [IDS[0]]}).to_csv(tmp_path / "split" / "test.csv", index=False)
    with pytest.raises(DuetfairError, match=r"test\.csv.*'image_id'"):
        build_datasets("ham10000", root=str(tmp_path), split="dmoe")
    with pytest.raises(DuetfairError, match="split must be one of"):
        build_datasets("ham10000", root=str(tmp_path), split="medfiar")


def test_explicit_split_files(tmp_path):
    _release(tmp_path)
    lists = {}
    for split, ids in {"train": IDS[:6], "val": IDS[6:8], "test": IDS[8:]}.items():
        lists[split] = str(tmp_path / f"{split}_ids.csv")
        pd.DataFrame({"image_id": ids}).to_csv(lists[split], index=False)
    ds = build_datasets("ham10000", root=str(tmp_path), split_files=lists, image_size=16)
    assert _ids(ds) == {"train": IDS[:6], "val": IDS[6:8], "test": IDS[8:]} and ds["val"].split_source == "files"
    one = tmp_path / "one.csv"
    pd.DataFrame({"image_id": IDS, "split": ["test"] * 10}).to_csv(one, index=False)
    assert list(build_datasets("ham10000", root=str(tmp_path), split_file=str(one))) == ["test"]
    pd.DataFrame({"image_id": IDS[:9], "split": ["test"] * 9}).to_csv(one, index=False)
    with pytest.raises(DuetfairError, match=rf"one\.csv' has no split for images \['{IDS[9]}'\]"):
        build_datasets("ham10000", root=str(tmp_path), split_file=str(one))


def test_a_missing_image_folder_is_refused_unless_forced(tmp_path, caplog):
    _release(tmp_path)
    shutil.rmtree(tmp_path / "HAM10000_images_part_2")
    with pytest.raises(DuetfairError, match=r"5 of 10 cases.*ISIC_0024311.*not present.*HAM10000_images_part_2"):
        build_datasets("ham10000", root=str(tmp_path))
    with pytest.raises(DuetfairError, match=r"5 of 10 cases \(50\.0%\).*ISIC_0024311.*max_skip_fraction=0\.05"):
        build_datasets("ham10000", root=str(tmp_path), on_error="skip")
    caplog.set_level(logging.WARNING, logger="duetfair.data")
    ds = build_datasets("ham10000", root=str(tmp_path), on_error="skip", max_skip_fraction=1.0, image_size=16)
    assert sorted(sum(_ids(ds).values(), [])) == IDS[:5]
    assert any("5 of 10 cases" in r.getMessage() and "ISIC_0024311" in r.getMessage() for r in caplog.records)
    skipped = pd.concat([d.skipped for d in ds.values()])
    assert sorted(skipped["case_id"]) == IDS[5:]


def test_a_few_bad_cases_are_counted_and_reported(tmp_path, caplog):
    _release(tmp_path)
    (tmp_path / "HAM10000_segmentations_lesion_tschandl" / f"{IDS[3]}_segmentation.png").unlink()
    (tmp_path / "HAM10000_images_part_2" / f"{IDS[7]}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DuetfairError, match=rf"1 of 10 cases.*{IDS[3]}_segmentation\.png"):
        build_datasets("ham10000", root=str(tmp_path))
    with pytest.raises(DuetfairError, match=r"1 of 10 cases \(10\.0%\).*max_skip_fraction=0\.05"):
        build_datasets("ham10000", root=str(tmp_path), on_error="skip", image_size=16)  # missing file: before reading
    with pytest.raises(DuetfairError, match=r"2 of 10 cases \(20\.0%\).*max_skip_fraction=0\.15"):
        build_datasets("ham10000", root=str(tmp_path), on_error="skip", max_skip_fraction=0.15, image_size=16)
    caplog.set_level(logging.WARNING, logger="duetfair.data")
    ds = build_datasets("ham10000", root=str(tmp_path), on_error="skip", max_skip_fraction=0.25, image_size=16)
    skipped = pd.concat([d.skipped for d in ds.values()])
    assert sorted(skipped["case_id"]) == sorted([IDS[3], IDS[7]]) and sum(len(d) for d in ds.values()) == 8
    assert any("2 of 10 cases" in r.getMessage() for r in caplog.records)


def test_default_config_reads_the_release(tmp_path):
    _release(tmp_path)
    cfg = yaml.safe_load((Path(duetfair.__file__).parent / "configs" / "ham10000.yaml").read_text())
    args = dict(cfg["data"]["args"], root=str(tmp_path))
    ds = build_datasets("ham10000", **args)
    assert cfg["data"]["group_attribute"] in ds["train"].group_spec.attributes
    assert ds["train"][0]["image"].shape == (3, 224, 224)


def test_missing_metadata_and_folders_are_named(tmp_path):
    _release(tmp_path)
    (tmp_path / "HAM10000_metadata.tab").unlink()
    with pytest.raises(DuetfairError, match=r"HAM10000_metadata\.tab.*HAM10000_metadata\.csv"):
        build_datasets("ham10000", root=str(tmp_path))
    _release(tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "HAM10000_segmentations_lesion_tschandl")
    with pytest.raises(DuetfairError, match=r"HAM10000_segmentations_lesion_tschandl"):
        build_datasets("ham10000", root=str(tmp_path / "b"))
