"""Divergent subgroup discovery against a direct DivExplorer call."""

import numpy as np
import pandas as pd
import pytest
from divexplorer import DivergenceExplorer

from duetfair.audit.discovery import find_divergent_subgroups, subgroup_members
from duetfair.errors import DuetfairError


def test_matches_direct_divexplorer_call(cases):
    found = find_divergent_subgroups(cases, "dice", ["race", "sex", "site"], min_support=0.05, max_length=None)
    df = cases[["race", "sex", "site", "dice"]].replace({"race": {"": None}})
    raw = DivergenceExplorer(df).get_pattern_divergence(min_support=0.05, quantitative_outcomes=["dice"])
    raw = raw[raw["length"] > 0]
    direct = {frozenset(tuple(i.split("=", 1)) for i in s): (d, t, n) for s, d, t, n in zip(raw.itemset, raw.dice_div, raw.dice_t, raw.support_count)}
    ours = {frozenset(s.items()): (d, t, n) for s, d, t, n in zip(found.itemset, found.divergence, found.t, found.n)}
    assert set(direct) == set(ours)
    for key, (d, t, n) in direct.items():
        od, ot, on = ours[key]
        assert od == pytest.approx(d, abs=1e-12) and ot == pytest.approx(t, rel=1e-9) and on == n
    assert found["divergence"].is_monotonic_increasing
    worst = found.iloc[0]
    members = subgroup_members(cases, worst["itemset"])
    assert members.sum() == worst["n"]
    assert cases.loc[members, "dice"].mean() == pytest.approx(worst["mean"])


def test_nan_outcomes_dropped_bins_and_max_length(cases):
    df = cases.copy()
    df.loc[:49, "dice"] = np.nan
    found = find_divergent_subgroups(df, "dice", ["race", "age"], bins={"age": [40, 60, 70]}, min_support=0.1, max_length=1)
    assert (found["length"] == 1).all()
    assert set(found.itemset.map(lambda s: next(iter(s))).unique()) <= {"race", "age"}
    valid = df["dice"].notna()
    row = found[found.itemset.map(lambda s: s == {"race": "Black"})].iloc[0]
    black = valid & (df["race"] == "Black")
    assert row["n"] == black.sum()
    assert row["divergence"] == pytest.approx(df.loc[black, "dice"].mean() - df.loc[valid, "dice"].mean())


def test_redundancy_pruning_removes_patterns(cases):
    full = find_divergent_subgroups(cases, "dice", ["race", "sex", "site"], min_support=0.02)
    pruned = find_divergent_subgroups(cases, "dice", ["race", "sex", "site"], min_support=0.02, redundancy_threshold=0.01)
    assert 0 < len(pruned) < len(full)


def test_bad_arguments(cases):
    with pytest.raises(DuetfairError, match="min_support"):
        find_divergent_subgroups(cases, "dice", ["race"], min_support=0)
    with pytest.raises(DuetfairError, match="not in the table"):
        find_divergent_subgroups(cases, "dice", ["nope"])
    with pytest.raises(DuetfairError, match="finite"):
        find_divergent_subgroups(pd.DataFrame({"a": ["x", "y"], "dice": [np.nan, 0.5]}), "dice", ["a"])
