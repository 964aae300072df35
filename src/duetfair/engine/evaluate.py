"""Inference on a split -> per-case table -> summary, audit and report.

The per-case table (DESIGN.md) has one row per case and foreground class: ``case_id``, ``class``,
the metric columns of :func:`duetfair.metrics.per_case.per_case_metrics`, the raw attribute columns
and ``hidden_subtype`` when the data knows it. Fairness numbers are computed on the **case-level**
score, the mean over foreground classes of a case (per-class views: filter ``class``).

:func:`evaluate_run` is ``duetfair evaluate``: it loads a run's config and best checkpoint, predicts
the chosen split, and writes ``cases.csv``, ``summary.json``, ``audit.json`` and ``report.html``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from duetfair.engine.batching import BatchSource
from duetfair.engine.distributed import DistInfo, eval_shard, gather_objects
from duetfair.errors import DuetfairError, require

HIDDEN_COLUMN = "hidden_subtype"
UNKNOWN_LABEL = "unknown"


def autocast_context(device: torch.device, amp_dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """``torch.autocast`` on CUDA with ``amp_dtype``; a no-op context otherwise."""
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    source: BatchSource,
    indices: Sequence[int],
    *,
    device: torch.device,
    batch_size: int,
    group_fn: Callable[[torch.Tensor], Optional[torch.Tensor]],
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> Iterator[tuple[Any, torch.Tensor]]:
    """Yield ``(batch, pred)`` with ``pred [B, *S]`` int64 class maps (argmax of the logits) on CPU.

    ``group_fn(codes [B, A]) -> group [B]`` (or ``None`` for attribute-blind inference).
    """
    model.eval()
    order = torch.as_tensor(list(indices), dtype=torch.long)
    for batch in source.batches(order, batch_size):
        image = batch.image.to(device, non_blocking=True)
        if channels_last and image.ndim == 4:
            image = image.contiguous(memory_format=torch.channels_last)
        group = group_fn(batch.codes)
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
    group_fn: Callable[[torch.Tensor], Optional[torch.Tensor]],
    metrics: Sequence[str] = ("dice", "iou"),
    empty: str = "nan",
    spacing: Optional[Sequence[float]] = None,
    info: DistInfo = DistInfo(),
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> pd.DataFrame:
    """Per-case, per-class metrics of ``model`` on every case of ``source``.

    Under DDP each rank predicts a disjoint shard (no case twice) and all ranks receive the full
    table, sorted by the split's case order. Columns: ``case_id``, ``class`` and the metric columns.
    """
    from duetfair.metrics.per_case import per_case_metrics

    frames: list[pd.DataFrame] = []
    for batch, pred in predict_batches(
        model, source, eval_shard(len(source), info), device=device, batch_size=batch_size,
        group_fn=group_fn, amp_dtype=amp_dtype, channels_last=channels_last,
    ):
        df = per_case_metrics(pred, batch.label[:, 0], num_classes=num_classes, spacing=spacing,
                              metrics=tuple(metrics), empty=empty)
        df.insert(0, "case_id", [batch.case_ids[int(i)] for i in df["case"]])
        df.insert(1, "_order", [int(batch.index[int(i)]) for i in df["case"]])
        frames.append(df.drop(columns=["case"]))
    parts = gather_objects(pd.concat(frames, ignore_index=True) if frames else None, info)
    table = pd.concat([p for p in parts if p is not None], ignore_index=True)
    table = table.sort_values(["_order", "class"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def attribute_labels(meta: pd.DataFrame, spec: Any, attributes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Discrete group label per case and attribute (bins for continuous values, ``unknown`` for -1).

    Returns a frame with ``case_id`` and one string column per attribute.
    """
    attributes = list(attributes or spec.attributes)
    codes = spec.encode_frame(meta)
    out = pd.DataFrame({"case_id": meta["case_id"].astype(str).to_numpy()})
    for attr in attributes:
        j = spec.attributes.index(attr)
        names = np.asarray(list(spec.group_names(attr)) + [UNKNOWN_LABEL], dtype=object)
        col = codes[:, j]
        out[attr] = names[np.where(col < 0, len(names) - 1, col)]
    return out


def attach_metadata(table: pd.DataFrame, meta: pd.DataFrame, spec: Any, *, discrete: bool = False) -> pd.DataFrame:
    """Add attribute columns (raw values, or discrete labels with ``discrete=True``) and
    ``hidden_subtype`` when present, matched by ``case_id``."""
    meta = meta.copy()
    meta["case_id"] = meta["case_id"].astype(str)
    if discrete:
        cols = attribute_labels(meta, spec)
    else:
        cols = meta[["case_id"] + [a for a in spec.attributes if a in meta.columns]]
    if HIDDEN_COLUMN in meta.columns:
        cols = cols.merge(meta[["case_id", HIDDEN_COLUMN]], on="case_id", how="left")
    return table.merge(cols, on="case_id", how="left")


def case_scores(table: pd.DataFrame, metric: str = "dice", classes: Optional[Sequence[int]] = None) -> pd.DataFrame:
    """One row per case: ``case_id`` and the mean of ``metric`` over (selected) classes (NaN skipped)."""
    require(metric in table.columns, f"per-case table has no '{metric}' column; columns are {list(table.columns)}")
    t = table if classes is None else table[table["class"].isin(list(classes))]
    out = t.groupby("case_id", sort=False)[metric].mean().reset_index()
    return out


def group_stats(values: pd.Series, groups: pd.Series, es_variant: str = "sum_abs") -> dict[str, Any]:
    """Overall mean (all cases, unknown group included), per-group means (known groups), worst group,
    gap and equity-scaled value of one case-level metric. NaN values are left out.

    ``es_variant``: ``sum_abs`` -> ``M / (1 + sum_g |M - M_g|)`` (FairSeg/dMoE/DuetFair);
    ``std`` -> ``M / (1 + std_g(M_g))`` (FairMedFM, population std).
    """
    ok = values.notna().to_numpy()
    v = values.to_numpy(dtype=float)[ok]
    g = groups.to_numpy()[ok]
    overall = float(v.mean()) if v.size else float("nan")
    known = g != UNKNOWN_LABEL
    means = pd.Series(v[known]).groupby(g[known]).mean()
    counts = pd.Series(v[known]).groupby(g[known]).size()
    if len(means) == 0:
        return {"overall": overall, "groups": {}, "n": {}, "worst_group": None, "worst": float("nan"),
                "gap": float("nan"), "es": float("nan")}
    if es_variant == "std":
        es = overall / (1.0 + float(np.std(means.to_numpy())))
    else:
        es = overall / (1.0 + float(np.abs(overall - means.to_numpy()).sum()))
    return {
        "overall": overall,
        "groups": {str(k): float(x) for k, x in means.items()},
        "n": {str(k): int(x) for k, x in counts.items()},
        "worst_group": str(means.idxmin()),
        "worst": float(means.min()),
        "gap": float(means.max() - means.min()),
        "es": float(es),
    }
