"""GroupMetricFrame: overall, per-group and fairness summaries of one per-case metric.

Input is a per-case table (pandas, one row per case) with a metric column (e.g. ``dice``) and
attribute columns. Groups come from a :class:`~duetfair.data.groups.GroupSpec` (a run's saved spec,
or one inferred from the table): the frame never turns raw values into groups itself. Conventions
(docs/conventions.md):

* unknown attribute values (missing under the spec: NaN, empty, ``"unknown"``, ``-1``, unless the
  spec defines an explicit ``unknown`` group, as MAMA-MIA does) count in the overall mean M_all and
  in no group, as the papers do;
* cases whose metric is NaN (undefined under the empty-mask policy) or infinite are left out of
  that metric's means and counted in ``n_missing``; an infinite distance (HD95 with one mask empty:
  a structure missed entirely, or predicted where the reference has none) is a failure, counted in
  ``n_inf`` (overall and per group) and in the failure rate when a cut-off is set;
* ``equity-scaled`` value: ``variant="sum_abs"`` (default; FairSeg / dMoE / DuetFair)
  ``M_all / (1 + sum_g |M_all - M_g|)``, or ``"std"`` (FairMedFM) ``M_all / (1 + std_g M_g)``;
* worst group = lowest mean (highest for distances), gap = max - min of group means, skewness =
  ``(1 - worst) / (1 - best)`` for metrics in [0, 1];
* bootstrap: percentile intervals from ``n_boot`` resamples (1000 by default, seeded); the overall
  interval resamples all cases, group and equity-scaled intervals resample each group separately.

Attributes are a column name or an intersection ``"race+sex"`` (labels joined with ``" & "``);
continuous columns are binned by the spec, or with ``bins=[20, 40, 60, 80]`` -> ``<20, 20-39, ..., >=80``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.data.groups import GroupSpec, group_labels
from duetfair.errors import require
from duetfair.metrics.bootstrap import (
    MAX_RESAMPLES,
    bootstrap_means,
    equity_scaled,
    percentile_ci,
    percentile_ci_columns,
    stratified_bootstrap_means,
)
from duetfair.metrics.hidden import default_failure_threshold, higher_is_better, tail_stats
from duetfair.metrics.registry import BOUNDED_METRICS as BOUNDED_METRICS  # re-exported: metrics in [0, 1]
from duetfair.metrics.registry import is_bounded
from duetfair.options import EsVariant, parse

# ---- metric column --------------------------------------------------------------------------


def metric_values(df: pd.DataFrame, metric: str) -> np.ndarray:
    """Validated float64 values of ``df[metric]`` [n]; NaN (undefined) and, for distances, +inf (one
    mask empty) are kept for callers to count as missing. Refused: non-numbers, values outside
    [0, 1] (inf included) for bounded metrics, negative values (and -inf) for distances."""
    require(
        metric in df.columns,
        f"metric column '{metric}' not in the table; available columns: {', '.join(map(str, df.columns))}",
    )
    col = df[metric]
    require(not pd.api.types.is_bool_dtype(col), f"metric column '{metric}': holds true/false, not numbers")
    numeric = pd.to_numeric(col, errors="coerce")
    bad = col[
        numeric.isna()
        & col.notna()
        & ~col.astype("string").str.strip().str.lower().isin({"", "nan", "inf", "-inf", "none"}).fillna(False)
    ]
    require(bad.empty, f"metric column '{metric}': value '{bad.iloc[0] if not bad.empty else ''}' is not numeric")
    values = numeric.to_numpy(dtype=np.float64)
    known = values[~np.isnan(values)]
    if is_bounded(metric):
        out = known[(known < 0) | (known > 1)]
        require(
            out.size == 0,
            f"metric column '{metric}': value {out[0] if out.size else 0:g} is outside [0, 1]; "
            f"expected a {metric} score in [0, 1]",
        )
    elif not higher_is_better(metric):
        out = known[known < 0]
        require(
            out.size == 0,
            f"metric column '{metric}': value {out[0] if out.size else 0:g} is negative; "
            f"expected a distance >= 0 (inf when a mask is empty)",
        )
    return values


MIN_GROUP_N = 20
"""Groups with fewer cases are flagged as too small for a stable estimate (the ``small`` flag)."""


# ---- the frame ------------------------------------------------------------------------------


@dataclass
class GroupMetricFrame:
    """Fairness summary of one per-case metric over the groups of one attribute.

    Args:
        df: per-case table, one row per case.
        metric: numeric column (e.g. ``"dice"``).
        by: attribute column or intersection ``"race+sex"``.
        spec: group spec defining ``by``'s attributes (e.g. a run's ``group_spec.json``); attributes
            it does not define are inferred from the table.
        bins: edges to bin a continuous ``by`` column (e.g. ``[20, 40, 60, 80]``, or
            ``{"edges": [...], "right": True}``); overrides ``spec`` for that column.
        es_variant: ``"sum_abs"`` (default, FairSeg/dMoE/DuetFair) or ``"std"`` (FairMedFM).
        n_boot: bootstrap resamples (0 disables intervals).
        seed: seed of the bootstrap generator.
        level: confidence level of the percentile intervals.
        cvar_alpha: CVaR fraction of the per-group tail (0.1 = worst 10 %).
        cvar_method: ``"fractional"`` (default; the boundary case weighted so that exactly
            ``alpha n`` cases count) or ``"discrete"`` (mean of the worst ``ceil(alpha n)``).
        failure_threshold: per-case failure cut-off; ``"default"`` takes the metric's
            (:func:`~duetfair.metrics.hidden.default_failure_threshold`: Dice 0.5, IoU 1/3, none
            for distances); None disables the rate.
        higher_better: metric direction; inferred from the name when None.
        min_group_n: groups with fewer cases are flagged ``small`` (estimate too unstable to rank).

    Example:
        >>> cases = pd.DataFrame({"dice": [0.9, 0.8, 0.85, 0.6, 0.5, 0.7], "race": ["A", "A", "A", "B", "B", "B"]})
        >>> frame = GroupMetricFrame(cases, "dice", "race", n_boot=0)
        >>> frame.worst_group, round(frame.gap, 3), round(frame.es, 3)
        ('B', 0.25, 0.58)
        >>> frame.by_group[["n", "mean"]].round(3).to_dict("index")
        {'A': {'n': 3, 'mean': 0.85}, 'B': {'n': 3, 'mean': 0.6}}
    """

    df: pd.DataFrame
    metric: str
    by: str
    spec: GroupSpec | None = None
    bins: Sequence[float] | Mapping[str, Any] | None = None
    es_variant: str = "sum_abs"
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    cvar_alpha: float = 0.1
    cvar_method: str = "fractional"
    failure_threshold: float | None | str = "default"
    higher_better: bool | None = None
    min_group_n: int = MIN_GROUP_N
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.es_variant = parse(EsVariant, self.es_variant, "es_variant")
        require(
            isinstance(self.n_boot, int) and 0 <= self.n_boot <= MAX_RESAMPLES,
            f"bootstrap: n_boot={self.n_boot!r}; expected an integer from 0 to at most {MAX_RESAMPLES}",
        )
        require(0.0 < self.level < 1.0, f"level={self.level!r}; expected a confidence level in (0, 1)")
        require(len(self.df) > 0, "the per-case table is empty; expected at least one case")
        values = metric_values(self.df, self.metric)
        labels = group_labels(self.df, self.by, bins=self.bins, spec=self.spec)
        valid = np.isfinite(values)
        require(valid.any(), f"metric column '{self.metric}': no finite value; expected per-case scores")
        self.values = values[valid]
        self.labels = labels[valid].reset_index(drop=True)
        self.n_missing = int((~valid).sum())
        self.n_inf = int(np.isposinf(values).sum())
        self._inf_labels = labels[np.isposinf(values)].astype(str).to_numpy() if self.n_inf else np.array([])
        self.codes = self.labels.cat.codes.to_numpy().astype(np.int64)
        present = np.unique(self.codes[self.codes >= 0])
        self.group_names = [str(self.labels.cat.categories[c]) for c in present]
        remap = np.full(len(self.labels.cat.categories) + 1, -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        self.codes = np.where(self.codes >= 0, remap[self.codes], -1)
        require(
            len(present) >= 2,
            f"attribute '{self.by}': only {len(present)} group with a known value "
            f"({', '.join(self.group_names) or 'none'}); expected at least 2 groups to compare",
        )
        if self.higher_better is None:
            self.higher_better = higher_is_better(self.metric)
        thr = self.failure_threshold
        self.cutoff: float | None = (
            default_failure_threshold(self.metric) if thr == "default" else (None if thr is None else float(thr))
        )

    # -- point estimates --
    @property
    def n_cases(self) -> int:
        """Number of cases with a finite metric value (unknown attribute included)."""
        return int(self.values.size)

    @property
    def n_unknown(self) -> int:
        """Cases with a finite metric whose attribute value is unknown."""
        return int((self.codes < 0).sum())

    @property
    def overall(self) -> float:
        """M_all: mean over all cases, including those with an unknown attribute."""
        return float(self.values.mean())

    @property
    def group_means(self) -> np.ndarray:
        """M_g per group [G] (order of :attr:`group_names`)."""
        sums = np.bincount(
            self.codes[self.codes >= 0], weights=self.values[self.codes >= 0], minlength=len(self.group_names)
        )
        return sums / self.group_sizes

    @property
    def group_sizes(self) -> np.ndarray:
        """Number of cases per group [G]."""
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.group_names)).astype(np.int64)

    def _pick(self, worst: bool) -> int:
        means = self.group_means
        lowest = bool(worst) == bool(self.higher_better)
        return int(np.argmin(means) if lowest else np.argmax(means))

    @property
    def worst_group(self) -> str:
        """Label of the group with the worst mean."""
        return self.group_names[self._pick(True)]

    @property
    def worst_mean(self) -> float:
        """Mean of the worst group."""
        return float(self.group_means[self._pick(True)])

    @property
    def best_group(self) -> str:
        """Label of the group with the best mean."""
        return self.group_names[self._pick(False)]

    @property
    def best_mean(self) -> float:
        """Mean of the best group."""
        return float(self.group_means[self._pick(False)])

    @property
    def gap(self) -> float:
        """max_g M_g - min_g M_g."""
        return float(np.ptp(self.group_means))

    @property
    def skewness(self) -> float | None:
        """``(1 - worst) / (1 - best)`` for metrics bounded in [0, 1] (None otherwise or if best = 1)."""
        if not is_bounded(self.metric) or self.best_mean >= 1.0:
            return None
        return (1.0 - self.worst_mean) / (1.0 - self.best_mean)

    @property
    def es_defined(self) -> bool:
        """The equity-scaled value is defined for metrics bounded in [0, 1], higher better
        (Dice, IoU, NSD ...). For a distance such as HD95 dividing by ``1 + spread`` would make
        a less equitable model look *better*, so it is reported as undefined (NaN / null)."""
        return is_bounded(self.metric) and bool(self.higher_better)

    def equity_scaled(self, variant: str | None = None) -> float:
        """Equity-scaled value (point estimate) with ``variant`` (default: the frame's); NaN when
        not :attr:`es_defined`."""
        if not self.es_defined:
            return float("nan")
        return float(equity_scaled(self.overall, self.group_means, variant or self.es_variant))

    @property
    def es(self) -> float:
        """Equity-scaled value with the frame's ``es_variant``."""
        return self.equity_scaled()

    # -- bootstrap --
    def _boot(self) -> dict[str, Any]:
        """Stratified bootstrap (each group and the unknown cases resampled separately)."""
        if "boot" not in self._cache:
            if self.n_boot == 0:
                nan = (float("nan"), float("nan"))
                self._cache["boot"] = {"groups": [nan] * len(self.group_names), "es": nan, "es_samples": None}
            else:
                rng = np.random.default_rng((self.seed, 1))
                groups, strat_overall = stratified_bootstrap_means(
                    self.values, self.codes, len(self.group_names), self.n_boot, rng
                )
                es_samples = equity_scaled(strat_overall, groups, self.es_variant) if self.es_defined else None
                cis = [self._bounded(ci) for ci in percentile_ci_columns(groups, self.level)]
                nan = (float("nan"), float("nan"))
                self._cache["boot"] = {  # one case has no spread: its interval is undefined, not [x, x]
                    "groups": [ci if k >= 2 else nan for ci, k in zip(cis, self.group_sizes)],
                    "es": self._bounded(percentile_ci(es_samples, self.level)) if es_samples is not None else nan,
                    "es_samples": es_samples,
                }
        return self._cache["boot"]

    @property
    def overall_ci(self) -> tuple[float, float]:
        """Percentile interval of M_all (all cases resampled together)."""
        if "overall" not in self._cache:
            if self.n_boot == 0:
                self._cache["overall"] = (float("nan"), float("nan"))
            else:
                samples = bootstrap_means(self.values, self.n_boot, np.random.default_rng((self.seed, 0)))
                self._cache["overall"] = self._bounded(percentile_ci(samples, self.level))
        return self._cache["overall"]

    def _bounded(self, ci: tuple[float, float]) -> tuple[float, float]:
        """An interval of a metric bounded in [0, 1] clipped to it (sums of resamples can end a
        rounding error outside, e.g. 1.0000000003)."""
        if not is_bounded(self.metric):
            return ci
        return (float(np.clip(ci[0], 0.0, 1.0)), float(np.clip(ci[1], 0.0, 1.0)))

    @property
    def es_ci(self) -> tuple[float, float]:
        """Percentile interval of the equity-scaled value (each group resampled separately)."""
        return self._boot()["es"]

    @property
    def es_bootstrap_mean(self) -> float:
        """Mean of the bootstrap equity-scaled values (biased low for small groups; what some
        published tables print instead of the point estimate). NaN without bootstrap."""
        samples = self._boot()["es_samples"]
        return float("nan") if samples is None else float(np.mean(samples))

    @property
    def by_group(self) -> pd.DataFrame:
        """Per-group table indexed by label: ``n, mean, ci_low, ci_high, std, cvar, p10, failure_rate``."""
        cis = self._boot()["groups"]
        rows = []
        for g, name in enumerate(self.group_names):
            stats = tail_stats(
                self.values[self.codes == g],
                alpha=self.cvar_alpha,
                cvar_method=self.cvar_method,
                failure_threshold=self.cutoff,
                higher_better=bool(self.higher_better),
            )
            n_inf = int((self._inf_labels == name).sum()) if self.n_inf else 0
            rate = stats["failure_rate"]
            if n_inf and self.cutoff is not None:  # an infinite distance is beyond every cut-off
                rate = (rate * stats["n"] + n_inf) / (stats["n"] + n_inf)
            rows.append(
                {
                    "group": name,
                    "n": stats["n"],
                    "n_inf": n_inf,
                    "mean": stats["mean"],
                    "ci_low": cis[g][0],
                    "ci_high": cis[g][1],
                    "std": stats["std"],
                    "cvar": stats["cvar"],
                    "p10": stats["p10"],
                    "failure_rate": rate,
                }
            )
        return pd.DataFrame(rows).set_index("group")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the attribute (the ``attributes[<by>]`` entry of the audit JSON)."""
        table = self.by_group
        groups = [
            {
                "value": str(name),
                "n": int(r["n"]),
                "mean": float(r["mean"]),
                "ci": [float(r["ci_low"]), float(r["ci_high"])],
                "cvar10": float(r["cvar"]),
                "p10": float(r["p10"]),
                "std": float(r["std"]),
                "failure_rate": float(r["failure_rate"]),
                "n_inf": int(r["n_inf"]),
                "small": bool(r["n"] < self.min_group_n),
            }
            for name, r in table.iterrows()
        ]
        return {
            "groups": groups,
            "n_unknown": self.n_unknown,
            "worst_group": self.worst_group,
            "worst_mean": self.worst_mean,
            "best_group": self.best_group,
            "best_mean": self.best_mean,
            "gap": self.gap,
            "es": self.es,
            "es_ci": list(self.es_ci),
            "es_std": self.equity_scaled("std"),
            "es_sum_abs": self.equity_scaled("sum_abs"),
            "skewness": self.skewness,
            "worst_cvar10": float(table["cvar"].min() if self.higher_better else table["cvar"].max()),
            "failure_threshold": self.cutoff,
            "small_groups": [str(n) for n, k in zip(self.group_names, self.group_sizes) if k < self.min_group_n],
        }


def point_summary(
    df: pd.DataFrame, metric: str, by: str, spec: GroupSpec | None = None, es_variant: str = "sum_abs"
) -> dict[str, Any]:
    """Point estimates (no bootstrap) of a case-level metric by group: ``overall`` (all cases, the
    unknown group included), per-group means ``groups``, ``worst_group``/``worst``, ``gap``, ``es``.

    With fewer than two known groups (tiny validation sets) the disparity is not measurable: the
    worst group is the only group (or none) and the equity-scaled value equals the overall mean.
    """
    values = metric_values(df, metric)
    finite = np.isfinite(values)
    overall = float(values[finite].mean()) if finite.any() else float("nan")
    labels = group_labels(df, by, spec=spec)
    known = finite & labels.notna().to_numpy()
    if labels[known].nunique() < 2:
        means = pd.Series(values[known]).groupby(labels[known].astype(str).to_numpy()).mean()
        name = str(means.index[0]) if len(means) else None
        worst = float(means.iloc[0]) if len(means) else overall
        return {
            "overall": overall,
            "groups": {str(k): float(v) for k, v in means.items()},
            "worst_group": name,
            "worst": worst,
            "gap": 0.0,
            "es": overall,
        }
    frame = GroupMetricFrame(df, metric, by, spec=spec, es_variant=es_variant, n_boot=0, higher_better=True)
    return {
        "overall": frame.overall,
        "groups": dict(zip(frame.group_names, map(float, frame.group_means))),
        "worst_group": frame.worst_group,
        "worst": frame.worst_mean,
        "gap": frame.gap,
        "es": frame.es,
    }
