"""TransUNet-style 2D ViT segmenter with optional (distribution-aware) MoE after encoder blocks.

Architecture (dMoE paper, TransUNet with a ViT-B/16 encoder, no skip connections): patch embedding
(MONAI ``PatchEmbeddingBlock``, learnable positions) -> ``depth`` pre-norm transformer blocks
(fused-QKV ``scaled_dot_product_attention`` + MONAI ``MLPBlock``), each followed by the residual ``h
= h + moe(h, group)`` when MoE is on -> LayerNorm -> tokens reshaped to a ``dim x (H/p) x (W/p)``
map -> CUP decoder: 3x3 conv to ``head_channels``, then ``log2(p)`` stages of bilinear x2 upsampling
+ two 3x3 conv-BN-ReLU -> 3x3 conv head to ``num_classes`` logits at the input resolution.

``moe_sharing="shared"`` uses one MoE instance after every block (as the reference does);
``"per_block"`` gives every block its own MoE.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, MLPBlock, PatchEmbeddingBlock
from torch import nn

from duetfair.errors import require
from duetfair.models.base import SegmentationModel
from duetfair.models.moe import DistributionAwareMoE

__all__ = ["ViTSegConfig", "ViTSeg", "VIT_PRESETS", "TransformerBlock"]


@dataclass(frozen=True)
class ViTSegConfig:
    """Sizes of a :class:`ViTSeg` (see :data:`VIT_PRESETS`)."""

    img_size: int
    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_ratio: int = 4
    head_channels: int = 512
    decoder_channels: tuple[int, ...] = (256, 128, 64, 16)


#: ``tiny``: CPU demo; ``small``: ViT-S/16 width; ``base``: ViT-B/16 at 224 (dMoE / TransUNet paper).
VIT_PRESETS: dict[str, ViTSegConfig] = {
    "tiny": ViTSegConfig(
        img_size=64, patch_size=8, dim=96, depth=4, heads=4, head_channels=64, decoder_channels=(32, 16, 16)
    ),
    "small": ViTSegConfig(
        img_size=224, patch_size=16, dim=384, depth=8, heads=6, head_channels=256, decoder_channels=(128, 64, 32, 16)
    ),
    "base": ViTSegConfig(img_size=224, patch_size=16, dim=768, depth=12, heads=12),
}


def _conv_bn_relu(cin: int, cout: int) -> nn.Module:
    return Convolution(2, cin, cout, kernel_size=3, norm="batch", act="relu", bias=False)


class _UpBlock(nn.Sequential):
    """Bilinear x2 upsampling then two 3x3 conv-BN-ReLU (TransUNet decoder block without skip)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            _conv_bn_relu(cin, cout),
            _conv_bn_relu(cout, cout),
        )


class TransformerBlock(nn.Module):
    """Pre-norm ViT block on tokens ``[B, N, dim]``: ``h + attn(LN(h))`` then ``h + mlp(LN(h))``.

    Attention uses ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels where the
    device has them); the MLP is MONAI's ``MLPBlock`` (GELU).
    """

    def __init__(self, dim: int, mlp_dim: int, heads: int, dropout: float = 0.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.mlp = MLPBlock(dim, mlp_dim, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, N, C = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(B, N, C)))
        return h + self.mlp(self.norm2(h))


class ViTSeg(SegmentationModel):
    """2D ViT segmenter; ``moe="none" | "moe" | "dmoe"`` selects the residual MoE after blocks.

    Args:
        in_channels: image channels.
        num_classes: output classes including background.
        num_groups: attribute cardinality (or list, one per attribute) for ``moe="dmoe"``.
        preset: ``"tiny"``, ``"small"`` or ``"base"``; any field can be overridden by keyword
            (``img_size``, ``patch_size``, ``dim``, ``depth``, ``heads``, ``mlp_ratio``,
            ``head_channels``, ``decoder_channels``).
        moe: ``"none"``, ``"moe"`` (attribute-blind, one router) or ``"dmoe"``.
        moe_sharing: ``"shared"`` (one MoE after all blocks, reference) or ``"per_block"``.
        dropout: dropout in the embedding and transformer blocks.
        moe_kwargs: passed to :class:`DistributionAwareMoE` (``num_experts``, ``top_k``,
            ``hidden_mult``, ``dropout``, ``noisy_gating``, ``eval_noise``,
            ``load_balance_weight``, ``multi_attribute``, ``dispatch``).

    ``forward(image [B, C, S, S], group)`` -> logits ``[B, num_classes, S, S]`` with
    ``S = img_size``; features are the mean of the final encoder tokens ``[B, dim]``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_groups: int | Sequence[int] = 1,
        *,
        preset: str = "tiny",
        moe: Literal["none", "moe", "dmoe"] = "none",
        moe_sharing: Literal["shared", "per_block"] = "shared",
        dropout: float = 0.0,
        moe_kwargs: dict | None = None,
        **overrides,
    ) -> None:
        super().__init__()
        require(preset in VIT_PRESETS, f"preset: expected one of {sorted(VIT_PRESETS)}, got {preset!r}")
        unknown = set(overrides) - set(asdict(VIT_PRESETS[preset]))
        require(not unknown, f"ViTSeg: unknown option(s) {sorted(unknown)}")
        if "decoder_channels" in overrides:
            overrides["decoder_channels"] = tuple(overrides["decoder_channels"])
        cfg = replace(VIT_PRESETS[preset], **overrides)
        require(in_channels >= 1 and num_classes >= 1, "ViTSeg: in_channels and num_classes must be >= 1")
        require(moe in ("none", "moe", "dmoe"), f"moe: expected 'none', 'moe' or 'dmoe', got {moe!r}")
        require(
            moe_sharing in ("shared", "per_block"),
            f"moe_sharing: expected 'shared' or 'per_block', got {moe_sharing!r}",
        )
        p = cfg.patch_size
        require(p >= 2 and p & (p - 1) == 0, f"patch_size: expected a power of two >= 2, got {p}")
        require(cfg.img_size % p == 0, f"img_size {cfg.img_size} must be divisible by patch_size {p}")
        require(cfg.dim % cfg.heads == 0, f"dim {cfg.dim} must be divisible by heads {cfg.heads}")
        ups = int(math.log2(p))
        require(
            len(cfg.decoder_channels) == ups,
            f"decoder_channels: expected {ups} stages for patch_size {p}, got {len(cfg.decoder_channels)}",
        )
        self.config, self.in_channels, self.num_classes, self.spatial_dims = cfg, in_channels, num_classes, 2
        self.feature_dim, self.moe_mode, self.moe_sharing = cfg.dim, moe, moe_sharing
        self.grid = cfg.img_size // p

        self.embed = PatchEmbeddingBlock(
            in_channels, cfg.img_size, p, cfg.dim, cfg.heads, proj_type="conv", dropout_rate=dropout, spatial_dims=2
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.mlp_ratio * cfg.dim, cfg.heads, dropout, qkv_bias=True)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        groups = 1 if moe == "moe" else num_groups
        n_moe = 0 if moe == "none" else (1 if moe_sharing == "shared" else cfg.depth)
        self.moes = nn.ModuleList(DistributionAwareMoE(cfg.dim, groups, **(moe_kwargs or {})) for _ in range(n_moe))
        chans = [cfg.head_channels, *cfg.decoder_channels]
        self.conv_more = _conv_bn_relu(cfg.dim, cfg.head_channels)
        self.decoder = nn.Sequential(*(_UpBlock(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.head = nn.Conv2d(chans[-1], num_classes, kernel_size=3, padding=1)

    def _moe_for(self, i: int) -> DistributionAwareMoE | None:
        if not len(self.moes):
            return None
        return self.moes[0] if self.moe_sharing == "shared" else self.moes[i]

    def encode(self, image: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder tokens ``[B, (S/p)^2, dim]`` after the final LayerNorm."""
        self.check_input(image)
        S = self.config.img_size
        require(
            tuple(image.shape[2:]) == (S, S), f"ViTSeg: expected {S}x{S} images (img_size), got {list(image.shape[2:])}"
        )
        self._start_forward()
        h = self.embed(image)
        for i, block in enumerate(self.blocks):
            h = block(h)
            moe = self._moe_for(i)
            if moe is not None:
                h = self._apply_moe(moe, h, None if self.moe_mode == "moe" else group)
        return self.norm(h)

    def forward_features(
        self, image: torch.Tensor, group: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.encode(image, group)
        B, N, C = tokens.shape
        fmap = tokens.transpose(1, 2).reshape(B, C, self.grid, self.grid)
        logits = self.head(self.decoder(self.conv_more(fmap)))
        return logits, tokens.mean(1)
