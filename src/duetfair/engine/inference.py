"""The model on a split: class maps of every batch and the per-case metric table.

Used by the trainer (validation, the first stage of two-stage objectives) and by ``duetfair
evaluate`` (:mod:`duetfair.engine.evaluate`); it knows nothing of run folders or reports.

* :func:`autocast_context`: mixed precision on CUDA, nothing elsewhere;
* :func:`predict_batches`: ``(batch, pred [B, *S])`` for chosen cases of a source;
* :func:`pooled_features`: ``[N, F]`` pooled encoder features of every case of a source;
* :func:`metrics_table`: per-case, per-class metrics (and descriptors) of every case, DDP-aware.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from duetfair.engine.batching import BatchSource
from duetfair.engine.distributed import DistInfo, eval_shard, gather_objects

RouteFn = Callable[[torch.Tensor], Optional[torch.Tensor]]


def autocast_context(device: torch.device, amp_dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on CUDA with ``amp_dtype``; a no-op context otherwise."""
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


@torch.no_grad()
def pooled_features(
    model: nn.Module,
    source: BatchSource,
    *,
    device: torch.device,
    batch_size: int,
    route_fn: RouteFn,
    amp_dtype: Optional[torch.dtype] = None,
) -> np.ndarray:
    """``[N, F]`` float32 pooled encoder features (``model.forward_features``) of every case of
    ``source``, in source order."""
    model.eval()
    parts = []
    for batch in source.batches(torch.arange(len(source)), batch_size):
        group = route_fn(batch.codes)
        with autocast_context(device, amp_dtype):
            _, feats = model.forward_features(  # type: ignore[operator]
                batch.image.to(device), group=group.to(device) if group is not None else None
            )
        parts.append(feats.float().cpu().numpy())
    return np.concatenate(parts, axis=0)


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    source: BatchSource,
    indices: Sequence[int],
    *,
    device: torch.device,
    batch_size: int,
    route_fn: RouteFn,
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> Iterator[tuple[Any, torch.Tensor]]:
    """Yield ``(batch, pred)`` with ``pred [B, *S]`` int64 class maps (argmax of the logits) on CPU.

    ``route_fn(codes [B, A])`` gives what the model routes on (``[B]``, ``[B, A']`` or ``None``).
    """
    model.eval()
    order = torch.as_tensor(list(indices), dtype=torch.long)
    for batch in source.batches(order, batch_size):
        image = batch.image.to(device, non_blocking=True)
        if channels_last and image.ndim == 4:
            image = image.contiguous(memory_format=torch.channels_last)
        group = route_fn(batch.codes)
        group = group.to(device) if group is not None else None
        with autocast_context(device, amp_dtype):
            logits = model(image, group=group)
        yield batch, logits.argmax(1).cpu()


def metrics_table(
    model: nn.Module,
    source: BatchSource,
    *,
    num_classes: int,
    device: torch.device,
    batch_size: int,
    route_fn: RouteFn,
    metrics: Sequence[str] = ("dice", "iou"),
    empty: str = "nnunet",
    spacing: Optional[Sequence[float]] = None,
    info: DistInfo = DistInfo(),
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
    progress: Optional[Callable[[int], None]] = None,
    descriptors: bool = False,
) -> pd.DataFrame:
    """Per-case, per-class metrics of ``model`` on every case of ``source`` (``progress``: called
    with the number of cases of every finished batch).

    Under DDP each rank predicts a disjoint shard (no case twice) and all ranks receive the full
    table, sorted by the split's case order. Columns: ``case_id``, ``class`` and the metric columns;
    with ``descriptors`` also the case descriptors of the reference, the prediction and the model's
    input image (``desc_*``, :func:`duetfair.metrics.descriptors.describe_batch`).
    """
    frames: list[pd.DataFrame] = []
    shard = eval_shard(len(source), info)
    for batch, pred in predict_batches(
        model,
        source,
        shard,
        device=device,
        batch_size=batch_size,
        route_fn=route_fn,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
    ):
        frames.append(
            batch_table(
                batch,
                pred,
                num_classes=num_classes,
                metrics=tuple(metrics),
                empty=empty,
                spacing=spacing,
                descriptors=descriptors,
            )
        )
        if progress is not None:
            progress(int(pred.shape[0]))
    parts = gather_objects(pd.concat(frames, ignore_index=True) if frames else None, info)
    table = pd.concat([p for p in parts if p is not None], ignore_index=True)
    table = table.sort_values(["_order", "class"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def batch_table(
    batch: Any,
    pred: torch.Tensor,
    *,
    num_classes: int,
    metrics: tuple[str, ...],
    empty: str,
    spacing: Optional[Sequence[float]],
    descriptors: bool,
) -> pd.DataFrame:
    """Per-case, per-class metrics of one batch (``pred [B, *S]`` against ``batch.label [B, 1, *S]``):
    ``case_id``, ``_order`` (the case's index in the split), ``class``, the metrics and, with
    ``descriptors``, the ``desc_*`` columns."""
    from duetfair.metrics.per_case import per_case_metrics

    label = batch.label[:, 0]
    df = per_case_metrics(pred, label, num_classes=num_classes, spacing=spacing, metrics=metrics, empty=empty)
    if descriptors:
        from duetfair.metrics.descriptors import describe_batch

        image = batch.image.float().numpy()
        extra = describe_batch(pred.numpy(), label.numpy(), range(1, num_classes), image=image, spacing=spacing)
        df = pd.concat([df, extra.set_index(df.index)], axis=1)
    df.insert(0, "case_id", [batch.case_ids[int(i)] for i in df["case"]])
    df.insert(1, "_order", [int(batch.index[int(i)]) for i in df["case"]])
    return df.drop(columns=["case"])
