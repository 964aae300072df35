"""MAMA-MIA challenge scores: performance, per-variable fairness, fairness and total.

Definitions (docs/conventions.md, as scored by the challenge):

* ``performance = 0.5 * (mean DSC + 1 - mean NormHD)`` over all cases;
* per fairness variable v: ``F_v = 1 - 0.5 * (range_g mean DSC_g + range_g mean NormHD_g)``, the
  range (max - min) taken over the groups of v that have cases (empty groups skipped);
* ``fairness = mean_v F_v``; ``total = (1 - alpha) * performance + alpha * fairness``, alpha = 0.5.

NormHD per case is ``HD95 / 150`` (1 when exactly one mask is empty); :mod:`duetfair.metrics.per_case`
writes it as the ``normhd`` column with ``empty="mamamia"``.

Groups are the challenge's: the MAMA-MIA group spec (:func:`duetfair.data.mamamia.mamamia_spec`)
for the variables it defines: age bins right-closed (``0-40`` includes 40), missing menopause its
own ``unknown`` group; other variables are inferred from the table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.data.groups import GroupSpec
from duetfair.errors import require


def challenge_spec(variables: Sequence[str]) -> GroupSpec:
    """The MAMA-MIA challenge's groups for those ``variables`` it defines (aliases such as
    ``menopausal_status`` keep their column name)."""
    from duetfair.data.mamamia import ALIASES, mamamia_spec

    known = mamamia_spec(("age", "menopause", "dataset", "breast_density"))
    specs = [
        dataclasses.replace(known[ALIASES.get(v, v)], name=v)
        for v in variables
        if ALIASES.get(v, v) in known.attributes
    ]
    return GroupSpec(specs)


def mamamia_scores(
    df: pd.DataFrame,
    variables: Sequence[str],
    *,
    dice: str = "dice",
    normhd: str = "normhd",
    bins: Mapping[str, Sequence[float] | Mapping[str, Any]] | None = None,
    spec: GroupSpec | None = None,
    alpha: float = 0.5,
) -> dict[str, object]:
    """MAMA-MIA scores of a per-case table.

    Args:
        df: one row per case with columns ``dice``, ``normhd`` and the fairness variables.
        variables: fairness variables (e.g. ``["age", "menopause", "breast_density"]``).
        dice, normhd: column names of the per-case DSC and NormHD.
        bins: optional binning of continuous variables the spec does not define.
        spec: groups of the variables (default :func:`challenge_spec`, the challenge's).
        alpha: weight of fairness in the total (challenge: 0.5).

    Returns:
        ``{"performance", "fairness", "total", "fairness_per_variable": {v: F_v},
        "groups": {v: {label: {"n", "dice", "normhd"}}}}``. Cases with an unknown value of v count
        in the performance but in no group of v; rows with NaN DSC or NormHD are dropped first.
    """
    for col in (dice, normhd, *variables):
        require(
            col in df.columns, f"mamamia: column '{col}' not in the table; available: {', '.join(map(str, df.columns))}"
        )
    require(len(variables) >= 1, "mamamia: expected at least one fairness variable")
    require(0.0 <= alpha <= 1.0, f"mamamia: alpha={alpha!r}; expected a weight in [0, 1]")
    data = df.dropna(subset=[dice, normhd])
    require(len(data) > 0, "mamamia: no case with both DSC and NormHD")
    performance = 0.5 * (float(data[dice].mean()) + 1.0 - float(data[normhd].mean()))
    per_var: dict[str, float] = {}
    groups: dict[str, dict[str, dict[str, float]]] = {}
    gspec = GroupSpec.for_table(data, variables, bins=bins, base=challenge_spec(variables) if spec is None else spec)
    for var in variables:
        labels = gspec.labels(data, var)
        stats = data.groupby(labels, observed=True)[[dice, normhd]].agg(["mean", "size"])
        means_d = stats[(dice, "mean")].to_numpy()
        means_h = stats[(normhd, "mean")].to_numpy()
        require(len(stats) >= 1, f"mamamia: variable '{var}' has no case with a known value")
        per_var[var] = 1.0 - 0.5 * (float(np.ptp(means_d)) + float(np.ptp(means_h)))
        groups[var] = {
            str(g): {
                "n": int(stats.loc[g, (dice, "size")]),
                "dice": float(stats.loc[g, (dice, "mean")]),
                "normhd": float(stats.loc[g, (normhd, "mean")]),
            }
            for g in stats.index
        }
    fairness = float(np.mean(list(per_var.values())))
    return {
        "performance": performance,
        "fairness": fairness,
        "total": (1.0 - alpha) * performance + alpha * fairness,
        "fairness_per_variable": per_var,
        "groups": groups,
    }
