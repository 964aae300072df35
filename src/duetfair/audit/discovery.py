"""Divergent subgroup discovery with DivExplorer.

A subgroup is a conjunction of attribute values (an itemset such as ``{race: Black, age: >=60}``).
Its divergence is ``mean(outcome | subgroup) - mean(outcome)``. Two statistics come with it:

* ``t``: DivExplorer's, ``|div| / sqrt(v_S / n_S + v_D / n_D)`` with population variances, the
  subgroup S against the whole table D (which contains S; FairMedSeg's number, kept as it is);
* ``welch_t`` / ``p_value``: Welch's two-sample t-test of the subgroup against the rest of the
  table (sample variances, Welch-Satterthwaite degrees of freedom, two-sided), which is a valid
  test because the two samples are disjoint; ``q_value`` is its Benjamini-Hochberg adjustment over
  every itemset tested (all mined itemsets of length 1..``max_length`` with ``n >= min_n``, also
  those later dropped by redundancy pruning), and ``significant`` is ``q_value <= fdr``.

Mining is frequent-pattern growth over all itemsets with support >= ``min_support``
(``divexplorer.DivergenceExplorer.get_pattern_divergence``), then redundancy pruning
(:func:`redundant_itemsets`): an itemset is dropped when removing one of its items changes its
divergence by at most a tolerance, either DivExplorer's absolute ``redundancy_threshold``
(``DivergencePatternProcessor.redundancy_pruning``) or ``redundancy_z`` standard errors of that
change (default 3). Without pruning, chance supersets of a divergent subgroup
(``race=B & sex=F & site=s3``) outrank the subgroup itself, because a smaller sample has a more
extreme mean: on a planted ``race=B & sex=F`` subgroup (600 cases, 20 seeds) it is the top itemset
in 0/20 seeds unpruned, 14/20 with DivExplorer's threshold 0.01, 20/20 with ``redundancy_z=3``.

Conventions: rows whose outcome is NaN/inf are dropped first (they would bias every mean);
attributes are discretised by a :class:`~duetfair.data.groups.GroupSpec` (unknown values belong
to no item of that attribute; continuous columns are binned by the spec or with ``bins``).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from duetfair.data.groups import GroupSpec
from duetfair.errors import require
from duetfair.metrics.frame import metric_values

COLUMNS = ["itemset", "support", "n", "mean", "divergence", "t"]
"""Core columns of :func:`find_divergent_subgroups` (it adds :data:`TEST_COLUMNS` and ``length``)."""

TEST_COLUMNS = ["welch_t", "p_value", "q_value", "significant"]
"""Significance columns of :func:`find_divergent_subgroups` (Welch test of subgroup vs rest, BH)."""

DEFAULT_REDUNDANCY_Z = 3.0
"""Default ``redundancy_z`` of :func:`find_divergent_subgroups` (standard-error redundancy pruning)."""

_SQ = "outcome_sq"


def discretise(
    df: pd.DataFrame, attributes: Sequence[str], bins: Mapping[str, Any] | None = None, spec: GroupSpec | None = None
) -> pd.DataFrame:
    """Attribute columns as labels (object dtype, NaN = unknown), keyed ``a0, a1, ...``.

    Positional keys keep DivExplorer's ``"name=value"`` items unambiguous whatever the attribute
    names contain.
    """
    groups = GroupSpec.for_table(df, attributes, bins=bins, base=spec)
    out = {}
    for i, attr in enumerate(attributes):
        labels = groups.labels(df, attr)
        out[f"a{i}"] = labels.astype(object).where(labels.notna(), None).to_numpy()
    return pd.DataFrame(out, index=df.index)


def _parse_itemset(items: frozenset, attributes: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, _, value = str(item).partition("=")
        parsed[attributes[int(key[1:])]] = value
    return {a: parsed[a] for a in attributes if a in parsed}


def welch_vs_rest(
    n: np.ndarray, mean: np.ndarray, mean_sq_dev: np.ndarray, total_n: int, total_mean: float, total_ss: float
) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t-test of subgroups against the rest of the table, from sufficient statistics.

    Args:
        n, mean: size and outcome mean of each subgroup [k].
        mean_sq_dev: mean of ``(x - total_mean) ** 2`` over each subgroup [k].
        total_n, total_mean, total_ss: size, mean and ``sum (x - total_mean) ** 2`` of the table.

    Returns:
        ``(t, p)`` [k]: signed t (subgroup minus rest) and two-sided p-value; NaN where either
        side has fewer than 2 cases (``t = +-inf, p = 0`` when both sides are constant and differ).
    """
    n = n.astype(np.float64)
    n_rest = total_n - n
    d = mean - total_mean
    d_rest = -n * d / np.where(n_rest > 0, n_rest, np.nan)
    ss_in = np.clip(n * (mean_sq_dev - d**2), 0.0, None)
    ss_rest = np.clip(total_ss - n * mean_sq_dev - n_rest * d_rest**2, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd_in = np.sqrt(ss_in / np.where(n > 1, n - 1, np.nan))
        sd_rest = np.sqrt(ss_rest / np.where(n_rest > 1, n_rest - 1, np.nan))
        t, p = stats.ttest_ind_from_stats(mean, sd_in, n, total_mean + d_rest, sd_rest, n_rest, equal_var=False)
    return np.asarray(t, dtype=np.float64), np.asarray(p, dtype=np.float64)


def bh_q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of ``p`` [k]; NaN entries stay NaN and are not counted."""
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def _mine(data: pd.DataFrame, n_attributes: int, min_support: float) -> pd.DataFrame:
    """DivExplorer patterns of ``outcome`` and ``outcome_sq`` (means per itemset), empty itemset included."""
    from divexplorer import DivergenceExplorer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DivergenceExplorer(data).get_pattern_divergence(
            min_support=min_support,
            quantitative_outcomes=["outcome", _SQ],
            attributes=[f"a{i}" for i in range(n_attributes)],
        )


def redundant_itemsets(
    divergence: Mapping[frozenset, float],
    n: Mapping[frozenset, int],
    *,
    sd: float,
    threshold: float | None = None,
    z: float | None = None,
) -> set[frozenset]:
    """Itemsets that a sub-itemset with one item fewer already explains.

    ``I`` is redundant when, for some item ``i``, ``|div(I) - div(I - {i})| <= tol`` with
    ``tol = threshold`` (DivExplorer's ``redundancy_pruning``, outcome units) or
    ``tol = z * sd * sqrt(1 / n_I - 1 / n_{I - {i}})`` (``z`` standard errors of the difference of
    the nested means); either rule prunes when both are set.

    Args:
        divergence, n: divergence and size of every mined itemset, the empty itemset included
            (divergence 0, n = all cases); every sub-itemset of a key must be a key.
        sd: outcome standard deviation (outcome units) for the ``z`` rule.
        threshold, z: the two rules; None disables one.
    """
    out = set()
    for itemset, div in divergence.items():
        for item in itemset:
            parent = itemset - {item}
            gap = abs(div - divergence[parent])
            se = sd * np.sqrt(max(1.0 / n[itemset] - 1.0 / n[parent], 0.0))
            if (threshold is not None and gap <= threshold) or (z is not None and gap <= z * se):
                out.add(itemset)
                break
    return out


def _prune(raw: pd.DataFrame, sd: float, threshold: float | None, z: float | None) -> pd.DataFrame:
    """Rows of ``raw`` (DivExplorer patterns) that are not :func:`redundant_itemsets`."""
    if threshold is None and z is None:
        return raw
    div = dict(zip(raw["itemset"], raw["outcome_div"].astype(float)))
    n = dict(zip(raw["itemset"], raw["support_count"].astype(int)))
    drop = redundant_itemsets(div, n, sd=sd, threshold=threshold, z=z)
    return raw[~raw["itemset"].isin(drop)]


def _tests(raw: pd.DataFrame, outcome: np.ndarray, fdr: float) -> pd.DataFrame:
    """``raw`` with ``welch_t``, ``p_value``, ``q_value`` (BH over all rows) and ``significant``."""
    n = raw["support_count"].to_numpy(dtype=np.int64)
    m = float(outcome.mean())
    t, p = welch_vs_rest(
        n,
        raw["outcome"].to_numpy(dtype=np.float64),
        raw[_SQ].to_numpy(dtype=np.float64),
        outcome.size,
        m,
        float(((outcome - m) ** 2).sum()),
    )
    q = bh_q_values(p)
    return raw.assign(welch_t=t, p_value=p, q_value=q, significant=np.nan_to_num(q, nan=np.inf) <= fdr)


def find_divergent_subgroups(
    df: pd.DataFrame,
    outcome: str,
    attributes: Sequence[str],
    *,
    min_support: float = 0.05,
    max_length: int | None = 3,
    bins: Mapping[str, Any] | None = None,
    spec: GroupSpec | None = None,
    redundancy_threshold: float | None = None,
    redundancy_z: float | None = DEFAULT_REDUNDANCY_Z,
    min_n: int = 1,
    fdr: float = 0.05,
) -> pd.DataFrame:
    """Subgroups whose mean ``outcome`` diverges from the overall mean, worst first.

    Args:
        df: per-case table (one row per case).
        outcome: numeric per-case column (e.g. ``"dice"``).
        attributes: attribute columns to combine (continuous ones need ``bins``).
        min_support: minimum fraction of (non-NaN) cases in a subgroup (FairMedSeg: 0.001).
        max_length: longest conjunction kept (None: no limit).
        bins: edges per continuous attribute, e.g. ``{"age": [20, 40, 60, 80]}``.
        spec: group spec of the attributes (e.g. a run's); attributes it lacks are inferred.
        redundancy_threshold: DivExplorer's redundancy pruning: drop an itemset when removing one
            of its items changes its divergence by at most this much (outcome units); None: off.
        redundancy_z: standard-error redundancy pruning (default 3): drop an itemset when removing
            one of its items changes its divergence by at most ``redundancy_z`` standard errors of
            that change (see :func:`redundant_itemsets`); None: off. Both None: every itemset.
        min_n: minimum number of cases in a subgroup.
        fdr: false discovery rate of the ``significant`` flag (Benjamini-Hochberg).

    Returns:
        DataFrame with columns ``itemset`` (dict attribute -> value label), ``support`` (fraction),
        ``n``, ``mean``, ``divergence`` (subgroup mean - overall mean), ``t`` (DivExplorer's,
        subgroup vs whole table, unsigned), ``welch_t`` (signed, subgroup vs rest), ``p_value``
        (two-sided Welch), ``q_value`` (BH over all itemsets tested, see the module docstring),
        ``significant`` (``q_value <= fdr``) and ``length``, sorted by divergence ascending (for
        Dice: the worst subgroup first); the empty itemset (the whole table) is not included.
        ``.attrs["n_tests"]`` is the number of itemsets in the BH family.
    """
    _check_arguments(attributes, min_support, max_length, redundancy_threshold, redundancy_z, fdr)
    values = metric_values(df, outcome)
    keep = np.isfinite(values)
    require(keep.sum() >= 2, f"discovery: column '{outcome}' has fewer than 2 finite values")
    data = discretise(df.loc[keep], attributes, bins, spec).reset_index(drop=True)
    data["outcome"] = values[keep]
    data[_SQ] = (values[keep] - values[keep].mean()) ** 2
    raw = _mine(data, len(attributes), min_support)
    tested = (raw["length"] >= 1) & (raw["support_count"] >= min_n)
    if max_length is not None:
        tested &= raw["length"] <= max_length
    raw = raw.join(_tests(raw[tested], values[keep], fdr)[TEST_COLUMNS])
    raw = _prune(raw, float(np.std(values[keep])), redundancy_threshold, redundancy_z)
    out = _output(raw[tested.loc[raw.index]], attributes)
    out.attrs["n_tests"] = int(tested.sum())
    return out


def _check_arguments(
    attributes: Sequence[str],
    min_support: float,
    max_length: int | None,
    redundancy_threshold: float | None,
    redundancy_z: float | None,
    fdr: float,
) -> None:
    """One-line :class:`~duetfair.errors.DuetfairError` for a bad discovery setting."""
    require(0.0 < min_support <= 1.0, f"min_support={min_support!r}; expected a fraction in (0, 1]")
    require(max_length is None or max_length >= 1, f"max_length={max_length!r}; expected >= 1 or None")
    require(
        redundancy_threshold is None or redundancy_threshold >= 0,
        f"redundancy_threshold={redundancy_threshold!r}; expected a number >= 0 or None",
    )
    require(redundancy_z is None or redundancy_z >= 0, f"redundancy_z={redundancy_z!r}; expected a number >= 0 or None")
    require(0.0 < fdr < 1.0, f"fdr={fdr!r}; expected a false discovery rate in (0, 1)")
    require(len(attributes) >= 1, "discovery: expected at least one attribute")


def _output(raw: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """Our columns from DivExplorer's rows, worst (most negative divergence) first."""
    out = pd.DataFrame(
        {
            "itemset": [_parse_itemset(s, attributes) for s in raw["itemset"]],
            "support": raw["support"].to_numpy(dtype=np.float64),
            "n": raw["support_count"].to_numpy(dtype=np.int64),
            "mean": raw["outcome"].to_numpy(dtype=np.float64),
            "divergence": raw["outcome_div"].to_numpy(dtype=np.float64),
            "t": raw["outcome_t"].to_numpy(dtype=np.float64),
            "welch_t": raw["welch_t"].to_numpy(dtype=np.float64),
            "p_value": raw["p_value"].to_numpy(dtype=np.float64),
            "q_value": raw["q_value"].to_numpy(dtype=np.float64),
            "significant": raw["significant"].to_numpy(dtype=bool),
            "length": raw["length"].to_numpy(dtype=np.int64),
        }
    )
    return out.sort_values(["divergence", "support"], ascending=[True, False], kind="stable").reset_index(drop=True)


def itemset_label(itemset: Mapping[str, Any]) -> str:
    """Readable label of an itemset: ``{"race": "Black", "age": ">=60"}`` -> ``race=Black, age=>=60``."""
    return ", ".join(f"{k}={v}" for k, v in itemset.items())


def subgroup_members(
    df: pd.DataFrame, itemset: Mapping[str, Any], bins: Mapping[str, Any] | None = None, spec: GroupSpec | None = None
) -> np.ndarray:
    """Boolean mask [n] of the rows of ``df`` that belong to ``itemset`` (labels as returned above)."""
    groups = GroupSpec.for_table(df, list(itemset), bins=bins, base=spec)
    mask = np.ones(len(df), dtype=bool)
    for attr, value in itemset.items():
        labels = groups.labels(df, attr)
        mask &= (labels.astype(object) == str(value)).to_numpy()
    return mask
