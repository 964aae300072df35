"""Vectorised bootstrap: equivalence with a per-resample loop, seeding, stratification, ES."""

import numpy as np
import pytest

from duetfair.errors import DuetfairError
from duetfair.metrics import bootstrap as bs


def test_resample_sums_match_explicit_loop_with_same_indices():
    values = np.random.default_rng(1).random(37)
    fast = bs.resample_sums(values, 50, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    idx = rng.integers(0, values.size, size=(50, values.size), dtype=np.int32)
    # values are gathered in float32 (documented): relative error below float32 rounding
    np.testing.assert_allclose(fast, values[idx].sum(axis=1), rtol=1e-7)
    assert not np.array_equal(fast, values[idx[::-1]].sum(axis=1))


def test_blocks_do_not_change_the_draws(monkeypatch):
    values = np.random.default_rng(2).random(100)
    full = bs.resample_sums(values, 64, np.random.default_rng(3))
    monkeypatch.setattr(bs, "BLOCK_ELEMENTS", 700)  # 7 resamples per block
    blocked = bs.resample_sums(values, 64, np.random.default_rng(3))
    np.testing.assert_allclose(full, blocked, rtol=1e-12)


def test_bootstrap_is_seeded_and_close_to_normal_theory():
    values = np.random.default_rng(0).normal(0.8, 0.1, size=2000)
    a = bs.bootstrap_means(values, 2000, np.random.default_rng(5))
    b = bs.bootstrap_means(values, 2000, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(values.std() / np.sqrt(values.size), rel=0.1)
    low, high = bs.percentile_ci(a)
    assert low < values.mean() < high


def test_stratified_keeps_group_sizes_and_unknowns():
    values = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 5.0])
    strata = np.array([0, 0, 1, 1, 1, -1])
    groups, overall = bs.stratified_bootstrap_means(values, strata, 3, 20, np.random.default_rng(0))
    np.testing.assert_array_equal(groups[:, 0], 0.0)
    np.testing.assert_array_equal(groups[:, 1], 1.0)
    assert np.isnan(groups[:, 2]).all()  # empty group
    np.testing.assert_allclose(overall, (3.0 + 5.0) / 6.0)  # unknown case stays in the overall mean


def test_equity_scaled_variants():
    groups = np.array([0.746, 0.731, 0.811])
    assert bs.equity_scaled(0.793, groups) == pytest.approx(0.793 / (1 + 0.047 + 0.062 + 0.018))
    assert bs.equity_scaled(0.793, groups, "std") == pytest.approx(0.793 / (1 + groups.std()))
    with pytest.raises(DuetfairError, match="es_variant"):
        bs.equity_scaled(0.5, groups, "max")


def test_bad_arguments():
    with pytest.raises(DuetfairError):
        bs.resample_sums(np.array([]), 10, np.random.default_rng(0))
    with pytest.raises(DuetfairError):
        bs.bootstrap_means(np.ones(3), 0)
    with pytest.raises(DuetfairError):
        bs.percentile_ci(np.ones(3), level=1.5)


def test_constant_values_resample_exactly():
    """A constant group (e.g. every case Dice 0.7) has a degenerate interval equal to its mean."""
    values = np.full(50, 0.7)
    means = bs.bootstrap_means(values, 100, np.random.default_rng(0))
    np.testing.assert_allclose(means, values.mean(), rtol=1e-14, atol=0)
