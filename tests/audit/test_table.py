"""audit_table: JSON shape, classes, hidden subtype, table loading."""

import json

import numpy as np
import pandas as pd
import pytest

from duetfair.audit import SCHEMA, audit_table, load_case_table
from duetfair.errors import DuetfairError
from duetfair.io import write_json

GROUP_KEYS = {"value", "n", "mean", "ci", "cvar10", "failure_rate"}
ATTR_KEYS = {"groups", "worst_group", "worst_mean", "gap", "es", "es_ci", "es_std", "skewness"}


def test_json_shape(cases, tmp_path):
    audit = audit_table(cases, ["race", "age", "race+sex"], metrics=("dice", "iou"), bins={"age": [40, 60]}, n_boot=50)
    assert audit["schema"] == SCHEMA and set(audit["metrics"]) == {"dice", "iou"}
    m = audit["metrics"]["dice"]
    assert m["n_cases"] == len(cases) and len(m["overall"]["ci"]) == 2
    for attr in ("race", "age", "race+sex"):
        a = m["attributes"][attr]
        assert ATTR_KEYS <= set(a)
        assert all(GROUP_KEYS <= set(g) for g in a["groups"])
    assert [g["value"] for g in m["attributes"]["age"]["groups"]] == ["<40", "40-59", ">=60"]
    assert sum(g["n"] for g in m["attributes"]["race"]["groups"]) + m["attributes"]["race"]["n_unknown"] == len(cases)
    sub = m["subgroups"][0]
    assert set(sub) == {
        "itemset",
        "support",
        "n",
        "mean",
        "divergence",
        "t",
        "welch_t",
        "p_value",
        "q_value",
        "significant",
    }
    assert m["subgroups"] == sorted(m["subgroups"], key=lambda s: s["divergence"])
    assert m["hidden_subtype"]["mean"] < m["hidden_subtype"]["mean_rest"]
    path = write_json(tmp_path / "a.json", audit)
    assert (
        json.loads(path.read_text())["metrics"]["dice"]["attributes"]["race"]["worst_group"]
        == m["attributes"]["race"]["worst_group"]
    )


def test_multi_class_tables_are_audited_per_class():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "case_id": np.repeat(np.arange(40), 2),
            "class": [1, 2] * 40,
            "sex": np.repeat(rng.choice(["F", "M"], 40), 2),
            "dice": rng.random(80),
        }
    )
    audit = audit_table(df, ["sex"], n_boot=0, discovery=False)
    assert set(audit["metrics"]) == {"dice[1]", "dice[2]"}
    assert audit["metrics"]["dice[1]"]["n_cases"] == 40
    one = audit_table(df, ["sex"], n_boot=0, discovery=False, class_=2)
    assert set(one["metrics"]) == {"dice"}
    assert one["metrics"]["dice"]["overall"]["mean"] == pytest.approx(df[df["class"] == 2]["dice"].mean())
    with pytest.raises(DuetfairError, match="--class 3"):
        audit_table(df, ["sex"], n_boot=0, discovery=False, class_=3)


def test_load_case_table_formats_and_errors(cases, tmp_path):
    cases.to_parquet(tmp_path / "c.parquet")
    cases.to_csv(tmp_path / "c.csv", index=False)
    assert len(load_case_table(tmp_path / "c.parquet")) == len(cases)
    assert len(load_case_table(tmp_path / "c.csv")) == len(cases)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    (tmp_path / "x.xlsx").write_text("x")
    for name, match in [
        ("missing.csv", "does not exist"),
        ("empty.csv", "empty"),
        ("bad.parquet", "cannot be read"),
        ("x.xlsx", "cannot be read"),
    ]:
        with pytest.raises(DuetfairError, match=match):
            load_case_table(tmp_path / name)


def test_own_hidden_column_is_named_in_the_audit_and_the_report(cases):
    from duetfair.audit.report import render_markdown, render_summary

    own = cases.drop(columns=["hidden_subtype"]).assign(
        morphology=np.where(cases["hidden_subtype"] > 0, "irregular", "regular")
    )
    audit = audit_table(own, ["race"], n_boot=0, discovery=False, hidden="morphology=irregular")
    h = audit["metrics"]["dice"]["hidden_subtype"]
    assert audit["settings"]["hidden_column"] == "morphology=irregular"
    assert h["column"] == "morphology" and h["hard"] == ["irregular"]
    assert h["n"] == int((cases["hidden_subtype"] > 0).sum()) and h["mean"] < h["mean_rest"]
    assert "Hidden hard subtype (morphology = irregular)" in render_markdown(audit)
    assert "hidden hard subtype (morphology = irregular)" in render_summary(audit)
    # 0/1 values under any name; without --hidden the default column is looked for (absent here)
    flags = own.assign(hard=(cases["hidden_subtype"] > 0).astype(int))
    assert (
        audit_table(flags, ["race"], n_boot=0, discovery=False, hidden="hard")["metrics"]["dice"]["hidden_subtype"]["n"]
        == h["n"]
    )
    assert "hidden_subtype" not in audit_table(own, ["race"], n_boot=0, discovery=False)["metrics"]["dice"]


def test_silent_wrong_numbers_are_refused_or_flagged():
    """Duplicate cases, inf Dice and a continuous --by are refused; tiny groups are flagged."""
    import pandas as pd

    from duetfair.audit import audit_table

    base = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(30)],
            "race": ["A"] * 25 + ["B"] * 5,
            "age": range(30),
            "dice": [0.8] * 30,
            "hd95": [1.0] * 29 + [float("inf")],
        }
    )
    with pytest.raises(DuetfairError, match="duplicate row.*case 'c0'"):
        audit_table(pd.concat([base, base.head(1)]), ["race"], n_boot=0, discovery=False)
    with pytest.raises(DuetfairError, match="outside \\[0, 1\\]"):
        audit_table(base.assign(dice=[0.8] * 29 + [float("inf")]), ["race"], n_boot=0, discovery=False)
    with pytest.raises(DuetfairError, match="looks continuous; bin it, e.g. --bins age="):
        audit_table(base, ["age"], n_boot=0, discovery=False)
    audit = audit_table(base, ["race"], metrics=("dice", "hd95"), n_boot=0, discovery=False)
    race = audit["metrics"]["dice"]["attributes"]["race"]
    assert race["small_groups"] == ["B"] and [g["small"] for g in race["groups"]] == [False, True]
    assert audit["metrics"]["hd95"]["n_missing"] == 1  # +inf HD95 (an empty mask) is undefined, counted
