"""One recipe per training method: the single owner of what a ``method:`` shortcut means.

A recipe fixes the model variant (no MoE, attribute-blind MoE or dMoE), the objective with its
default options, the batch sampling and the default model-selection rule, as the papers pair them.
Every path that names a method uses it: a config with ``method: group_dro``, the packaged
``<task>_<method>`` names (made from the task's config and the recipe, no file per method) and
``duetfair benchmark CONFIG --method ...`` (:func:`duetfair.engine.config.with_method`). A value
the config sets itself always wins over the recipe's default.

Adding a method: its name in :class:`duetfair.options.Method`, its recipe here, its objective in
the objective registry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from duetfair.options import Method, SelectRule


@dataclass(frozen=True)
class Recipe:
    """What a method shortcut sets (see the module docstring)."""

    moe: Literal["none", "moe", "dmoe"]
    objective: str
    select: SelectRule
    display: str
    objective_args: dict[str, Any] = field(default_factory=dict)
    """Default ``objective.args`` (the config's own values win key by key)."""
    discovery: dict[str, Any] = field(default_factory=dict)
    """Default ``objective.discovery`` (subgroup mining of the ``divergence`` objective)."""
    balance_by: Optional[str] = None
    """Default ``train.balance_by`` (``None``: a plain permutation every epoch)."""
    first_stage: dict[str, Any] = field(default_factory=dict)
    """Default ``objective.first_stage`` (the first run of a two-stage objective)."""
    subclasses: dict[str, Any] = field(default_factory=dict)
    """Default ``model.subclasses`` (routing on discovered subclasses; empty: off)."""


_DRO = {"within": "kl", "tau": 1.0, "across": "size"}  # DuetFair: KL-DRO inside groups, sizes across

RECIPES: dict[Method, Recipe] = {
    Method.ERM: Recipe("none", "erm", SelectRule.OVERALL, "ERM"),
    # Sagawa et al. step size; balanced batches are the reference recipe (chosen on validation)
    Method.GROUP_DRO: Recipe(
        "none", "group_dro", SelectRule.WORST_GROUP, "GroupDRO", {"step_size": 0.01}, balance_by="groups"
    ),
    Method.FEBS: Recipe("none", "febs", SelectRule.WORST_GROUP, "FEBS", {"gamma": 1.0}),
    Method.ADVERSARIAL: Recipe("none", "adversarial", SelectRule.WORST_GROUP, "Adversarial", {"weight": 0.1}),
    Method.CVAR: Recipe("none", "cvar", SelectRule.WORST_GROUP, "CVaR (sample-level)", {"alpha": 0.5}),
    Method.FOCAL: Recipe("none", "focal", SelectRule.WORST_GROUP, "Focal (sample-level)", {"gamma": 2.0}),
    Method.MOE: Recipe("moe", "erm", SelectRule.OVERALL, "MoE"),
    Method.DMOE: Recipe("dmoe", "erm", SelectRule.WORST_GROUP, "dMoE"),
    Method.FAIR_DRO: Recipe("dmoe", "fair_dro", SelectRule.WORST_GROUP, "FairDRO (dMoE + DRO)", dict(_DRO)),
    Method.SUBGROUP_DRO: Recipe("none", "fair_dro", SelectRule.WORST_GROUP, "Subgroup DRO (plain model)", dict(_DRO)),
    Method.DIVERGENCE: Recipe(
        "none",
        "divergence",
        SelectRule.WORST_GROUP,
        "Divergence (FairMedSeg)",
        {"alpha": 0.2, "t_threshold": 2.0},
        discovery={"min_support": 0.05, "max_length": 3},
    ),
    # two-stage methods against hidden failures; defaults chosen on validation (docs/benchmarks.md)
    Method.JTT: Recipe(
        "none",
        "jtt",
        SelectRule.WORST_GROUP,
        "JTT (up-sample errors)",
        {"upweight": 5.0},
        first_stage={"fraction": 0.25},
    ),
    Method.SUBCLASS_DRO: Recipe(
        "none",
        "subclass_dro",
        SelectRule.WORST_GROUP,
        "Subclass DRO (clusters)",
        {"clusters": 2, "space": "descriptors"},
        first_stage={"fraction": 0.25},
    ),
    # the oracle's routing on a subtype the run finds itself (the first model's features, k-means;
    # 3 clusters per group and natural batches chosen on validation)
    Method.SUBCLASS_MOE: Recipe(
        "dmoe",
        "erm",
        SelectRule.WORST_GROUP,
        "Subclass dMoE (routes on clusters)",
        first_stage={"fraction": 0.25},
        subclasses={"clusters": 3},
    ),
    # the benchmark's ceiling: routes on the planted subtype too (packaged <task>_oracle configs)
    Method.ORACLE: Recipe("dmoe", "erm", SelectRule.WORST_GROUP, "Oracle (knows the subtype)"),
}


def apply_recipe(raw: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """``raw`` with the recipe's objective options and sampling filled in where the config leaves
    them unset (only when the config's objective is the recipe's). The model variant and the
    objective name are set by the config module, which knows the model registry."""
    out = copy.deepcopy(raw)
    obj = out.get("objective")
    if isinstance(obj, dict) and obj.get("name", recipe.objective) == recipe.objective:
        defaults = (
            ("args", recipe.objective_args),
            ("discovery", recipe.discovery),
            ("first_stage", recipe.first_stage),
        )
        for key, default in defaults:
            own = obj.get(key)
            if default and (own is None or isinstance(own, dict)):
                obj[key] = {**default, **(own or {})}
    model = out.get("model")
    if recipe.subclasses and isinstance(model, dict) and model.get("subclasses") is None:
        model["subclasses"] = dict(recipe.subclasses)
    train = out.setdefault("train", {})
    if recipe.balance_by is not None and isinstance(train, dict) and "balance_by" not in train:
        train["balance_by"] = recipe.balance_by
    return out
