"""Feeding cases to the model without starving it.

Two sources of batches, same interface:

* :class:`CachedCases`: every case decoded once and stacked into contiguous tensors
  (``image [N, C, *S]``, ``label [N, 1, *S]``, ``codes [N, A]``); a batch is one ``index_select``.
  Used for synthetic and small data (``data.cache: true``), it costs nothing per step.
* :class:`LoaderCases`: a ``torch.utils.data.DataLoader`` over the dataset (workers, pinned memory)
  for data that does not fit in memory or has cases of different sizes.

Both iterate a given epoch order (a permutation made by the trainer from ``seed`` and the epoch,
so an interrupted run can resume at the exact batch). Augmentation (:func:`augment_batch`) runs on
batched tensors on the training device with a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from duetfair.data.dataset import collate_cases
from duetfair.errors import DuetfairError


@dataclass
class Batch:
    """A batch: ``image [B, C, *S]`` float32, ``label [B, 1, *S]`` int64, ``codes [B, A]`` int64
    attribute codes (-1 unknown), ``case_ids`` (B strings), ``index [B]`` positions in the split."""

    image: torch.Tensor
    label: torch.Tensor
    codes: torch.Tensor
    case_ids: list[str]
    index: torch.Tensor

    def to(self, device: torch.device, non_blocking: bool = True) -> "Batch":
        return Batch(
            self.image.to(device, non_blocking=non_blocking),
            self.label.to(device, non_blocking=non_blocking),
            self.codes.to(device, non_blocking=non_blocking),
            self.case_ids,
            self.index,
        )


class BatchSource(Protocol):
    """Anything that yields :class:`Batch` objects for a given order of case indices."""

    def __len__(self) -> int: ...

    def batches(self, order: torch.Tensor, batch_size: int, drop_last: bool = False) -> Iterator[Batch]: ...


class CachedCases:
    """All cases of a split decoded once and held as stacked tensors (see module docstring)."""

    def __init__(self, dataset: Dataset, progress: Optional[Any] = None, description: str = "caching") -> None:
        n = len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise DuetfairError(f"{description}: the split has no cases")
        cases = []
        task = progress.add_task(description, total=n) if progress is not None else None
        for i in range(n):
            cases.append(dataset[i])
            if progress is not None:
                progress.advance(task)
        if progress is not None:
            progress.remove_task(task)
        stacked = collate_cases(cases)
        self.image: torch.Tensor = stacked["image"].contiguous()
        self.label: torch.Tensor = stacked["label"].contiguous()
        self.codes: torch.Tensor = stacked["codes"]
        self.case_ids: list[str] = stacked["case_ids"]

    def __len__(self) -> int:
        return self.image.shape[0]

    def nbytes(self) -> int:
        """Memory held by the stacked tensors (bytes)."""
        return sum(t.numel() * t.element_size() for t in (self.image, self.label, self.codes))

    def to(self, device: torch.device) -> "CachedCases":
        """The same cases with the stacked tensors on ``device`` (batches are then cut there)."""
        moved = object.__new__(CachedCases)
        moved.image, moved.label, moved.codes = (t.to(device) for t in (self.image, self.label, self.codes))
        moved.case_ids = self.case_ids
        return moved

    def batches(self, order: torch.Tensor, batch_size: int, drop_last: bool = False) -> Iterator[Batch]:
        """Yield batches following ``order`` (indices into the split, on the CPU). With the cache on
        a device the order goes there once and every batch is cut there (no host copy)."""
        on_device = order.to(self.image.device, non_blocking=True)
        for start in range(0, order.numel(), batch_size):
            idx = order[start : start + batch_size]
            if drop_last and idx.numel() < batch_size:
                return
            didx = on_device[start : start + batch_size]
            yield Batch(
                self.image.index_select(0, didx),
                self.label.index_select(0, didx),
                self.codes.index_select(0, didx),
                [self.case_ids[i] for i in idx.tolist()],
                idx,
            )


class LoaderCases:
    """Batches through a ``DataLoader`` (workers decode cases in parallel)."""

    def __init__(self, dataset: Dataset, num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.codes: Optional[torch.Tensor] = None
        """Optional ``[N, A]`` attribute codes replacing the cases' own ``group`` (re-encoding)."""

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def batches(self, order: torch.Tensor, batch_size: int, drop_last: bool = False) -> Iterator[Batch]:
        chunks = [order[i : i + batch_size].tolist() for i in range(0, order.numel(), batch_size)]
        if drop_last and chunks and len(chunks[-1]) < batch_size:
            chunks = chunks[:-1]
        loader = DataLoader(
            self.dataset,
            batch_sampler=chunks,
            num_workers=self.num_workers,
            collate_fn=collate_cases,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
        for chunk, b in zip(chunks, loader):
            idx = torch.as_tensor(chunk, dtype=torch.long)
            codes = self.codes.index_select(0, idx) if self.codes is not None else b["codes"]
            yield Batch(b["image"], b["label"], codes, b["case_ids"], idx)


def make_source(
    dataset: Dataset,
    cache: bool,
    num_workers: int = 0,
    progress: Optional[Any] = None,
    description: str = "caching",
    codes: Optional[torch.Tensor] = None,
) -> BatchSource:
    """:class:`CachedCases` when ``cache`` else :class:`LoaderCases`; ``codes [N, A]`` replace the
    cases' own attribute codes (a run's spec applied to other data)."""
    source: CachedCases | LoaderCases
    if cache:
        source = CachedCases(dataset, progress=progress, description=description)
    else:
        source = LoaderCases(dataset, num_workers=num_workers, pin_memory=torch.cuda.is_available())
    if codes is not None:
        source.codes = codes
    return source


def epoch_order(n: int, seed: int, epoch: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Case order ``[n]`` of ``epoch``, a pure function of ``(seed, epoch)``: a permutation, or with
    sampling ``weights [n]`` (``train.balance_by``) ``n`` draws with replacement."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    if weights is None:
        return torch.randperm(n, generator=gen)
    return torch.multinomial(weights, n, replacement=True, generator=gen)


def augment_batch(
    image: torch.Tensor,
    label: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    rot90_prob: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-sample flips along each spatial axis and a 90-degree turn in the first spatial
    plane (when square), applied identically to ``image [B, C, *S]`` and ``label [B, 1, *S]``.

    Random draws come from ``generator`` (CPU), so augmentation is reproducible and resumable.
    """
    b = image.shape[0]
    spatial = image.ndim - 2
    view = (b,) + (1,) * (image.ndim - 1)
    draws = torch.rand(b, spatial + 1, generator=generator).to(image.device)  # one small copy, no sync
    for axis in range(spatial):
        mask = (draws[:, axis] < flip_prob).view(view)
        dim = 2 + axis
        image = torch.where(mask, image.flip(dim), image)
        label = torch.where(mask, label.flip(dim), label)
    if spatial >= 2 and image.shape[2] == image.shape[3] and rot90_prob > 0:
        mask = (draws[:, spatial] < rot90_prob).view(view)
        image = torch.where(mask, image.rot90(1, (2, 3)), image)
        label = torch.where(mask, label.rot90(1, (2, 3)), label)
    return image, label
