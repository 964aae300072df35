"""Enough evidence or not (metrics.power): the power figures against a direct simulation.

For three group sizes, 2,000 data sets are simulated at the gap the module says is detectable with
80 % power, and Welch's test (scipy) is run on each (vectorised along the data sets): the share of
rejections must be within 5 percentage points of 80 %. The same holds for the group size that
:func:`required_n` asks for, and for the power curve at other gaps.
"""

import numpy as np
import pytest
from scipy import stats

from duetfair.errors import DuetfairError
from duetfair.metrics.power import (
    MIN_SPREAD_N,
    critical_noncentrality,
    detectable_gap,
    required_n,
    welch_power,
)

SETS = 2000
ALPHA = 0.05


def _simulated_power(gap, *, sd1, n1, sd2, n2, seed, dist="normal"):
    rng = np.random.default_rng(seed)
    if dist == "normal":
        group = rng.normal(0.8 - gap, sd1, (SETS, n1))
        ref = rng.normal(0.8, sd2, (SETS, n2))
    else:  # skewed, Dice-like: 0.9 minus a gamma tail, same means and spreads
        k = 2.0
        group = 0.8 - gap + sd1 * (rng.gamma(k, 1 / np.sqrt(k), (SETS, n1)) - np.sqrt(k)) * -1
        ref = 0.8 + sd2 * (rng.gamma(k, 1 / np.sqrt(k), (SETS, n2)) - np.sqrt(k)) * -1
    p = stats.ttest_ind(group, ref, axis=1, equal_var=False).pvalue
    return float(np.mean(p < ALPHA))


@pytest.mark.parametrize("n1", [8, 30, 100])
def test_detectable_gap_has_80_percent_power_in_simulation(n1):
    sd1, sd2, n2 = 0.12, 0.08, 300
    gap = detectable_gap(sd1=sd1, n1=n1, sd2=sd2, n2=n2, alpha=ALPHA, power=0.8)
    assert welch_power(gap, sd1=sd1, n1=n1, sd2=sd2, n2=n2, alpha=ALPHA) == pytest.approx(0.8, abs=1e-6)
    assert abs(_simulated_power(gap, sd1=sd1, n1=n1, sd2=sd2, n2=n2, seed=n1) - 0.8) <= 0.05


@pytest.mark.parametrize("n1, gap", [(8, 0.05), (30, 0.03), (100, 0.02)])
def test_power_curve_matches_simulation(n1, gap):
    sd1, sd2, n2 = 0.15, 0.1, 200
    stated = float(welch_power(gap, sd1=sd1, n1=n1, sd2=sd2, n2=n2, alpha=ALPHA))
    assert abs(_simulated_power(gap, sd1=sd1, n1=n1, sd2=sd2, n2=n2, seed=n1 + 1) - stated) <= 0.05
    # a skewed (Dice-like) metric at the larger sizes
    if n1 >= 30:
        assert abs(_simulated_power(gap, sd1=sd1, n1=n1, sd2=sd2, n2=n2, seed=n1 + 2, dist="gamma") - stated) <= 0.05


@pytest.mark.parametrize("sd1", [0.05, 0.15, 0.25])
def test_required_n_reaches_the_power(sd1):
    sd2, n2, gap = 0.1, 400, 0.05
    n = required_n(gap, sd1=sd1, sd2=sd2, n2=n2)
    assert n is not None and n >= MIN_SPREAD_N
    assert detectable_gap(sd1=sd1, n1=n, sd2=sd2, n2=n2) <= gap
    if n > MIN_SPREAD_N:
        assert detectable_gap(sd1=sd1, n1=n - 1, sd2=sd2, n2=n2) > gap  # the smallest such n
    assert abs(_simulated_power(gap, sd1=sd1, n1=n, sd2=sd2, n2=n2, seed=int(100 * sd1)) - 0.8) <= 0.05


def test_tight_few_cases_can_be_enough_and_wide_many_not():
    """A fixed n < 20 flag is neither necessary nor sufficient."""
    tight = detectable_gap(sd1=0.01, n1=12, sd2=0.05, n2=300)
    wide = detectable_gap(sd1=0.25, n1=30, sd2=0.05, n2=300)
    assert tight < 0.05 < wide


def test_edges():
    assert detectable_gap(sd1=0.1, n1=2, sd2=0.1, n2=100) is None  # spread of 2 cases not used
    assert detectable_gap(sd1=float("nan"), n1=10, sd2=0.1, n2=100) is None
    assert required_n(0.001, sd1=0.1, sd2=0.2, n2=10) is None  # the reference alone is too noisy
    assert required_n(0.5, sd1=0.01, sd2=0.01, n2=100) == MIN_SPREAD_N
    # large df: the normal approximation z_{0.975} + z_{0.8}
    assert critical_noncentrality(1e7) == pytest.approx(stats.norm.ppf(0.975) + stats.norm.ppf(0.8), abs=1e-3)
    with pytest.raises(DuetfairError, match="gap"):
        required_n(0.0, sd1=0.1, sd2=0.1, n2=10)
    with pytest.raises(DuetfairError, match="power"):
        critical_noncentrality(10, power=1.0)
