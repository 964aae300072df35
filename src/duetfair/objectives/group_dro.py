"""GroupDRO (Sagawa et al., ICLR 2020): online exponentiated-gradient weights over groups.

Per step, with ``l_g`` the mean loss of group ``g`` in the (global) batch (0 when absent):

* adjusted loss ``a_g = l_g + C_g / sqrt(N_g)`` (generalisation adjustment, ``N_g`` training size);
  optionally normalised ``a_g / sum_k a_k``;
* ``q_g <- q_g exp(step_size * a_g)``, ``q <- q / sum q`` (detached; only in ``train()`` mode);
* loss ``sum_g q_g l_g`` (the adjustment only steers ``q``, as in the reference code).

Absent groups keep their loss at 0, so their weight decays relative to the others and their share
of the loss is dropped for that step (reference behaviour); ``renormalize_present=True`` instead
rescales the present groups' weights to sum to one. Unknown-attribute cases (``-1``) do not enter
``l_g`` or ``q``; they keep their ERM weight ``1/N`` and the group term gets the share
``n_known / N`` (see :func:`duetfair.objectives.base.mix_unknown`).
"""

from __future__ import annotations

from typing import Any, Sequence, cast

import torch
from torch.utils.data import WeightedRandomSampler

from duetfair.errors import require
from duetfair.objectives.base import Objective, ObjectiveContext, mix_unknown, weighted_loss
from duetfair.objectives.distributed import group_sums

__all__ = ["GroupDRO", "group_balanced_sampler", "group_balanced_weights"]


class GroupDRO(Objective):
    """GroupDRO objective with state ``q`` (buffer, restored by ``load_state_dict``).

    Args:
        num_groups: number of groups ``G``.
        step_size: exponentiated-gradient step ``eta`` (reference: 0.01).
        adjustment: generalisation adjustment ``C`` (scalar or one per group; reference default 0).
        group_counts: training-set size ``N_g`` of each group; required when ``adjustment != 0``.
        normalize_loss: divide the adjusted group losses by their sum before the ``q`` update.
        renormalize_present: weight only the groups present in the batch, rescaled to sum to one.

    Example:
        >>> objective = GroupDRO(num_groups=3, step_size=0.5)
        >>> loss = objective(torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([0, 1, 2, 2]))
        >>> objective.q  # the worst group (2, mean loss 4.5) gains weight
        tensor([0.1190, 0.1962, 0.6848])
    """

    # buffers (register_buffer), typed for mypy
    q: torch.Tensor
    adjust: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        *,
        step_size: float = 0.01,
        adjustment: float | Sequence[float] = 0.0,
        group_counts: Sequence[int] | None = None,
        normalize_loss: bool = False,
        renormalize_present: bool = False,
    ) -> None:
        super().__init__(num_groups)
        require(step_size >= 0, f"group_dro: step_size must be >= 0, got {step_size}")
        self.step_size = float(step_size)
        self.normalize_loss = normalize_loss
        self.renormalize_present = renormalize_present
        self.register_buffer("q", torch.full((num_groups,), 1.0 / num_groups))
        self.register_buffer("adjust", _adjustment(adjustment, group_counts, num_groups))

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "GroupDRO":
        """Training group counts (for the generalisation adjustment) come from the trainer."""
        options.setdefault("group_counts", list(context.group_counts) or None)
        return cls(context.num_groups, **options)

    def compute(self, losses: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """``sum_g q_g l_g`` as one weighted sum of ``losses [B]`` (updates ``q`` in train mode)."""
        sums, counts = group_sums(losses, group, self.num_groups)
        group_loss = sums / counts.clamp_min(1)
        if self.training:
            self._update_q(group_loss)
        q = self.q.to(losses.dtype)
        if self.renormalize_present:
            q = q * (counts > 0)
            q = q / q.sum()
        known = group >= 0
        per_case = (q / counts.clamp_min(1))[group.clamp_min(0)]
        weights = mix_unknown(torch.where(known, per_case, torch.zeros_like(per_case)), group)
        return weighted_loss(losses, weights)

    def _update_q(self, group_loss: torch.Tensor) -> None:
        adjusted = group_loss + self.adjust.to(group_loss)
        if self.normalize_loss:
            adjusted = adjusted / adjusted.sum().clamp_min(torch.finfo(adjusted.dtype).tiny)
        q = self.q * torch.exp(self.step_size * adjusted.to(self.q))
        self.q.copy_(q / q.sum())

    def log_values(self) -> dict[str, float]:
        """Current group weights ``q_g`` as ``{"q_0": ..., ...}``."""
        return {f"q_{g}": float(v) for g, v in enumerate(self.q)}


def _adjustment(
    adjustment: float | Sequence[float], group_counts: Sequence[int] | None, num_groups: int
) -> torch.Tensor:
    c = torch.as_tensor(adjustment, dtype=torch.float32).reshape(-1)
    require(
        c.numel() in (1, num_groups), f"group_dro: adjustment must be a number or {num_groups} numbers, got {c.numel()}"
    )
    if not bool((c != 0).any()):
        return torch.zeros(num_groups)
    require(
        group_counts is not None and len(group_counts) == num_groups,
        f"group_dro: adjustment {c.tolist()} needs group_counts with {num_groups} training-set sizes",
    )
    n = torch.as_tensor(list(group_counts or []), dtype=torch.float32)  # checked above
    require(bool((n > 0).all()), f"group_dro: group_counts must all be > 0, got {n.tolist()}")
    return c.expand(num_groups) / n.sqrt()


def group_balanced_weights(groups: Sequence[int] | torch.Tensor, *, unknown: str = "group") -> torch.Tensor:
    """Sampling weight ``N / N_g`` per case so every group is drawn equally often.

    Args:
        groups: ``[N]`` group id per training case (``-1`` unknown).
        unknown: ``"group"`` treats unknown-attribute cases as one more group (drawn as often as
            each real group); ``"drop"`` never draws them.

    Returns:
        ``[N]`` float64 weights.
    """
    require(unknown in ("group", "drop"), f"group_balanced_sampler: unknown must be 'group' or 'drop', got {unknown!r}")
    g = torch.as_tensor(groups, dtype=torch.long).reshape(-1)
    require(g.numel() > 0, "group_balanced_sampler: groups is empty; expected one group id per training case")
    ids, inverse, counts = torch.unique(g, return_inverse=True, return_counts=True)
    weights = (g.numel() / counts.double())[inverse]
    if unknown == "drop":
        weights = torch.where(g < 0, torch.zeros_like(weights), weights)
    require(bool((weights > 0).any()), "group_balanced_sampler: every case has an unknown group; nothing to draw")
    return weights


def group_balanced_sampler(
    groups: Sequence[int] | torch.Tensor,
    *,
    num_samples: int | None = None,
    replacement: bool = True,
    generator: torch.Generator | None = None,
    unknown: str = "group",
) -> WeightedRandomSampler:
    """``WeightedRandomSampler`` drawing each group equally often (weights ``N / N_g``).

    Example:
        >>> train_groups = torch.tensor([0, 0, 0, 1])  # one id per training case
        >>> sampler = group_balanced_sampler(train_groups, generator=torch.Generator().manual_seed(0))
        >>> len(sampler), sampler.weights  # each group's cases weigh 4 in all: half of the draws each
        (4, tensor([1.3333, 1.3333, 1.3333, 4.0000], dtype=torch.float64))
    """
    weights = group_balanced_weights(groups, unknown=unknown)
    n = weights.numel() if num_samples is None else num_samples
    require(n > 0, f"group_balanced_sampler: num_samples must be > 0, got {n}")
    return WeightedRandomSampler(
        cast(Sequence[float], weights), num_samples=n, replacement=replacement, generator=generator
    )  # a weight tensor [N] is what torch passes on
