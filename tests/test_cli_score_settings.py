"""`duetfair score` takes the audit settings of `duetfair audit` and applies them: the same scores
audited by `score` and by `audit` of its cases.csv give the same audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duetfair.data.groups import GroupSpec
from helpers import run

DATA = Path(__file__).parent / "audit" / "data" / "nnunet_v2"  # 40 3D cases, empty ones included

SETTINGS = [
    "--fail",
    "dice<0.7",
    "--cvar-method",
    "discrete",
    "--fdr",
    "0.1",
    "--min-support",
    "0.1",
    "--max-length",
    "2",
    "--redundancy-z",
    "0",
    "--hidden",
    "morphology=irregular",
    "--class",
    "2",
    "--bootstrap",
    "20",
    "--seed",
    "3",
    "--confidence",
    "0.9",
]


@pytest.fixture()
def meta(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture's metadata with an age (binned by a group spec) and a column of hard cases."""
    df = pd.read_csv(DATA / "patients.csv", dtype=str)
    rng = np.random.default_rng(0)
    df["age"] = rng.integers(30, 80, len(df))
    df["morphology"] = np.where(np.arange(len(df)) % 4 == 0, "irregular", "round")
    df.to_csv(tmp_path / "meta.csv", index=False)
    spec = GroupSpec.infer(df, ["site", "age"], bins={"age": {"edges": [50, 65], "right": True}})
    return tmp_path / "meta.csv", spec.save(tmp_path / "spec.json")


def test_score_applies_the_audit_settings(meta: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    table, spec = meta
    out = tmp_path / "out"
    args = ["--nnunet", str(DATA / "summary.json"), "--meta", str(table), "--out", str(out)]
    code, _, err = run(["score", *args, *SETTINGS, "--group-spec", str(spec)], capsys)
    assert code == 0, err
    audit = json.loads((out / "audit.json").read_text())
    settings = audit["settings"]
    assert settings["cvar_method"] == "discrete" and settings["fdr"] == 0.1 and settings["class"] == "2"
    assert settings["failure_thresholds"]["dice"] == 0.7 and settings["max_length"] == 2
    assert settings["hidden_column"] == "morphology=irregular" and settings["confidence"] == 0.9
    assert audit["by"] == ["site", "sex", "age"]  # the hidden column is no attribute; age binned by the spec
    ages = [g["value"] for g in audit["metrics"]["dice"]["attributes"]["age"]["groups"]]
    assert ages == ["<=50", "51-65", ">65"]
    assert audit["metrics"]["dice"]["hidden_subtype"]["column"] == "morphology"
    # the table score wrote, audited by `duetfair audit` with the same settings: the same audit
    by = [arg for a in audit["by"] for arg in ("--by", a)]
    metrics = [arg for m in audit["metrics"] for arg in ("--metric", m)]
    code, stdout, err = run(
        ["audit", str(out / "cases.csv"), *by, *metrics, *SETTINGS, "--group-spec", str(spec)], capsys
    )
    assert code == 0, err
    again = json.loads(stdout)
    assert again["metrics"] == audit["metrics"] and again["settings"] == audit["settings"]


def test_score_hidden_column_must_exist(meta: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    table, _ = meta
    args = ["score", "--nnunet", str(DATA / "summary.json"), "--meta", str(table), "--out", str(tmp_path / "o")]
    code, _, err = run([*args, "--hidden", "shape"], capsys)
    assert code == 2 and "--hidden shape" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
