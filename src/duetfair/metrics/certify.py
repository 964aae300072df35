"""Distribution-free guarantees for one group: failure shares and a new case's metric.

A point estimate of 0 failures in 6 cases says little; these bounds say how many of the group's
patients the model can fail, with a stated confidence, under one assumption: **the group's cases
are exchangeable** (an i.i.d. sample of the group's patients). They need no model of the metric's
distribution. All functions are pure NumPy / SciPy and broadcast, so they also run over thousands
of simulated data sets at once (tests/metrics/test_certify.py).

Failure. A case fails at cut-off ``t`` when its metric is below ``t`` (Dice, IoU, NSD: higher is
better) or above ``t`` (HD95: lower is better). :func:`badness` turns both directions into one:
``s = x`` (higher better) or ``s = -x``, so that a failure is ``s < t'`` with ``t' = t`` or ``-t``.

* :func:`clopper_pearson_upper`: exact one-sided upper confidence bound on the share failing at one
  cut-off (``k`` of ``n`` failing; the Beta quantile ``B(confidence; k + 1, n - k)``, 1 when
  ``k = n``). 0 of 6 at 95 %: 39.3 %.
* :func:`band_margin`: a margin ``d`` such that the true failure share is at most the observed
  share plus ``d`` at **every** cut-off at once, with the stated confidence: the exact quantile of
  the one-sided Kolmogorov statistic ``D_n^+`` (``scipy.stats.ksone``; exact for a continuous metric,
  conservative when values tie) or the Dvoretzky-Kiefer-Wolfowitz-Massart bound
  ``sqrt(log(1 / (1 - confidence)) / (2 n))``.
* :func:`simultaneous_confidence`: the per-group confidence that makes a statement hold for all
  ``m`` groups of an attribute at once: Šidák ``confidence ** (1 / m)`` (groups are disjoint sets
  of independent cases) or Bonferroni ``1 - (1 - confidence) / m`` (valid under any dependence).
* :func:`new_case_rank` / :func:`new_case_bound`: the distribution-free tolerance bound on a new
  case: with confidence ``confidence``, a new case of the group scores at least its ``r``-th worst
  observed value with probability at least ``content``. ``r`` is the largest rank with
  ``P(Binomial(n, 1 - content) >= r) >= confidence``; below :func:`new_case_min_n` cases no rank
  qualifies (29 cases for 90 % content at 95 % confidence) and there is no bound.

What the bounds do not promise: anything about patients unlike the audited ones (another site,
another scanner, a shifted case mix), about a single patient's own case, or about groups that were
chosen after looking at the data (the audit's groups are fixed by the attributes before any metric
is read).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats

from duetfair.errors import require

BandMethod = Literal["ksone", "dkw"]
Correction = Literal["sidak", "bonferroni"]

BAND_METHODS = ("ksone", "dkw")
"""Accepted ``band_margin`` methods."""

CORRECTIONS = ("sidak", "bonferroni")
"""Accepted corrections across the groups of an attribute."""

METHOD_NAMES = {
    "clopper_pearson": "Clopper-Pearson exact one-sided upper bound (scipy.stats.beta quantile)",
    "clopper_pearson_interval": "Clopper-Pearson exact two-sided interval",
    "ksone": "exact one-sided Kolmogorov band (scipy.stats.ksone quantile), all cut-offs at once",
    "dkw": "Dvoretzky-Kiefer-Wolfowitz-Massart band, all cut-offs at once",
    "sidak": "Sidak correction over the groups of the attribute",
    "bonferroni": "Bonferroni correction over the groups of the attribute",
    "order_statistic": "distribution-free order-statistic tolerance bound (binomial rank)",
}
"""Method names written next to every number of the audit JSON."""


def _check_confidence(confidence: float) -> None:
    require(0.0 < confidence < 1.0, f"confidence={confidence!r}; expected a confidence level in (0, 1)")


def badness(values: np.ndarray, *, higher_better: bool) -> np.ndarray:
    """``values`` oriented so that a failure is always *below* a cut-off (``-values`` for distances)."""
    v = np.asarray(values, dtype=np.float64)
    return v if higher_better else -v


def failure_counts(values: np.ndarray, cutoffs: np.ndarray, *, higher_better: bool) -> np.ndarray:
    """Number of failing values at every cut-off.

    Args:
        values: per-case metric values ``[..., n]`` (finite), e.g. ``[n]`` or ``[data sets, n]``.
        cutoffs: cut-offs ``[T]`` in metric units.
        higher_better: failure is ``value < cutoff`` (True) or ``value > cutoff`` (False).

    Returns:
        int64 array ``[..., T]``.
    """
    s = badness(np.asarray(values, dtype=np.float64), higher_better=higher_better)
    tt = badness(np.asarray(cutoffs, dtype=np.float64), higher_better=higher_better)
    if s.ndim == 1:
        return np.searchsorted(np.sort(s), tt, side="left").astype(np.int64)
    return (s[..., None, :] < tt[:, None]).sum(axis=-1, dtype=np.int64)


def clopper_pearson_upper(k: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> np.ndarray:
    """Exact one-sided upper confidence bound on a binomial share: ``k`` of ``n`` (broadcast).

    ``B(confidence; k + 1, n - k)``, the Beta quantile, and 1 when ``k = n``; ``n = 0`` gives 1.
    """
    _check_confidence(confidence)
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    require(bool(np.all((k >= 0) & (k <= n))), "clopper_pearson_upper: expected 0 <= k <= n")
    inside = k < n
    safe_b = np.where(inside, n - k, 1.0)
    return np.where(inside, stats.beta.ppf(confidence, k + 1.0, safe_b), 1.0)


def clopper_pearson_lower(k: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> np.ndarray:
    """Exact one-sided lower confidence bound on a binomial share (0 when ``k = 0``)."""
    _check_confidence(confidence)
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    require(bool(np.all((k >= 0) & (k <= n))), "clopper_pearson_lower: expected 0 <= k <= n")
    positive = k > 0
    safe_a = np.where(positive, k, 1.0)
    return np.where(positive, stats.beta.ppf(1.0 - confidence, safe_a, n - k + 1.0), 0.0)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval ``(low, high)`` of a share ``k / n`` (each tail ``(1 - confidence) / 2``);
    ``(nan, nan)`` when ``n = 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    one_sided = 1.0 - (1.0 - confidence) / 2.0
    return float(clopper_pearson_lower(k, n, one_sided)), float(clopper_pearson_upper(k, n, one_sided))


def simultaneous_confidence(confidence: float, m: int, correction: str = "sidak") -> float:
    """Per-statement confidence so that ``m`` statements hold together with ``confidence``."""
    _check_confidence(confidence)
    require(m >= 1, f"simultaneous_confidence: m={m!r}; expected at least one statement")
    require(correction in CORRECTIONS, f"correction={correction!r}; expected one of {', '.join(CORRECTIONS)}")
    if correction == "sidak":
        return float(confidence ** (1.0 / m))
    return float(1.0 - (1.0 - confidence) / m)


@lru_cache(maxsize=4096)
def band_margin(n: int, confidence: float = 0.95, method: str = "ksone") -> float:
    """Margin ``d`` of a one-sided band on the failure share that holds at all cut-offs at once.

    ``P(sup_t [share(t) - observed share(t)] <= d) >= confidence`` for exchangeable cases.
    ``"ksone"``: the exact ``confidence`` quantile of the one-sided Kolmogorov statistic ``D_n^+``
    (``scipy.stats.ksone.ppf``); ``"dkw"``: ``sqrt(log(1 / (1 - confidence)) / (2 n))`` (Massart's
    constant; a little wider). ``n = 0`` gives 1.
    """
    _check_confidence(confidence)
    require(method in BAND_METHODS, f"band method {method!r}; expected one of {', '.join(BAND_METHODS)}")
    if n <= 0:
        return 1.0
    if method == "dkw":
        return float(min(1.0, math.sqrt(math.log(1.0 / (1.0 - confidence)) / (2.0 * n))))
    return float(min(1.0, stats.ksone.ppf(confidence, int(n))))


def new_case_min_n(content: float = 0.9, confidence: float = 0.95) -> int:
    """Fewest cases with which the order-statistic bound exists: ``1 - content^n >= confidence``."""
    _check_confidence(confidence)
    require(0.0 < content < 1.0, f"content={content!r}; expected a probability in (0, 1)")
    n = math.ceil(math.log(1.0 - confidence) / math.log(content) - 1e-12)
    while 1.0 - content**n < confidence:  # guard the rounding of the logarithms
        n += 1
    return int(n)


def new_case_rank(n: int, *, content: float = 0.9, confidence: float = 0.95) -> int | None:
    """Rank ``r`` (1 = worst case) of the order-statistic bound; None when ``n`` is too small.

    The largest ``r`` with ``P(Binomial(n, 1 - content) >= r) >= confidence``: then the ``r``-th
    worst of ``n`` exchangeable cases is exceeded by a new case with probability at least
    ``content``, with confidence ``confidence`` (exact for a continuous metric, conservative with
    ties).
    """
    _check_confidence(confidence)
    require(0.0 < content < 1.0, f"content={content!r}; expected a probability in (0, 1)")
    if n <= 0:
        return None
    tail = stats.binom.sf(np.arange(n), n, 1.0 - content)  # P(B >= r) for r = 1..n, decreasing
    r = int(np.count_nonzero(tail >= confidence))
    return r if r >= 1 else None


def new_case_bound(
    values: np.ndarray, *, content: float = 0.9, confidence: float = 0.95, higher_better: bool = True
) -> tuple[float | None, int | None]:
    """Distribution-free bound on a new case's metric: ``(bound, rank)``.

    Args:
        values: the group's per-case values ``[n]`` (finite) or ``[data sets, n]``.
        content: probability that a new case is on the good side of the bound.
        confidence: confidence of the statement.
        higher_better: the bound is a lower bound (Dice) or an upper bound (HD95).

    Returns:
        ``(bound, rank)``: the ``rank``-th worst value; ``(None, None)`` below
        :func:`new_case_min_n` cases. For a 2-D input ``bound`` is an array ``[data sets]``.
    """
    v = np.asarray(values, dtype=np.float64)
    r = new_case_rank(v.shape[-1], content=content, confidence=confidence)
    if r is None:
        return None, None
    picked = np.sort(badness(v, higher_better=higher_better), axis=-1)[..., r - 1]  # r-th worst
    bound = picked if higher_better else -picked
    return (float(bound) if np.ndim(bound) == 0 else bound), r  # type: ignore[return-value]


def two_sided_margin(n: int, confidence: float = 0.95) -> float:
    """Margin ``d`` with ``P(sup_x |F(x) - F_n(x)| <= d) >= confidence`` for every ``F``: the
    two-sided Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant,
    ``sqrt(log(2 / (1 - confidence)) / (2 n))``; 1 for ``n = 0``."""
    _check_confidence(confidence)
    return 1.0 if n <= 0 else float(min(1.0, math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * n))))


def _quantile_integral(sorted_s: np.ndarray, a: float, b: float, top: float) -> float:
    """``integral_a^b Q_n(v) dv`` of the empirical quantile of ``sorted_s`` [n] (``top`` beyond 1)."""
    n = sorted_s.size
    edges = np.arange(n + 1) / n
    overlap = np.clip(np.minimum(b, edges[1:]) - np.maximum(a, edges[:-1]), 0.0, None)
    total = float(np.dot(overlap, sorted_s))
    beyond = max(0.0, b - max(a, 1.0))
    return total + (beyond * top if beyond > 0 else 0.0)


def cvar_bounds(
    values: np.ndarray,
    *,
    alpha: float = 0.1,
    confidence: float = 0.95,
    higher_better: bool = True,
    support: tuple[float, float] = (0.0, 1.0),
) -> tuple[float, float]:
    """Distribution-free interval of a group's CVaR_alpha (the mean of its worst ``alpha`` share).

    Every distribution inside the two-sided Dvoretzky-Kiefer-Wolfowitz band around the empirical
    one (margin :func:`two_sided_margin`; the approach of Thomas and Learned-Miller, 2019) has its
    CVaR between the band's two extreme distributions: mass ``d`` moved to the worst end of
    ``support`` (the lower bound of the tail's quality) or taken from the worst cases to the best
    end (the upper bound). ``support`` is the metric's possible range
    (``(0, 1)`` for Dice; ``(0, inf)`` for a distance, whose worse bound is then infinite).

    Returns:
        ``(low, high)`` in metric units (the fractional CVaR of :func:`duetfair.metrics.hidden.cvar`
        lies inside); ``(nan, nan)`` for an empty group.
    """
    require(0.0 < alpha <= 1.0, f"cvar_bounds: alpha={alpha!r}; expected a fraction in (0, 1]")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    d = two_sided_margin(v.size, confidence)
    lo_x, hi_x = support
    worst_end, best_end = (lo_x, hi_x) if higher_better else (-hi_x, -lo_x)
    s = np.sort(badness(v, higher_better=higher_better))
    bad = (d * worst_end + _quantile_integral(s, 0.0, alpha - d, best_end)) / alpha if alpha > d else worst_end
    good = min(_quantile_integral(s, d, alpha + d, best_end) / alpha, best_end)
    bad = max(bad, worst_end)
    if higher_better:
        return float(bad), float(good)
    return float(-good), float(-bad)


def cutoff_grid(values: np.ndarray, *, bounded: bool, points: int = 41) -> np.ndarray:
    """Cut-offs of a failure curve: ``points`` evenly spaced in [0, 1] for a metric bounded in [0, 1],
    else the ``points`` quantiles of ``values`` rounded to 6 significant digits (duplicates removed)."""
    if bounded:
        return np.round(np.linspace(0.0, 1.0, points), 10)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(0)
    grid = np.quantile(v, np.linspace(0.0, 1.0, points))
    return np.unique(np.array([float(f"{t:.6g}") for t in grid]))  # readable cut-offs (6 digits)


def ceil_digits(x: np.ndarray, digits: int = 4) -> list[float]:
    """Upper bounds rounded **up** to ``digits`` decimals (a rounded bound stays a bound)."""
    scale = 10.0**digits
    return [float(v) for v in np.minimum(1.0, np.ceil(np.asarray(x, dtype=np.float64) * scale - 1e-9) / scale)]
