"""Intra-group hidden failures: the tail of the per-case metric inside each group.

A group mean can look fine while a subset of its cases fails (a hidden hard subtype). These
numbers expose it: per group, CVaR_a (the mean of the worst ``a`` fraction of the cases, a = 0.1 by
default, see :func:`cvar`), the 10th percentile, the within-group standard deviation and the
failure rate (share of cases on the failing side of a per-metric threshold, see
:func:`default_failure_threshold` and :func:`parse_failure_threshold`). "Worst" follows the metric's
direction: lowest for Dice / IoU / NSD, highest for distances (HD95, NormHD, ASSD).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np

from duetfair.errors import DuetfairError, require
from duetfair.metrics import registry
from duetfair.metrics.registry import DEFAULT_FAILURE_THRESHOLDS as DEFAULT_FAILURE_THRESHOLDS  # re-exported
from duetfair.metrics.registry import LOWER_IS_BETTER as LOWER_IS_BETTER  # re-exported

CVAR_METHODS = ("fractional", "discrete")
"""Accepted ``cvar_method`` values (see :func:`cvar`)."""

# DEFAULT_FAILURE_THRESHOLDS (registry): a case fails below them. Dice < 0.5 is the usual per-case
# failure; IoU < 1/3 is the same cases (IoU = Dice / (2 - Dice)). Distances (HD95, NormHD, ASSD)
# have no unit-free cut-off, so they get none by default: their failure rate is NaN until the user
# sets one, e.g. ``"hd95>10"``.

_SETTING = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*([<>])\s*([^<>=\s]+)\s*$")


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric`` (a name or a per-class key such as ``hd95[1]``) from the metric
    registry: False for distances and losses, True for scores and names it does not know."""
    return registry.higher_is_better(metric)


# ---- CVaR -----------------------------------------------------------------------------------


def cvar(
    values: np.ndarray, alpha: float = 0.1, *, higher_better: bool = True, cvar_method: str = "fractional"
) -> float:
    """CVaR_alpha of ``values`` [n] (NaN ignored): the mean of the worst ``alpha`` fraction.

    The worst tail is the low one when ``higher_better`` (Dice), the high one otherwise (HD95).
    With the worst-first order ``x_(1), ..., x_(n)`` and ``k = alpha * n``:

    * ``"fractional"`` (default; Rockafellar-Uryasev / Acerbi-Tasche discrete form):
      ``(sum_{i <= floor(k)} x_(i) + (k - floor(k)) * x_(floor(k) + 1)) / k``, i.e. exactly an
      ``alpha`` share of the cases' mass, the boundary case at a fractional weight. For ``k < 1``
      it is the single worst case.
    * ``"discrete"``: the mean of the worst ``ceil(k)`` cases (the former definition; for small
      groups it averages more than ``alpha``, e.g. 2 of 11 cases = 18 % at alpha = 0.1).

    Both agree when ``k`` is an integer; ``alpha = 1`` gives the mean. The value lies between the
    worst case and the mean. Returns NaN for an empty input.
    """
    require(0.0 < alpha <= 1.0, f"cvar: alpha={alpha!r}; expected a fraction in (0, 1]")
    require(
        cvar_method in CVAR_METHODS, f"cvar: cvar_method={cvar_method!r}; expected one of {', '.join(CVAR_METHODS)}"
    )
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    worst_first = np.sort(v) if higher_better else -np.sort(-v)
    k = alpha * v.size
    if cvar_method == "discrete":
        return float(worst_first[: max(1, math.ceil(k - 1e-9))].mean())
    return _fractional_tail_mean(worst_first, k)


def _fractional_tail_mean(worst_first: np.ndarray, k: float) -> float:
    """``(sum of the first floor(k) values + frac(k) * next value) / k`` for sorted values [n]."""
    m = math.floor(k + 1e-9)
    frac = k - m if k - m > 1e-9 else 0.0
    total = float(worst_first[:m].sum())
    if frac > 0.0:
        total += frac * float(worst_first[m])
    return total / k


# ---- failure thresholds ---------------------------------------------------------------------


def default_failure_threshold(metric: str) -> float | None:
    """Default per-case failure cut-off of ``metric`` (a name or per-class key) from the registry.

    ``dice`` -> 0.5, ``iou`` -> 1/3, ``nsd`` -> 0.5 (also ``dice[1]``); None (no failure rate) for
    any other metric, distances included.
    """
    info = registry.get(metric)
    return None if info is None else info.failure_cutoff


def parse_failure_threshold(setting: str, *, higher_better: bool | None = None) -> tuple[str, float]:
    """Parse a user failure threshold ``"<metric><op><value>"`` -> ``(metric, value)``.

    ``"dice<0.5"``: a case fails when its Dice is below 0.5; ``"hd95>10"``: when its HD95 is above
    10 (metric units). The operator must match the metric's direction (``<`` for higher-is-better
    metrics, ``>`` for distances; ``higher_better`` overrides the name-based direction).

    Raises:
        DuetfairError: malformed setting, non-finite value, or an operator that contradicts the
            metric's direction.
    """
    match = _SETTING.match(str(setting))
    if match is None:
        raise DuetfairError(
            f"failure threshold {setting!r}: expected '<metric><<|>><value>', e.g. 'dice<0.5' or 'hd95>10'"
        )
    metric, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    require(math.isfinite(value), f"failure threshold {setting!r}: value {raw!r} is not a finite number")
    hb = higher_is_better(metric) if higher_better is None else higher_better
    expected = "<" if hb else ">"
    direction = "higher is better, so a case fails below" if hb else "lower is better, so a case fails above"
    require(
        op == expected,
        f"failure threshold {setting!r}: for '{metric}' {direction} the threshold; write '{metric}{expected}{raw}'",
    )
    return metric, value


def failure_thresholds(metrics: Iterable[str], settings: Sequence[str] | None = None) -> dict[str, float | None]:
    """Failure cut-off of every metric in ``metrics``: user ``settings`` over the defaults.

    Args:
        metrics: metric column names being audited (e.g. ``["dice", "hd95"]``).
        settings: user settings such as ``["hd95>10", "dice<0.6"]`` (see
            :func:`parse_failure_threshold`); each must name one of ``metrics`` (case-insensitive),
            at most once.

    Returns:
        ``{metric: threshold or None}``, keyed by the names in ``metrics``; None = no failure rate.
    """
    metrics = list(metrics)
    out: dict[str, float | None] = {m: default_failure_threshold(m) for m in metrics}
    by_lower = {m.lower(): m for m in metrics}
    seen: set[str] = set()
    for setting in settings or ():
        name, value = parse_failure_threshold(setting)
        require(
            name.lower() in by_lower,
            f"failure threshold {setting!r}: metric '{name}' is not audited; expected one of {', '.join(metrics)}",
        )
        require(name.lower() not in seen, f"failure threshold {setting!r}: metric '{name}' is set twice")
        seen.add(name.lower())
        out[by_lower[name.lower()]] = value
    return out


def failure_rate(values: np.ndarray, threshold: float | None, *, higher_better: bool = True) -> float:
    """Share of ``values`` [n] (NaN ignored) that fail: below ``threshold`` when ``higher_better``,
    above it otherwise. NaN when ``threshold`` is None or there is no value."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if threshold is None or v.size == 0:
        return float("nan")
    return float(np.mean(v < threshold if higher_better else v > threshold))


# ---- per-group tables -----------------------------------------------------------------------

TAIL_COLUMNS = ["n", "mean", "std", "cvar", "p10", "failure_rate"]
"""Keys of :func:`tail_stats`."""


def tail_stats(
    values: np.ndarray,
    *,
    failure_threshold: float | None,
    alpha: float = 0.1,
    higher_better: bool = True,
    cvar_method: str = "fractional",
) -> dict[str, float]:
    """Tail statistics of one group's per-case values [n] (NaN ignored).

    Args:
        values: per-case metric values [n].
        failure_threshold: failure cut-off in metric units (see :func:`failure_thresholds`; e.g.
            :func:`default_failure_threshold` of the metric); None -> ``failure_rate`` is NaN.
        alpha: CVaR fraction (0.1 = worst 10 %).
        higher_better: metric direction.
        cvar_method: ``"fractional"`` (default) or ``"discrete"``, see :func:`cvar`.

    Returns:
        ``n``, ``mean``, ``std`` (population), ``cvar`` (CVaR_alpha), ``p10`` (10th percentile for
        higher-is-better metrics, 90th otherwise: the worst decile boundary) and ``failure_rate``
        (share below the threshold, above it for lower-is-better metrics; NaN without threshold).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return {"n": 0, **{c: float("nan") for c in TAIL_COLUMNS[1:]}}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "cvar": cvar(v, alpha, higher_better=higher_better, cvar_method=cvar_method),
        "p10": float(np.percentile(v, 10.0 if higher_better else 90.0)),
        "failure_rate": failure_rate(v, failure_threshold, higher_better=higher_better),
    }
