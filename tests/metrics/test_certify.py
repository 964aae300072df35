"""Per-group guarantees (metrics.certify): exact values against scipy, and coverage by simulation.

Every coverage check draws 2,000 simulated data sets at once (NumPy arrays ``[2000, n]``), computes
the bounds with the functions the audit uses and counts how often they hold. The Clopper-Pearson
bounds are conservative for a discrete number of failures, so their simulated coverage is compared
with the nominal level directly, together with the exact coverage (a sum over the binomial
distribution). The Kolmogorov band and the order-statistic bound are *exact* for a continuous
metric (the order-statistic bound's exact coverage, a binomial tail, is checked to be at least the
nominal level): their simulated share may fall short of its true value by chance, so it is allowed
2.5 Monte Carlo standard errors below the nominal level (0.95 - 0.012).
"""

import math

import numpy as np
import pytest
from scipy import stats

from duetfair.errors import DuetfairError
from duetfair.metrics.certify import (
    band_margin,
    clopper_pearson_interval,
    clopper_pearson_lower,
    clopper_pearson_upper,
    cutoff_grid,
    cvar_bounds,
    failure_counts,
    new_case_bound,
    new_case_min_n,
    new_case_rank,
    simultaneous_confidence,
    two_sided_margin,
)
from duetfair.metrics.hidden import cvar

SETS = 2000
CONF = 0.95
MC_SLACK = 2.5 * math.sqrt(CONF * (1 - CONF) / SETS)


def _dice_like(rng, p_fail, shape):
    """Per-case Dice with exactly ``p_fail`` probability below 0.5 (failures uniform on [0, 0.5),
    successes on [0.5, 1])."""
    fail = rng.random(shape) < p_fail
    return np.where(fail, rng.uniform(0.0, 0.5, shape), rng.uniform(0.5, 1.0, shape))


@pytest.mark.parametrize("k, n", [(0, 6), (10, 200), (200, 200), (3, 45), (6, 6)])
def test_binomial_bounds_match_scipy(k, n):
    for conf in (0.9, 0.95, 0.99):
        one = stats.binomtest(k, n, alternative="less").proportion_ci(confidence_level=conf, method="exact")
        assert clopper_pearson_upper(k, n, conf) == pytest.approx(one.high, abs=1e-12)
        low = stats.binomtest(k, n, alternative="greater").proportion_ci(confidence_level=conf, method="exact")
        assert clopper_pearson_lower(k, n, conf) == pytest.approx(low.low, abs=1e-12)
        two = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
        assert clopper_pearson_interval(k, n, conf) == pytest.approx((two.low, two.high), abs=1e-12)


def test_hand_values():
    assert clopper_pearson_upper(0, 6) == pytest.approx(1 - 0.05 ** (1 / 6))  # 39.3%: "at most 39% of site D"
    assert round(float(clopper_pearson_upper(0, 6)), 3) == 0.393
    assert clopper_pearson_upper(200, 200) == 1.0 and clopper_pearson_lower(0, 200) == 0.0
    assert clopper_pearson_upper(0, 0) == 1.0
    assert simultaneous_confidence(0.95, 4) == pytest.approx(0.95**0.25)
    assert simultaneous_confidence(0.95, 4, "bonferroni") == pytest.approx(1 - 0.05 / 4)
    assert new_case_min_n(0.9, 0.95) == 29 and new_case_rank(28) is None and new_case_rank(29) == 1
    assert band_margin(100, method="dkw") == pytest.approx(math.sqrt(math.log(20) / 200))
    assert band_margin(100) < band_margin(100, method="dkw")  # the exact band is narrower
    with pytest.raises(DuetfairError, match="confidence"):
        clopper_pearson_upper(1, 5, 1.0)
    with pytest.raises(DuetfairError, match="0 <= k <= n"):
        clopper_pearson_upper(6, 5)


def test_failure_counts_and_grid():
    v = np.array([0.1, 0.5, 0.7, 0.9])
    assert failure_counts(v, [0.5, 0.8], higher_better=True).tolist() == [1, 3]  # strictly below
    assert failure_counts(v * 10, [5.0, 8.0], higher_better=False).tolist() == [2, 1]  # strictly above
    assert failure_counts(np.stack([v, v[::-1]]), np.array([0.5]), higher_better=True).tolist() == [[1], [1]]
    assert cutoff_grid(v, bounded=True, points=21)[[0, 10, 20]].tolist() == [0.0, 0.5, 1.0]
    assert cutoff_grid(np.array([1.0, 2.0, np.inf]), bounded=False, points=3).tolist() == [1.0, 1.5, 2.0]


@pytest.mark.parametrize("n", [5, 20, 100])
@pytest.mark.parametrize("p", [0.02, 0.1, 0.3, 0.6])
def test_upper_bound_coverage_per_group(n, p):
    rng = np.random.default_rng((n, int(1000 * p)))
    values = _dice_like(rng, p, (SETS, n))
    k = failure_counts(values, np.array([0.5]), higher_better=True)[:, 0]
    upper = clopper_pearson_upper(k, n, CONF)
    assert np.mean(upper >= p) >= CONF
    ks = np.arange(n + 1)
    exact = stats.binom.pmf(ks, n, p)[clopper_pearson_upper(ks, n, CONF) >= p].sum()
    assert exact >= CONF - 1e-12


def test_upper_bounds_hold_for_all_groups_at_once():
    """Four groups of sizes 5, 20, 100 and 20 with different true failure rates: the Sidak-corrected
    bounds all hold together in at least 95% of the data sets."""
    rng = np.random.default_rng(7)
    sizes, rates = (5, 20, 100, 20), (0.3, 0.1, 0.02, 0.5)
    each = simultaneous_confidence(CONF, len(sizes))
    held = np.ones(SETS, dtype=bool)
    for n, p in zip(sizes, rates):
        k = failure_counts(_dice_like(rng, p, (SETS, n)), np.array([0.5]), higher_better=True)[:, 0]
        held &= clopper_pearson_upper(k, n, each) >= p
    assert held.mean() >= CONF


@pytest.mark.parametrize("n", [5, 20, 100])
def test_band_holds_at_all_cutoffs_at_once(n):
    """Continuous metric (Beta(5, 2), Dice-like): the band covers the true failure share at every
    cut-off at once; checked at the order statistics (the exact supremum) and on the audit's grid."""
    rng = np.random.default_rng(n)
    dist = stats.beta(5, 2)
    values = np.sort(dist.rvs(size=(SETS, n), random_state=rng), axis=1)
    d = band_margin(n, CONF)
    # sup_t [F(t) - F_n(t)] is reached just before a jump: max_i F(x_(i)) - (i - 1) / n
    sup = np.max(dist.cdf(values) - np.arange(n) / n, axis=1)
    assert np.mean(sup <= d) >= CONF - MC_SLACK
    grid = cutoff_grid(values, bounded=True, points=21)
    share = failure_counts(values, grid, higher_better=True) / n
    assert np.mean(np.all(share + d >= dist.cdf(grid), axis=1)) >= CONF - MC_SLACK
    # the DKW band is wider, hence conservative
    assert np.mean(sup <= band_margin(n, CONF, "dkw")) >= CONF - MC_SLACK


def test_band_for_all_groups_and_cutoffs_at_once():
    rng = np.random.default_rng(11)
    sizes = (5, 20, 100)
    each = simultaneous_confidence(CONF, len(sizes))
    held = np.ones(SETS, dtype=bool)
    for i, n in enumerate(sizes):
        dist = stats.beta(2 + i, 1.5)
        values = np.sort(dist.rvs(size=(SETS, n), random_state=rng), axis=1)
        held &= np.max(dist.cdf(values) - np.arange(n) / n, axis=1) <= band_margin(n, each)
    assert held.mean() >= CONF - MC_SLACK


@pytest.mark.parametrize("n, content", [(5, 0.5), (20, 0.8), (29, 0.9), (100, 0.9)])
def test_new_case_bound_coverage(n, content):
    """With 95% confidence a new case scores at least the bound with probability ``content``:
    continuous scores, and scores rounded to 2 decimals (ties make it conservative)."""
    rng = np.random.default_rng(n)
    dist = stats.beta(5, 2)
    values = dist.rvs(size=(SETS, n), random_state=rng)
    bound, rank = new_case_bound(values, content=content, confidence=CONF)
    assert rank is not None and bound.shape == (SETS,)
    exact = stats.binom.sf(rank - 1, n, 1 - content)  # P(Bin(n, 1 - content) >= rank)
    assert exact >= CONF
    assert np.mean(dist.sf(bound) >= content) >= CONF - MC_SLACK  # its true coverage is ``exact``
    rounded, _ = new_case_bound(np.round(values, 2), content=content, confidence=CONF)
    assert np.mean(dist.sf(rounded) + (dist.cdf(rounded) - dist.cdf(rounded - 0.005)) >= content) >= CONF - MC_SLACK
    # distances: an upper bound ("HD95 <= x with probability content")
    hd = 10 * (1 - values)
    upper, _ = new_case_bound(hd, content=content, confidence=CONF, higher_better=False)
    np.testing.assert_allclose(upper, 10 * (1 - bound))


def test_new_case_bound_needs_enough_cases():
    assert new_case_bound(np.linspace(0, 1, 28)) == (None, None)
    bound, rank = new_case_bound(np.linspace(0, 1, 29))
    assert (bound, rank) == (0.0, 1)


def _true_cvar(dist, alpha):
    u = (np.arange(20000) + 0.5) / 20000 * alpha
    return float(dist.ppf(u).mean())


@pytest.mark.parametrize("n", [20, 100, 400])
def test_cvar_bounds_coverage(n):
    rng = np.random.default_rng(n)
    dist = stats.beta(5, 2)
    truth = _true_cvar(dist, 0.1)
    values = dist.rvs(size=(SETS, n), random_state=rng)
    bounds = np.array([cvar_bounds(v, alpha=0.1, confidence=CONF) for v in values])
    assert np.mean((bounds[:, 0] <= truth) & (truth <= bounds[:, 1])) >= CONF
    point = np.array([cvar(v, 0.1) for v in values[:50]])
    assert np.all((bounds[:50, 0] <= point + 1e-12) & (point <= bounds[:50, 1] + 1e-12))


def test_cvar_bounds_distances_and_margins():
    v = np.linspace(1.0, 30.0, 500)
    low, high = cvar_bounds(v, alpha=0.1, higher_better=False, support=(0.0, math.inf))
    assert high == math.inf and low <= cvar(v, 0.1, higher_better=False) <= 30.0
    assert cvar_bounds(np.array([0.5]), alpha=0.1) == (0.0, 1.0)  # one case: anything is possible
    assert two_sided_margin(100) == pytest.approx(math.sqrt(math.log(40) / 200))
    assert two_sided_margin(100) >= stats.kstwo.ppf(0.95, 100)  # DKW-Massart: valid, a little wider
