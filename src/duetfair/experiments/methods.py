"""``duetfair demo`` and ``duetfair benchmark``: train, evaluate and compare fairness methods on the
synthetic benchmark or on any experiment config (a user's own data).

The demo trains ERM, GroupDRO, FEBS, MoE, dMoE and FairDRO (dMoE + subgroup-conditioned DRO, the
DuetFair pairing) on the synthetic fundus task (race groups, hidden hard subtype) with a CPU-sized
ViT, evaluates every run on the test split, prints the comparison table and writes
``comparison.{md,json,csv}`` and ``report.html``. Sizes: :data:`SIZES` (``quick`` for tests and
a first look, ``default`` for a comparison that means something).

The benchmark repeats the comparison over several seeds (data and training) and reports, per method,
the mean over seeds with a percentile bootstrap interval across seeds, and the paired difference to
ERM. Nothing is tuned per method: every method gets the same data, model size, epochs and optimiser.
On a synthetic task (``task``) every method uses its packaged ``<task>_<method>`` config at a
:data:`SIZES` size; on a user's config (``config``) the method shortcut is applied to that
config (:func:`duetfair.engine.config.with_method`) and its sizes are kept. A seed sets ``seed``
and, where the config's ``data.args`` has a ``seed`` (the synthetic data, a manifest's split seed),
that too. Finished runs are reused, interrupted ones resumed, so a killed benchmark is re-run with
the same command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd

from duetfair.audit.report.tables import Table, tables_markdown
from duetfair.errors import DuetfairError, require
from duetfair.experiments.headroom import headroom_report_table, headroom_table
from duetfair.experiments.tables import (  # noqa: F401  (re-exported: the benchmark's public tables)
    BENCH_COLUMNS,
    DISPLAY,
    REFERENCE_METHODS,
    aggregate_seeds,
    benchmark_markdown,
    benchmark_tables,
    seed_ci,
    verdict,
)
from duetfair.progress import ProgressLine
from duetfair.rundir import RunDir

DEMO_METHODS: tuple[str, ...] = ("erm", "group_dro", "febs", "moe", "dmoe", "fair_dro")
BENCH_METHODS: tuple[str, ...] = (
    "erm",
    "group_dro",
    "febs",
    "adversarial",
    "cvar",
    "focal",
    "divergence",
    "moe",
    "dmoe",
    "subgroup_dro",
    "fair_dro",
    "jtt",
    "subclass_dro",
    "subclass_moe",
    "oracle",
)
"""The published benchmark's rows (``duetfair benchmark --method all``): the baselines, FairMedSeg
divergence, the sample-level robust losses, the DuetFair ablation (``dmoe`` alone, ``subgroup_dro``
= the FairDRO loss on the plain model, ``fair_dro`` = both), the two-stage methods against hidden
failures (``jtt``, ``subclass_dro``, ``subclass_moe``) and the ``oracle`` ceiling."""
DEMO_THREADS = 1
"""CPU threads of the demo's training and evaluation. Its models are so small that a second torch
thread gains little, and on a machine whose cores other jobs use, torch's threads wait on each
other: one epoch of the quick demo took 30-40 s with two threads and 3 s with one on a 2-core
machine at load 6 (docs/benchmarks.md). ``--set train.threads=N`` overrides it."""
_SMALL_VIT = [
    "model.args.preset=tiny",
    "model.args.dim=64",
    "model.args.depth=2",
    "model.args.heads=2",
    "model.args.patch_size=4",
    "model.args.head_channels=32",
    "model.args.decoder_channels=[16,16]",
]
_SMALL_2D = [
    "data.args.image_size=48",
    "train.batch_size=16",
    "train.eval_batch_size=64",
    "optim.lr=3e-3",
    "schedule.warmup_epochs=0",
]
_SMALL_3D = [
    "train.batch_size=4",
    "optim.lr=3e-3",
]  # packaged f = 8: f = 4 can stay all-background

#: ``--set`` overrides of each size, per family of tasks (``2d``: fundus2d, lesion2d; ``3d``:
#: tumor3d), applied on top of the ``<task>_<method>`` configs:
#:
#: * ``quick``: tests and a first look (about 1 minute for the demo's six methods on 2 CPU cores);
#: * ``default``: the demo's comparison (tiny ViT preset, 64 x 64; about 10 minutes);
#: * ``bench``: the published benchmark: ERM's validation curve is flat over the last epochs
#:   (checked on validation against half the epochs, see the benchmark docs), while 12 methods x
#:   5 seeds x 3 tasks fit in a few hours on 2 CPU cores;
#: * ``paper``: near the papers' scale, for a GPU (224 x 224 ViT-B/16, or 64^3 volumes with the
#:   paper's 3D width; bf16); the data sizes stay within the in-memory synthetic limit.
SIZES: dict[str, dict[str, list[str]]] = {
    "2d": {
        "quick": _SMALL_VIT
        + _SMALL_2D
        + [
            "data.args.n_train=256",
            "data.args.n_val=64",
            "data.args.n_test=128",
            "train.epochs=8",
            "eval.metrics=[dice,iou]",
        ],
        "default": [
            "model.args.preset=tiny",
            "data.args.n_train=512",
            "data.args.n_val=128",
            "data.args.n_test=256",
            "data.args.image_size=64",
            "train.epochs=20",
            "train.batch_size=16",
            "train.eval_batch_size=64",
            "eval.metrics=[dice,iou,hd95,nsd]",
        ],
        "bench": _SMALL_VIT
        + _SMALL_2D
        + [
            "data.args.n_train=256",
            "data.args.n_val=128",
            "data.args.n_test=256",
            "train.epochs=48",
            "eval.metrics=[dice,iou]",
        ],
        "paper": [
            "model.args.preset=base",
            "data.args.n_train=4000",
            "data.args.n_val=1000",
            "data.args.n_test=2000",
            "data.args.image_size=224",
            "train.epochs=100",
            "train.batch_size=42",
            "train.amp=bf16",
            "train.device=cuda",
            "optim.lr=1e-4",
            "eval.metrics=[dice,iou,hd95,nsd]",
        ],
    },
    "3d": {
        "quick": _SMALL_3D
        + [
            "schedule.warmup_epochs=0",
            "data.args.n_train=48",
            "data.args.n_val=24",
            "data.args.n_test=48",
            "train.epochs=6",
            "eval.metrics=[dice,iou]",
        ],
        "default": ["data.args.n_train=192", "data.args.n_val=48", "data.args.n_test=96", "train.epochs=30"],
        "bench": _SMALL_3D
        + [
            "data.args.n_train=64",
            "data.args.n_val=128",
            "data.args.n_test=128",
            "train.epochs=24",
            "schedule.warmup_epochs=2",
            "eval.metrics=[dice,iou]",
        ],
        "paper": [
            "model.args.feature_size=24",
            "data.args.n_train=600",
            "data.args.n_val=150",
            "data.args.n_test=300",
            "data.args.image_size=64",
            "train.epochs=300",
            "train.batch_size=2",
            "train.amp=bf16",
            "train.device=cuda",
            "optim.lr=1e-4",
            "eval.metrics=[dice,iou,hd95,nsd]",
        ],
    },
}


def size_overrides(task: str, size: str) -> list[str]:
    """The ``--set`` overrides of ``size`` for synthetic ``task`` (see :data:`SIZES`)."""
    family = "3d" if task == "tumor3d" else "2d"
    require(size in SIZES[family], f"size '{size}': expected one of {sorted(SIZES[family])}")
    return list(SIZES[family][size])


"""Display names of the methods in tables and reports (from :mod:`duetfair.engine.recipes`)."""

Log = Callable[[str], None]


def results_dir(run_dir: Path, split: str, config_split: str = "test") -> Path:
    """Where the evaluation of ``split`` lives: the run folder for the config's own evaluation split,
    ``<run>/eval-<split>`` for another (e.g. the validation split used to choose defaults)."""
    return run_dir if split == config_split else run_dir / f"eval-{split}"


def run_state(run_dir: Path, config_hash: str, results: Optional[Path] = None) -> str:
    """What a benchmark finds in ``run_dir`` for a config: ``evaluated`` (reuse; its evaluation in
    ``results``, default the run folder), ``trained`` (only evaluate), ``partial`` (resume from
    ``checkpoints/last.pt``), ``empty`` (train) or ``other`` (a different config's run: refused)."""
    run = RunDir(run_dir)
    if not run.record.is_file():
        return "other" if run.checkpoint("last").exists() else "empty"
    record = run.read_record()
    if record.config_hash != config_hash:
        return "other"
    if record.status == "completed":
        return "evaluated" if RunDir(results or run_dir).summary.is_file() else "trained"
    return "partial" if run.checkpoint("last").is_file() else "empty"


def method_config(
    method: str, overrides: Sequence[str], *, task: str = "fundus2d", config: Optional[str | Path] = None
) -> Any:
    """The validated config of ``method``: the packaged ``<task>_<method>``, or the user's
    ``config`` switched to ``method`` (:func:`~duetfair.engine.config.with_method`), with
    ``overrides`` applied; refuses an override that undoes the method's model / objective pairing."""
    from duetfair.engine.config import METHODS, apply_overrides, load_raw, validate, with_method
    from duetfair.models.registry import moe_kind

    if config is None:
        raw = load_raw(f"{task}_{method}")
    else:
        raw = with_method(load_raw(config), method)
    cfg = validate(apply_overrides(raw, list(overrides)))
    kind, objective, _ = METHODS[cfg.method] if cfg.method is not None else ("none", "erm", None)
    require(
        cfg.method == method and cfg.objective.name == objective and moe_kind(cfg.model.name) == kind,
        f"benchmark method '{method}': the overrides give method '{cfg.method}', objective "
        f"'{cfg.objective.name}' and model '{cfg.model.name}'; drop --set method/objective.name/model.name",
    )
    return cfg


def train_and_evaluate(
    method: str,
    run_dir: Path,
    overrides: Sequence[str],
    *,
    n_boot: int,
    task: str = "fundus2d",
    config: Optional[str | Path] = None,
    split: Optional[str] = None,
    report: bool = True,
    log: Log = print,
    progress: Optional[ProgressLine] = None,
) -> Path:
    """Train ``method`` (see :func:`method_config`) into ``run_dir`` and evaluate it on ``split``
    (default: the config's ``eval.split``, ``test``; another split goes to :func:`results_dir`).

    A finished, evaluated run of the same config is reused, a trained one only evaluated, an
    interrupted one resumed; a run folder of another config is refused. ``progress`` (epochs of
    the whole demo / benchmark) gets a line per trained epoch, so a log shows how far it is and
    about how long is left. Returns the folder of the evaluation."""
    from duetfair.engine.console import EpochProgress
    from duetfair.engine.evaluate import evaluate_run
    from duetfair.engine.trainer import train

    cfg = method_config(
        method,
        [*overrides, f"output_dir={run_dir}", "train.progress=false", "train.log_every_epoch=false"],
        task=task,
        config=config,
    )
    name = DISPLAY.get(method, method)
    split = split or cfg.eval.split
    results = results_dir(run_dir, split, cfg.eval.split)
    state = run_state(run_dir, cfg.config_hash(), results)
    require(state != "other", f"{run_dir} holds a run of another config; remove it or choose another --out")
    if state == "evaluated":
        log(f"  {name}: reusing finished run {run_dir}")
        if progress is not None:
            progress.skip(cfg.train.epochs)
        return results
    if state != "trained":
        if state == "partial":
            log(f"  {name}: resuming unfinished run {run_dir}")
        callbacks = [EpochProgress(name, progress)] if progress is not None else None
        result = train(cfg, run_dir, resume=state == "partial", callbacks=callbacks)
        if result.status != "completed":
            raise KeyboardInterrupt
    elif progress is not None:
        progress.skip(cfg.train.epochs)
    summary = evaluate_run(
        run_dir,
        split=split,
        n_boot=n_boot,
        report=report,
        out_dir=results if results != run_dir else None,
        threads=cfg.train.threads,
    )
    log(f"  {name}: {split} Dice {summary['dice']:.3f} (best epoch {RunDir(run_dir).read_record().best_epoch})")
    return results


def seed_overrides(seed: int, *, task: str = "fundus2d", config: Optional[str | Path] = None) -> list[str]:
    """``seed=S``, and ``data.args.seed=S`` where the data has a seed: always for a synthetic task,
    for a config when its ``data.args`` has ``seed`` (e.g. a manifest's split seed)."""
    from duetfair.engine.config import load_raw

    if config is None:
        return [f"seed={seed}", f"data.args.seed={seed}"]
    data_args = (load_raw(config).get("data") or {}).get("args") or {}
    return [f"seed={seed}"] + ([f"data.args.seed={seed}"] if "seed" in data_args else [])


def run_methods(
    out: str | Path,
    *,
    task: str = "fundus2d",
    methods: Sequence[str] = DEMO_METHODS,
    size: Optional[str] = "quick",
    seed: int = 0,
    extra: Sequence[str] = (),
    n_boot: int = 1000,
    config: Optional[str | Path] = None,
    split: Optional[str] = None,
    report: bool = True,
    log: Log = print,
    progress: Optional[ProgressLine] = None,
) -> list[Path]:
    """Train every method into ``out/<method>`` and evaluate it on ``split`` (see
    :func:`train_and_evaluate`); returns the evaluation folders.

    ``config``: a user's experiment config instead of the synthetic ``task`` (then ``size`` must be
    ``None``: the config's own sizes are used)."""
    from duetfair.engine.config import list_packaged_configs
    from duetfair.options import Method, parse

    for m in methods:
        parse(Method, m, "--method")
    if config is None:
        if size is None:
            raise DuetfairError("a synthetic task needs a size")
        sizes = size_overrides(task, size)
        available = set(list_packaged_configs())
        for m in methods:
            require(
                f"{task}_{m}" in available, f"method '{m}' has no packaged config for task '{task}' ({task}_{m}.yaml)"
            )
    else:
        require(
            size is None,
            f"--size {size}: applies to the synthetic --task only; set the sizes of {config} in the file or with --set",
        )
        sizes = []
    overrides = [*sizes, *seed_overrides(seed, task=task, config=config), *extra]
    root = Path(out)
    return [
        train_and_evaluate(
            m,
            root / m,
            overrides,
            n_boot=n_boot,
            task=task,
            config=config,
            split=split,
            report=report,
            log=log,
            progress=progress,
        )
        for m in methods
    ]


def epoch_progress(
    methods: Sequence[str],
    n_seeds: int,
    log: Log,
    *,
    task: str = "fundus2d",
    size: Optional[str] = "quick",
    config: Optional[str | Path] = None,
    extra: Sequence[str] = (),
) -> ProgressLine:
    """A :class:`~duetfair.progress.ProgressLine` over every epoch the methods x seeds will train
    (a line per epoch: the estimate of the time left is what matters in a long log)."""
    sizes = size_overrides(task, size) if config is None and size is not None else []
    epochs = method_config(methods[0], [*sizes, *extra], task=task, config=config).train.epochs
    return ProgressLine("epochs", len(methods) * n_seeds * epochs, log, label="  training", every=0.0)


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    methods: Sequence[str] = DEMO_METHODS,
    seed: int = 0,
    extra: Sequence[str] = (),
    log: Log = print,
) -> str:
    """The full demo (see the module docstring); returns the Markdown comparison table.

    ``extra``: further ``--set`` overrides applied to every run (after the demo size).
    """
    from duetfair.audit.compare import compare_runs, comparison_report, format_table
    from duetfair.io import write_text

    root = Path(out)
    size = "quick" if quick else "default"
    if not any(str(e).startswith("train.threads=") for e in extra):
        extra = [f"train.threads={DEMO_THREADS}", *extra]
    log(f"training {len(methods)} methods on the synthetic fundus benchmark ({size} size) into {root}")
    progress = epoch_progress(methods, 1, log, size=size, extra=extra)
    runs = run_methods(
        root,
        methods=methods,
        size=size,
        seed=seed,
        extra=extra,
        n_boot=200 if quick else 1000,
        report=not quick,  # the quick demo's report is the comparison's (duetfair evaluate RUN draws one run's)
        log=log,
        progress=progress,
    )
    names = [DISPLAY.get(m, m) for m in methods]
    table = compare_runs(runs, names=names)
    md = format_table(table, "md")
    write_text(root / "comparison.md", md)
    write_text(root / "comparison.json", format_table(table, "json"))
    write_text(root / "comparison.csv", format_table(table, "csv"))
    comparison_report(
        runs,
        root / "report.html",
        names=names,
        audit_run=runs[-1],
        n_boot=200 if quick else 1000,
        seed=seed,
        title=f"duetfair demo: method comparison (audit shown: {names[-1]})",
        provenance={"data": f"synthetic fundus benchmark ({size} size), runs in {root}"},
    )
    return md


# ---- multi-seed benchmark -------------------------------------------------------------------------


def run_benchmark(
    out: str | Path,
    *,
    task: str = "fundus2d",
    methods: Sequence[str] = DEMO_METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    size: Optional[str] = "quick",
    extra: Sequence[str] = (),
    n_boot: int = 200,
    config: Optional[str | Path] = None,
    split: Optional[str] = None,
    log: Log = print,
) -> dict[str, Any]:
    """Method comparison over ``seeds``; writes ``methods.md`` / ``methods.json`` / ``report.html``
    into ``out`` (``methods-<split>.*`` for a split other than the configs' ``eval.split``).

    ``config``: benchmark a user's experiment config (own data) instead of the synthetic ``task``
    (``size`` then ``None``); runs go to ``out/seed<S>/<method>``, finished ones are reused.
    ``split``: the split evaluated (default ``test``); ``"val"`` is the one to choose defaults and
    hyper-parameters on, and its evaluations sit beside the test ones in ``<run>/eval-val``.
    Paired differences are to ERM and, when benchmarked, to dMoE alone."""
    from duetfair.io import write_json, write_text

    require(len(seeds) >= 1, "benchmark: give at least one seed")
    require(len(set(methods)) == len(methods), f"benchmark: a method is listed twice in {list(methods)}")
    root = Path(out)
    progress = epoch_progress(methods, len(seeds), log, task=task, size=size, config=config, extra=extra)
    options: dict[str, Any] = dict(task=task, size=size, extra=extra, n_boot=n_boot, config=config, split=split)
    per_seed = benchmark_rows(root, methods=methods, seeds=seeds, log=log, progress=progress, **options)
    agg, baselines, tables, headroom = benchmark_summary(per_seed, root, methods)
    md = tables_markdown(tables)
    stem = "methods" if split in (None, "test") else f"methods-{split}"
    write_text(root / f"{stem}.md", md)
    result = {
        "task": None if config is not None else task,
        "config": None if config is None else str(config),
        "size": size,
        "split": split or "test",
        "seeds": list(map(int, seeds)),
        "methods": list(methods),
        "baselines": baselines,
        "aggregate": agg.to_dict(orient="records"),
        "per_seed": per_seed.to_dict(orient="records"),
        "headroom": headroom.to_dict(orient="records"),
    }
    write_json(root / f"{stem}.json", result)
    _benchmark_report(
        root,
        agg,
        tables,
        baselines[0],
        seeds=seeds,
        config=config,
        task=task,
        size=size,
        name="report.html" if stem == "methods" else f"report-{split}.html",
    )
    return {"markdown": md, **result}


def benchmark_rows(
    root: Path,
    *,
    methods: Sequence[str],
    seeds: Sequence[int],
    log: Log,
    progress: Optional[ProgressLine],
    **options: Any,
) -> pd.DataFrame:
    """Train and evaluate every method for every seed into ``root/seed<S>/<method>`` (``options``:
    those of :func:`run_methods`); one row per run (``key`` the method, ``seed``, its scores
    without intervals, :func:`duetfair.audit.compare.run_row`)."""
    from duetfair.audit.compare import run_row

    rows = []
    for s in seeds:
        log(f"seed {s}")
        # each run's own report.html: why a run won or lost
        results = run_methods(
            root / f"seed{s}", methods=methods, seed=int(s), report=True, log=log, progress=progress, **options
        )
        for m, res in zip(methods, results):
            row = run_row(root / f"seed{s}" / m, name=DISPLAY.get(m, m), results=res)
            rows.append({"key": m, "seed": int(s), **{k: v for k, v in row.items() if not k.endswith("_ci")}})
    return pd.DataFrame(rows)


def benchmark_summary(
    per_seed: pd.DataFrame, root: Path, methods: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[Table], pd.DataFrame]:
    """``(aggregate, baselines, tables, headroom)`` of the :func:`benchmark_rows` of runs in
    ``root``: means over seeds with paired differences to the baselines (ERM and dMoE when
    benchmarked, else the first method), and the share of the oracle headroom on the hidden subtype."""
    baselines = [b for b in ("erm", "dmoe") if b in methods] or [methods[0]]
    agg = aggregate_seeds(per_seed, baselines)
    tables = benchmark_tables(agg, baselines)
    runs = {
        (str(r["key"]), int(r["seed"])): root / f"seed{r['seed']}" / str(r["key"]) for r in per_seed.to_dict("records")
    }
    headroom = headroom_table(per_seed, runs)
    if not headroom.empty:
        tables.append(headroom_report_table(headroom, DISPLAY))
    return agg, baselines, tables, headroom


def _benchmark_report(
    root: Path,
    agg: pd.DataFrame,
    tables: Sequence[Table],
    baseline: str,
    *,
    seeds: Sequence[int],
    config: Optional[str | Path],
    task: str,
    size: Optional[str],
    name: str = "report.html",
) -> None:
    """``report.html`` of a benchmark (methods with intervals across seeds, paired differences to
    the baseline with verdicts, the table); a plotting failure only warns (the results are written)."""
    from duetfair.audit.compare import seed_comparison_report
    from duetfair.audit.report import provenance
    from duetfair.audit.report.guard import render_or_warn

    source = f"config {config}" if config is not None else f"synthetic task {task} ({size} size)"
    prov = provenance(
        config=Path(config).read_text(encoding="utf-8") if config is not None and Path(config).is_file() else None,
        data=source,
        seed=", ".join(map(str, seeds)),
    )
    note = (
        f"Each score: mean over {len(seeds)} seed(s) with a 95% bootstrap interval across seeds; differences "
        f"to {DISPLAY.get(baseline, baseline)} are paired by seed. Runs in {root}/seed<S>/<method>."
    )
    render_or_warn(
        lambda: seed_comparison_report(
            agg,
            tables,
            baseline,
            root / name,
            notes=[note],
            provenance=prov,
            references=REFERENCE_METHODS,
            title=f"duetfair benchmark: {source}, {len(seeds)} seed(s)",
        ),
        complete="methods.md and methods.json",
    )
