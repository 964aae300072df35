"""Audit inputs from other tools: nnU-Net summary.json, MONAI per-case CSVs, the metadata join."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from duetfair.audit.inputs import (
    attribute_kind,
    canonical_id,
    choose_attributes,
    join_metadata,
    metric_of_file,
    read_metadata,
    read_monai_csv,
    read_nnunet_summary,
)
from duetfair.audit.writer import write_audit
from duetfair.errors import DuetfairError


def nnunet_case(name, dice1, dice2, region=None):
    """One ``metric_per_case`` entry as nnU-Net v2 writes it (keys sorted, full paths)."""

    def block(d, n_ref):
        tp = round(d * n_ref) if not math.isnan(d) else 0
        return {
            "Dice": d,
            "FN": n_ref - tp,
            "FP": 3,
            "IoU": d / (2 - d) if not math.isnan(d) else float("nan"),
            "TN": 5000,
            "TP": tp,
            "n_pred": tp + 3,
            "n_ref": n_ref,
        }

    metrics = {"1": block(dice1, 120), "2": block(dice2, 40 if not math.isnan(dice2) else 0)}
    if region is not None:
        metrics["(1, 2)"] = block(region, 160)
    return {
        "metrics": metrics,
        "prediction_file": f"/results/Dataset004/fold_0/validation/{name}.nii.gz",
        "reference_file": f"/preprocessed/Dataset004/gt_segmentations/{name}.nii.gz",
    }


@pytest.fixture()
def summary(tmp_path):
    cases = [
        nnunet_case("hippo_001", 0.9, 0.8, 0.92),
        nnunet_case("hippo_002", 0.7, float("nan"), 0.75),
        nnunet_case("hippo_003", 0.85, 0.6, 0.88),
        nnunet_case("hippo_004", 0.8, 0.7, 0.81),
    ]
    data = {
        "foreground_mean": {"Dice": 0.8},
        "mean": {"1": {"Dice": 0.82}, "2": {"Dice": 0.7}, "(1, 2)": {"Dice": 0.85}},
        "metric_per_case": cases,
    }
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data, sort_keys=True, indent=4))  # NaN as nnU-Net writes it
    return path


def test_nnunet_summary(summary):
    table = read_nnunet_summary(
        summary, label_names={1: "anterior", 2: "posterior"}, regions={(1, 2): "whole"}, labels=[1, 2]
    )
    assert list(table.columns) == ["case_id", "class", "dice", "iou", "n_ref", "n_pred"]
    assert table["case_id"].tolist() == [f"hippo_00{i}" for i in range(1, 5) for _ in range(3)]
    assert table["class"].tolist()[:3] == ["anterior", "posterior", "whole"]
    row = table[(table["case_id"] == "hippo_002") & (table["class"] == "posterior")].iloc[0]
    assert np.isnan(row["dice"]) and row["n_ref"] == 0
    assert table.loc[0, "dice"] == 0.9 and table.loc[0, "n_ref"] == 120
    plain = read_nnunet_summary(summary, pattern="hippo_{case}.nii.gz")
    assert plain["case_id"].iloc[0] == "001" and plain["class"].tolist()[:3] == [1, 2, "1+2"]


def test_nnunet_selection_and_region_names(summary):
    """--region names nnU-Net's keys, a single label too; with regions and no --labels only the
    regions are kept (as for mask folders); a label or region nnU-Net did not evaluate is an error."""
    only = read_nnunet_summary(summary, regions={(1, 2): "whole", (2,): "core"})
    assert only["class"].tolist()[:2] == ["whole", "core"] and len(only) == 8
    one = read_nnunet_summary(summary, labels=[2])
    assert one["class"].tolist() == [2] * 4
    with pytest.raises(
        DuetfairError, match=r"--region et=3: nnU-Net's summary.json has no such label or region; it has 1, 2, \(1, 2\)"
    ):
        read_nnunet_summary(summary, regions={(3,): "et"})
    with pytest.raises(DuetfairError, match="--labels 5: "):
        read_nnunet_summary(summary, labels=[1, 5])


def test_nnunet_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"mean": {}}')
    with pytest.raises(DuetfairError, match="no 'metric_per_case' list"):
        read_nnunet_summary(bad)
    bad.write_text("{not json")
    with pytest.raises(DuetfairError, match="not valid JSON"):
        read_nnunet_summary(bad)
    with pytest.raises(DuetfairError, match="file not found"):
        read_nnunet_summary(tmp_path / "missing.json")


def test_monai_raw_csvs(tmp_path):
    # the layout of MONAI's write_metrics_reports: filename, class0..classN, mean
    (tmp_path / "mean_dice_raw.csv").write_text(
        "filename,class0,class1,mean\n/data/imagesTs/p1_0000.nii.gz,0.9,0.8,0.85\n/data/imagesTs/p2_0000.nii.gz,0.7,nan,0.7\n"
    )
    (tmp_path / "hausdorff_distance_raw.csv").write_text(
        "filename,class0,class1,mean\n/data/imagesTs/p1_0000.nii.gz,2.5,3.0,2.75\n/data/imagesTs/p2_0000.nii.gz,9.0,inf,inf\n"
    )
    table = read_monai_csv(
        [str(tmp_path / "mean_dice_raw.csv"), str(tmp_path / "hausdorff_distance_raw.csv")],
        pattern="{case}_0000.nii.gz",
        label_names={1: "liver", 2: "tumour"},
    )
    assert list(table.columns) == ["case_id", "class", "dice", "hd95"]
    assert table["case_id"].tolist() == ["p1", "p1", "p2", "p2"]
    assert table["class"].tolist() == ["liver", "tumour"] * 2
    assert table["dice"].tolist()[:3] == [0.9, 0.8, 0.7] and np.isinf(table["hd95"].iloc[3])
    explicit = read_monai_csv([f"iou={tmp_path / 'mean_dice_raw.csv'}"], labels=[2, 3])
    assert list(explicit.columns) == ["case_id", "class", "iou"] and explicit["class"].tolist()[:2] == [2, 3]
    assert explicit["case_id"].iloc[0] == "p1_0000"
    assert metric_of_file("surface_dice_raw.csv") == "nsd" and metric_of_file("x.csv") is None
    with pytest.raises(DuetfairError, match="cannot tell the metric"):
        (tmp_path / "scores.csv").write_text("filename,class0\na.nii.gz,0.5\n")
        read_monai_csv([str(tmp_path / "scores.csv")])


def test_generic_per_case_csv(tmp_path):
    (tmp_path / "per_case.csv").write_text(
        "case_id,class,Dice,hd95\n7,1,0.9,3.0\n7,2,0.5,8.0\n8,1,0.8,4.0\n8,2,0.6,6.0\n"
    )
    table = read_monai_csv([str(tmp_path / "per_case.csv")])
    assert table["case_id"].tolist() == ["7", "7", "8", "8"] and table["class"].tolist() == [1, 2, 1, 2]
    assert table["dice"].tolist() == [0.9, 0.5, 0.8, 0.6]


def test_metadata_ids_and_join(tmp_path):
    (tmp_path / "meta.csv").write_text("patient,race,age\n1,Black,50\n2,White,61\n3,Asian,70\n9,White,40\n")
    meta = read_metadata(tmp_path / "meta.csv")  # first column is the id, read as text
    assert meta.columns.tolist() == ["case_id", "race", "age"] and meta["case_id"].tolist() == ["1", "2", "3", "9"]
    table = pd.DataFrame({"case_id": ["1", "2", "4"], "class": 1, "dice": [0.9, 0.8, 0.7]})
    joined, report = join_metadata(table, meta)
    assert joined["race"].tolist()[:2] == ["Black", "White"] and pd.isna(joined["race"].iloc[2])
    assert report.without_metadata == ["4"] and report.unmatched_metadata == ["3", "9"]
    lines = report.messages()
    assert "1 of 3 cases have no metadata row (4)" in lines[0] and "2 metadata rows match no case (3, 9)" in lines[1]
    with pytest.raises(DuetfairError, match="no case id matches the metadata ids"):
        join_metadata(table.assign(case_id=["x", "y", "z"]), meta)
    (tmp_path / "dupe.csv").write_text("case_id,race\na.nii.gz,B\na,W\n")
    with pytest.raises(DuetfairError, match="appear twice"):
        read_metadata(tmp_path / "dupe.csv")
    with pytest.raises(DuetfairError, match="--id-column 'pid'"):
        read_metadata(tmp_path / "meta.csv", "pid")
    assert canonical_id(" c1.nii.gz ") == "c1" and canonical_id(12.0) == "12"


def test_choose_attributes():
    n = 40
    cases = pd.DataFrame(
        {
            "case_id": [str(i) for i in range(n)],
            "race": ["A", "B"] * 20,
            "age": np.arange(n) + 20,
            "site": "one",
            "name": [f"pat{i}" for i in range(n)],
            "hidden_subtype": 0,
        }
    )
    meta = cases
    assert attribute_kind(cases["age"]) == "continuous" and attribute_kind(cases["site"]) == "constant"
    # a continuous column the user did not ask for is skipped with a note naming --bins ...
    chosen, notes = choose_attributes(cases, meta)
    assert chosen == ["race"] and "attribute 'age' skipped: continuous (40 distinct numbers)" in notes[0]
    assert "--bins age=" in notes[0]
    # ... one asked for keeps the clear error
    with pytest.raises(
        DuetfairError, match=r"attribute 'age' is continuous \(40 distinct numbers\); bin it, e.g. --bins age="
    ):
        choose_attributes(cases, meta, by=["race", "age"])
    chosen, notes = choose_attributes(cases, meta, bins={"age": [30, 40]})
    assert chosen == ["race", "age"] and len(notes) == 2
    assert choose_attributes(cases, meta, by=["race+site"])[0] == ["race+site"]
    with pytest.raises(DuetfairError, match="--by sex: 'sex' is not a metadata column"):
        choose_attributes(cases, meta, by=["sex"])


def test_write_audit(tmp_path, summary):
    table = read_nnunet_summary(summary)
    meta = pd.DataFrame({"case_id": ["hippo_001", "hippo_002", "hippo_003", "hippo_004"], "sex": ["F", "M", "F", "M"]})
    cases, report = join_metadata(table, meta)
    _, paths = write_audit(
        cases,
        tmp_path / "out",
        by=["sex"],
        metrics=["dice"],
        n_boot=10,
        discovery=False,
        inputs={"join": report.to_dict()},
    )
    assert sorted(p.name for p in paths.values()) == ["audit.json", "audit.md", "cases.csv", "report.html"]
    saved = json.loads(paths["audit"].read_text())
    assert set(saved["metrics"]) == {"dice[1]", "dice[2]", "dice[1+2]"} and saved["inputs"]["join"]["n_cases"] == 4
    with pytest.raises(DuetfairError, match="--metric hd95: not available"):
        write_audit(cases, tmp_path / "o2", by=["sex"], metrics=["hd95"])
