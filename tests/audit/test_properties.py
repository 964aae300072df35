"""Property tests of the audit: it depends on the cases, not on their order or on missing rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duetfair.audit import audit_table
from duetfair.errors import DuetfairError

GROUPS = st.sampled_from(["A", "B", "C"])
SCORE = st.one_of(st.floats(0.0, 1.0, allow_nan=False), st.just(float("nan")))


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(2, 60))
    groups = draw(st.lists(GROUPS, min_size=n, max_size=n))
    scores = draw(st.lists(SCORE, min_size=n, max_size=n))
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "g": groups, "dice": scores})
    known = df.dropna(subset=["dice"])
    if known["g"].nunique() < 2:  # the audit needs two groups with a score
        df.loc[len(df)] = ["x0", "A", 0.5]
        df.loc[len(df)] = ["x1", "B", 0.5]
    return df


def _rounded(obj):
    """Floats rounded to 12 digits (summation order may differ in the last bits), NaN as a string."""
    if isinstance(obj, float):
        return "nan" if math.isnan(obj) else round(obj, 12)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def _summary(df: pd.DataFrame) -> dict:
    m = audit_table(df, ["g"], n_boot=0, discovery=False)["metrics"]["dice"]
    a = m["attributes"]["g"]
    return {
        "overall": m["overall"]["mean"],
        "missing": m["n_missing"],
        "groups": {g["value"]: (g["n"], g["mean"], g["small"]) for g in a["groups"]},
        "worst": a["worst_group"],
        "es": a["es"],
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(df: pd.DataFrame, rnd) -> None:
    order = list(range(len(df)))
    rnd.shuffle(order)
    assert _rounded(_summary(df)) == _rounded(_summary(df.iloc[order].reset_index(drop=True)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_group_means_are_the_plain_means_and_nan_rows_only_count_as_missing(df: pd.DataFrame) -> None:
    s = _summary(df)
    known = df.dropna(subset=["dice"])
    assert s["missing"] == len(df) - len(known)
    assert s["overall"] == pytest.approx(known["dice"].mean())
    for g, part in known.groupby("g"):
        n, mean, small = s["groups"][g]
        assert n == len(part) and mean == pytest.approx(part["dice"].mean()) and small == (len(part) < 20)
    assert _rounded(s) == _rounded(_summary(known.reset_index(drop=True)) | {"missing": s["missing"]})
    assert 0.0 <= s["es"] <= s["overall"] + 1e-12 or math.isnan(s["es"])


@settings(max_examples=20, deadline=None)
@given(tables(), st.integers(0, 59))
def test_a_duplicated_case_is_refused(df: pd.DataFrame, i: int) -> None:
    with pytest.raises(DuetfairError, match="duplicate row"):
        audit_table(pd.concat([df, df.iloc[[i % len(df)]]]), ["g"], n_boot=0, discovery=False)


@pytest.mark.parametrize("sizes", [(1, 1), (1, 5000), (20, 19), (3000, 2)])
def test_huge_and_tiny_groups(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    n = sum(sizes)
    df = pd.DataFrame(
        {"case_id": range(n), "g": ["big"] * sizes[0] + ["tiny"] * sizes[1], "dice": rng.uniform(0, 1, n)}
    )
    audit = audit_table(df, ["g"], n_boot=50, discovery=False)["metrics"]["dice"]["attributes"]["g"]
    for g in audit["groups"]:
        part = df[df["g"] == g["value"]]["dice"]
        assert g["n"] == len(part) and g["mean"] == pytest.approx(part.mean()) and g["small"] == (len(part) < 20)
        if len(part) == 1:
            assert all(math.isnan(c) for c in g["ci"])  # one case has no spread: no interval, flagged small
        else:
            assert 0.0 <= g["ci"][0] <= g["ci"][1] <= 1.0
    assert set(audit["small_groups"]) == {g["value"] for g in audit["groups"] if g["n"] < 20}
