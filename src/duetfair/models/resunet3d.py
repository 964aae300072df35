"""Residual U-Net (3D by default) with an optional (distribution-aware) MoE after each encoder stage.

Architecture (dMoE paper, 3D ResUNet): a full-resolution stem (MONAI ``UnetResBlock``, ``f``
channels) followed by five stride-2 residual encoder stages with ``f, f, 2f, 4f, 8f`` channels.
After every stage, when MoE is on, a separate MoE treats every voxel as a token and is added as a
residual (``h = h + moe(h, group)``). The decoder has five MONAI ``UnetrUpBlock`` s (transposed
conv x2, concatenation with the skip, residual block) back to full resolution, then a 1x1 conv
head. Input sizes must be divisible by 32 (see ``img_size`` for inputs smaller than 64).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetrUpBlock
from torch import nn

from duetfair.errors import require
from duetfair.models.base import SegmentationModel, tokens_moe
from duetfair.models.moe import DistributionAwareMoE

__all__ = ["ResUNet", "STAGE_MULTIPLIERS"]

#: channel multipliers of the five stride-2 encoder stages (``f, f, 2f, 4f, 8f``).
STAGE_MULTIPLIERS: tuple[int, ...] = (1, 1, 2, 4, 8)


class ResUNet(SegmentationModel):
    """Residual U-Net with ``moe="none" | "moe" | "dmoe"`` after each of its five encoder stages.

    Args:
        in_channels: image channels.
        num_classes: output classes including background.
        num_groups: attribute cardinality (or list) for ``moe="dmoe"``.
        feature_size: ``f`` (paper: 24 or 48).
        spatial_dims: 3 (default) or 2.
        moe: ``"none"``, ``"moe"`` (attribute-blind) or ``"dmoe"``.
        norm_name: MONAI norm of the residual blocks (default instance norm, as the reference).
        img_size: expected input size (optional). When given with instance norm and smaller than
            64, the deepest stage would hold a single voxel, on which instance norm is undefined:
            the blocks then use a one-group GroupNorm (normalises over channels and voxels).
        moe_kwargs: passed to :class:`DistributionAwareMoE`.

    ``forward(image [B, C, *S], group)`` -> logits ``[B, num_classes, *S]``; features are the
    global mean of the deepest stage ``[B, 8f]``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_groups: int | Sequence[int] = 1,
        *,
        feature_size: int = 24,
        spatial_dims: int = 3,
        moe: Literal["none", "moe", "dmoe"] = "none",
        norm_name: str | tuple = "instance",
        img_size: int | Sequence[int] | None = None,
        moe_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        require(in_channels >= 1 and num_classes >= 1, "ResUNet: in_channels and num_classes must be >= 1")
        require(feature_size >= 1, f"feature_size: expected >= 1, got {feature_size}")
        require(spatial_dims in (2, 3), f"spatial_dims: expected 2 or 3, got {spatial_dims}")
        require(moe in ("none", "moe", "dmoe"), f"moe: expected 'none', 'moe' or 'dmoe', got {moe!r}")
        self.in_channels, self.num_classes, self.spatial_dims, self.moe_mode = (
            in_channels,
            num_classes,
            spatial_dims,
            moe,
        )
        if img_size is not None and "instance" in str(norm_name).lower():
            sizes = [img_size] * spatial_dims if isinstance(img_size, int) else list(img_size)
            if min(sizes) < 2 ** (len(STAGE_MULTIPLIERS) + 1):
                norm_name = ("group", {"num_groups": 1})
        self._instance_norm = "instance" in str(norm_name).lower()
        f, sd = feature_size, spatial_dims
        chans = [f * m for m in STAGE_MULTIPLIERS]
        self.feature_dim = chans[-1]
        self.stem = UnetResBlock(sd, in_channels, f, kernel_size=3, stride=1, norm_name=norm_name)
        self.stages = nn.ModuleList(
            UnetResBlock(sd, cin, cout, kernel_size=3, stride=2, norm_name=norm_name)
            for cin, cout in zip([f, *chans[:-1]], chans)
        )
        groups = 1 if moe == "moe" else num_groups
        self.moes = nn.ModuleList(
            DistributionAwareMoE(c, groups, **(moe_kwargs or {})) for c in (chans if moe != "none" else [])
        )
        skips = [f, *chans[:-1]]  # stem, stage1..stage4
        ups_in = chans[::-1]  # 8f, 4f, 2f, f, f
        self.ups = nn.ModuleList(
            UnetrUpBlock(sd, cin, cskip, kernel_size=3, upsample_kernel_size=2, norm_name=norm_name, res_block=True)
            for cin, cskip in zip(ups_in, skips[::-1])
        )
        self.head = UnetOutBlock(sd, f, num_classes)

    def forward_features(
        self, image: torch.Tensor, group: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(image, 2 ** len(self.stages))
        if self.training and self._instance_norm:
            require(
                min(image.shape[2:]) >= 2 ** (len(self.stages) + 1),
                "ResUNet: instance norm needs >1 voxel at the bottleneck in "
                f"training; spatial size {list(image.shape[2:])} must be >= 64",
            )
        self._start_forward()
        g = None if self.moe_mode == "moe" else group
        h = self.stem(image)
        skips = [h]
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if len(self.moes):
                h = tokens_moe(self, self.moes[i], h, g)
            skips.append(h)
        feats = h.flatten(2).mean(-1)
        for up, skip in zip(self.ups, skips[-2::-1]):
            h = up(h, skip)
        return self.head(h), feats
