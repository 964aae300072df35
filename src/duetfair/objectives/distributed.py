"""Cross-rank reduction of group statistics (no-ops outside ``torch.distributed``).

Every fairness objective takes its decisions (GroupDRO weights, FEBS scales, CVaR thresholds,
weighted means) from *global* batch statistics: the per-group sums and counts of all ranks. The
helpers here reduce **detached** tensors only, so no gradient crosses ranks; gradients are averaged
by ``DistributedDataParallel`` as usual.

Loss convention under DDP
-------------------------
An objective's loss is a weighted sum ``L = sum_i w_i * l_i`` over the *global* batch (all ranks
concatenated), with detached weights ``w_i`` computed from global statistics. Each rank returns
``world_size * sum_{i on this rank} w_i * l_i`` (see :func:`rank_share`). DDP averages gradients
over ranks, so the averaged gradient equals the gradient of ``L`` computed by one process on the
concatenated batch, and the mean over ranks of the returned values equals ``L`` (use
:func:`mean_over_ranks` for logging). Without an initialised process group ``world_size == 1``
and every helper returns its input.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "is_distributed",
    "world_size",
    "all_reduce_sum",
    "all_reduce_max",
    "all_gather_cat",
    "group_sums",
    "rank_share",
    "mean_over_ranks",
]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside distributed training)."""
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of a detached copy of ``tensor`` over all ranks (same shape; input unchanged)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of a detached copy of ``tensor`` over all ranks."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def all_gather_cat(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate a detached 1-D ``tensor`` of any length over ranks, in rank order.

    Returns ``(gathered [sum_r n_r], offset)`` where ``offset`` is the position of this rank's first
    element in the gathered vector, so ``gathered[offset:offset + n]`` is the local input.
    """
    local = tensor.detach().reshape(-1)
    if not is_distributed():
        return local.clone(), 0
    size = torch.tensor([local.numel()], device=local.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    padded = torch.zeros(max(counts), dtype=local.dtype, device=local.device)
    padded[: local.numel()] = local
    parts = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    gathered = torch.cat([p[:n] for p, n in zip(parts, counts)])
    return gathered, sum(counts[: dist.get_rank()])


def group_sums(values: torch.Tensor, group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global per-group sums and counts of detached ``values``.

    Args:
        values: ``[B]`` or ``[B, ...]`` per-case values (detached inside).
        group: ``[B]`` group ids in ``[-1, num_groups)``; ``-1`` (unknown) is left out.
        num_groups: number of groups ``G``.

    Returns:
        ``(sums [G, ...], counts [G])`` summed over all ranks; counts are in ``values.dtype``.
    """
    # unknown cases add an exact zero to group 0: no boolean-mask indexing, which would read the
    # number of known cases on the host (a device synchronisation every step on a GPU)
    vals = values.detach()
    known = (group >= 0).view(-1, *([1] * (vals.ndim - 1)))
    idx = group.clamp_min(0)
    sums = torch.zeros((num_groups, *vals.shape[1:]), dtype=vals.dtype, device=vals.device)
    sums.index_add_(0, idx, torch.where(known, vals, torch.zeros_like(vals)))
    counts = torch.zeros(num_groups, dtype=vals.dtype, device=vals.device)
    counts.index_add_(0, idx, known.reshape(-1).to(vals.dtype))
    if is_distributed():
        packed = all_reduce_sum(torch.cat([sums.reshape(num_groups, -1), counts[:, None]], dim=1))
        return packed[:, :-1].reshape(sums.shape), packed[:, -1]
    return sums, counts


def rank_share(weighted_sum: torch.Tensor) -> torch.Tensor:
    """Scale this rank's part of a globally weighted sum so that DDP's gradient mean is exact."""
    return weighted_sum * world_size()


def mean_over_ranks(value: torch.Tensor) -> float:
    """Mean over ranks of a scalar (e.g. the returned loss, for logging); the value itself if not DDP."""
    return float(all_reduce_sum(value.reshape(1).float())[0]) / world_size()
