"""Just Train Twice (Liu et al., ICML 2021): up-sample the cases a first model got wrong.

A first, plain model is trained briefly (config ``objective.first_stage``; the trainer runs it).
Its *error set* is the training cases it segments worst; the second model is trained from scratch
with plain ERM on batches in which every error-set case is drawn ``upweight`` times as often as
any other case (the paper's up-sampling; draws with replacement, as many per epoch as the split
holds).

For segmentation "got wrong" needs a cut-off on a continuous score. Two definitions, both on the
first model's case-level Dice of the training cases:

* ``error="group_fraction"`` (default): the worst ``fraction`` of every objective group (each
  group contributes its own hard cases, so a well-served majority cannot fill the whole set);
* ``error="threshold"``: every case with Dice below ``threshold`` (the paper's misclassified cases).

Unknown-attribute cases form one more group for ``group_fraction``.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require
from duetfair.objectives.base import Objective, ObjectiveContext, erm_weights, weighted_loss

__all__ = ["JustTrainTwice", "error_set"]


def error_set(
    dice: np.ndarray,
    groups: np.ndarray,
    *,
    error: Literal["group_fraction", "threshold"] = "group_fraction",
    fraction: float = 0.2,
    threshold: float = 0.5,
) -> np.ndarray:
    """``[N]`` bool: the cases of the error set (see the module docstring).

    Args:
        dice: ``[N]`` first-model case-level Dice (NaN = undefined, never in the error set).
        groups: ``[N]`` objective group ids (``-1`` unknown, one more group).
    """
    dice = np.asarray(dice, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    require(dice.shape == groups.shape, f"jtt: dice {dice.shape} and groups {groups.shape} differ in shape")
    if error == "threshold":
        return np.nan_to_num(dice, nan=np.inf) < threshold
    require(error == "group_fraction", f"jtt: error must be 'group_fraction' or 'threshold', got '{error}'")
    require(0.0 < fraction < 1.0, f"jtt: fraction must lie in (0, 1), got {fraction}")
    out = np.zeros(dice.shape, dtype=bool)
    for g in np.unique(groups):
        idx = np.flatnonzero((groups == g) & np.isfinite(dice))
        k = int(round(fraction * idx.size))
        if k:
            worst = idx[np.argsort(dice[idx], kind="stable")[:k]]
            out[worst] = True
    return out


class JustTrainTwice(Objective):
    """ERM loss on batches that up-sample the first model's error set (needs a first stage).

    Args:
        num_groups: number of objective group ids ``G``.
        upweight: how many times as often an error-set case is drawn (paper: ``lambda_up``).
        error: ``group_fraction`` or ``threshold`` (module docstring).
        fraction: share of every group in the error set (``group_fraction``).
        threshold: Dice below which a case is in the error set (``threshold``).
    """

    needs_first_stage = True

    def __init__(
        self,
        num_groups: int,
        *,
        upweight: float = 5.0,
        error: Literal["group_fraction", "threshold"] = "group_fraction",
        fraction: float = 0.2,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(num_groups)
        require(upweight >= 1.0, f"jtt: upweight must be >= 1, got {upweight}")
        require(
            error in ("group_fraction", "threshold"),
            f"jtt: error must be 'group_fraction' or 'threshold', got '{error}'",
        )
        require(0.0 < fraction < 1.0, f"jtt: fraction must lie in (0, 1), got {fraction}")
        self.upweight = float(upweight)
        self.options: dict[str, Any] = {"error": error, "fraction": float(fraction), "threshold": float(threshold)}
        self._errors: pd.Series | None = None  # case_id -> in the error set

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "JustTrainTwice":
        """The error set comes from the first stage's per-case Dice."""
        first = context.first_stage
        if first is None:
            raise DuetfairError("jtt: needs a first stage (config objective.first_stage)")
        obj = cls(context.num_groups, **options)
        members = error_set(first.dice, first.groups, **obj.options)
        obj._errors = pd.Series(members, index=pd.Index(first.case_ids, name="case_id"))
        return obj

    def sampling_weights(self, case_ids: Sequence[str]) -> torch.Tensor:
        """``upweight`` for error-set cases, 1 for the others (``[N]`` float64)."""
        if self._errors is None:
            raise DuetfairError("jtt: no error set; build the objective from a first stage")
        flags = self._errors.reindex([str(c) for c in case_ids])
        require(
            not flags.isna().any(), "jtt: training cases differ from the first stage's; delete its folder to redo it"
        )
        return torch.as_tensor(np.where(flags.to_numpy(dtype=bool), self.upweight, 1.0), dtype=torch.float64)

    def case_subgroups(self) -> pd.DataFrame | None:
        """``error`` / ``rest`` per training case."""
        if self._errors is None:
            return None
        labels = np.where(self._errors.to_numpy(dtype=bool), "error", "rest")
        return pd.DataFrame({"case_id": self._errors.index.to_numpy(), "subgroup": labels})

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Mean of ``losses [B]`` (the up-sampling is in the batches)."""
        return weighted_loss(losses, erm_weights(losses))
