"""Enough evidence or not: the gap a group's data can detect, and the cases needed for a chosen gap.

A fixed "fewer than 20 cases" flag is neither necessary nor sufficient: 30 cases with a wide spread
can be too few, 12 with a tight one enough. What decides is the standard error of the difference
between the group's mean and the reference's (the rest of the population, or a reference group),
``se = sqrt(sd_g^2 / n_g + sd_r^2 / n_r)``, and the test that will be run on it: Welch's two-sided
t-test at level ``alpha`` with the Welch-Satterthwaite degrees of freedom ``df``.

* :func:`welch_power`: the power of that test against a true gap ``delta``:
  ``P(|T| > t_{1 - alpha/2, df})`` with ``T`` noncentral t (``df``, ``delta / se``)
  (``scipy.stats.nct``); the spreads are the groups' sample standard deviations, taken as known.
* :func:`detectable_gap`: the smallest gap detected with probability ``power`` (80 % by default).
* :func:`required_n`: the group size at which a chosen gap is detected with probability ``power``,
  the reference's size and both spreads unchanged; None when even an infinite group would not
  suffice (the reference alone is too noisy) or a spread is unknown.

These are plug-in figures: they treat the observed spreads as the true ones, so with very few cases
(where the spread itself is uncertain) they are optimistic; groups of fewer than
:data:`MIN_SPREAD_N` cases get no figure at all. They plan data collection; they are not a
confidence statement.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from duetfair.errors import require

MIN_SPREAD_N = 3
"""Fewest cases whose sample standard deviation is used for a power figure."""

MAX_N = 10**7
"""Largest group size :func:`required_n` searches."""


def _check(alpha: float, power: float) -> None:
    require(0.0 < alpha < 1.0, f"alpha={alpha!r}; expected a test level in (0, 1)")
    require(0.0 < power < 1.0, f"power={power!r}; expected a probability in (0, 1)")


def welch_se_df(
    sd1: np.ndarray | float, n1: np.ndarray | float, sd2: np.ndarray | float, n2: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Standard error of ``mean_1 - mean_2`` and Welch-Satterthwaite degrees of freedom (broadcast)."""
    a = np.asarray(sd1, dtype=np.float64) ** 2 / np.asarray(n1, dtype=np.float64)
    b = np.asarray(sd2, dtype=np.float64) ** 2 / np.asarray(n2, dtype=np.float64)
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (
            a**2 / (np.asarray(n1, dtype=np.float64) - 1) + b**2 / (np.asarray(n2, dtype=np.float64) - 1)
        )
    df = np.where(np.isfinite(df) & (df > 0), df, np.minimum(n1, n2) - 1.0)
    return se, np.maximum(df, 1.0)


def _power_nc(nc: np.ndarray, df: np.ndarray, alpha: float) -> np.ndarray:
    """Power of the two-sided t-test at noncentrality ``nc`` (both tails)."""
    tc = stats.t.ppf(1.0 - alpha / 2.0, df)
    return stats.nct.sf(tc, df, nc) + stats.nct.sf(tc, df, -nc)


def critical_noncentrality(df: np.ndarray | float, *, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Noncentrality at which the two-sided t-test with ``df`` degrees of freedom has ``power``.

    Solved with secant steps from ``t_{1 - alpha/2} + t_{power}`` (vectorised over ``df``).
    """
    _check(alpha, power)
    df = np.asarray(df, dtype=np.float64)
    x0 = stats.t.ppf(1.0 - alpha / 2.0, df) + stats.t.ppf(power, df)
    x1 = x0 * 1.02 + 0.01
    f0 = _power_nc(x0, df, alpha) - power
    f1 = _power_nc(x1, df, alpha) - power
    for _ in range(30):
        step = np.where(np.abs(f1 - f0) > 1e-14, f1 * (x1 - x0) / np.where(f1 == f0, 1.0, f1 - f0), 0.0)
        x0, f0 = x1, f1
        x1 = np.maximum(x1 - step, 1e-6)
        f1 = _power_nc(x1, df, alpha) - power
        if np.all(np.abs(f1) < 1e-8):
            break
    return x1


def welch_power(
    delta: np.ndarray | float,
    *,
    sd1: np.ndarray | float,
    n1: np.ndarray | float,
    sd2: np.ndarray | float,
    n2: np.ndarray | float,
    alpha: float = 0.05,
) -> np.ndarray:
    """Power of Welch's two-sided test at level ``alpha`` against a true gap ``delta`` (broadcast)."""
    se, df = welch_se_df(sd1, n1, sd2, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        nc = np.where(se > 0, np.abs(np.asarray(delta, dtype=np.float64)) / se, np.inf)
    return np.where(np.isfinite(nc), _power_nc(np.where(np.isfinite(nc), nc, 0.0), df, alpha), 1.0)


def detectable_gap(
    *, sd1: float, n1: int, sd2: float, n2: int, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """Smallest gap of the means that Welch's test detects with probability ``power``; None when a
    group has fewer than :data:`MIN_SPREAD_N` cases or a spread is not finite."""
    if n1 < MIN_SPREAD_N or n2 < MIN_SPREAD_N or not (math.isfinite(sd1) and math.isfinite(sd2)):
        return None
    se, df = welch_se_df(sd1, n1, sd2, n2)
    return float(critical_noncentrality(df, alpha=alpha, power=power) * se)


def required_n(
    gap: float, *, sd1: float, sd2: float, n2: int, alpha: float = 0.05, power: float = 0.8, max_n: int = MAX_N
) -> int | None:
    """Fewest cases of group 1 with which Welch's test detects ``gap`` with probability ``power``
    (``sd1``, ``sd2`` and ``n2`` fixed); None when no size up to ``max_n`` suffices."""
    require(gap > 0, f"gap={gap!r}; expected a positive gap to detect")
    if n2 < MIN_SPREAD_N or not (math.isfinite(sd1) and math.isfinite(sd2)):
        return None

    def mde(n: np.ndarray) -> np.ndarray:
        se, df = welch_se_df(sd1, n, sd2, n2)
        return critical_noncentrality(df, alpha=alpha, power=power) * se

    grid = np.unique(np.round(np.geomspace(MIN_SPREAD_N, max_n, 64)).astype(np.int64))
    ok = mde(grid.astype(np.float64)) <= gap
    if not ok.any():
        return None
    first = int(np.argmax(ok))
    if first == 0:
        return int(grid[0])
    low, high = int(grid[first - 1]), int(grid[first])  # mde(low) > gap >= mde(high)
    while high - low > 1:
        span = np.unique(np.linspace(low, high, min(high - low + 1, 64)).round().astype(np.int64))
        hit = mde(span.astype(np.float64)) <= gap
        j = int(np.argmax(hit))
        low, high = int(span[j - 1]), int(span[j])
    return high
