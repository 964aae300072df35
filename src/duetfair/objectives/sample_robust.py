"""Sample-level robust losses: the group-blind baselines the DuetFair paper compares with.

* :class:`SampleCVaR`: CVaR_alpha over the whole (global) batch, the mean of the worst
  ``ceil(alpha * N)`` per-case losses (ties at the threshold share mass; ``alpha = 1`` is ERM).
* :class:`FocalWeighting`: focal-style case weights ``w_i ∝ (1 - exp(-l_i)) ** gamma`` (detached;
  ``exp(-l_i)`` plays the role of the case's "probability of being right"), loss
  ``sum_i w_i l_i / sum_i w_i``; ``gamma = 0`` is ERM.

Neither uses groups: unknown-attribute cases count like every other case.
"""

from __future__ import annotations

import torch

from duetfair.errors import require
from duetfair.objectives.base import Objective, weighted_loss
from duetfair.objectives.distributed import all_reduce_sum
from duetfair.objectives.fair_dro import _cvar_weights

__all__ = ["SampleCVaR", "FocalWeighting"]


class SampleCVaR(Objective):
    """Mean of the worst ``ceil(alpha * N)`` per-case losses of the global batch.

    Example:
        >>> SampleCVaR(num_groups=1, alpha=0.5)(torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.zeros(4, dtype=torch.long))
        tensor(4.5000)
    """

    def __init__(self, num_groups: int = 1, *, alpha: float = 0.5) -> None:
        super().__init__(num_groups)
        require(0 < alpha <= 1, f"cvar: alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """CVaR_alpha of ``losses [B]`` over all ranks."""
        weights = _cvar_weights(losses.detach(), torch.zeros_like(group), 1, self.alpha)
        return weighted_loss(losses, weights)


class FocalWeighting(Objective):
    """Focal-style weighted mean of per-case losses (``gamma`` = focusing strength).

    Example:
        >>> FocalWeighting(num_groups=1, gamma=2.0)(torch.tensor([0.1, 2.0]), torch.zeros(2, dtype=torch.long))
        tensor(1.9773)
    """

    def __init__(self, num_groups: int = 1, *, gamma: float = 2.0) -> None:
        super().__init__(num_groups)
        require(gamma >= 0, f"focal: gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``sum w l / sum w`` with ``w = (1 - exp(-l)) ** gamma`` (global normaliser)."""
        l = losses.detach().clamp_min(0)
        w = (-torch.expm1(-l)).pow(self.gamma) if self.gamma > 0 else torch.ones_like(l)
        total = all_reduce_sum(w.sum())
        if float(total) <= 0:  # every loss is exactly 0: fall back to the plain mean
            w = torch.ones_like(l)
            total = all_reduce_sum(w.sum())
        return weighted_loss(losses, w / total)
