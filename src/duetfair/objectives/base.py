"""Common interface of every training objective.

An :class:`Objective` turns per-case losses ``l_i`` (shape ``[B]``, from
:class:`~duetfair.objectives.per_case.PerCaseDiceCE`) and one group id per case (``[B]``, one
attribute's code or the :class:`~duetfair.data.groups.GroupSpec` intersection id; ``-1`` = unknown)
into one scalar training loss. Objectives that need more of the batch say so in ``requires``
(subset of ``{"logits", "target", "features", "case_ids"}``) and receive it as keyword arguments.

Unknown attribute (``-1``)
--------------------------
Unknown-attribute cases are *counted in ERM terms and excluded from group terms*: they never enter
group statistics (GroupDRO losses, FEBS group Dice, CVaR thresholds, adversarial targets). In the
purely group-weighted objectives (GroupDRO, FairDRO) the known cases share the fraction
``n_known / N`` of the loss through the group weights and each unknown case keeps its ERM weight
``1 / N`` (:func:`mix_unknown`), so a batch without unknowns gives the pure group objective and a
batch of unknowns only gives ERM. ``N`` and ``n_known`` are global (all DDP ranks).

State and DDP
-------------
All state lives in registered buffers / parameters (``state_dict()`` restores it exactly). Group
statistics are reduced across DDP ranks (:mod:`duetfair.objectives.distributed`) so every rank
holds identical state, and each rank returns its share of the global loss scaled by the world size
so that DDP's gradient averaging reproduces the single-process gradient.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from duetfair.errors import require
from duetfair.objectives.distributed import all_reduce_sum, rank_share

if TYPE_CHECKING:
    import pandas as pd

    from duetfair.objectives.stage import FirstStageCases

__all__ = [
    "Objective",
    "ObjectiveContext",
    "ValidationResult",
    "EXTRA_INPUTS",
    "check_batch",
    "erm_weights",
    "mix_unknown",
    "weighted_loss",
]


@dataclass(frozen=True)
class ObjectiveContext:
    """What the trainer knows when it builds an objective (see :meth:`Objective.from_context`).

    Attributes:
        num_groups: number of group ids ``G`` of the objective attribute.
        group_counts: training cases per group id ``[G]`` (unknown cases not counted).
        feature_dim: width ``F`` of the model's pooled features (``None`` if it has none).
        loss: options of the per-case loss (``objective.loss`` of the config).
        first_stage: what a first, plain training run learnt about every training case (only for
            objectives with ``needs_first_stage``): a
            :class:`~duetfair.objectives.stage.FirstStageCases`.
    """

    num_groups: int
    group_counts: tuple[int, ...] = ()
    feature_dim: int | None = None
    loss: Mapping[str, Any] = field(default_factory=dict)
    first_stage: "FirstStageCases | None" = None


@dataclass
class ValidationResult:
    """What the trainer hands to :meth:`Objective.on_validation_end` after every validation.

    Attributes:
        cases: validation per-case table (``case_id``, case-level ``dice``, raw attribute columns).
        train_labels: training cases' discrete attribute labels (``case_id`` + one column per
            audited attribute, NaN = unknown), as the group spec names them.
        subgroups: divergent subgroups of validation Dice mined by the trainer (only for objectives
            with ``needs_subgroups``; otherwise ``None``).
    """

    cases: "pd.DataFrame"
    train_labels: "pd.DataFrame"
    subgroups: "pd.DataFrame | None" = None


EXTRA_INPUTS = frozenset({"logits", "target", "features", "case_ids"})


def check_batch(losses: torch.Tensor, group: torch.Tensor, num_groups: int) -> None:
    """Validate per-case losses ``[B]`` (float) and group ids ``[B]`` (integer in ``[-1, G)``)."""
    require(
        isinstance(losses, torch.Tensor) and losses.ndim == 1 and losses.numel() > 0,
        f"objective: losses must be a non-empty 1-D tensor [B] of per-case losses, got shape "
        f"{tuple(getattr(losses, 'shape', ()))}",
    )
    require(losses.is_floating_point(), f"objective: losses must be floating point, got {losses.dtype}")
    require(
        isinstance(group, torch.Tensor) and group.shape == losses.shape,
        f"objective: group must be a tensor [B] = {tuple(losses.shape)} with one id per case "
        f"(pick one attribute or use GroupSpec.intersection), got shape "
        f"{tuple(getattr(group, 'shape', ()))}",
    )
    require(
        not group.is_floating_point() and not group.dtype == torch.bool,
        f"objective: group must hold integer ids, got {group.dtype}",
    )
    if group.numel() and group.device.type == "cpu":  # on an accelerator the check would sync every step
        lo, hi = int(group.min()), int(group.max())
        require(
            lo >= -1 and hi < num_groups,
            f"objective: group ids must lie in [-1, {num_groups - 1}] (num_groups={num_groups}, "
            f"-1 = unknown), got values in [{lo}, {hi}]",
        )


def erm_weights(losses: torch.Tensor) -> torch.Tensor:
    """ERM weights ``1 / N`` for every case, ``N`` the global batch size. Shape ``[B]``."""
    n = all_reduce_sum(torch.tensor(float(losses.numel()), device=losses.device, dtype=losses.dtype))
    return torch.full_like(losses.detach(), 1.0) / n


def mix_unknown(group_weights: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Combine group weights of known cases with ERM weights of unknown-attribute cases.

    Args:
        group_weights: ``[B]`` detached weights; over the known cases of the global batch they sum
            to 1 (values at unknown cases are ignored).
        group: ``[B]`` group ids, ``-1`` unknown.

    Returns:
        ``[B]`` weights: ``(n_known / N) * group_weights`` for known cases, ``1 / N`` for unknown
        ones (global counts), summing to 1 over the global batch.
    """
    known = group >= 0
    counts = torch.stack([known.sum(), torch.tensor(known.numel(), device=known.device)]).to(group_weights.dtype)
    n_known, n = all_reduce_sum(counts).unbind()
    mixed = group_weights * (n_known / n)
    return torch.where(known, mixed, torch.ones_like(mixed) / n)


def weighted_loss(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """This rank's share ``world_size * sum_i w_i l_i`` of a globally weighted loss (scalar)."""
    return rank_share((weights.detach() * losses).sum())


class Objective(nn.Module, abc.ABC):
    """Base class: validates the batch, then calls :meth:`compute`.

    Subclasses set ``requires`` and implement ``compute(losses, group, **extras) -> Tensor[]``.

    Args:
        num_groups: number of group ids ``G`` (ids ``0..G-1``; ``-1`` unknown).
    """

    requires: frozenset[str] = frozenset()
    needs_subgroups: ClassVar[bool] = False
    """True when :meth:`on_validation_end` needs the divergent subgroups of validation Dice."""
    needs_first_stage: ClassVar[bool] = False
    """True when :meth:`from_context` needs a first, plain training run's per-case results
    (``ObjectiveContext.first_stage``; the trainer runs it, config ``objective.first_stage``)."""

    def __init__(self, num_groups: int) -> None:
        super().__init__()
        require(
            isinstance(num_groups, int) and num_groups >= 1,
            f"objective: num_groups must be a positive integer, got {num_groups!r}",
        )
        self.num_groups = num_groups

    def forward(
        self,
        losses: torch.Tensor,
        group: torch.Tensor,
        *,
        logits: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        case_ids: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Training loss (scalar) from per-case ``losses [B]`` and ``group [B]``.

        ``logits [B, K, *spatial]``, ``target [B, 1, *spatial]``, ``features [B, F]`` and
        ``case_ids`` (``B`` strings) are needed only by objectives listing them in ``requires``.
        """
        check_batch(losses, group, self.num_groups)
        extras: dict[str, Any] = {"logits": logits, "target": target, "features": features, "case_ids": case_ids}
        for name in sorted(self.requires):
            require(extras[name] is not None, f"objective '{type(self).__name__}': needs '{name}' for every batch")
        return self.compute(losses, group, **{k: extras[k] for k in self.requires})

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "Objective":
        """Build the objective from the trainer's context and the config's ``options``; objectives
        that need training group counts, model features or the per-case loss options override this."""
        return cls(context.num_groups, **options)

    def on_validation_end(self, result: ValidationResult) -> None:
        """Called after every validation (e.g. to refresh per-case weights); no-op by default."""

    @abc.abstractmethod
    def compute(self, *args: Any, **extras: Any) -> torch.Tensor:
        """Objective-specific loss ``compute(losses [B], group [B], **extras) -> Tensor[]``; receives
        only the extra inputs listed in ``requires`` (subclasses name them as keyword arguments)."""

    def log_values(self) -> dict[str, float]:
        """Scalars worth logging after a step (e.g. GroupDRO weights); empty by default."""
        return {}

    def sampling_weights(self, case_ids: Sequence[str]) -> torch.Tensor | None:
        """Per-case sampling weights ``[N]`` (float64, > 0 somewhere) of the training cases
        ``case_ids``, when the objective decides how often cases are drawn (JTT's up-sampling,
        subclass-balanced batches); ``None`` (default): the trainer's own sampling."""
        return None

    def case_subgroups(self) -> "pd.DataFrame | None":
        """The training cases' subgroups the objective found itself (columns ``case_id``,
        ``subgroup``), written to the run folder and reported; ``None`` by default."""
        return None
