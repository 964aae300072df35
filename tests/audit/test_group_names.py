"""A group named "NA" or "None" is a group in every table reader (audit, score, init-config, the
manifest of train / evaluate); only empty cells, the documented missing words (nan, unknown,
missing, -1) and the words a user declares (--missing) are missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duetfair.cli import main
from duetfair.data.groups import GroupSpec
from duetfair.io import read_table


def _table(tmp_path: Path) -> Path:
    """North America (NA, n = 88) is the worst region; EU and "None" (a region of that name) do better;
    a few cases have no region (empty, unknown)."""
    rng = np.random.default_rng(0)
    rows = [("NA", 0.55)] * 88 + [("EU", 0.80)] * 60 + [("None", 0.70)] * 40 + [("", 0.9)] * 5 + [("unknown", 0.9)] * 5
    df = pd.DataFrame(
        {
            "case_id": [f"{i:03d}" for i in range(len(rows))],
            "region": [r for r, _ in rows],
            "dice": np.clip([m + rng.normal(0, 0.05) for _, m in rows], 0, 1),
        }
    )
    path = tmp_path / "cases.csv"
    df.to_csv(path, index=False)
    return path


def _audit(args: list[str], tmp_path: Path, attr: str = "region") -> dict:
    out = tmp_path / "audit.json"
    with pytest.raises(SystemExit) as info:
        main([*args, "--bootstrap", "0", "--no-discovery", "--out", str(out)])
        raise SystemExit(0)
    assert info.value.code in (0, None)
    return json.loads(out.read_text())["metrics"]["dice"]["attributes"][attr]


def test_audit_keeps_na_and_none_as_groups(tmp_path: Path) -> None:
    table = _table(tmp_path)
    a = _audit(["audit", str(table), "--by", "region"], tmp_path)
    groups = {g["value"]: g["n"] for g in a["groups"]}
    assert groups == {"EU": 60, "NA": 88, "None": 40} and a["n_unknown"] == 10
    assert a["worst_group"] == "NA"
    declared = _audit(["audit", str(table), "--by", "region", "--missing", "NA"], tmp_path)
    assert {g["value"] for g in declared["groups"]} == {"EU", "None"} and declared["n_unknown"] == 98
    assert declared["worst_group"] == "None"


def test_score_metadata_keeps_na_groups_and_ids_with_zeros(tmp_path: Path) -> None:
    cases = pd.read_csv(_table(tmp_path), dtype=str, keep_default_na=False)
    entries = [
        {"prediction_file": f"/p/{cid}.nii.gz", "metrics": {"1": {"Dice": float(d), "n_ref": 10, "n_pred": 9}}}
        for cid, d in zip(cases["case_id"], cases["dice"])
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"metric_per_case": entries}))
    cases[["case_id", "region"]].to_csv(tmp_path / "meta.csv", index=False)
    out = tmp_path / "scored"
    with pytest.raises(SystemExit) as info:
        main(["score", "--nnunet", str(tmp_path / "summary.json"), "--meta", str(tmp_path / "meta.csv")]
             + ["--out", str(out), "--bootstrap", "0", "--no-discovery"])  # fmt: skip
        raise SystemExit(0)
    assert info.value.code in (0, None)
    audit = json.loads((out / "audit.json").read_text())
    a = audit["metrics"]["dice"]["attributes"]["region"]
    assert a["worst_group"] == "NA" and {g["value"] for g in a["groups"]} == {"EU", "NA", "None"}
    assert audit["inputs"]["join"]["n_without_metadata"] == 0  # "007" matched "007.nii.gz", not 7
    written = read_table(out / "cases.csv", text_columns=["case_id"])
    assert written["case_id"].iloc[7] == "007" and (written["region"] == "NA").sum() == 88


def test_init_config_and_manifests_keep_na_groups(tmp_path: Path) -> None:
    from duetfair.engine.starter import summarize_manifest

    rows = [("NA", "F"), ("EU", "M"), ("None", "F"), ("", "M")] * 5
    (tmp_path / "m.csv").write_text(
        "case_id,image,label,region,sex\n"
        + "".join(f"{i:03d},i{i}.png,l{i}.png,{r},{s}\n" for i, (r, s) in enumerate(rows))
    )
    summary = summarize_manifest(tmp_path / "m.csv")
    assert "region" in summary.categorical
    spec = GroupSpec.infer(read_table(tmp_path / "m.csv"), ["region"])
    assert spec.specs[0].values == ["EU", "NA", "None"]
    assert spec.unknown_counts(read_table(tmp_path / "m.csv")) == {"region": 5}


def test_numbers_keep_na_as_missing(tmp_path: Path) -> None:
    """In a column of numbers NA, n/a or null are missing numbers (R, SPSS exports), so --bins works."""
    (tmp_path / "t.csv").write_text(
        "case_id,age,dice\n" + "".join(f"c{i},{'NA' if i % 7 == 0 else 30 + i},0.{50 + i}\n" for i in range(40))
    )
    a = _audit(["audit", str(tmp_path / "t.csv"), "--by", "age", "--bins", "age=50"], tmp_path, "age")
    assert [g["value"] for g in a["groups"]] == ["<50", ">=50"] and a["n_unknown"] == 6
