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
import warnings
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


def group_stats(values: pd.Series, groups: pd.Series, es_variant: str = "sum_abs", metric: str = "dice") -> dict[str, Any]:
    """Point estimates of one case-level metric by group, via
    :class:`~duetfair.metrics.frame.GroupMetricFrame` (no bootstrap): overall mean (all cases,
    unknown group included), per-group means, worst group, gap and equity-scaled value.

    With fewer than two known groups (tiny validation sets) the disparity is not measurable: the
    worst group is the only group and the equity-scaled value equals the overall mean.
    """
    from duetfair.metrics.frame import GroupMetricFrame

    df = pd.DataFrame({metric: values.to_numpy(dtype=float), "g": groups.to_numpy()})
    finite = np.isfinite(df[metric].to_numpy())
    overall = float(df[metric][finite].mean()) if finite.any() else float("nan")
    try:
        frame = GroupMetricFrame(df, metric, "g", es_variant=es_variant, n_boot=0, higher_better=True)
    except DuetfairError:
        known = df[finite & (df["g"] != UNKNOWN_LABEL).to_numpy()]
        means = known.groupby("g")[metric].mean()
        name = str(means.index[0]) if len(means) else None
        worst = float(means.iloc[0]) if len(means) else overall
        return {"overall": overall, "groups": {str(k): float(v) for k, v in means.items()}, "worst_group": name,
                "worst": worst, "gap": 0.0, "es": overall}
    return {
        "overall": frame.overall,
        "groups": {str(n): float(m) for n, m in zip(frame.group_names, frame.group_means)},
        "worst_group": frame.worst_group,
        "worst": frame.worst_mean,
        "gap": frame.gap,
        "es": frame.es,
    }


# ---- duetfair evaluate ---------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[Any, dict[str, Any], Any]:
    """``(config, run.json, GroupSpec)`` of a training run directory, with clear errors."""
    import json

    from duetfair.data.groups import GroupSpec
    from duetfair.engine.config import load_config

    root = Path(run_dir)
    require(root.is_dir(), f"run directory {root} not found; expected the --out folder of 'duetfair train'")
    for name in ("config.yaml", "run.json", "group_spec.json"):
        require((root / name).is_file(), f"run directory {root}: missing {name}; expected a folder written by 'duetfair train'")
    cfg = load_config(root / "config.yaml")
    run = json.loads((root / "run.json").read_text(encoding="utf-8"))
    spec = GroupSpec.from_dict(json.loads((root / "group_spec.json").read_text(encoding="utf-8")))
    return cfg, run, spec


def load_model(run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu") -> tuple[nn.Module, Any, dict[str, Any], Any]:
    """Model of a run with the weights of ``checkpoints/{checkpoint}.pt`` (``best`` falls back to
    ``last`` when no validation ever improved). Returns ``(model, config, run.json, GroupSpec)``."""
    from duetfair.engine import adapters
    from duetfair.engine.checkpoint import load_checkpoint, model_state

    cfg, run, spec = load_run(run_dir)
    require(checkpoint in ("best", "last"), f"--checkpoint '{checkpoint}': expected 'best' or 'last'")
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if checkpoint == "best" and not path.is_file():
        path = path.with_name("last.pt")
    state = load_checkpoint(path, map_location="cpu")
    model = adapters.build_model(cfg.model.name, cfg.model.args, in_channels=int(run["in_channels"]),
                                 num_classes=int(run["num_classes"]), num_groups=int(run["num_groups"]),
                                 image_shape=list(run["image_shape"])[1:])
    model.load_state_dict(model_state(state))
    return model.to(device).eval(), cfg, run, spec


def case_frame(table: pd.DataFrame, meta: pd.DataFrame, spec: Any, attributes: Sequence[str]) -> pd.DataFrame:
    """Case-level table for audits: ``case_id``, mean Dice / IoU over classes, discrete attribute
    labels (bins, ``unknown``) and ``hidden_subtype`` when known."""
    scores = case_scores(table, "dice")
    if "iou" in table.columns:
        scores = scores.merge(case_scores(table, "iou"), on="case_id")
    labels = attribute_labels(meta.assign(case_id=meta["case_id"].astype(str)), spec, attributes)
    out = scores.merge(labels, on="case_id", how="left")
    if HIDDEN_COLUMN in meta.columns:
        hidden = meta[["case_id", HIDDEN_COLUMN]].assign(case_id=meta["case_id"].astype(str))
        out = out.merge(hidden, on="case_id", how="left")
    return out


def recode(dataset: Any, spec: Any) -> torch.Tensor:
    """Attribute codes ``[N, A]`` of a dataset's cases under the run's ``spec`` (so a run encodes
    attributes the way it was trained, whatever data config is used for evaluation)."""
    return torch.as_tensor(spec.encode_frame(dataset.meta, require_columns=False), dtype=torch.long)


def evaluate_run(
    run_dir: str | Path,
    *,
    split: Optional[str] = None,
    data_config: Optional[str | Path] = None,
    checkpoint: str = "best",
    n_boot: Optional[int] = None,
    device: str = "auto",
    report: bool = True,
) -> dict[str, Any]:
    """``duetfair evaluate``: predict a split, write ``cases.csv``, ``summary.json``, ``audit.json``
    and ``report.html`` into the run directory; return the summary.

    Args:
        run_dir: folder written by ``duetfair train``.
        split: split to evaluate (default ``eval.split`` of the run's config, ``test``).
        data_config: evaluate on the data section of another config (external test set).
        checkpoint: ``best`` (default) or ``last``.
        n_boot: bootstrap resamples of the audit (default ``eval.n_boot``).
        device: ``auto``, ``cpu`` or ``cuda``.
        report: also render ``report.html``.
    """
    from duetfair.audit import audit_table
    from duetfair.engine import adapters
    from duetfair.engine.batching import make_source
    from duetfair.engine.config import load_config
    from duetfair.io import atomic_path, write_json

    root = Path(run_dir)
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, cfg, run, spec = load_model(root, checkpoint, dev)
    data_cfg = load_config(data_config).data if data_config is not None else cfg.data
    split = split or cfg.eval.split
    datasets = adapters.build_datasets(data_cfg.kind, data_cfg.args)
    require(split in datasets, f"--split '{split}': the data has splits {sorted(datasets)}")
    ds = datasets[split]
    require(int(ds.num_classes) == int(run["num_classes"]),
            f"data has {ds.num_classes} classes but the run was trained with {run['num_classes']}")
    source = make_source(ds, data_cfg.cache, data_cfg.num_workers)
    codes = recode(ds, spec)
    group_fn, _, _ = adapters.group_mapping(spec, cfg.data.group_attribute)
    if hasattr(source, "codes"):
        source.codes = codes  # type: ignore[attr-defined]
    table = metrics_table(model, source, num_classes=int(run["num_classes"]), device=dev,
                          batch_size=cfg.train.eval_batch_size or cfg.train.batch_size,
                          group_fn=group_fn, metrics=cfg.eval.metrics, empty=cfg.eval.empty)
    cases = attach_metadata(table, ds.meta, spec)
    with atomic_path(root / "cases.csv") as tmp:
        cases.to_csv(tmp, index=False)
    attributes = cfg.data.audit_attributes or list(spec.attributes)
    frame = case_frame(table, ds.meta, spec, attributes)
    boot = cfg.eval.n_boot if n_boot is None else int(n_boot)
    audit = audit_table(frame, by=attributes, metrics=("dice", "iou"), es_variant=cfg.eval.es_variant,
                        n_boot=boot, seed=cfg.seed)
    write_json(root / "audit.json", audit)
    summary = _summary(root, run, cfg, split, checkpoint, table, frame, audit)
    write_json(root / "summary.json", summary)
    if report:
        from duetfair.audit.report import render_html

        try:
            render_html(audit, root / "report.html", cases=frame,
                        title=f"duetfair evaluation: {run.get('name', root.name)} ({split})")
        except ValueError as exc:  # a plotting problem must not lose the evaluation already written
            warnings.warn(f"report.html not written ({exc}); cases.csv, summary.json and audit.json are complete",
                          RuntimeWarning, stacklevel=2)
    return summary


def _summary(root: Path, run: dict[str, Any], cfg: Any, split: str, checkpoint: str, table: pd.DataFrame,
             frame: pd.DataFrame, audit: dict[str, Any]) -> dict[str, Any]:
    metric_cols = [c for c in ("dice", "iou", "hd95", "normhd", "nsd") if c in table.columns]
    per_class = {str(int(k)): {m: _finite_mean(part[m]) for m in metric_cols} for k, part in table.groupby("class")}
    out: dict[str, Any] = {
        "run": str(root), "name": run.get("name"), "method": run.get("method"), "model": run.get("model"),
        "objective": run.get("objective"), "split": split, "checkpoint": checkpoint,
        "n_cases": int(frame.shape[0]), "group_attribute": cfg.data.group_attribute,
        "per_class": per_class,
        "dice": _finite_mean(frame["dice"]), "iou": _finite_mean(frame["iou"]) if "iou" in frame else None,
        "audit": audit,
    }
    if HIDDEN_COLUMN in frame.columns:
        out["hidden_subtype"] = {
            str(int(h)): {"n": int(len(part)), "dice": _finite_mean(part["dice"])}
            for h, part in frame.dropna(subset=[HIDDEN_COLUMN]).groupby(HIDDEN_COLUMN)
        }
    return out


def _finite_mean(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")
