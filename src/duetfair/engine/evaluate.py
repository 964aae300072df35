"""Inference on a split -> per-case table -> summary, audit and report.

:func:`evaluate_run` is ``duetfair evaluate``: it loads a run's config, group spec and best
checkpoint, predicts the chosen split, and writes ``cases.csv`` (the per-case table of
:mod:`duetfair.metrics.cases`), ``summary.json``, ``audit.json`` and ``report.html`` into the run
folder. Attributes are encoded and labelled with the run's saved group spec, so a run is evaluated
and audited with exactly the groups it was trained with.
"""

from __future__ import annotations

import contextlib
import sys
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
from duetfair.progress import ProgressLine
from duetfair.rundir import RunDir, RunRecord

RouteFn = Callable[[torch.Tensor], Optional[torch.Tensor]]


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
    from duetfair.metrics.per_case import per_case_metrics

    frames: list[pd.DataFrame] = []
    for batch, pred in predict_batches(
        model,
        source,
        eval_shard(len(source), info),
        device=device,
        batch_size=batch_size,
        route_fn=route_fn,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
    ):
        df = per_case_metrics(
            pred, batch.label[:, 0], num_classes=num_classes, spacing=spacing, metrics=tuple(metrics), empty=empty
        )
        if descriptors:
            from duetfair.metrics.descriptors import describe_batch

            extra = describe_batch(
                pred.numpy(),
                batch.label[:, 0].numpy(),
                range(1, num_classes),
                image=batch.image.float().numpy(),
                spacing=spacing,
            )
            df = pd.concat([df, extra.set_index(df.index)], axis=1)
        df.insert(0, "case_id", [batch.case_ids[int(i)] for i in df["case"]])
        df.insert(1, "_order", [int(batch.index[int(i)]) for i in df["case"]])
        frames.append(df.drop(columns=["case"]))
        if progress is not None:
            progress(int(pred.shape[0]))
    parts = gather_objects(pd.concat(frames, ignore_index=True) if frames else None, info)
    table = pd.concat([p for p in parts if p is not None], ignore_index=True)
    table = table.sort_values(["_order", "class"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


# ---- duetfair evaluate ---------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[Any, RunRecord, Any]:
    """``(config, RunRecord, GroupSpec)`` of a training run folder, with clear errors."""
    from duetfair.data.groups import GroupSpec
    from duetfair.engine.config import load_config

    run = RunDir(run_dir)
    run.require_run()
    return load_config(run.config), run.read_record(), GroupSpec.load(run.group_spec)


def load_model(
    run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu"
) -> tuple[nn.Module, Any, RunRecord, Any]:
    """Model of a run with the weights of ``checkpoints/{checkpoint}.pt`` (``best`` falls back to
    ``last`` only when no validation ever improved, i.e. ``best.pt`` was never written; an unreadable
    ``best.pt`` is an error). Weights that do not fit the run's model or are not finite are refused.
    Returns ``(model, config, RunRecord, GroupSpec)``."""
    from duetfair.engine import adapters
    from duetfair.engine.checkpoint import load_checkpoint, model_state

    cfg, record, spec = load_run(run_dir)
    require(checkpoint in ("best", "last"), f"--checkpoint '{checkpoint}': expected 'best' or 'last'")
    path = RunDir(run_dir).checkpoint("best" if checkpoint == "best" else "last")
    if checkpoint == "best" and not path.exists() and not path.is_symlink():
        require(
            record.best_epoch < 0,
            f"checkpoint {path} is missing although epoch {record.best_epoch} was selected; the run folder is "
            f"damaged: restore best.pt, or evaluate the final weights with --checkpoint last",
        )
        path = RunDir(run_dir).checkpoint("last")
        print(
            f"warning: {run_dir}: no validation improved, so there is no best.pt; using the final weights "
            f"({path.name})",
            file=sys.stderr,
        )
    require(
        path.is_file() or not path.exists(),
        f"checkpoint {path} is not a file; expected the checkpoint written by 'duetfair train'",
    )
    state = load_checkpoint(path, map_location="cpu")
    model = adapters.build_model(
        cfg.model.name,
        cfg.model.args,
        in_channels=record.in_channels,
        num_classes=record.num_classes,
        num_groups=adapters.grouping(spec, cfg).route_cards,
        image_shape=record.image_shape[1:],
    )
    try:
        model.load_state_dict(model_state(state))
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise DuetfairError(
            f"checkpoint {path} does not fit the model of {run_dir}'s config.yaml ({first}); "
            f"was it copied from another run?"
        ) from None
    bad = [
        name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise DuetfairError(
            f"checkpoint {path}: weights '{bad[0]}' (and {len(bad) - 1} more) hold NaN or inf; the "
            f"training diverged: evaluate an earlier checkpoint or retrain with a lower optim.lr"
        )
    return model.to(device).eval(), cfg, record, spec


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
    threads: Optional[int] = None,
    out_dir: Optional[str | Path] = None,
    log: Optional[Callable[[str], None]] = None,
) -> dict[str, Any]:
    """``duetfair evaluate``: predict a split, write ``cases.csv``, ``summary.json``, ``audit.json``
    and ``report.html`` into the run folder (or ``out_dir``); return the summary.

    Args:
        run_dir: folder written by ``duetfair train``.
        split: split to evaluate (default ``eval.split`` of the run's config, ``test``).
        data_config: evaluate on the data section of another config (external test set).
        checkpoint: ``best`` (default) or ``last``.
        n_boot: bootstrap resamples of the audit (default ``eval.n_boot``).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: CPU threads (default: one per core, at most 8; see ``engine.distributed.set_threads``).
        report: also render ``report.html``.
        out_dir: folder of the outputs (default: the run folder); e.g. a validation evaluation kept
            beside the test one.
        log: receives a plain progress line every 10 seconds while the split is predicted (cases
            done, time elapsed, time left); None: silent.
    """
    from duetfair.audit import audit_table
    from duetfair.engine import adapters
    from duetfair.engine.batching import make_source
    from duetfair.engine.config import load_config
    from duetfair.engine.distributed import set_threads
    from duetfair.engine.run_audit import RunAudit
    from duetfair.io import staged_outputs, write_json
    from duetfair.metrics.cases import attach_metadata, audit_view

    set_threads(threads)
    run = RunDir(run_dir)
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, cfg, record, spec = load_model(run.root, checkpoint, dev)
    data_cfg = load_config(data_config).data if data_config is not None else cfg.data
    split = split or cfg.eval.split
    datasets = adapters.build_datasets(data_cfg.kind, data_cfg.args, data_cfg.hidden_column)
    require(split in datasets, f"--split '{split}': the data has splits {sorted(datasets)}")
    ds = datasets[split]
    require(
        int(ds.num_classes) == record.num_classes,
        f"data has {ds.num_classes} classes but the run was trained with {record.num_classes}",
    )
    source = make_source(ds, data_cfg.cache, data_cfg.num_workers, codes=recode(ds, spec))
    route_fn = adapters.grouping(spec, cfg).route_codes
    batch_size = cfg.train.eval_batch_size or cfg.train.batch_size
    table = metrics_table(
        model,
        source,
        num_classes=record.num_classes,
        device=dev,
        batch_size=batch_size,
        route_fn=route_fn,
        metrics=cfg.eval.metrics,
        empty=cfg.eval.empty,
        progress=ProgressLine("cases", len(source), log, label="predicting").advance if log is not None else None,
        descriptors=True,
    )
    # every output is staged and committed together: a failure leaves the previous evaluation intact
    target = RunDir(out_dir) if out_dir is not None else run
    with run.lock("duetfair evaluate"), staged_outputs(target.root) as stage:
        out = RunDir(stage)
        cases = attach_metadata(table, ds.meta, spec, hidden_column=ds.hidden.name)
        cases.to_csv(out.cases, index=False)
        plan = RunAudit.of_config(cfg, spec, ds.hidden)  # what `duetfair audit RUN/cases.csv` uses too
        attributes = list(plan.attributes)
        frame = audit_view(cases, plan.granularity)
        audit = audit_table(
            frame,
            by=attributes,
            metrics=plan.present(frame),
            es_variant=plan.es_variant,
            n_boot=plan.n_boot if n_boot is None else int(n_boot),
            seed=plan.seed,
            spec=spec,
            hidden=ds.hidden,
        )
        write_json(out.audit, audit)
        used = "best" if checkpoint == "best" and run.checkpoint("best").is_file() else "last"
        summary = _summary(run.root, record, cfg, split, used, table, frame, audit, ds.hidden)
        summary["data"] = {"kind": str(getattr(data_cfg.kind, "value", data_cfg.kind)), "args": dict(data_cfg.args)}
        write_json(out.summary, summary)
        if report:
            from duetfair.audit.report import TrainingView, provenance, render_html

            try:
                gallery = worst_case_gallery(
                    model,
                    source,
                    list(ds.meta["case_id"]),
                    frame,
                    spec,
                    attributes,
                    device=dev,
                    batch_size=batch_size,
                    route_fn=route_fn,
                    rgb=record.channel_source in (None, "native"),
                )
                prov = provenance(
                    config=run.config.read_text(encoding="utf-8"),
                    seed=cfg.seed,
                    data=f"{data_cfg.kind} {dict(data_cfg.args)}, split {split}"
                    + (f" (data config {data_config})" if data_config is not None else ""),
                    run=str(run.root),
                    checkpoint=checkpoint,
                )
                render_html(
                    audit,
                    out.report,
                    cases=frame,
                    title=f"duetfair evaluation: {record.name} ({split})",
                    gallery=gallery,
                    training=TrainingView.from_run(run.root),
                    provenance=prov,
                )
            except ValueError as exc:  # a plotting problem must not lose the evaluation already written
                target.report.unlink(missing_ok=True)  # an older report would not match the new numbers
                warnings.warn(
                    f"report.html not written ({exc}); cases.csv, summary.json and audit.json are complete",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return summary


def worst_case_gallery(
    model: nn.Module,
    source: BatchSource,
    case_ids: Sequence[str],
    frame: pd.DataFrame,
    spec: Any,
    attributes: Sequence[str],
    *,
    device: torch.device,
    batch_size: int,
    route_fn: RouteFn,
    metric: str = "dice",
    rgb: Optional[bool] = None,
) -> Any:
    """The report's gallery: the worst cases of every group (:func:`duetfair.audit.gallery.worst_cases`
    of the case-level ``frame``) predicted again (only those cases; ``case_ids`` in the order of
    ``source``) and drawn as thumbnails."""
    from duetfair.audit.gallery import build_gallery, thumbnail, worst_cases

    picks = worst_cases(frame, metric, attributes, spec=spec)
    index = {str(cid): i for i, cid in enumerate(case_ids)}

    def draw(ids: Sequence[str]) -> dict[str, Any]:
        wanted = sorted(index[c] for c in ids if c in index)
        out: dict[str, Any] = {}
        for batch, pred in predict_batches(
            model, source, wanted, device=device, batch_size=batch_size, route_fn=route_fn
        ):
            for i, cid in enumerate(batch.case_ids):
                try:
                    out[str(cid)] = thumbnail(
                        batch.image[i].float().numpy(), batch.label[i, 0].numpy(), pred[i].numpy(), rgb=rgb
                    )
                except Exception as exc:  # noqa: BLE001 - a case that cannot be drawn is only left out
                    out[str(cid)] = " ".join(str(exc).split())[:120] or type(exc).__name__
        return out

    return build_gallery(picks, draw, metric=metric)


def _summary(
    root: Path,
    run: RunRecord,
    cfg: Any,
    split: str,
    checkpoint: str,
    table: pd.DataFrame,
    frame: pd.DataFrame,
    audit: dict[str, Any],
    hidden: Any,
) -> dict[str, Any]:
    """Headline numbers of ``summary.json``; ``hidden_subtype`` = Dice of the hard (``"1"``) and other
    (``"0"``) cases of the hidden column ``hidden`` (a ``HiddenColumn``), named in ``hidden_column``."""
    metric_cols = [c for c in ("dice", "iou", "hd95", "normhd", "nsd") if c in table.columns]
    per_class = {str(int(k)): {m: _finite_mean(part[m]) for m in metric_cols} for k, part in table.groupby("class")}
    out: dict[str, Any] = {
        "run": str(root),
        "name": run.name,
        "method": run.method,
        "model": run.model,
        "objective": run.objective,
        "split": split,
        "checkpoint": checkpoint,
        "n_cases": int(frame.shape[0]),
        "group_attribute": cfg.data.group_attribute,
        "per_class": per_class,
        "dice": _finite_mean(frame["dice"]),
        "iou": _finite_mean(frame["iou"]) if "iou" in frame else None,
        "audit": audit,
    }
    if hidden.name in frame.columns:
        flags = pd.Series(hidden.flags(frame[hidden.name]), index=frame.index)
        out["hidden_column"] = str(hidden)
        out["hidden_subtype"] = {
            str(int(h)): {"n": int(len(part)), "dice": _finite_mean(part["dice"])}
            for h, part in frame[flags >= 0].groupby(flags[flags >= 0])
        }
    return out


def _finite_mean(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")
