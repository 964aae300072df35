"""Empirical risk minimisation: the mean per-case loss (every case, unknown attribute included)."""

from __future__ import annotations

import torch

from duetfair.objectives.base import Objective, erm_weights, weighted_loss

__all__ = ["ERM"]


class ERM(Objective):
    """``L = (1 / N) sum_i l_i`` over the global batch; groups are ignored.

    Under DDP the mean is over all ranks' cases (global ``N``), so unequal per-rank batch sizes
    still give the single-process gradient.

    Example:
        >>> objective = ERM(num_groups=3)
        >>> objective(torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([0, 1, 2, 2]))  # [B], [B] -> scalar
        tensor(3.)
    """

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """Mean of ``losses [B]``."""
        return weighted_loss(losses, erm_weights(losses))
