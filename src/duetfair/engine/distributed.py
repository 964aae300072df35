"""torchrun / DistributedDataParallel helpers.

``torchrun --nproc_per_node N -m duetfair train cfg.yaml`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process group
(``nccl`` when CUDA is available, ``gloo`` on CPU). Training shards are equal-sized (padded by
wrap-around like ``DistributedSampler``); evaluation shards are disjoint and **not** padded
(:func:`eval_shard`), so no case is counted twice, and rank 0 gathers the per-case tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from duetfair.errors import DuetfairError
from duetfair.objectives.distributed import all_reduce_sum


@dataclass(frozen=True)
class DistInfo:
    """Process placement: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Placement from torchrun environment variables (single process when they are absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_from_env(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group if launched by torchrun; return placement and the device to use.

    ``device``: ``auto`` (CUDA if available), ``cpu`` or ``cuda``. Backend: nccl for CUDA, else gloo.
    """
    info = env_info()
    if device == "cuda" and not torch.cuda.is_available():
        raise DuetfairError(
            "train.device=cuda but this machine has no usable CUDA device (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}); use train.device=auto or cpu"
        )
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        dev = torch.device("cuda", info.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=info.rank, world_size=info.world_size)
    return info, dev


DEFAULT_MAX_THREADS = 8
"""Default cap of CPU threads per process: beyond it OpenMP threads mostly wait on memory, and on
a shared machine spinning threads of several jobs slow every job down."""


def set_threads(threads: int | None, info: DistInfo | None = None) -> int:
    """Set torch's intra-op CPU threads: ``threads``, or the cores of this process (split between
    the local ranks of a torchrun job) capped at :data:`DEFAULT_MAX_THREADS`. Returns the number set."""
    info = info or env_info()
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size if info.enabled else 1))
        threads = max(1, min(DEFAULT_MAX_THREADS, cores // max(local, 1)))
    torch.set_num_threads(int(threads))
    return int(threads)


def current_info() -> DistInfo:
    """Placement of an already-initialised process group (or single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=env_info().local_rank)
    return DistInfo()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def train_shard(order: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's part of an epoch order: padded by wrap-around to a multiple of the world size
    (as ``DistributedSampler``), then every ``world_size``-th index from ``rank``."""
    if not info.enabled:
        return order
    n = order.numel()
    total = -(-n // info.world_size) * info.world_size
    if total > n:
        order = torch.cat([order, order[: total - n]])
    return order[info.rank :: info.world_size]


def eval_shard(n: int, info: DistInfo) -> list[int]:
    """Disjoint, unpadded indices of ``n`` cases for this rank (every case evaluated once)."""
    return list(range(info.rank, n, info.world_size))


def gather_objects(obj: Any, info: Optional[DistInfo] = None) -> list[Any]:
    """All-gather a picklable object; returns the list over ranks (``[obj]`` in one process)."""
    info = info or current_info()
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: torch.Tensor, info: Optional[DistInfo] = None) -> torch.Tensor:
    """Mean of a tensor over ranks (identity in one process)."""
    info = info or current_info()
    if not info.enabled:
        return value
    return all_reduce_sum(value) / info.world_size


def average_buffers(module: torch.nn.Module, info: Optional[DistInfo] = None) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks in place, so every
    rank validates and checkpoints the same model (DDP only broadcasts buffers before a forward)."""
    info = info or current_info()
    if not info.enabled:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf.data, op=dist.ReduceOp.SUM)
            buf.data /= info.world_size
