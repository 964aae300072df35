"""duetfair.models: networks that map (image, attributes) -> logits.

* :class:`~duetfair.models.moe.DistributionAwareMoE` / :class:`~duetfair.models.moe.MoE`: the
  (distribution-aware) mixture-of-experts layer with vectorised dispatch;
* :func:`~duetfair.models.registry.build_model`: networks by name (``vit_seg[_moe|_dmoe]``,
  ``resunet3d[_moe|_dmoe]``, ``unet``, ``segresnet``, ``swinunetr``);
* :func:`~duetfair.models.registry.count_params_flops`: parameter and FLOP counts.
"""

from duetfair.models.moe import DistributionAwareMoE, MoE
from duetfair.models.registry import MODEL_NAMES, build_model, count_params_flops

__all__ = ["DistributionAwareMoE", "MoE", "MODEL_NAMES", "build_model", "count_params_flops"]
