"""Build segmentation models by name, and count their parameters and FLOPs.

Names (``MODEL_NAMES``):

* ``vit_seg``, ``vit_seg_moe``, ``vit_seg_dmoe``: 2D TransUNet-style ViT (:class:`ViTSeg`),
  without MoE, with an attribute-blind MoE, with the distribution-aware MoE;
* ``resunet3d``, ``resunet3d_moe``, ``resunet3d_dmoe``: residual U-Net (:class:`ResUNet`);
* ``unet``, ``segresnet``, ``swinunetr``: MONAI networks (FairMedSeg backbones) wrapped into the
  same contract (:class:`MonaiSegmenter`; attribute-blind, ``group`` ignored).

Every model has ``forward(image, group=None)``, ``forward_features``, ``feature_dim`` and
``aux_loss()`` (see :mod:`duetfair.models.base`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from duetfair.errors import DuetfairError, require
from duetfair.models.base import SegmentationModel
from duetfair.models.resunet3d import ResUNet
from duetfair.models.vit_seg import ViTSeg
from duetfair.options import MoeKind

__all__ = [
    "MODEL_NAMES",
    "MOE_BACKBONES",
    "build_model",
    "count_params_flops",
    "moe_kind",
    "variant_name",
    "MonaiSegmenter",
]


class MonaiSegmenter(SegmentationModel):
    """A MONAI network in the duetfair contract; features are the pooled output of ``feature_module``.

    Args:
        net: the MONAI network (``net(image) -> logits``).
        feature_module: submodule whose output (``[B, feature_dim, *spatial]``) is pooled into the
            features; captured with a forward hook.
        feature_dim: channels of that output.
        in_channels, num_classes, spatial_dims: as the network was built.
        divisor: spatial sizes must be divisible by this.
    """

    def __init__(
        self,
        net: nn.Module,
        feature_module: nn.Module,
        feature_dim: int,
        *,
        in_channels: int,
        num_classes: int,
        spatial_dims: int,
        divisor: int = 1,
    ) -> None:
        super().__init__()
        self.net, self.feature_dim, self.divisor = net, feature_dim, divisor
        self.in_channels, self.num_classes, self.spatial_dims = in_channels, num_classes, spatial_dims
        self._captured: list[torch.Tensor] = []
        feature_module.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._captured.append(output)

    def forward_features(
        self, image: torch.Tensor, group: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(image, self.divisor)
        self._start_forward()
        self._captured = []
        try:
            logits = self.net(image)
            feats = self._captured[-1].flatten(2).mean(-1)
        finally:
            self._captured = []
        return logits, feats


def _spatial_dims(img_size: int | Sequence[int] | None, spatial_dims: int | None, default: int) -> int:
    if spatial_dims is None:
        spatial_dims = len(img_size) if isinstance(img_size, (list, tuple)) else default
    require(spatial_dims in (2, 3), f"spatial_dims: expected 2 or 3, got {spatial_dims}")
    return spatial_dims


def _square_size(img_size: int | Sequence[int] | None) -> dict:
    if img_size is None:
        return {}
    if isinstance(img_size, (list, tuple)):
        require(len(set(img_size)) == 1, f"img_size: vit_seg needs a square image, got {list(img_size)}")
        img_size = img_size[0]
    return {"img_size": int(img_size)}


def _vit(moe: str) -> Callable[..., nn.Module]:
    def build(*, in_channels: int, num_classes: int, num_groups, img_size=None, spatial_dims=None, **kw) -> nn.Module:
        require(_spatial_dims(img_size, spatial_dims, 2) == 2, "vit_seg is 2D: spatial_dims must be 2")
        return ViTSeg(in_channels, num_classes, num_groups, moe=moe, **_square_size(img_size), **kw)

    return build


def _resunet(moe: str) -> Callable[..., nn.Module]:
    def build(*, in_channels: int, num_classes: int, num_groups, img_size=None, spatial_dims=None, **kw) -> nn.Module:
        sd = _spatial_dims(img_size, spatial_dims, 3)
        return ResUNet(in_channels, num_classes, num_groups, spatial_dims=sd, moe=moe, img_size=img_size, **kw)

    return build


def _unet(
    *,
    in_channels: int,
    num_classes: int,
    num_groups,
    img_size=None,
    spatial_dims=None,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    strides: Sequence[int] = (2, 2, 2, 2),
    num_res_units: int = 2,
    **kw,
) -> nn.Module:
    from monai.networks.layers.simplelayers import SkipConnection
    from monai.networks.nets import UNet

    sd = _spatial_dims(img_size, spatial_dims, 2)
    net = UNet(
        sd,
        in_channels,
        num_classes,
        channels=tuple(channels),
        strides=tuple(strides),
        num_res_units=num_res_units,
        **kw,
    )
    bottom = net.model
    while isinstance(bottom, nn.Sequential) and len(bottom) == 3 and isinstance(bottom[1], SkipConnection):
        bottom = bottom[1].submodule
    divisor = 1
    for s in strides:
        divisor *= int(s)
    return MonaiSegmenter(
        net,
        bottom,
        int(channels[-1]),
        in_channels=in_channels,
        num_classes=num_classes,
        spatial_dims=sd,
        divisor=divisor,
    )


def _segresnet(
    *,
    in_channels: int,
    num_classes: int,
    num_groups,
    img_size=None,
    spatial_dims=None,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    **kw,
) -> nn.Module:
    from monai.networks.nets import SegResNet

    sd = _spatial_dims(img_size, spatial_dims, 2)
    net = SegResNet(sd, init_filters, in_channels, num_classes, blocks_down=tuple(blocks_down), **kw)
    levels = len(blocks_down)
    return MonaiSegmenter(
        net,
        net.down_layers[-1],
        init_filters * 2 ** (levels - 1),
        in_channels=in_channels,
        num_classes=num_classes,
        spatial_dims=sd,
        divisor=2 ** (levels - 1),
    )


def _swinunetr(
    *, in_channels: int, num_classes: int, num_groups, img_size=None, spatial_dims=None, feature_size: int = 24, **kw
) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    sd = _spatial_dims(img_size, spatial_dims, 2)
    require(feature_size % 12 == 0, f"swinunetr: feature_size must be divisible by 12, got {feature_size}")
    net = SwinUNETR(in_channels, num_classes, feature_size=feature_size, spatial_dims=sd, **kw)
    return MonaiSegmenter(
        net,
        net.encoder10,
        16 * feature_size,
        in_channels=in_channels,
        num_classes=num_classes,
        spatial_dims=sd,
        divisor=32,
    )


MOE_VARIANTS: dict[str, str] = {MoeKind.NONE.value: "", MoeKind.MOE.value: "_moe", MoeKind.DMOE.value: "_dmoe"}
"""MoE kind -> registry-name suffix of a backbone's variant (``vit_seg`` -> ``vit_seg_dmoe``)."""

_BACKBONES: dict[str, Callable[[str], Callable[..., nn.Module]]] = {"vit_seg": _vit, "resunet3d": _resunet}
MOE_BACKBONES: tuple[str, ...] = tuple(_BACKBONES)
"""Backbones with ``_moe`` (attribute-blind) and ``_dmoe`` (attribute-routed) variants."""

_MOE_KIND: dict[str, str] = {b + suffix: kind for b in _BACKBONES for kind, suffix in MOE_VARIANTS.items()}
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{name: _BACKBONES[name.removesuffix(MOE_VARIANTS[kind])](kind) for name, kind in _MOE_KIND.items()},
    "unet": _unet,
    "segresnet": _segresnet,
    "swinunetr": _swinunetr,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def moe_kind(name: str) -> str:
    """``"none"``, ``"moe"`` (attribute-blind experts) or ``"dmoe"`` (attribute-routed) of model ``name``."""
    return _MOE_KIND.get(name, "none")


def variant_name(backbone: str, kind: str) -> str:
    """Registry name of ``backbone``'s variant ``kind`` (``("vit_seg", "dmoe")`` -> ``vit_seg_dmoe``)."""
    require(backbone in _BACKBONES, f"model '{backbone}' has no MoE variants; expected one of {list(MOE_BACKBONES)}")
    return backbone + MOE_VARIANTS[kind]


def build_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    num_groups: int | list[int] = 1,
    img_size: int | Sequence[int] | None = None,
    **kwargs,
) -> SegmentationModel:
    """Build the model ``name`` (one of :data:`MODEL_NAMES`).

    Args:
        name: registry name.
        in_channels: image channels.
        num_classes: classes including background.
        num_groups: cardinality of the routing attribute, or one per attribute (dMoE variants;
            ignored by attribute-blind models).
        img_size: input size (``vit_seg``: square side, sets the positional embedding; others:
            used to infer ``spatial_dims`` when given as a sequence).
        **kwargs: model options, e.g. ``spatial_dims``, ``preset``/``dim``/``depth``
            (``vit_seg*``), ``feature_size`` (``resunet3d*``, ``swinunetr``), ``moe_kwargs``
            (MoE variants: ``num_experts``, ``top_k``, ``load_balance_weight``...), ``moe_sharing``.

    Example:
        >>> model = build_model("vit_seg_dmoe", in_channels=3, num_classes=3, num_groups=3, img_size=64)
    """
    if name not in _BUILDERS:
        raise DuetfairError(f"model: unknown name {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if "moe_kwargs" in kwargs and moe_kind(name) == "none":
        raise DuetfairError(f"model {name!r}: moe_kwargs only apply to the *_moe / *_dmoe models")
    try:
        return _BUILDERS[name](
            in_channels=in_channels, num_classes=num_classes, num_groups=num_groups, img_size=img_size, **kwargs
        )
    except TypeError as exc:  # unknown keyword for this model
        raise DuetfairError(f"model {name!r}: {exc}") from exc


def count_params_flops(model: nn.Module, input_shape: Sequence[int], group: torch.Tensor | None = None) -> dict:
    """Parameters and forward FLOPs of ``model`` on a random input of ``input_shape`` (eval mode).

    FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs;
    matmuls and convolutions) and include only the experts a token is routed to.

    Returns:
        ``{"params": int, "flops": int, "gflops": float}``.
    """
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        image = torch.randn(*input_shape, device=device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(image, None if group is None else group.to(device))
        flops = int(counter.get_total_flops())
    finally:
        model.train(was_training)
    return {"params": params, "flops": flops, "gflops": flops / 1e9}
