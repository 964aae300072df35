"""Divergent subgroup discovery against a direct DivExplorer call, Welch / BH tests, pruning."""

import numpy as np
import pandas as pd
import pytest
from divexplorer import DivergenceExplorer
from divexplorer.pattern_processor import DivergencePatternProcessor
from scipy import stats

from duetfair.audit.discovery import (
    COLUMNS,
    TEST_COLUMNS,
    find_divergent_subgroups,
    redundant_itemsets,
    subgroup_members,
)
from duetfair.errors import DuetfairError

ATTRS = ["race", "sex", "site"]


def _direct(cases, min_support):
    df = cases[[*ATTRS, "dice"]].replace({"race": {"": None}})
    raw = DivergenceExplorer(df).get_pattern_divergence(min_support=min_support, quantitative_outcomes=["dice"])
    return raw


def _key(itemset):
    return frozenset(f"{k}={v}" for k, v in itemset.items())


def test_matches_direct_divexplorer_call(cases):
    found = find_divergent_subgroups(cases, "dice", ATTRS, min_support=0.05, max_length=None, redundancy_z=None)
    assert list(found.columns) == [*COLUMNS, *TEST_COLUMNS, "length"]
    raw = _direct(cases, 0.05)
    raw = raw[raw["length"] > 0]
    direct = {s: (d, t, n) for s, d, t, n in zip(raw.itemset, raw.dice_div, raw.dice_t, raw.support_count)}
    ours = {_key(s): (d, t, n) for s, d, t, n in zip(found.itemset, found.divergence, found.t, found.n)}
    assert set(direct) == set(ours)
    for key, (d, t, n) in direct.items():
        od, ot, on = ours[key]
        assert od == pytest.approx(d, abs=1e-12) and ot == pytest.approx(t, rel=1e-9) and on == n
    assert found["divergence"].is_monotonic_increasing
    worst = found.iloc[0]
    members = subgroup_members(cases, worst["itemset"])
    assert members.sum() == worst["n"]
    assert cases.loc[members, "dice"].mean() == pytest.approx(worst["mean"])


def test_p_values_are_welch_vs_rest_and_q_values_bh_over_all_itemsets(cases):
    full = find_divergent_subgroups(cases, "dice", ATTRS, min_support=0.02, max_length=2, redundancy_z=None)
    assert full.attrs["n_tests"] == len(full)
    for row in full.iloc[[0, 1, len(full) // 2, -1]].itertuples():
        members = subgroup_members(cases, row.itemset)
        t, p = stats.ttest_ind(cases.loc[members, "dice"], cases.loc[~members, "dice"], equal_var=False)
        assert row.welch_t == pytest.approx(t, rel=1e-6) and row.p_value == pytest.approx(p, rel=1e-6, abs=1e-300)
    assert np.allclose(full["q_value"], stats.false_discovery_control(full["p_value"]), rtol=1e-12)
    assert (full["significant"] == (full["q_value"] <= 0.05)).all()
    assert (np.sign(full["welch_t"]) == np.sign(full["divergence"])).all()
    # pruning shows fewer rows but keeps each row's q-value: the BH family is every itemset tested
    pruned = find_divergent_subgroups(cases, "dice", ATTRS, min_support=0.02, max_length=2)
    assert len(pruned) < len(full) and pruned.attrs["n_tests"] == len(full)
    q_full = dict(zip(full.itemset.map(_key), full.q_value))
    assert all(q_full[_key(s)] == pytest.approx(q) for s, q in zip(pruned.itemset, pruned.q_value))
    strict = find_divergent_subgroups(cases, "dice", ATTRS, min_support=0.02, max_length=2, redundancy_z=None, fdr=1e-6)
    assert strict["significant"].sum() < full["significant"].sum()


def test_no_divergence_is_rarely_significant():
    """Under the null, BH at 5 % flags something in about 5 % of the tables (all-null FDR = FWER)."""
    flagged = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        df = pd.DataFrame(
            {"a": rng.choice(list("xyz"), 300), "b": rng.choice(list("uv"), 300), "dice": rng.uniform(0.5, 1.0, 300)}
        )
        found = find_divergent_subgroups(df, "dice", ["a", "b"], redundancy_z=None)
        assert len(found) == 11 and (found["q_value"] >= found["p_value"]).all()
        flagged += bool(found["significant"].any())
    assert flagged <= 3


def test_absolute_threshold_is_divexplorers_redundancy_pruning(cases):
    pruned = find_divergent_subgroups(
        cases, "dice", ATTRS, min_support=0.02, max_length=None, redundancy_threshold=0.01, redundancy_z=None
    )
    raw = _direct(cases, 0.02)
    kept = DivergencePatternProcessor(raw, "dice").redundancy_pruning(0.01)
    assert set(kept.itemset[kept.length > 0]) == set(pruned.itemset.map(_key))
    full = find_divergent_subgroups(cases, "dice", ATTRS, min_support=0.02, max_length=None, redundancy_z=None)
    assert 0 < len(pruned) < len(full)


def test_redundant_itemsets_rules():
    e, a, b, ab = frozenset(), frozenset({"a"}), frozenset({"b"}), frozenset({"a", "b"})
    div = {e: 0.0, a: -0.10, b: -0.001, ab: -0.11}
    n = {e: 1000, a: 300, b: 500, ab: 150}
    assert redundant_itemsets(div, n, sd=0.1, threshold=0.005) == {b}
    assert redundant_itemsets(div, n, sd=0.1, threshold=0.02) == {b, ab}
    # z rule: se(ab vs a) = 0.1 * sqrt(1/150 - 1/300) = 0.0058 -> gap 0.01 is 1.7 se
    assert redundant_itemsets(div, n, sd=0.1, z=1.0) == {b}
    assert redundant_itemsets(div, n, sd=0.1, z=2.0) == {b, ab}
    assert redundant_itemsets(div, n, sd=0.1) == set()


def _planted(seed, n=300):
    """race=B & sex=F is 0.12 Dice worse; site and scanner are noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "race": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
            "sex": rng.choice(["F", "M"], n),
            "site": rng.choice(["s1", "s2", "s3"], n),
            "scanner": rng.choice(["x", "y"], n),
        }
    )
    df["dice"] = np.clip(rng.normal(0.85, 0.08, n) - 0.12 * ((df.race == "B") & (df.sex == "F")), 0, 1)
    return df


def _top_hits(**kwargs):
    attrs = ["race", "sex", "site", "scanner"]
    tops = [find_divergent_subgroups(_planted(s), "dice", attrs, min_support=0.02, **kwargs).iloc[0] for s in range(20)]
    return sum(r.itemset == {"race": "B", "sex": "F"} for r in tops), sum(bool(r.significant) for r in tops)


def test_planted_subgroup_is_top_with_default_pruning():
    hits, significant = _top_hits()
    assert hits >= 18 and significant == 20
    unpruned_hits, _ = _top_hits(redundancy_z=None)  # chance supersets (B & F & site=...) come first
    assert unpruned_hits <= 5


def test_nan_outcomes_dropped_bins_and_max_length(cases):
    df = cases.copy()
    df.loc[:49, "dice"] = np.nan
    found = find_divergent_subgroups(
        df, "dice", ["race", "age"], bins={"age": [40, 60, 70]}, min_support=0.1, max_length=1, redundancy_z=None
    )
    assert (found["length"] == 1).all()
    assert set(found.itemset.map(lambda s: next(iter(s))).unique()) <= {"race", "age"}
    valid = df["dice"].notna()
    row = found[found.itemset.map(lambda s: s == {"race": "Black"})].iloc[0]
    black = valid & (df["race"] == "Black")
    assert row["n"] == black.sum()
    assert row["divergence"] == pytest.approx(df.loc[black, "dice"].mean() - df.loc[valid, "dice"].mean())


def test_bad_arguments(cases):
    with pytest.raises(DuetfairError, match="min_support"):
        find_divergent_subgroups(cases, "dice", ["race"], min_support=0)
    with pytest.raises(DuetfairError, match="not in the table"):
        find_divergent_subgroups(cases, "dice", ["nope"])
    with pytest.raises(DuetfairError, match="finite"):
        find_divergent_subgroups(pd.DataFrame({"a": ["x", "y"], "dice": [np.nan, 0.5]}), "dice", ["a"])
    for bad in ({"fdr": 0.0}, {"redundancy_z": -1.0}, {"redundancy_threshold": -0.1}):
        with pytest.raises(DuetfairError, match=next(iter(bad))):
            find_divergent_subgroups(cases, "dice", ["race"], **bad)
