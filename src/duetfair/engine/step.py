"""The differentiable part of a training step: model, per-case loss and objective in one module.

One module so that DDP synchronises every trainable part, also an objective's own parameters
(the adversarial head), and so that a bare loop and the trainer run the same computation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from duetfair.models.base import SegmentationModel
from duetfair.objectives.base import Objective


class StepModule(nn.Module):
    """Model + per-case loss + objective in one module, so DDP synchronises every trainable part
    (also the adversarial head of an objective). ``forward`` returns (total loss, objective loss)."""

    def __init__(self, model: SegmentationModel, loss_fn: nn.Module, objective: Objective, aux_weight: float) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.objective = objective
        self.aux_weight = aux_weight
        self.requires = frozenset(getattr(objective, "requires", frozenset()))

    def forward(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        route: torch.Tensor,
        group_ids: torch.Tensor,
        case_ids: list[str],
    ) -> torch.Tensor:
        """Total training loss (scalar) of a batch: ``route`` is what the model routes on
        (``[B]`` or ``[B, A']``), ``group_ids [B]`` the objective's groups."""
        if "features" in self.requires:
            logits, features = self.model.forward_features(image, group=route)
        else:
            logits, features = self.model(image, group=route), None
        losses = self.loss_fn(logits.float(), label)
        available: dict[str, Any] = {
            "logits": logits.float(),
            "target": label,
            "case_ids": case_ids,
            "features": None if features is None else features.float(),
        }
        total = self.objective(losses, group_ids, **{k: available[k] for k in self.requires})
        if self.aux_weight > 0:
            total = total + self.aux_weight * self.model.aux_loss()
        return total
