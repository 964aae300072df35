"""FEBS: fair error-bound scaling (Harvard-FairSeg), with the reference pitfalls fixed.

For every group ``g`` present in the (global) batch, ``L_g`` is the soft Dice loss of the group's
cases pooled over their voxels (summed over classes). Each group gets the scale
``w_g = tanh((min_k L_k / L_g) ** gamma)`` (min over groups *present*), each case's predicted
probabilities are multiplied by ``w_{g(i)}`` before its Dice term, and the loss is the batch mean of
``lambda_ce * CE_i + lambda_dice * Dice_i(w p_i, y_i)`` (reference: 0.5 / 0.5). Groups with larger
error get smaller scales, hence larger Dice losses and gradients.

Fixes of the reference: absent groups do not enter the minimum (the reference's minimum over all
groups zeroes every weight when one group is missing), and unknown-attribute cases (``-1``) are
neither indexed as the last group nor part of any ``L_g``: they are counted in ERM terms with the
neutral ratio 1 (scale ``tanh(1)``, the scale of the best group). Scales are detached. The Dice
term is per case (MONAI's default) so the loss is exactly a mean of per-case terms under DDP; the
group statistics ``L_g`` are all-reduced.

FEBS needs ``logits`` and ``target``: it recomputes its per-case Dice + CE with its own options (give
it the same options as the per-case loss); the ``losses`` argument is only validated.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from duetfair.errors import require
from duetfair.objectives.base import Objective, erm_weights, weighted_loss
from duetfair.objectives.distributed import group_sums
from duetfair.objectives.per_case import PerCaseDiceCE

__all__ = ["FEBS", "febs_group_scales", "TANH1"]

TANH1 = math.tanh(1.0)
"""Scale of a group as good as the best one (ratio 1); also used for unknown-attribute cases."""


def febs_group_scales(
    group_dice_loss: torch.Tensor, counts: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Scales ``w [G] = tanh((min_present L / L_g) ** gamma)``; absent groups get ``tanh(1)``.

    Args:
        group_dice_loss: ``[G]`` pooled soft Dice loss of each group.
        counts: ``[G]`` number of cases of each group in the global batch.
        gamma: exponent (reference: 1).
    """
    present = counts > 0
    tiny = torch.finfo(group_dice_loss.dtype).tiny
    if not bool(present.any()):
        return torch.full_like(group_dice_loss, TANH1)
    best = group_dice_loss[present].min()
    ratio = torch.where(group_dice_loss > tiny, best / group_dice_loss.clamp_min(tiny), torch.ones_like(group_dice_loss))
    ratio = torch.where(present, ratio, torch.ones_like(ratio))
    return torch.tanh(ratio.pow(gamma))


class FEBS(Objective):
    """Fair error-bound scaling objective (requires ``logits`` and ``target``).

    Args:
        num_groups: number of groups ``G``.
        gamma: exponent of the error-bound ratio (reference: 1).
        lambda_dice, lambda_ce, include_background, weight, smooth_nr, smooth_dr: options of the
            per-case Dice + CE (see :class:`~duetfair.objectives.per_case.PerCaseDiceCE`).

    Example::

        objective = FEBS(num_groups=3)
        loss = objective(per_case_losses, group, logits=logits, target=label)
    """

    requires = frozenset({"logits", "target"})

    def __init__(
        self, num_groups: int, *, gamma: float = 1.0, lambda_dice: float = 0.5, lambda_ce: float = 0.5,
        include_background: bool = True, weight: Sequence[float] | None = None,
        smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__(num_groups)
        require(gamma > 0, f"febs: gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)
        self.include_background = include_background
        self.per_case = PerCaseDiceCE(include_background=include_background, lambda_dice=lambda_dice,
                                      lambda_ce=lambda_ce, weight=weight, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        self.register_buffer("scale", torch.full((num_groups,), TANH1))
        self.register_buffer("group_dice_loss", torch.zeros(num_groups))

    def compute(self, losses: torch.Tensor, group: torch.Tensor, *, logits: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        """Mean over cases of the FEBS-scaled Dice + CE (``logits [B, K, *sp]``, ``target [B, 1, *sp]``)."""
        require(logits.shape[0] == losses.shape[0],
                f"febs: logits batch {logits.shape[0]} does not match losses batch {losses.shape[0]}")
        group_loss, counts = self._group_dice_loss(logits, target, group)
        scale = febs_group_scales(group_loss, counts, self.gamma)
        self.scale.copy_(scale.to(self.scale))
        self.group_dice_loss.copy_(group_loss.to(self.group_dice_loss))
        per_case_scale = torch.where(group >= 0, scale[group.clamp_min(0)], torch.full_like(scale[:1], TANH1))
        dice, ce = self.per_case.components(logits, target, prob_scale=per_case_scale.detach())
        per_case = self.per_case.lambda_dice * dice + self.per_case.lambda_ce * ce
        return weighted_loss(per_case, erm_weights(per_case))

    def _group_dice_loss(self, logits: torch.Tensor, target: torch.Tensor,
                         group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled soft Dice loss ``[G]`` (summed over classes) and global counts ``[G]`` (detached)."""
        with torch.no_grad():
            tgt = target if target.ndim == logits.ndim else target.unsqueeze(1)
            k = logits.shape[1]
            if k == 1:
                probs = torch.sigmoid(logits.float())
                onehot = tgt.float()
            else:
                probs = torch.softmax(logits.float(), dim=1)
                onehot = F.one_hot(tgt[:, 0].long(), k).movedim(-1, 1).float()
                if not self.include_background:
                    probs, onehot = probs[:, 1:], onehot[:, 1:]
            dims = tuple(range(2, probs.ndim))
            stats = torch.stack([(probs * onehot).sum(dims), probs.sum(dims), onehot.sum(dims)], dim=1)
            sums, counts = group_sums(stats, group, self.num_groups)  # [G, 3, C]
            inter, pred, ref = sums.unbind(1)
            dice = (2 * inter + self.smooth_nr) / (pred + ref + self.smooth_dr)
            return (1 - dice).sum(dim=1), counts

    def log_values(self) -> dict[str, float]:
        """Last batch's group scales ``w_g`` and pooled group Dice losses ``L_g``."""
        out = {f"scale_{g}": float(v) for g, v in enumerate(self.scale)}
        out.update({f"group_dice_loss_{g}": float(v) for g, v in enumerate(self.group_dice_loss)})
        return out
