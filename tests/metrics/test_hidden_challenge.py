"""Intra-group tail metrics and MAMA-MIA challenge scores."""

import numpy as np
import pandas as pd
import pytest

from duetfair.metrics.challenge import mamamia_scores
from duetfair.metrics.hidden import cvar, hidden_failure_table, tail_stats, worst_group_cvar


def test_cvar_is_mean_of_worst_fraction():
    v = np.arange(1, 21) / 20.0  # 0.05 .. 1.0
    assert cvar(v, 0.1) == pytest.approx((0.05 + 0.10) / 2)
    assert cvar(v, 1.0) == pytest.approx(v.mean())
    assert cvar(v, 0.1, higher_better=False) == pytest.approx((1.0 + 0.95) / 2)
    assert cvar(np.array([0.3, np.nan]), 0.5) == pytest.approx(0.3)


def test_hidden_failure_is_visible_in_the_tail_not_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(0.85, 0.02, 200)
    b = np.concatenate([rng.normal(0.88, 0.02, 180), np.full(20, 0.3)])  # hidden hard subtype in b
    df = pd.DataFrame({"g": ["a"] * 200 + ["b"] * 200, "dice": np.concatenate([a, b])})
    table = hidden_failure_table(df, "dice", "g")
    assert abs(table.loc["a", "mean"] - table.loc["b", "mean"]) < 0.05
    assert table.loc["b", "cvar"] == pytest.approx(0.3)
    assert table.loc["b", "failure_rate"] == pytest.approx(0.1) and table.loc["a", "failure_rate"] == 0
    assert worst_group_cvar(table) == ("b", pytest.approx(0.3))
    assert tail_stats(np.array([]))["n"] == 0


def test_mamamia_scores_follow_the_challenge_definition():
    df = pd.DataFrame(
        {
            "dice": [0.8, 0.6, 0.9, 0.7, 0.5],
            "normhd": [0.1, 0.3, 0.05, 0.2, 1.0],
            "age": [35, 45, 55, 65, 75],
            "menopause": ["pre", "pre", "post", "post", None],
        }
    )
    s = mamamia_scores(df, ["age", "menopause"], bins={"age": [50]})
    perf = 0.5 * (df.dice.mean() + 1 - df.normhd.mean())
    assert s["performance"] == pytest.approx(perf)
    # age: <50 -> dice .7, hd .2 ; >=50 -> dice .7, hd (.05+.2+1)/3
    f_age = 1 - 0.5 * (0.0 + abs(0.2 - (0.05 + 0.2 + 1.0) / 3))
    f_meno = 1 - 0.5 * (abs(0.7 - 0.8) + abs(0.2 - 0.125))  # unknown menopause in no group
    assert s["fairness_per_variable"]["age"] == pytest.approx(f_age)
    assert s["fairness_per_variable"]["menopause"] == pytest.approx(f_meno)
    assert s["fairness"] == pytest.approx((f_age + f_meno) / 2)
    assert s["total"] == pytest.approx(0.5 * perf + 0.5 * s["fairness"])
    assert s["groups"]["menopause"]["pre"]["n"] == 2
