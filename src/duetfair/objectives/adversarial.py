"""Adversarial debiasing (Madras et al.-style): attribute classifier through gradient reversal.

An MLP head predicts the group from pooled encoder features ``[B, F]`` (any model's
``forward_features``). Between the features and the head sits a gradient reversal layer: the head
learns to predict the attribute while the encoder receives the *negated* (scaled) gradient and so
learns features from which the attribute cannot be predicted. The loss is

    ``L = mean_i l_i + weight * CE(head(GRL(f_i)), g_i)`` (CE averaged over known-attribute cases).

Unknown-attribute cases (``-1``) count in the segmentation mean (ERM term) and are excluded from
the adversarial CE. The head's parameters belong to the objective: optimise them together with the
model (``list(model.parameters()) + list(objective.parameters())``); under DDP wrap a module holding
both, or the objective itself, in ``DistributedDataParallel`` so the head's gradients are averaged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from duetfair.errors import require
from duetfair.objectives.base import Objective, ObjectiveContext, erm_weights, weighted_loss
from duetfair.objectives.distributed import all_reduce_sum

__all__ = ["Adversarial", "GradientReversal", "grad_reverse"]


class _GradReverse(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``-scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Gradient reversal: ``x`` forward, ``-scale * grad`` backward."""
    return _GradReverse.apply(x, scale)


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse` (``scale`` is the reversal strength)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` unchanged; reversed gradient backward."""
        return grad_reverse(x, self.scale)


class Adversarial(Objective):
    """Segmentation mean plus a gradient-reversed attribute-classification loss (needs ``features``).

    Args:
        num_groups: number of attribute values ``G`` (head outputs).
        feature_dim: feature width ``F`` (the model's ``feature_dim``).
        weight: ``lambda``, weight of the adversarial CE in the loss.
        reversal: gradient reversal strength seen by the encoder.
        hidden: hidden width of the MLP head (0 = linear head).
        dropout: dropout before the head's output layer.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> objective = Adversarial(num_groups=3, feature_dim=16, weight=0.1)  # feature_dim: the model's
        >>> feats = torch.randn(4, 16)  # as from model.forward_features(image, group)
        >>> loss = objective(torch.ones(4), torch.tensor([0, 1, 2, 0]), features=feats)
        >>> loss.ndim, bool(torch.isfinite(loss))
        (0, True)
    """

    requires = frozenset({"features"})

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "Adversarial":
        """The head's input width is the model's ``feature_dim``."""
        require(
            context.feature_dim is not None or "feature_dim" in options,
            "objective 'adversarial' needs model features; the model has no feature_dim",
        )
        options.setdefault("feature_dim", context.feature_dim)
        return cls(context.num_groups, **options)

    # buffers (register_buffer), typed for mypy
    last_ce: torch.Tensor
    last_accuracy: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        *,
        feature_dim: int,
        weight: float = 1.0,
        reversal: float = 1.0,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_groups)
        require(
            isinstance(feature_dim, int) and feature_dim > 0,
            f"adversarial: feature_dim must be a positive integer (the model's feature_dim), got {feature_dim!r}",
        )
        require(
            weight >= 0 and reversal >= 0, f"adversarial: weight and reversal must be >= 0, got {weight}, {reversal}"
        )
        require(hidden >= 0, f"adversarial: hidden must be >= 0, got {hidden}")
        self.weight, self.feature_dim = float(weight), feature_dim
        self.reverse = GradientReversal(reversal)
        layers: list[nn.Module] = (
            [nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_groups)]
            if hidden
            else [nn.Dropout(dropout), nn.Linear(feature_dim, num_groups)]
        )
        self.head = nn.Sequential(*layers)
        self.register_buffer("last_ce", torch.zeros(()))
        self.register_buffer("last_accuracy", torch.zeros(()))

    def compute(self, losses: torch.Tensor, group: torch.Tensor, *, features: torch.Tensor) -> torch.Tensor:
        """``mean(losses) + weight * CE(head(GRL(features)), group)`` (CE over known cases)."""
        require(
            features.ndim == 2 and features.shape == (losses.shape[0], self.feature_dim),
            f"adversarial: features must be [B, F] = [{losses.shape[0]}, {self.feature_dim}], "
            f"got {tuple(features.shape)}",
        )
        seg = weighted_loss(losses, erm_weights(losses))
        known = group >= 0
        logits = self.head(self.reverse(features))
        ce = F.cross_entropy(logits, group.clamp_min(0), reduction="none")
        correct = (known & (logits.argmax(1) == group)).sum()
        stats = torch.stack([known.sum().to(ce.dtype), correct.to(ce.dtype), (ce.detach() * known).sum()])
        n_known, n_correct, ce_sum = all_reduce_sum(stats).unbind()
        ce_weights = torch.where(known, torch.ones_like(ce), torch.zeros_like(ce)) / n_known.clamp_min(1)
        adv = weighted_loss(ce, ce_weights)
        self.last_ce.copy_(ce_sum / n_known.clamp_min(1))
        self.last_accuracy.copy_(n_correct / n_known.clamp_min(1))
        return seg + self.weight * adv

    def log_values(self) -> dict[str, float]:
        """Adversary's mean CE and accuracy on the last global batch (known-attribute cases)."""
        return {"adversary_ce": float(self.last_ce), "adversary_accuracy": float(self.last_accuracy)}
