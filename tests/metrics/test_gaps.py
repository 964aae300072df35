"""Tested gaps (metrics.gaps): Benjamini-Hochberg over groups and attributes keeps the false
discovery rate on null data and finds a planted gap; the worst-group intervals cover the true worst
mean whichever group it is; the Welch and permutation tests agree with scipy."""

import numpy as np
import pytest
from scipy import stats

from duetfair.errors import DuetfairError
from duetfair.metrics.gaps import (
    bh_qvalues,
    permutation_pvalue,
    permutation_pvalues,
    selection_bootstrap,
    simultaneous_mean_intervals,
    spread_interval,
    welch_gap,
    welch_pvalues,
    worst_interval,
)

FDR = 0.05


def _dice(rng, n):
    """Skewed, bounded per-case Dice: most cases near 0.82, 6 % failures below 0.3."""
    good = np.clip(rng.normal(0.82, 0.12, n), 0.0, 1.0)
    return np.where(rng.random(n) < 0.06, rng.uniform(0.0, 0.3, n), good)


def _audit(rng, *, gap, test, n_cases=200, groups=4, attributes=2, n_perm=199):
    """One simulated audit: ``attributes`` attributes of ``groups`` random groups, every group
    tested against the rest, Benjamini-Hochberg over all tests. The first attribute's group 0 is
    worse by ``gap``. Returns (discoveries, planted, independent-of-the-gap) masks over the tests."""
    labels = [rng.integers(0, groups, n_cases) for _ in range(attributes)]
    values = _dice(rng, n_cases) - gap * (labels[0] == 0)
    p = np.concatenate(
        [
            permutation_pvalues(values, lab, groups, n_perm=n_perm, rng=rng)
            if test == "permutation"
            else welch_pvalues(values, lab, groups)
            for lab in labels
        ]
    )
    planted = np.zeros(p.size, dtype=bool)
    planted[0] = True
    independent = np.arange(p.size) >= groups  # attributes unrelated to the planted gap
    return bh_qvalues(p) <= FDR, planted, independent


def test_bh_keeps_the_false_discovery_rate_on_null_data():
    """No true gap, 1,500 simulated audits of 2 attributes x 4 groups on skewed Dice: with the
    permutation test (the audit's default) the false discovery rate (here the share of audits with
    any discovery) stays at or below 5 %. Welch's t-test on the same data exceeds it (its
    t-distribution is too thin-tailed far out, where the correction looks), which is why the
    audit permutes."""
    rng = np.random.default_rng(0)
    perm, welch = [], []
    for _ in range(1500):
        state = rng.bit_generator.state
        perm.append(_audit(rng, gap=0.0, test="permutation")[0].any())
        rng.bit_generator.state = state  # the same data for both tests
        welch.append(_audit(rng, gap=0.0, test="welch")[0].any())
    assert np.mean(perm) <= FDR
    assert np.mean(welch) > FDR


def test_bh_finds_a_planted_gap():
    """A group of about 50 of 200 cases worse by 0.15 in mean Dice (per-case sd about 0.2): found
    after correction over the 8 tests in at least 80 % of 300 audits; the false discovery rate among
    the tests unrelated to the gap stays at or below 5 %."""
    rng = np.random.default_rng(1)
    hits, fdp = [], []
    for _ in range(300):
        found, planted, independent = _audit(rng, gap=0.15, test="permutation")
        hits.append(bool(found[planted].all()))
        counted = found & (planted | independent)
        fdp.append((counted & independent).sum() / max(counted.sum(), 1))
    assert np.mean(hits) >= 0.8
    assert np.mean(fdp) <= FDR


def test_bh_qvalues_match_scipy_and_skip_undefined():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    q = bh_qvalues(p)
    np.testing.assert_allclose(q[[0, 2, 3, 4]], stats.false_discovery_control(p[[0, 2, 3, 4]]))
    assert np.isnan(q[1])
    np.testing.assert_allclose(
        bh_qvalues(p, "by")[[0, 2]], stats.false_discovery_control(p[[0, 2, 3, 4]], method="by")[[0, 1]]
    )
    with pytest.raises(DuetfairError, match="fdr method"):
        bh_qvalues(p, "holm")


def test_welch_gap_matches_scipy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0.7, 0.2, 15), rng.normal(0.8, 0.1, 200)
    res = stats.ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(0.9)
    t = welch_gap(x, y, confidence=0.9)
    assert t.diff == pytest.approx(x.mean() - y.mean()) and t.p_value == pytest.approx(res.pvalue)
    assert t.ci == pytest.approx((ci.low, ci.high)) and (t.n, t.n_ref) == (15, 200)
    assert np.isnan(welch_gap(x[:1], y).p_value)  # one case: no test
    assert welch_gap(np.full(5, 0.9), np.full(9, 0.8)).p_value == 0.0  # two constant groups


def test_vectorised_tests_match_the_per_group_ones():
    rng = np.random.default_rng(6)
    values = _dice(rng, 300)
    codes = rng.integers(-1, 5, 300)  # -1: unknown attribute, always in the rest
    welch = welch_pvalues(values, codes, 5)
    for g in range(5):
        assert welch[g] == pytest.approx(welch_gap(values[codes == g], values[codes != g]).p_value, rel=1e-9)
    perm = permutation_pvalues(values, codes, 5, n_perm=4000, rng=rng)
    np.testing.assert_allclose(perm, welch, atol=0.04)  # normal-ish groups of 50: close to Welch
    assert perm.min() >= 1 / 4001


def test_permutation_pvalue_is_valid_and_close_to_welch():
    rng = np.random.default_rng(3)
    null = [permutation_pvalue(rng.normal(0, 1, 12), rng.normal(0, 1, 60), n_perm=199, rng=rng) for _ in range(400)]
    assert np.mean(np.array(null) <= 0.05) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 400)
    x, y = rng.normal(-0.5, 1, 40), rng.normal(0, 1, 200)
    assert permutation_pvalue(x, y, n_perm=4000, rng=rng) == pytest.approx(welch_gap(x, y).p_value, abs=0.01)


@pytest.mark.parametrize("means", [(0.8, 0.8, 0.8, 0.8), (0.7, 0.8, 0.8, 0.8), (0.8, 0.8, 0.8, 0.7)])
def test_worst_group_intervals_cover_the_true_worst_mean(means):
    """Groups of 10, 20, 40 and 80 cases: the projected simultaneous intervals cover the true worst
    mean and the true gap in at least 95 % of 400 data sets, whichever group is the worst (a naive
    interval of the selected group's own mean does not when groups are close)."""
    rng = np.random.default_rng(4)
    sizes = (10, 20, 40, 80)
    codes = np.repeat(np.arange(4), sizes)
    truth_min, truth_gap = min(means), max(means) - min(means)
    covered, covered_gap, naive = 0, 0, 0
    for _ in range(400):
        values = np.concatenate([rng.normal(m, 0.15, n) for m, n in zip(means, sizes)])
        low, high = simultaneous_mean_intervals(values, codes, 4, confidence=0.95)
        lo, hi = worst_interval(low, high)
        covered += lo <= truth_min <= hi
        glo, ghi = spread_interval(low, high)
        covered_gap += glo <= truth_gap <= ghi
        g = int(np.argmin([values[codes == k].mean() for k in range(4)]))
        x = values[codes == g]
        half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
        naive += x.mean() - half <= truth_min <= x.mean() + half
    assert covered / 400 >= 0.95 and covered_gap / 400 >= 0.95
    if len(set(means)) == 1:
        assert naive / 400 < 0.95  # selecting the minimum biases the naive interval


def test_selection_bootstrap_shares_and_distances():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0.6, 0.05, 30), rng.normal(0.8, 0.05, 30)])
    codes = np.repeat([0, 1], 30)
    boot = selection_bootstrap(values, codes, 2, n_boot=200, rng=rng)
    assert boot.selected.tolist() == [1.0, 0.0] and boot.worst_mean.shape == (200,)
    hd = selection_bootstrap(10 * values, codes, 2, n_boot=200, rng=rng, higher_better=False)
    assert hd.selected.tolist() == [0.0, 1.0]  # distances: the worst group has the highest mean
    assert abs(boot.bias_corrected(float(values[:30].mean())) - 0.6) < 0.03
    low, high = simultaneous_mean_intervals(values, codes, 2)
    assert worst_interval(low, high, higher_better=False) == (low[1], high[1])
