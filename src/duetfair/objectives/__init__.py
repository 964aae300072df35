"""duetfair.objectives: per-case losses -> one training loss.

``PerCaseDiceCE`` gives one Dice + CE loss per case (``[B]``); an :class:`Objective` turns those
and one group id per case into the training loss: ERM, GroupDRO, FEBS, adversarial debiasing,
FairDRO (the DuetFair loss), divergence-aware reweighting (FairMedSeg) and sample-level CVaR /
focal baselines. Build one by name with :func:`build_objective`.
"""

from duetfair.objectives.base import Objective
from duetfair.objectives.fair_dro import fair_dro_weights
from duetfair.objectives.group_dro import group_balanced_sampler
from duetfair.objectives.per_case import PerCaseDiceCE
from duetfair.objectives.registry import OBJECTIVES, available_objectives, build_objective

__all__ = [
    "Objective",
    "PerCaseDiceCE",
    "build_objective",
    "available_objectives",
    "OBJECTIVES",
    "fair_dro_weights",
    "group_balanced_sampler",
]
