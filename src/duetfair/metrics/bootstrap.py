"""Vectorised percentile bootstrap of means (overall and stratified by group).

The dMoE analysis reports 95 % percentile intervals from 1000 bootstrap resamples, and resamples
each group separately for the equity-scaled value. A straightforward implementation draws one
resample per Python iteration; here every resample of a block is drawn in one call
(``Generator.integers`` into an int32 index matrix), gathered with one ``np.take`` (float32) and
summed along the case axis (float64 accumulator), so the cost is the random indices themselves plus
one gather. Blocks keep the index matrix around 1 M entries so it stays in cache and memory stays
flat for any table size.

All functions are pure NumPy; ``rng`` is a :class:`numpy.random.Generator` so results are
reproducible with a seed.
"""

from __future__ import annotations

import numpy as np

from duetfair.errors import require
from duetfair.options import EsVariant, parse

BLOCK_ELEMENTS = 1 << 20
"""Target number of drawn indices per vectorised block (int32: 4 MiB)."""

MAX_RESAMPLES = 100_000
"""Most bootstrap resamples accepted (percentile intervals are stable far below this)."""


def _check_common(n_boot: int, level: float | None = None) -> None:
    require(
        isinstance(n_boot, (int, np.integer)) and 1 <= n_boot <= MAX_RESAMPLES,
        f"bootstrap: n_boot={n_boot!r}; expected an integer from 1 to at most {MAX_RESAMPLES}",
    )
    if level is not None:
        require(0.0 < level < 1.0, f"bootstrap: level={level!r}; expected a confidence level in (0, 1)")


def resample_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of ``n_boot`` bootstrap resamples (with replacement, same size) of ``values``.

    Args:
        values: float array [n] (finite), n >= 1.
        n_boot: number of resamples.
        rng: NumPy generator (consumed).

    Returns:
        float64 array [n_boot]; divide by ``n`` for resampled means.
    """
    _check_common(n_boot)
    values = np.ascontiguousarray(values, dtype=np.float64)
    n = values.shape[0]
    require(n >= 1, "bootstrap: cannot resample an empty array; expected at least one value")
    if n == 1:
        return np.full(n_boot, values[0], dtype=np.float64)
    # Gather deviations from the mean in float32 (half the memory traffic of float64; the gather,
    # not the arithmetic, is the cost) and accumulate in float64: the only error is rounding each
    # deviation to float32 (relative 6e-8), and a constant group is resampled exactly.
    center = float(values.mean())
    compact = (values - center).astype(np.float32)
    out = np.empty(n_boot, dtype=np.float64)
    block = max(1, min(n_boot, BLOCK_ELEMENTS // n))
    gathered = np.empty((block, n), dtype=np.float32)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        buf = gathered[: stop - start]
        np.take(compact, idx, out=buf)
        buf.sum(axis=1, dtype=np.float64, out=out[start:stop])
    return out + n * center


def bootstrap_means(values: np.ndarray, n_boot: int = 1000, rng: np.random.Generator | None = None) -> np.ndarray:
    """Means of ``n_boot`` bootstrap resamples of ``values`` [n] -> float64 [n_boot]."""
    rng = np.random.default_rng(0) if rng is None else rng
    values = np.asarray(values, dtype=np.float64)
    return resample_sums(values, n_boot, rng) / values.shape[0]


def stratified_bootstrap_means(
    values: np.ndarray,
    strata: np.ndarray,
    num_strata: int,
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample every stratum separately (same size, with replacement) ``n_boot`` times.

    Args:
        values: float array [n] of per-case values (finite).
        strata: int array [n] of stratum ids in ``[0, num_strata)``; ``-1`` marks cases outside
            every group (unknown attribute): they form one extra stratum that is resampled too, so
            they stay in the overall mean of every resample, but they have no group mean.
        num_strata: number of groups G.
        n_boot: number of resamples.
        rng: NumPy generator (consumed).

    Returns:
        ``(group_means [n_boot, G], overall_means [n_boot])``; a group with no case has NaN means.
    """
    _check_common(n_boot)
    rng = np.random.default_rng(0) if rng is None else rng
    values = np.asarray(values, dtype=np.float64)
    strata = np.asarray(strata, dtype=np.int64)
    require(
        values.shape == strata.shape and values.ndim == 1,
        "bootstrap: values and strata must be 1-D arrays of equal length",
    )
    require(values.shape[0] >= 1, "bootstrap: cannot resample an empty array; expected at least one value")
    require(bool(np.all((strata >= -1) & (strata < num_strata))), f"bootstrap: strata must lie in [-1, {num_strata})")
    group_means = np.full((n_boot, num_strata), np.nan, dtype=np.float64)
    total = np.zeros(n_boot, dtype=np.float64)
    for s in range(-1, num_strata):
        members = values[strata == s]
        if members.size == 0:
            continue
        sums = resample_sums(members, n_boot, rng)
        total += sums
        if s >= 0:
            group_means[:, s] = sums / members.size
    return group_means, total / values.shape[0]


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval ``(low, high)`` of bootstrap ``samples`` [n_boot] at ``level``.

    NaN samples are ignored; all-NaN gives ``(nan, nan)``.
    """
    _check_common(1, level)
    samples = np.asarray(samples, dtype=np.float64)
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def percentile_ci_columns(samples: np.ndarray, level: float = 0.95) -> list[tuple[float, float]]:
    """Percentile intervals of every column of ``samples`` [n_boot, G] -> G ``(low, high)`` pairs."""
    samples = np.asarray(samples, dtype=np.float64)
    return [percentile_ci(samples[:, g], level) for g in range(samples.shape[1])]


def equity_scaled(overall: np.ndarray | float, group_means: np.ndarray, variant: str = "sum_abs") -> np.ndarray:
    """Equity-scaled value(s) from overall and group means (docs/conventions.md).

    Args:
        overall: M_all, scalar or [n_boot].
        group_means: M_g, [G] or [n_boot, G] (NaN groups are ignored).
        variant: ``"sum_abs"`` (FairSeg / dMoE / DuetFair): ``M_all / (1 + sum_g |M_all - M_g|)``;
            ``"std"`` (FairMedFM): ``M_all / (1 + std_g M_g)`` with the population std.

    Returns:
        float64 array of the broadcast shape of ``overall``.
    """
    variant = parse(EsVariant, variant, "es_variant")
    overall = np.asarray(overall, dtype=np.float64)
    group_means = np.asarray(group_means, dtype=np.float64)
    if variant == "sum_abs":
        spread = np.nansum(np.abs(overall[..., None] - group_means), axis=-1)
    else:
        spread = np.nanstd(group_means, axis=-1)
    return overall / (1.0 + spread)
