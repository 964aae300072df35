"""Tested gaps: each group against a reference, corrected for multiplicity, and the worst group with
its selection handled.

* :func:`welch_gap`: difference of means ``group - reference`` with Welch's interval and two-sided
  test (``scipy.stats.ttest_ind``, ``equal_var=False``);
* :func:`permutation_pvalues`: the studentized two-sided permutation test of every group against
  the rest at once (the labels of all cases permuted, each group's Welch t compared with its
  permutation distribution), :func:`permutation_pvalue` for one group against a reference group;
  exact when no group differs, robust to the skewed, bounded distributions of Dice where Welch's
  t-distribution is anti-conservative far in the tail (where Benjamini-Hochberg over many tests
  looks);
* :func:`bh_qvalues`: Benjamini-Hochberg (or Benjamini-Yekutieli) adjusted p-values
  (``scipy.stats.false_discovery_control``), undefined p-values left out;
* :func:`simultaneous_mean_intervals` + :func:`worst_interval` / :func:`spread_interval`: intervals
  of the worst-group mean and of the gap (best minus worst mean) that hold whichever group is the
  worst: every group's t interval at the Šidák level, so that all hold together, projected on the
  minimum (maximum) and on the range;
* :func:`selection_bootstrap`: every group resampled separately and the worst group **re-selected
  in every resample**: the share of resamples in which each group is the worst and a bias-corrected
  worst-group mean.

The worst of several group means is biased towards the bad side (the minimum of noisy estimates is
lower than the minimum of the true means), and an interval of the selected group's own mean ignores
that it was selected. Bootstrap intervals of a minimum are not reliable either: when groups are
close they cover the true minimum far less often than stated (the percentile interval covered it
in about half of simulated data sets with four equal groups, the basic interval in 75-93 %); the
projected simultaneous intervals covered it in at least 98 % (tests/metrics/test_gaps.py), so they
are the audit's intervals and the bootstrap only says how stable the choice of the worst group is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from duetfair.errors import require
from duetfair.metrics.bootstrap import BLOCK_ELEMENTS
from duetfair.metrics.certify import simultaneous_confidence

GAP_TESTS = ("welch", "permutation")
"""Accepted tests of a group against its reference."""

FDR_METHODS = {"bh": "Benjamini-Hochberg", "by": "Benjamini-Yekutieli"}
"""Accepted corrections across all tests of an audit."""


@dataclass(frozen=True)
class GapTest:
    """A group against its reference: ``diff = mean_group - mean_reference`` (metric units)."""

    diff: float
    ci: tuple[float, float]
    t: float
    df: float
    p_value: float
    n: int
    n_ref: int
    sd: float
    sd_ref: float


def welch_gap(values: np.ndarray, reference: np.ndarray, *, confidence: float = 0.95) -> GapTest:
    """Welch's two-sided test and interval of ``mean(values) - mean(reference)``.

    Args:
        values: the group's per-case values ``[n]`` (finite).
        reference: the reference's per-case values ``[m]`` (finite).
        confidence: level of the interval.

    Returns:
        :class:`GapTest`; with fewer than 2 cases on a side the test and interval are NaN.
    """
    require(0.0 < confidence < 1.0, f"confidence={confidence!r}; expected a confidence level in (0, 1)")
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    diff = float(x.mean() - y.mean()) if x.size and y.size else float("nan")
    sd = float(x.std(ddof=1)) if x.size > 1 else float("nan")
    sd_ref = float(y.std(ddof=1)) if y.size > 1 else float("nan")
    nan = float("nan")
    if x.size < 2 or y.size < 2:
        return GapTest(diff, (nan, nan), nan, nan, nan, int(x.size), int(y.size), sd, sd_ref)
    if sd == 0.0 and sd_ref == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        return GapTest(diff, (diff, diff), nan, nan, p, int(x.size), int(y.size), sd, sd_ref)
    with warnings.catch_warnings():  # nearly constant groups: scipy warns, the numbers stay defined
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(x, y, equal_var=False)
        ci = res.confidence_interval(confidence_level=confidence)
    return GapTest(
        diff,
        (float(ci.low), float(ci.high)),
        float(res.statistic),
        float(res.df),
        float(res.pvalue),
        int(x.size),
        int(y.size),
        sd,
        sd_ref,
    )


def _welch_t(n1: np.ndarray, s1: np.ndarray, q1: np.ndarray, n2: np.ndarray, s2: np.ndarray, q2: np.ndarray):
    """Welch's t of ``mean_1 - mean_2`` from counts, sums and sums of squares (broadcast); a zero
    standard error gives 0 for equal means and +-inf otherwise; NaN with fewer than 2 cases."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m2 = s1 / n1, s2 / n2
        v1 = np.maximum(q1 - n1 * m1**2, 0.0) / (n1 - 1)
        v2 = np.maximum(q2 - n2 * m2**2, 0.0) / (n2 - 1)
        se = np.sqrt(v1 / n1 + v2 / n2)
        diff = m1 - m2
        t = np.where(
            se > 1e-12 * (1 + np.abs(m1) + np.abs(m2)),
            diff / se,
            np.where(np.abs(diff) < 1e-12, 0.0, np.sign(diff) * np.inf),
        )
    return np.where((n1 >= 2) & (n2 >= 2), t, np.nan)


def _group_sums(values: np.ndarray, labels: np.ndarray, num_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``labels`` ``[b, N]`` (``-1`` = no group): counts, sums and sums of squares ``[b, G]``."""
    b, width = labels.shape[0], num_groups + 1  # column G collects the cases in no group
    idx = (np.arange(b)[:, None] * width + np.where(labels >= 0, labels, num_groups)).ravel()
    v = np.broadcast_to(values, labels.shape).ravel()
    size = b * width
    n = np.bincount(idx, minlength=size).reshape(b, width)[:, :num_groups].astype(np.float64)
    s = np.bincount(idx, weights=v, minlength=size).reshape(b, width)[:, :num_groups]
    q = np.bincount(idx, weights=v * v, minlength=size).reshape(b, width)[:, :num_groups]
    return n, s, q


def permutation_pvalues(
    values: np.ndarray,
    codes: np.ndarray,
    num_groups: int,
    *,
    n_perm: int = 1999,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Studentized permutation test of every group against the rest of the cases, all at once.

    The group labels of all cases (``-1``: no group, always in the rest) are permuted ``n_perm``
    times; each group's Welch t is compared with its permutation distribution:
    ``p = (1 + #{|t*| >= |t|}) / (1 + n_perm)``. Exact when the labels are exchangeable with the
    metric (no group differs), and, being studentized, asymptotically valid for equal means with
    unequal spreads. Vectorised over permutations in blocks.

    Returns:
        p-values ``[G]`` (NaN for a group, or a rest, of fewer than 2 cases).
    """
    require(1 <= n_perm <= 1_000_000, f"n_perm={n_perm!r}; expected 1 to 1000000 permutations")
    rng = np.random.default_rng(0) if rng is None else rng
    v = np.asarray(values, dtype=np.float64)
    v = v - v.mean()  # centred: sums of squares without cancellation
    c = np.asarray(codes, dtype=np.int64)
    total_n, total_s, total_q = float(v.size), float(v.sum()), float((v * v).sum())

    def t_of(labels: np.ndarray) -> np.ndarray:
        n, s, q = _group_sums(v, labels, num_groups)
        return _welch_t(n, s, q, total_n - n, total_s - s, total_q - q)

    observed = np.abs(t_of(c[None, :]))[0]
    hits = np.zeros(num_groups)
    block = max(1, min(n_perm, BLOCK_ELEMENTS // max(v.size, 1)))
    for start in range(0, n_perm, block):
        b = min(block, n_perm - start)
        shuffled = rng.permuted(np.broadcast_to(c, (b, c.size)), axis=1)
        hits += np.sum(np.abs(t_of(shuffled)) >= observed - 1e-9 * (1 + observed), axis=0)
    return np.where(np.isfinite(observed) | np.isinf(observed), (1.0 + hits) / (1.0 + n_perm), np.nan)


def welch_pvalues(values: np.ndarray, codes: np.ndarray, num_groups: int) -> np.ndarray:
    """Welch's two-sided p-value of every group against the rest of the cases ``[G]`` (vectorised;
    the same numbers as :func:`welch_gap` per group)."""
    v = np.asarray(values, dtype=np.float64)
    v = v - v.mean()
    n, s, q = _group_sums(v, np.asarray(codes, dtype=np.int64)[None, :], num_groups)
    n2, s2, q2 = v.size - n, v.sum() - s, (v * v).sum() - q
    t = _welch_t(n, s, q, n2, s2, q2)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (np.maximum(q - s**2 / n, 0) / (n - 1) / n)[0]
        b = (np.maximum(q2 - s2**2 / n2, 0) / (n2 - 1) / n2)[0]
        df = (a + b) ** 2 / (a**2 / (n[0] - 1) + b**2 / (n2[0] - 1))
    return np.where(
        np.isfinite(t),
        2 * stats.t.sf(np.abs(t), np.where(np.isfinite(df), df, 1.0)),
        np.where(np.isnan(t), np.nan, 0.0),
    )


def permutation_pvalue(
    values: np.ndarray, reference: np.ndarray, *, n_perm: int = 1999, rng: np.random.Generator | None = None
) -> float:
    """Studentized two-sided permutation p-value of ``mean(values) - mean(reference)`` (the pooled
    cases relabelled; see :func:`permutation_pvalues`); NaN with fewer than 2 cases on a side."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    codes = np.concatenate([np.zeros(x.size, dtype=np.int64), np.ones(y.size, dtype=np.int64)])
    return float(permutation_pvalues(np.concatenate([x, y]), codes, 2, n_perm=n_perm, rng=rng)[0])


def bh_qvalues(p_values: np.ndarray, method: str = "bh") -> np.ndarray:
    """Adjusted p-values (q) of ``p_values`` ``[m]`` over the defined ones (NaN stays NaN)."""
    require(method in FDR_METHODS, f"fdr method {method!r}; expected one of {', '.join(FDR_METHODS)}")
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method=method)
    return q


@dataclass(frozen=True)
class SelectionBootstrap:
    """Resampled worst-group numbers (``n_boot`` resamples, each group resampled separately).

    Attributes:
        worst_mean: worst group mean per resample ``[n_boot]`` (the worst re-selected each time).
        selected: share of resamples in which each group has the worst mean ``[G]``.
    """

    worst_mean: np.ndarray
    selected: np.ndarray

    def bias_corrected(self, estimate: float) -> float:
        """``2 x - mean(x*)``: the observed worst mean less the bootstrap's estimate of its
        selection bias."""
        return float(2.0 * estimate - self.worst_mean.mean())


def selection_bootstrap(
    values: np.ndarray,
    codes: np.ndarray,
    num_groups: int,
    *,
    n_boot: int,
    rng: np.random.Generator,
    higher_better: bool = True,
) -> SelectionBootstrap:
    """Resample every group (same size, with replacement) ``n_boot`` times and re-select the worst
    group in each resample (see the module docstring).

    Args:
        values: per-case values ``[n]`` (finite).
        codes: group ids ``[n]`` in ``[0, num_groups)``, ``-1`` for cases in no group (ignored).
        num_groups: G (every group has at least one case).
        n_boot: resamples (>= 1).
        rng: NumPy generator (consumed).
        higher_better: the worst group has the lowest (True) or highest mean.
    """
    require(n_boot >= 1, f"n_boot={n_boot!r}; expected at least one resample")
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(codes, dtype=np.int64)
    means = np.empty((n_boot, num_groups))
    sign = 1.0 if higher_better else -1.0
    for g in range(num_groups):
        members = sign * v[c == g]  # oriented: low = bad
        require(members.size > 0, f"selection_bootstrap: group {g} has no case")
        block = max(1, min(n_boot, BLOCK_ELEMENTS // members.size))
        for start in range(0, n_boot, block):
            stop = min(n_boot, start + block)
            means[start:stop, g] = members[rng.integers(0, members.size, size=(stop - start, members.size))].mean(1)
    selected = np.bincount(np.argmin(means, axis=1), minlength=num_groups) / n_boot
    return SelectionBootstrap(worst_mean=sign * means.min(axis=1), selected=selected)


def simultaneous_mean_intervals(
    values: np.ndarray, codes: np.ndarray, num_groups: int, *, confidence: float = 0.95, correction: str = "sidak"
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t intervals of every group mean that hold for all groups at once: ``(low [G], high [G])``.

    Each group: ``mean +- t_{n-1} sd / sqrt(n)`` at the Šidák (or Bonferroni) per-group level;
    a group of one case gets ``(-inf, inf)``.
    """
    each = simultaneous_confidence(confidence, num_groups, correction)
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(codes, dtype=np.int64)
    low, high = np.full(num_groups, -np.inf), np.full(num_groups, np.inf)
    for g in range(num_groups):
        x = v[c == g]
        if x.size < 2:
            continue
        half = stats.t.ppf(1.0 - (1.0 - each) / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
        low[g], high[g] = x.mean() - half, x.mean() + half
    return low, high


def worst_interval(low: np.ndarray, high: np.ndarray, *, higher_better: bool = True) -> tuple[float, float]:
    """Interval of the worst of several quantities from intervals that hold together: if every
    ``q_g`` lies in ``[low_g, high_g]``, then ``min_g q_g`` lies in ``[min low, min high]``
    (``[max low, max high]`` for the maximum); valid whichever group is the worst."""
    if higher_better:
        return float(np.min(low)), float(np.min(high))
    return float(np.max(low)), float(np.max(high))


def spread_interval(low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """Interval of ``max_g q_g - min_g q_g`` from intervals that hold together:
    ``[max(0, max low - min high), max high - min low]``."""
    return float(max(0.0, np.max(low) - np.min(high))), float(np.max(high) - np.min(low))
