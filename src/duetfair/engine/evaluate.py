"""Inference on a split -> per-case table -> summary, audit and report.

:func:`evaluate_run` is ``duetfair evaluate``: it loads a run's config, group spec and best
checkpoint, predicts the chosen split, and writes ``cases.csv`` (the per-case table of
:mod:`duetfair.metrics.cases`), ``summary.json``, ``audit.json`` and ``report.html`` into the run
folder. Attributes are encoded and labelled with the run's saved group spec, so a run is evaluated
and audited with exactly the groups it was trained with. Inference itself is
:mod:`duetfair.engine.inference` (its functions are re-exported here for older imports).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from duetfair.engine.batching import BatchSource
from duetfair.engine.inference import RouteFn as RouteFn
from duetfair.engine.inference import autocast_context as autocast_context
from duetfair.engine.inference import metrics_table as metrics_table
from duetfair.engine.inference import predict_batches as predict_batches
from duetfair.errors import DuetfairError, require
from duetfair.options import Checkpoint, parse
from duetfair.progress import ProgressLine
from duetfair.rundir import RunDir, RunRecord


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
    checkpoint = parse(Checkpoint, checkpoint, "--checkpoint")
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


@dataclass
class Evaluation:
    """A run's model on one split: what the steps of :func:`evaluate_run` share."""

    run: RunDir
    model: nn.Module
    cfg: Any
    record: RunRecord
    spec: Any
    data_cfg: Any
    split: str
    dataset: Any
    source: BatchSource
    route_fn: RouteFn
    batch_size: int
    device: torch.device
    checkpoint: str
    data_config: Optional[str | Path] = None


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
    from duetfair.engine.distributed import set_threads
    from duetfair.io import staged_outputs

    set_threads(threads)
    ev = prepare_evaluation(run_dir, split=split, data_config=data_config, checkpoint=checkpoint, device=device)
    table = predict_split(ev, log)
    # every output is staged and committed together: a failure leaves the previous evaluation intact
    target = RunDir(out_dir) if out_dir is not None else ev.run
    with ev.run.lock("duetfair evaluate"), staged_outputs(target.root) as stage:
        return _write_outputs(ev, table, RunDir(stage), target, n_boot=n_boot, report=report)


def prepare_evaluation(
    run_dir: str | Path, *, split: Optional[str], data_config: Optional[str | Path], checkpoint: str, device: str
) -> Evaluation:
    """Load a run's model and the split to evaluate (its attributes encoded with the run's spec)."""
    from duetfair.engine import adapters
    from duetfair.engine.batching import make_source
    from duetfair.engine.config import load_config

    run = RunDir(run_dir)
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, cfg, record, spec = load_model(run.root, checkpoint, dev)
    data_cfg = load_config(data_config).data if data_config is not None else cfg.data
    split = split or cfg.eval.split
    datasets = adapters.build_datasets(data_cfg.kind, data_cfg.args, data_cfg.hidden_column)
    require(split in datasets, f"--split '{split}': the data has splits {sorted(datasets)}")
    ds = datasets[split]
    if cfg.model.subclasses is not None:  # the derived attribute, from the run's first stage
        from duetfair.engine.subclasses import attach_subclasses

        ds = attach_subclasses(run.root, ds, device=dev)
    require(
        int(ds.num_classes) == record.num_classes,
        f"data has {ds.num_classes} classes but the run was trained with {record.num_classes}",
    )
    return Evaluation(
        run=run,
        model=model,
        cfg=cfg,
        record=record,
        spec=spec,
        data_cfg=data_cfg,
        split=split,
        dataset=ds,
        source=make_source(ds, data_cfg.cache, data_cfg.num_workers, codes=recode(ds, spec)),
        route_fn=adapters.grouping(spec, cfg).route_codes,
        batch_size=cfg.train.eval_batch_size or cfg.train.batch_size,
        device=dev,
        checkpoint=checkpoint,
        data_config=data_config,
    )


def predict_split(ev: Evaluation, log: Optional[Callable[[str], None]] = None) -> pd.DataFrame:
    """Per-case, per-class metrics and descriptors of every case of the split (``log``: progress lines)."""
    return metrics_table(
        ev.model,
        ev.source,
        num_classes=ev.record.num_classes,
        device=ev.device,
        batch_size=ev.batch_size,
        route_fn=ev.route_fn,
        metrics=ev.cfg.eval.metrics,
        empty=ev.cfg.eval.empty,
        progress=ProgressLine("cases", len(ev.source), log, label="predicting").advance if log is not None else None,
        descriptors=True,
    )


def _write_outputs(
    ev: Evaluation, table: pd.DataFrame, out: RunDir, target: RunDir, *, n_boot: Optional[int], report: bool
) -> dict[str, Any]:
    """Write ``cases.csv``, ``audit.json``, ``summary.json`` (and ``report.html``) into the stage
    ``out`` of the folder ``target``; return the summary."""
    from duetfair.audit.report.guard import render_or_warn
    from duetfair.engine.run_audit import RunAudit
    from duetfair.io import write_json
    from duetfair.metrics.cases import attach_metadata, audit_view

    ds, cfg = ev.dataset, ev.cfg
    cases = attach_metadata(table, ds.meta, ev.spec, hidden_column=ds.hidden.name)
    cases.to_csv(out.cases, index=False)
    plan = RunAudit.of_config(cfg, ev.spec, ds.hidden)  # what `duetfair audit RUN/cases.csv` uses too
    frame = audit_view(cases, plan.granularity)
    audit = audit_split(ev, frame, plan, n_boot=plan.n_boot if n_boot is None else int(n_boot))
    write_json(out.audit, audit)
    used = "best" if ev.checkpoint == "best" and ev.run.checkpoint("best").is_file() else "last"
    summary = _summary(ev.run.root, ev.record, cfg, ev.split, used, table, frame, audit, ds.hidden)
    summary["data"] = {
        "kind": str(getattr(ev.data_cfg.kind, "value", ev.data_cfg.kind)),
        "args": dict(ev.data_cfg.args),
    }
    write_json(out.summary, summary)
    if report and not render_or_warn(
        lambda: write_report(ev, audit, frame, out.report), complete="cases.csv, summary.json and audit.json"
    ):
        target.report.unlink(missing_ok=True)  # an older report would not match the new numbers
    return summary


def audit_attributes(ev: Evaluation) -> list[str]:
    """The attributes audited (:func:`~duetfair.engine.run_audit.audited_attributes`)."""
    from duetfair.engine.run_audit import audited_attributes

    return audited_attributes(ev.cfg, ev.spec)


def audit_split(ev: Evaluation, frame: pd.DataFrame, plan: Any, *, n_boot: int) -> dict[str, Any]:
    """The audit of ``frame`` (:func:`~duetfair.metrics.cases.audit_view` of the cases) as the run's
    :class:`~duetfair.engine.run_audit.RunAudit` ``plan`` says, with the run's spec."""
    from duetfair.audit import audit_table

    return audit_table(
        frame,
        by=list(plan.attributes),
        metrics=plan.present(frame),
        es_variant=plan.es_variant,
        n_boot=n_boot,
        seed=plan.seed,
        spec=ev.spec,
        hidden=ev.dataset.hidden,
    )


def write_report(ev: Evaluation, audit: dict[str, Any], frame: pd.DataFrame, path: Path) -> None:
    """``report.html`` of an evaluation: the audit, the worst cases of every group drawn, the
    training curves and the provenance."""
    from duetfair.audit.report import TrainingView, provenance, render_html

    gallery = worst_case_gallery(
        ev.model,
        ev.source,
        list(ev.dataset.meta["case_id"]),
        frame,
        ev.spec,
        audit_attributes(ev),
        device=ev.device,
        batch_size=ev.batch_size,
        route_fn=ev.route_fn,
        rgb=ev.record.channel_source in (None, "native"),
    )
    data = f"{ev.data_cfg.kind} {dict(ev.data_cfg.args)}, split {ev.split}"
    if ev.data_config is not None:
        data += f" (data config {ev.data_config})"
    prov = provenance(
        config=ev.run.config.read_text(encoding="utf-8"),
        seed=ev.cfg.seed,
        data=data,
        run=str(ev.run.root),
        checkpoint=ev.checkpoint,
    )
    render_html(
        audit,
        path,
        cases=frame,
        title=f"duetfair evaluation: {ev.record.name} ({ev.split})",
        gallery=gallery,
        training=TrainingView.from_run(ev.run.root),
        provenance=prov,
    )


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
