"""``duetfair demo`` and ``duetfair benchmark``: train, evaluate and compare fairness methods on the
synthetic benchmark or on any experiment config (a user's own data).

The demo trains ERM, GroupDRO, FEBS, MoE, dMoE and FairDRO (dMoE + subgroup-conditioned DRO, the
DuetFair pairing) on the synthetic fundus task (race groups, hidden hard subtype) with a CPU-sized
ViT, evaluates every run on the test split, prints the comparison table and writes
``comparison.{md,json,csv}`` and ``report.html``. Sizes: :data:`DEMO_SIZES` (``quick`` for tests and
a first look, ``default`` for a comparison that means something).

The benchmark repeats the comparison over several seeds (data and training) and reports, per method,
the mean over seeds with a percentile bootstrap interval across seeds, and the paired difference to
ERM. Nothing is tuned per method: every method gets the same data, model size, epochs and optimiser.
On a synthetic task (``task``) every method uses its packaged ``<task>_<method>`` config at a
:data:`DEMO_SIZES` size; on a user's config (``config``) the method shortcut is applied to that
config (:func:`duetfair.engine.config.with_method`) and its sizes are kept. A seed sets ``seed``
and, where the config's ``data.args`` has a ``seed`` (the synthetic data, a manifest's split seed),
that too. Finished runs are reused, interrupted ones resumed, so a killed benchmark is re-run with
the same command.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from duetfair.errors import require
from duetfair.metrics.bootstrap import bootstrap_means, percentile_ci
from duetfair.rundir import RunDir

DEMO_METHODS: tuple[str, ...] = ("erm", "group_dro", "febs", "moe", "dmoe", "fair_dro")

_SMALL_VIT = [
    "model.args.preset=tiny",
    "model.args.dim=64",
    "model.args.depth=2",
    "model.args.heads=2",
    "model.args.patch_size=4",
    "model.args.head_channels=32",
    "model.args.decoder_channels=[16,16]",
]

#: ``--set`` overrides of the demo sizes (applied on top of the ``<task>_<method>`` configs).
#: ``quick``: about 1 minute on 2 idle CPU cores; ``default``: about 8 (tiny ViT preset, 64 x 64).
DEMO_SIZES: dict[str, list[str]] = {
    "quick": _SMALL_VIT
    + [
        "data.args.n_train=256",
        "data.args.n_val=64",
        "data.args.n_test=128",
        "data.args.image_size=48",
        "train.epochs=8",
        "train.batch_size=16",
        "train.eval_batch_size=64",
        "optim.lr=3e-3",
        "eval.metrics=[dice,iou]",
        "schedule.warmup_epochs=0",
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
}
DISPLAY = {
    "erm": "ERM",
    "group_dro": "GroupDRO",
    "febs": "FEBS",
    "adversarial": "Adversarial",
    "moe": "MoE",
    "dmoe": "dMoE",
    "fair_dro": "FairDRO (dMoE + DRO)",
    "divergence": "Divergence (FairMedSeg)",
    "cvar": "CVaR",
    "focal": "Focal",
}

Log = Callable[[str], None]


def run_state(run_dir: Path, config_hash: str) -> str:
    """What a benchmark finds in ``run_dir`` for a config: ``evaluated`` (reuse), ``trained`` (only
    evaluate), ``partial`` (resume from ``checkpoints/last.pt``), ``empty`` (train) or ``other`` (a
    different config's run: refused)."""
    run = RunDir(run_dir)
    if not run.record.is_file():
        return "other" if run.checkpoint("last").exists() else "empty"
    record = run.read_record()
    if record.config_hash != config_hash:
        return "other"
    if record.status == "completed":
        return "evaluated" if run.summary.is_file() else "trained"
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
    log: Log = print,
) -> Path:
    """Train ``method`` (see :func:`method_config`) into ``run_dir`` and evaluate it (test split).

    A finished, evaluated run of the same config is reused, a trained one only evaluated, an
    interrupted one resumed; a run folder of another config is refused."""
    from duetfair.engine.evaluate import evaluate_run
    from duetfair.engine.trainer import train

    cfg = method_config(
        method,
        [*overrides, f"output_dir={run_dir}", "train.progress=false", "train.log_every_epoch=false"],
        task=task,
        config=config,
    )
    name = DISPLAY.get(method, method)
    state = run_state(run_dir, cfg.config_hash())
    require(state != "other", f"{run_dir} holds a run of another config; remove it or choose another --out")
    if state == "evaluated":
        log(f"  {name}: reusing finished run {run_dir}")
        return run_dir
    if state != "trained":
        if state == "partial":
            log(f"  {name}: resuming unfinished run {run_dir}")
        result = train(cfg, run_dir, resume=state == "partial")
        if result.status != "completed":
            raise KeyboardInterrupt
    summary = evaluate_run(run_dir, n_boot=n_boot)
    log(f"  {name}: test Dice {summary['dice']:.3f} (best epoch {RunDir(run_dir).read_record().best_epoch})")
    return run_dir


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
    log: Log = print,
) -> list[Path]:
    """Train and evaluate every method into ``out/<method>``; returns the run folders.

    ``config``: a user's experiment config instead of the synthetic ``task`` (then ``size`` must be
    ``None``: the config's own sizes are used)."""
    from duetfair.engine.config import list_packaged_configs
    from duetfair.options import Method, parse

    for m in methods:
        parse(Method, m, "--method")
    if config is None:
        require(size in DEMO_SIZES, f"size '{size}': expected one of {sorted(DEMO_SIZES)}")
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
    sizes = DEMO_SIZES[size] if config is None and size is not None else []
    overrides = [*sizes, *seed_overrides(seed, task=task, config=config), *extra]
    root = Path(out)
    return [
        train_and_evaluate(m, root / m, overrides, n_boot=n_boot, task=task, config=config, log=log) for m in methods
    ]


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
    log(f"training {len(methods)} methods on the synthetic fundus benchmark ({size} size) into {root}")
    runs = run_methods(root, methods=methods, size=size, seed=seed, extra=extra, n_boot=200 if quick else 1000, log=log)
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

BENCH_COLUMNS = ("es_dice", "dice", "es_iou", "iou", "worst_dice", "worst_cvar10", "hidden_dice")


def seed_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-seed ``values`` (resampling seeds; NaN
    seeds left out; ``(nan, nan)`` with fewer than two)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float("nan"), float("nan"))
    return percentile_ci(bootstrap_means(v, n_boot, np.random.default_rng(seed)), level)


def aggregate_seeds(per_seed: pd.DataFrame, baseline: str = "erm") -> pd.DataFrame:
    """Per method: mean over seeds and bootstrap interval across seeds of every headline column,
    and the paired difference to ``baseline`` (same seed) with its interval."""
    rows = []
    base = per_seed[per_seed["key"] == baseline].set_index("seed")
    for key, part in per_seed.groupby("key", sort=False):
        row: dict[str, Any] = {"method": part["method"].iloc[0], "key": key, "n_seeds": int(len(part))}
        for col in BENCH_COLUMNS:
            if col not in part:
                continue
            vals = part[col].to_numpy(dtype=float)
            row[col] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            row[f"{col}_ci"] = list(seed_ci(vals))
            if len(base) and col in base:
                diff = part.set_index("seed")[col] - base[col].reindex(part["seed"]).to_numpy()
                d = diff.to_numpy(dtype=float)
                row[f"{col}_vs_{baseline}"] = float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
                row[f"{col}_vs_{baseline}_ci"] = list(seed_ci(d))
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: float, ci: Sequence[float] | None, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{v:+.3f}" if signed else f"{v:.3f}"
    if ci and all(math.isfinite(c) for c in ci):
        s += f" ({ci[0]:+.3f} to {ci[1]:+.3f})" if signed else f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return s


def benchmark_markdown(agg: pd.DataFrame, baseline: str = "erm") -> str:
    """Markdown table of :func:`aggregate_seeds`: best mean per column in bold, and a verdict column
    saying whether the method beat the baseline on ES-Dice and worst-group Dice (interval above 0)."""
    cols = [c for c in BENCH_COLUMNS if c in agg.columns]
    best = {c: agg[c].max() for c in cols if agg[c].notna().any()}
    from duetfair.audit.compare import LABELS

    name = DISPLAY.get(baseline, baseline)
    header = (
        ["Method", "seeds"]
        + [LABELS.get(c, c) for c in cols]
        + [f"ES-Dice vs {name}", f"Worst-group Dice vs {name}", "verdict"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, r in agg.iterrows():
        cells = [str(r["method"]), str(r["n_seeds"])]
        for c in cols:
            text = _fmt(r[c], r.get(f"{c}_ci"))
            cells.append(f"**{text}**" if c in best and r[c] == best[c] else text)
        verdict = []
        for c in ("es_dice", "worst_dice"):
            d, ci = r.get(f"{c}_vs_{baseline}"), r.get(f"{c}_vs_{baseline}_ci")
            cells.append(_fmt(d, ci, signed=True) if r["key"] != baseline else "-")
            if r["key"] != baseline and ci is not None and all(math.isfinite(x) for x in ci):
                verdict.append(f"{c}: " + ("better" if ci[0] > 0 else "worse" if ci[1] < 0 else "no clear difference"))
        cells.append("; ".join(verdict) if verdict else ("baseline" if r["key"] == baseline else "n/a (1 seed)"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    log: Log = print,
) -> dict[str, Any]:
    """Method comparison over ``seeds``; writes ``methods.md`` / ``methods.json`` into ``out``.

    ``config``: benchmark a user's experiment config (own data) instead of the synthetic ``task``
    (``size`` then ``None``); runs go to ``out/seed<S>/<method>``, finished ones are reused."""
    from duetfair.audit.compare import run_row
    from duetfair.io import write_json, write_text

    require(len(seeds) >= 1, "benchmark: give at least one seed")
    require(len(set(methods)) == len(methods), f"benchmark: a method is listed twice in {list(methods)}")
    root = Path(out)
    rows = []
    for s in seeds:
        log(f"seed {s}")
        runs = run_methods(
            root / f"seed{s}",
            task=task,
            methods=methods,
            size=size,
            seed=int(s),
            extra=extra,
            n_boot=n_boot,
            config=config,
            log=log,
        )
        for m, run in zip(methods, runs):
            row = run_row(run, name=DISPLAY.get(m, m))
            rows.append({"key": m, "seed": int(s), **{k: v for k, v in row.items() if not k.endswith("_ci")}})
    per_seed = pd.DataFrame(rows)
    baseline = "erm" if "erm" in methods else methods[0]
    agg = aggregate_seeds(per_seed, baseline)
    md = benchmark_markdown(agg, baseline)
    write_text(root / "methods.md", md)
    result = {
        "task": None if config is not None else task,
        "config": None if config is None else str(config),
        "size": size,
        "seeds": list(map(int, seeds)),
        "methods": list(methods),
        "baseline": baseline,
        "aggregate": agg.to_dict(orient="records"),
        "per_seed": per_seed.to_dict(orient="records"),
    }
    write_json(root / "methods.json", result)
    _benchmark_report(root, agg, md, baseline, seeds=seeds, config=config, task=task, size=size)
    return {"markdown": md, **result}


def _benchmark_report(
    root: Path,
    agg: pd.DataFrame,
    md: str,
    baseline: str,
    *,
    seeds: Sequence[int],
    config: Optional[str | Path],
    task: str,
    size: Optional[str],
) -> None:
    """``report.html`` of a benchmark (methods with intervals across seeds, paired differences to
    the baseline with verdicts, the table); a plotting failure only warns (the results are written)."""
    import warnings

    from duetfair.audit.compare import seed_comparison_report
    from duetfair.audit.report import provenance

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
    try:
        seed_comparison_report(
            agg,
            md,
            baseline,
            root / "report.html",
            notes=[note],
            provenance=prov,
            title=f"duetfair benchmark: {source}, {len(seeds)} seed(s)",
        )
    except ValueError as exc:
        warnings.warn(
            f"report.html not written ({exc}); methods.md and methods.json are complete", RuntimeWarning, stacklevel=2
        )
