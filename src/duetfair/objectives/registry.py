"""Objective registry: ``build_objective(name, num_groups=..., **options)``.

Names: ``erm``, ``group_dro``, ``febs``, ``adversarial``, ``fair_dro`` (DuetFair), ``divergence``
(FairMedSeg), ``cvar`` and ``focal`` (sample-level baselines), ``jtt`` (Just Train Twice) and
``subclass_dro`` (GroupDRO over clusters found inside every group; both need a first stage).
A new objective is one module plus one entry in :data:`OBJECTIVES`.
"""

from __future__ import annotations

import inspect
from typing import Any

from duetfair.errors import require
from duetfair.objectives.adversarial import Adversarial
from duetfair.objectives.base import Objective, ObjectiveContext
from duetfair.objectives.divergence import DivergenceReweighting
from duetfair.objectives.erm import ERM
from duetfair.objectives.fair_dro import FairDRO
from duetfair.objectives.febs import FEBS
from duetfair.objectives.group_dro import GroupDRO
from duetfair.objectives.jtt import JustTrainTwice
from duetfair.objectives.sample_robust import FocalWeighting, SampleCVaR
from duetfair.objectives.subclass import SubclassDRO

__all__ = ["OBJECTIVES", "build_objective", "available_objectives", "objective_options", "objective_class"]

OBJECTIVES: dict[str, type[Objective]] = {
    "erm": ERM,
    "group_dro": GroupDRO,
    "febs": FEBS,
    "adversarial": Adversarial,
    "fair_dro": FairDRO,
    "divergence": DivergenceReweighting,
    "cvar": SampleCVaR,
    "focal": FocalWeighting,
    "jtt": JustTrainTwice,
    "subclass_dro": SubclassDRO,
}


def available_objectives() -> list[str]:
    """Registered objective names, sorted."""
    return sorted(OBJECTIVES)


def objective_options(name: str) -> dict[str, Any]:
    """Keyword options of objective ``name`` and their defaults (``inspect.Parameter.empty`` if required)."""
    cls = _lookup(name)
    params = inspect.signature(cls.__init__).parameters
    return {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_objective(
    name: str, *, num_groups: int | None = None, context: ObjectiveContext | None = None, **kwargs: Any
) -> Objective:
    """Instantiate objective ``name`` with its keyword ``kwargs``, for ``num_groups`` group ids or
    from the trainer's ``context`` (which fills in what the objective needs: training group counts,
    the model's feature width, the per-case loss options; see ``Objective.from_context``).

    Example:
        >>> type(build_objective("fair_dro", num_groups=3, within="cvar", alpha=0.5)).__name__
        'FairDRO'
        >>> type(build_objective("adversarial", num_groups=3, feature_dim=16)).__name__  # the model's feature_dim
        'Adversarial'
    """
    cls = _lookup(name)
    require((num_groups is None) != (context is None), f"objective '{name}': give num_groups or context, not both")
    options = objective_options(name)
    unknown = sorted(set(kwargs) - set(options))
    require(not unknown, f"objective '{name}': unknown option(s) {unknown}; expected some of {sorted(options)}")
    if context is None:
        missing = sorted(k for k, v in options.items() if v is inspect.Parameter.empty and k not in kwargs)
        require(not missing, f"objective '{name}': missing required option(s) {missing}")
        return cls(int(num_groups), **kwargs)  # type: ignore[arg-type]
    return cls.from_context(context, **kwargs)


def objective_class(name: str) -> type[Objective]:
    """The class registered as ``name`` (to read its facts, e.g. ``needs_first_stage``)."""
    return _lookup(name)


def _lookup(name: str) -> type[Objective]:
    require(name in OBJECTIVES, f"unknown objective '{name}'; expected one of {available_objectives()}")
    return OBJECTIVES[name]
