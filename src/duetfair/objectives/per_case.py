"""Per-case Dice + cross-entropy loss (shape ``[B]``), the basis of every fairness objective.

MONAI's ``DiceCELoss`` reduces over the batch; fairness objectives need one loss per case. This
module composes MONAI ``DiceLoss(reduction="none")`` (per case and class, averaged over classes)
with a per-case cross-entropy (mean over voxels of each case). Without class weights the batch
mean equals MONAI ``DiceCELoss`` with the same options (tested). With class weights the per-case
CE is the class-weighted mean over *that case's* voxels (``sum w_y ce / sum w_y`` per case), whereas
PyTorch normalises by the weights of the whole batch; the Dice part matches exactly.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

from duetfair.errors import require

__all__ = ["PerCaseDiceCE"]


class PerCaseDiceCE(nn.Module):
    """``lambda_dice * SoftDice_i + lambda_ce * CE_i`` for every case ``i`` of a batch.

    Works for 2D (``[B, K, H, W]``) and 3D (``[B, K, H, W, D]``) logits. With ``K >= 2`` classes the
    probabilities are a softmax over channels and CE is the multi-class cross-entropy; with a
    single output channel (``K == 1``, binary) a sigmoid and binary cross-entropy are used.

    Args:
        include_background: include class 0 in the Dice term (reference: True).
        softmax: apply softmax to the logits for the Dice term (MONAI semantics: with ``False`` the
            Dice term takes the input as probabilities; CE always takes logits).
        lambda_dice: weight of the Dice term (reference dMoE/DuetFair code: 0.5; MONAI default 1).
        lambda_ce: weight of the CE term (reference: 0.5).
        weight: optional class weights ``[K]`` (background included, as in MONAI ``DiceCELoss``);
            used by CE and, without background when ``include_background=False``, by Dice. For
            ``K == 1`` it is BCE's ``pos_weight``.
        squared_pred: square the probabilities in the Dice denominator.
        smooth_nr: Dice numerator smoothing.
        smooth_dr: Dice denominator smoothing.

    Example:
        >>> loss_fn = PerCaseDiceCE(include_background=True)
        >>> logits, label = torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> loss_fn(logits, label).shape  # logits [B, K, H, W], label [B, 1, H, W] -> [B]
        torch.Size([2])
    """

    # buffers (register_buffer), typed for mypy
    weight: torch.Tensor | None

    def __init__(
        self,
        *,
        include_background: bool = True,
        softmax: bool = True,
        lambda_dice: float = 0.5,
        lambda_ce: float = 0.5,
        weight: Sequence[float] | torch.Tensor | None = None,
        squared_pred: bool = False,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
    ) -> None:
        super().__init__()
        require(
            lambda_dice >= 0 and lambda_ce >= 0 and lambda_dice + lambda_ce > 0,
            f"PerCaseDiceCE: lambda_dice and lambda_ce must be >= 0 and not both 0, got {lambda_dice} and {lambda_ce}",
        )
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).reshape(-1)
        if w is not None:
            require(bool((w >= 0).all()), f"PerCaseDiceCE: class weights must be >= 0, got {w.tolist()}")
        self.register_buffer("weight", w, persistent=False)
        self.include_background = include_background
        self.softmax = softmax
        self.lambda_dice = float(lambda_dice)
        self.lambda_ce = float(lambda_ce)
        self._dice_kwargs: dict[str, Any] = dict(squared_pred=squared_pred, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
        self._dice_cache: dict[int, DiceLoss] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-case loss ``[B]`` from logits ``[B, K, *spatial]`` and a class map ``[B, 1, *spatial]``."""
        dice, ce = self.components(logits, target)
        return self.lambda_dice * dice + self.lambda_ce * ce

    def components(
        self, logits: torch.Tensor, target: torch.Tensor, prob_scale: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted per-case ``(dice_loss [B], ce [B])``.

        Args:
            logits: ``[B, K, *spatial]`` raw scores.
            target: ``[B, 1, *spatial]`` or ``[B, *spatial]`` integer class map.
            prob_scale: optional ``[B]`` factor multiplying each case's probabilities before the
                Dice term (FEBS error-bound scaling); CE is unaffected.
        """
        target = self._check(logits, target)
        probs = self._probabilities(logits)
        if prob_scale is not None:
            probs = probs * prob_scale.reshape(-1, *([1] * (probs.ndim - 1))).to(probs)
        return self._dice(probs, target), self._ce(logits, target)

    def _check(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        require(
            logits.ndim in (4, 5),
            f"PerCaseDiceCE: logits must be [B, K, H, W] or [B, K, H, W, D], got shape {tuple(logits.shape)}",
        )
        if target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
        require(
            target.ndim == logits.ndim
            and target.shape[1] == 1
            and target.shape[0] == logits.shape[0]
            and target.shape[2:] == logits.shape[2:],
            f"PerCaseDiceCE: target must be a class map [B, 1, *spatial] matching logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}",
        )
        k = logits.shape[1]
        if self.weight is not None:
            require(
                self.weight.numel() == k,
                f"PerCaseDiceCE: {self.weight.numel()} class weights given for {k} output channels",
            )
        return target.long()

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1) if self.softmax else logits

    def _dice(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = probs.shape[1]
        if k not in self._dice_cache:
            dice_weight = self.weight
            if dice_weight is not None and (k == 1 or not self.include_background):
                dice_weight = None if k == 1 else dice_weight[1:]
            self._dice_cache[k] = DiceLoss(
                include_background=self.include_background or k == 1,
                to_onehot_y=k > 1,
                reduction="none",
                weight=None if dice_weight is None else dice_weight.cpu(),
                **self._dice_kwargs,
            )
        return self._dice_cache[k](probs, target).reshape(probs.shape[0], -1).mean(dim=1)

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        b = logits.shape[0]
        weight = None if self.weight is None else self.weight.to(logits)
        if logits.shape[1] == 1:
            voxel = F.binary_cross_entropy_with_logits(
                logits, target.to(logits.dtype), pos_weight=weight, reduction="none"
            )
            return voxel.reshape(b, -1).mean(dim=1)
        labels = target[:, 0]
        voxel = F.cross_entropy(logits, labels, weight=weight, reduction="none").reshape(b, -1)
        if weight is None:
            return voxel.mean(dim=1)
        norm = weight[labels].reshape(b, -1).sum(dim=1)
        return voxel.sum(dim=1) / norm.clamp_min(torch.finfo(logits.dtype).tiny)
