"""Intra-group tail metrics: fractional / discrete CVaR, failure thresholds, per-group tables."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from duetfair.errors import DuetfairError
from duetfair.metrics.hidden import (
    cvar,
    default_failure_threshold,
    failure_thresholds,
    parse_failure_threshold,
    tail_stats,
)

values_st = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=40).map(np.array)
alpha_st = st.floats(0.01, 1.0)


def test_cvar_is_mean_of_worst_fraction():
    v = np.arange(1, 21) / 20.0  # 0.05 .. 1.0; alpha * n = 2 is an integer: both methods agree
    for method in ("fractional", "discrete"):
        assert cvar(v, 0.1, cvar_method=method) == pytest.approx((0.05 + 0.10) / 2)
        assert cvar(v, 0.1, higher_better=False, cvar_method=method) == pytest.approx((1.0 + 0.95) / 2)
    assert cvar(v, 1.0) == pytest.approx(v.mean())
    assert cvar(np.array([0.3, np.nan]), 0.5) == pytest.approx(0.3)
    assert math.isnan(cvar(np.array([np.nan]), 0.1))


def test_fractional_cvar_weights_the_boundary_case():
    v = np.arange(1.0, 12.0)  # n = 11, alpha n = 1.1: worst case + 0.1 of the second
    assert cvar(v, 0.1) == pytest.approx((1.0 + 0.1 * 2.0) / 1.1)
    assert cvar(v, 0.1, cvar_method="discrete") == pytest.approx(1.5)  # 2 of 11 cases = 18 %
    assert cvar(v, 0.1, higher_better=False) == pytest.approx((11.0 + 0.1 * 10.0) / 1.1)
    assert cvar(v, 0.05) == 1.0  # alpha n < 1: the worst case alone
    with pytest.raises(DuetfairError, match="cvar_method"):
        cvar(v, 0.1, cvar_method="ceil")
    with pytest.raises(DuetfairError, match="alpha"):
        cvar(v, 0.0)


@settings(max_examples=200, deadline=None)
@given(values_st, st.integers(1, 40), st.booleans())
def test_fractional_equals_discrete_when_alpha_n_is_integer(v, k, hb):
    assume(k <= v.size)
    alpha = k / v.size
    discrete = cvar(v, alpha, higher_better=hb, cvar_method="discrete")
    assert cvar(v, alpha, higher_better=hb) == pytest.approx(discrete, rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(values_st, alpha_st, st.booleans())
def test_cvar_between_worst_case_and_mean(v, alpha, hb):
    c = cvar(v, alpha, higher_better=hb)
    worst = v.min() if hb else v.max()
    lo, hi = (worst, v.mean()) if hb else (v.mean(), worst)
    assert lo - 1e-9 <= c <= hi + 1e-9


@settings(max_examples=200, deadline=None)
@given(values_st, alpha_st, alpha_st, st.booleans())
def test_cvar_monotone_in_alpha(v, a1, a2, hb):
    lo, hi = sorted((a1, a2))
    c_lo, c_hi = cvar(v, lo, higher_better=hb), cvar(v, hi, higher_better=hb)
    # a wider tail averages in better cases: higher (Dice) or lower (distances)
    assert (c_lo <= c_hi + 1e-9) if hb else (c_lo >= c_hi - 1e-9)


@settings(max_examples=200, deadline=None)
@given(values_st, alpha_st, st.floats(0.0, 100.0), st.integers(0, 39), st.booleans())
def test_cvar_monotone_in_values(v, alpha, delta, i, hb):
    w = v.copy()
    w[i % v.size] += delta  # one case gets larger: the CVaR cannot decrease
    assert cvar(w, alpha, higher_better=hb) >= cvar(v, alpha, higher_better=hb) - 1e-9


@given(st.floats(-1e3, 1e3, allow_nan=False), alpha_st, st.booleans(), st.sampled_from(["fractional", "discrete"]))
def test_cvar_of_one_case_is_that_case(x, alpha, hb, method):
    assert cvar(np.array([x]), alpha, higher_better=hb, cvar_method=method) == pytest.approx(x)


def test_default_failure_thresholds_per_metric():
    assert default_failure_threshold("dice") == 0.5 and default_failure_threshold("NSD") == 0.5
    assert default_failure_threshold("iou") == pytest.approx(1 / 3)  # the Dice < 0.5 cases
    for m in ("hd95", "normhd", "assd", "volume_error"):
        assert default_failure_threshold(m) is None
    assert failure_thresholds(["dice", "hd95"]) == {"dice": 0.5, "hd95": None}
    assert failure_thresholds(["dice", "HD95"], ["hd95>10", "dice<0.7"]) == {"dice": 0.7, "HD95": 10.0}


def test_parse_failure_threshold_and_direction_errors():
    assert parse_failure_threshold("hd95>10") == ("hd95", 10.0)
    assert parse_failure_threshold(" dice < 0.5 ") == ("dice", 0.5)
    assert parse_failure_threshold("score>3", higher_better=False) == ("score", 3.0)
    with pytest.raises(DuetfairError, match=r"lower is better.*write 'hd95>10'") as err:
        parse_failure_threshold("hd95<10")
    assert "\n" not in str(err.value)
    with pytest.raises(DuetfairError, match=r"higher is better.*write 'dice<0.5'"):
        parse_failure_threshold("dice>0.5")
    for bad in ("dice", "dice<=0.5", "dice<x", "dice<nan", "<0.5"):
        with pytest.raises(DuetfairError, match="failure threshold"):
            parse_failure_threshold(bad)
    with pytest.raises(DuetfairError, match="not audited"):
        failure_thresholds(["dice"], ["hd95>10"])
    with pytest.raises(DuetfairError, match="twice"):
        failure_thresholds(["dice"], ["dice<0.5", "dice<0.6"])


def test_tail_stats_failure_rate_follows_threshold_and_direction():
    hd = np.array([2.0, 5.0, 12.0, 30.0])
    assert tail_stats(hd, failure_threshold=10.0, higher_better=False)["failure_rate"] == 0.5
    assert math.isnan(tail_stats(hd, failure_threshold=None, higher_better=False)["failure_rate"])
    assert tail_stats(np.array([0.2, 0.6, 0.9]), failure_threshold=0.5)["failure_rate"] == pytest.approx(1 / 3)
    empty = tail_stats(np.array([]), failure_threshold=0.5)
    assert empty["n"] == 0 and math.isnan(empty["cvar"])


def test_hidden_failure_is_visible_in_the_tail_not_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(0.85, 0.02, 200)
    b = np.concatenate([rng.normal(0.88, 0.02, 180), np.full(20, 0.3)])  # hidden hard subtype in b
    df = pd.DataFrame({"g": ["a"] * 200 + ["b"] * 200, "dice": np.concatenate([a, b])})
    df["hd95"] = 40.0 * (1.0 - df["dice"])

    def tails(metric: str, cutoff: float | None, higher_better: bool = True) -> dict[str, dict[str, float]]:
        return {
            g: tail_stats(part[metric].to_numpy(), failure_threshold=cutoff, higher_better=higher_better)
            for g, part in df.groupby("g")
        }

    table = tails("dice", default_failure_threshold("dice"))
    assert abs(table["a"]["mean"] - table["b"]["mean"]) < 0.05
    assert table["b"]["cvar"] == pytest.approx(0.3) and table["a"]["cvar"] > 0.8
    assert table["b"]["failure_rate"] == pytest.approx(0.1) and table["a"]["failure_rate"] == 0
    hd = tails("hd95", default_failure_threshold("hd95"), higher_better=False)  # no default cut-off for a distance
    assert all(math.isnan(t["failure_rate"]) for t in hd.values()) and hd["b"]["cvar"] == pytest.approx(28.0)
    hd = tails("hd95", 20.0, higher_better=False)
    assert hd["b"]["failure_rate"] == pytest.approx(0.1) and hd["a"]["failure_rate"] == 0
