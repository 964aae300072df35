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

FEBS needs ``logits`` and ``target``. It does not recompute the whole loss: from one pass of per-case,
per-class soft-Dice statistics (intersection ``I``, prediction sum ``P``, reference sum ``T``) it gets
both the group losses and the scaled Dice in closed form (``I -> w I``, ``P -> w P``), and returns
``mean_i [l_i + lambda_dice * (Dice_i(w p_i) - Dice_i(p_i))]``. With ``losses`` from
:class:`~duetfair.objectives.per_case.PerCaseDiceCE` with the same Dice options this is exactly
``mean_i [lambda_ce CE_i + lambda_dice Dice_i(w p_i)]``, at the cost of one extra statistics pass.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from duetfair.errors import require
from duetfair.objectives.base import Objective, ObjectiveContext, erm_weights, weighted_loss
from duetfair.objectives.distributed import group_sums

__all__ = ["FEBS", "febs_group_scales", "TANH1"]

TANH1 = math.tanh(1.0)
"""Scale of a group as good as the best one (ratio 1); also used for unknown-attribute cases."""


def febs_group_scales(group_dice_loss: torch.Tensor, counts: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
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
    ratio = torch.where(
        group_dice_loss > tiny, best / group_dice_loss.clamp_min(tiny), torch.ones_like(group_dice_loss)
    )
    ratio = torch.where(present, ratio, torch.ones_like(ratio))
    return torch.tanh(ratio.pow(gamma))


class FEBS(Objective):
    """Fair error-bound scaling objective (requires ``logits`` and ``target``).

    Args:
        num_groups: number of groups ``G``.
        gamma: exponent of the error-bound ratio (reference: 1).
        lambda_dice: weight of the Dice term in the per-case loss (reference: 0.5).
        include_background, weight, smooth_nr, smooth_dr: Dice options, as given to
            :class:`~duetfair.objectives.per_case.PerCaseDiceCE` for ``losses``.

    Example:
        >>> objective = FEBS(num_groups=2)
        >>> logits, label = torch.zeros(4, 2, 8, 8), torch.zeros(4, 1, 8, 8, dtype=torch.long)
        >>> label[:, :, 2:6, 2:6] = 1
        >>> loss = objective(torch.ones(4), torch.tensor([0, 0, 1, 1]), logits=logits, target=label)
        >>> loss.ndim, bool(torch.isfinite(loss))
        (0, True)
    """

    requires = frozenset({"logits", "target"})

    # buffers (register_buffer), typed for mypy
    class_weight: torch.Tensor | None
    scale: torch.Tensor
    group_dice_loss: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        *,
        gamma: float = 1.0,
        lambda_dice: float = 0.5,
        include_background: bool = True,
        weight: Sequence[float] | None = None,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__(num_groups)
        require(gamma > 0, f"febs: gamma must be > 0, got {gamma}")
        require(lambda_dice >= 0, f"febs: lambda_dice must be >= 0, got {lambda_dice}")
        self.gamma, self.lambda_dice = float(gamma), float(lambda_dice)
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)
        self.include_background = include_background
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).reshape(-1)
        self.register_buffer("class_weight", w, persistent=False)
        self.register_buffer("scale", torch.full((num_groups,), TANH1))
        self.register_buffer("group_dice_loss", torch.zeros(num_groups))

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "FEBS":
        """FEBS recomputes the Dice itself: it shares the per-case loss's class options."""
        for key in ("include_background", "lambda_dice", "weight", "smooth_nr", "smooth_dr"):
            if key in context.loss:
                options.setdefault(key, context.loss[key])
        return cls(context.num_groups, **options)

    def compute(
        self, losses: torch.Tensor, group: torch.Tensor, *, logits: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Mean over cases of ``l_i`` with its Dice term replaced by the FEBS-scaled Dice."""
        require(
            logits.shape[0] == losses.shape[0],
            f"febs: logits batch {logits.shape[0]} does not match losses batch {losses.shape[0]}",
        )
        inter, pred, ref = self._dice_stats(logits, target)  # [B, C] each, differentiable
        sums, counts = group_sums(torch.stack([inter, pred, ref], dim=1), group, self.num_groups)
        group_loss = (1 - self._dice(*sums.unbind(1))).sum(dim=1)
        scale = febs_group_scales(group_loss, counts, self.gamma)
        self.scale.copy_(scale.to(self.scale))
        self.group_dice_loss.copy_(group_loss.to(self.group_dice_loss))
        case_scale = torch.where(group >= 0, scale[group.clamp_min(0)], torch.full_like(scale[:1], TANH1))
        w = case_scale.detach().to(inter.dtype)[:, None]
        shift = self._class_mean(self._dice(inter, pred, ref) - self._dice(w * inter, w * pred, ref))
        per_case = losses + self.lambda_dice * shift
        return weighted_loss(per_case, erm_weights(per_case))

    def _dice(self, inter: torch.Tensor, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Soft Dice coefficient from its sums (MONAI's smoothing)."""
        return (2 * inter + self.smooth_nr) / (pred + ref + self.smooth_dr)

    def _class_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over classes ``[B, C] -> [B]``, class-weighted like MONAI ``DiceLoss``."""
        if self.class_weight is not None and values.shape[1] > 1:
            cw = self.class_weight if self.include_background else self.class_weight[1:]
            require(
                cw.numel() == values.shape[1],
                f"febs: {self.class_weight.numel()} class weights for "
                f"{values.shape[1] + (not self.include_background)} classes",
            )
            values = values * cw.to(values)
        return values.mean(dim=1)

    def _dice_stats(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-case, per-class soft-Dice sums ``(I, P, T)``, each ``[B, C]``."""
        tgt = target if target.ndim == logits.ndim else target.unsqueeze(1)
        require(
            tgt.shape[0] == logits.shape[0] and tgt.shape[2:] == logits.shape[2:] and tgt.shape[1] == 1,
            f"febs: target must be a class map [B, 1, *spatial] matching logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}",
        )
        k = logits.shape[1]
        if k == 1:
            probs, onehot = torch.sigmoid(logits), tgt.to(logits.dtype)
        else:
            probs = torch.softmax(logits, dim=1)
            onehot = F.one_hot(tgt[:, 0].long(), k).movedim(-1, 1).to(logits.dtype)
            if not self.include_background:
                probs, onehot = probs[:, 1:], onehot[:, 1:]
        dims = tuple(range(2, probs.ndim))
        return (probs * onehot).sum(dims), probs.sum(dims), onehot.sum(dims)

    def log_values(self) -> dict[str, float]:
        """Last batch's group scales ``w_g`` and pooled group Dice losses ``L_g``."""
        out = {f"scale_{g}": float(v) for g, v in enumerate(self.scale)}
        out.update({f"group_dice_loss_{g}": float(v) for g, v in enumerate(self.group_dice_loss)})
        return out
