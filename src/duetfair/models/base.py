"""Common base of duetfair segmentation networks (the model contract).

Every model maps ``(image, group)`` to logits:

* ``forward(image, group=None) -> logits [B, K, *spatial]``;
* ``forward_features(image, group=None) -> (logits, feats [B, feature_dim])`` with pooled encoder
  features (for adversarial objectives);
* ``feature_dim: int``;
* ``aux_loss() -> Tensor[]``: the weighted MoE load-balancing loss of the last forward (summed over
  every MoE call, also when one MoE instance is shared by several blocks); ``0`` without MoE or
  when the loss is off.

``group`` is a LongTensor ``[B]`` (one attribute) or ``[B, A]`` of encoded codes, ``-1`` for an
unknown value, or ``None`` (all unknown). Attribute-blind models ignore it.
"""

from __future__ import annotations

import abc
from typing import Iterator, Sequence

import torch
from torch import nn

from duetfair.errors import DuetfairError
from duetfair.models.moe import DistributionAwareMoE

__all__ = ["SegmentationModel", "tokens_moe"]


class SegmentationModel(nn.Module, abc.ABC):
    """Base class: input checks, MoE auxiliary-loss bookkeeping and the ``forward`` contract."""

    feature_dim: int
    in_channels: int
    num_classes: int
    spatial_dims: int

    def __init__(self) -> None:
        super().__init__()
        self._aux_terms: list[torch.Tensor] = []

    @abc.abstractmethod
    def forward_features(
        self, image: torch.Tensor, group: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [B, K, *spatial], feats [B, feature_dim])``."""

    def forward(self, image: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_classes, *spatial]`` for ``image [B, in_channels, *spatial]``."""
        return self.forward_features(image, group)[0]

    def check_input(self, image: torch.Tensor, divisor: int | Sequence[int] = 1) -> None:
        """Validate ``image [B, C, *spatial]``: channels, dimensionality, sizes divisible by ``divisor``."""
        expected = 2 + self.spatial_dims
        if image.dim() != expected or image.shape[1] != self.in_channels:
            raise DuetfairError(
                f"{type(self).__name__}: expected image [B, {self.in_channels}, "
                f"{', '.join('S' * self.spatial_dims)}], got {list(image.shape)}"
            )
        divs = [divisor] * self.spatial_dims if isinstance(divisor, int) else list(divisor)
        spatial = list(image.shape[2:])
        if any(s % d for s, d in zip(spatial, divs)):
            raise DuetfairError(f"{type(self).__name__}: spatial size {spatial} must be divisible by {divs}")

    # ---- MoE bookkeeping ---------------------------------------------------------------------
    def moe_layers(self) -> Iterator[DistributionAwareMoE]:
        """The (distinct) MoE layers of the model."""
        return (m for m in self.modules() if isinstance(m, DistributionAwareMoE))

    def _start_forward(self) -> None:
        self._aux_terms = []

    def _apply_moe(self, moe: DistributionAwareMoE, tokens: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
        """``tokens + moe(tokens, group)`` for ``tokens [B, N, C]``; records the MoE's aux loss."""
        out = tokens + moe(tokens, group)
        if moe.load_balance_weight > 0 and self.training:
            self._aux_terms.append(moe.aux_loss())
        return out

    def aux_loss(self) -> torch.Tensor:
        """Sum of the weighted MoE load-balancing losses of the last forward (scalar)."""
        ref = next(self.parameters())
        if not self._aux_terms:
            return ref.new_zeros(())
        return torch.stack(self._aux_terms).sum()


def tokens_moe(
    model: SegmentationModel, moe: DistributionAwareMoE, fmap: torch.Tensor, group: torch.Tensor | None
) -> torch.Tensor:
    """Residual MoE on a feature map ``[B, C, *spatial]`` with every voxel a token; same shape out."""
    B, C = fmap.shape[:2]
    tokens = fmap.flatten(2).transpose(1, 2)  # [B, N, C]
    out = model._apply_moe(moe, tokens, group)
    return out.transpose(1, 2).reshape(fmap.shape)
