r"""``duetfair compare``: the papers' comparison table from evaluated runs.

One row per run (method): ES-Dice, Dice, ES-IoU, IoU with bootstrap intervals, per-group Dice and
IoU, the worst group and its Dice, and the hidden-failure number: the worst group's CVaR10 of
per-case Dice (mean Dice of the worst 10 % of a group's cases, the tail a group mean hides), plus
the hidden-subtype Dice when the data knows the subtype. Every column is higher-is-better; the best
value per column is marked (``**bold**`` in Markdown, ``\textbf`` in LaTeX, ``best`` entry in JSON,
``best_*`` flags in CSV).

Input is what ``duetfair evaluate`` writes into each run directory (``audit.json``, ``summary.json``,
``run.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.report.tables import Cell, Table
from duetfair.errors import DuetfairError, require
from duetfair.io import read_table
from duetfair.metrics.registry import column_label
from duetfair.options import OutputFormat, choices
from duetfair.rundir import RunDir

FORMATS = tuple(choices(OutputFormat))
HEADLINE = ("es_dice", "dice", "es_iou", "iou")
LABELS = {c: column_label(c) for c in ("es_dice", "dice", "es_iou", "iou", "worst_dice", "worst_cvar10", "hidden_dice")}


def _attr_entry(audit: dict[str, Any], metric: str, attribute: str, where: Path) -> dict[str, Any]:
    try:
        block = audit["metrics"][metric]
    except (KeyError, TypeError):
        raise DuetfairError(f"{where}: audit has no metric '{metric}'") from None
    attrs = block.get("attributes", {})
    require(attribute in attrs, f"{where}: audit has no attribute '{attribute}'; it has {sorted(attrs)}")
    return {"overall": block["overall"], **attrs[attribute]}


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


_NO_METRIC: dict[str, Any] = {"es": None, "es_ci": [None, None], "overall": {"mean": None}, "groups": []}


def run_row(
    run_dir: str | Path,
    attribute: Optional[str] = None,
    name: Optional[str] = None,
    results: Optional[str | Path] = None,
) -> dict[str, Any]:
    """Numbers of one evaluated run (see the module docstring) as a flat dict; ``results``: the
    folder of the evaluation to read (``duetfair evaluate --out``; default the run folder)."""
    run = RunDir(run_dir)
    root = run.root
    require(root.is_dir(), f"run directory {root} not found")
    evaluation = RunDir(results) if results is not None else run
    audit = run.read_json(evaluation.audit, "audit")
    summary = run.read_json(evaluation.summary, "summary")
    record = run.read_record() if run.record.is_file() else None
    require(
        isinstance(audit.get("metrics"), dict) and isinstance(audit["metrics"].get("dice"), dict),
        f"{root}: audit has no metric 'dice'; expected the audit.json of 'duetfair evaluate'",
    )
    if attribute is None:
        attribute = (record.group_attribute if record else None) or next(
            iter(audit["metrics"]["dice"].get("attributes", {})), None
        )
    if attribute is None:
        raise DuetfairError(f"{root}: no attribute to compare; pass --by")
    dice = _attr_entry(audit, "dice", attribute, root)
    # IoU only when the run evaluated it (eval.metrics may be [dice]); absent -> not a number
    iou = _attr_entry(audit, "iou", attribute, root) if "iou" in audit.get("metrics", {}) else _NO_METRIC
    row: dict[str, Any] = {
        "method": name or (record.method or record.name if record else None) or root.name,
        "run": str(root),
        "attribute": attribute,
        "n_cases": summary.get("n_cases"),
        "es_dice": _nan(dice["es"]),
        "es_dice_ci": [_nan(v) for v in dice.get("es_ci", [None, None])],
        "dice": _nan(dice["overall"]["mean"]),
        "dice_ci": [_nan(v) for v in dice["overall"].get("ci", [None, None])],
        "es_iou": _nan(iou["es"]),
        "es_iou_ci": [_nan(v) for v in iou.get("es_ci", [None, None])],
        "iou": _nan(iou["overall"]["mean"]),
        "iou_ci": [_nan(v) for v in iou["overall"].get("ci", [None, None])],
        "worst_group": dice.get("worst_group"),
        "worst_dice": _nan(dice.get("worst_mean")),
        "worst_cvar10": _nan(
            dice.get("worst_cvar10", min((g.get("cvar10", math.nan) for g in dice["groups"]), default=None))
        ),
    }
    for g in dice["groups"]:
        row[f"dice[{g['value']}]"] = _nan(g["mean"])
    for g in iou["groups"]:
        row[f"iou[{g['value']}]"] = _nan(g["mean"])
    hidden = summary.get("hidden_subtype") or {}
    if "1" in hidden:
        row["hidden_dice"] = _nan(hidden["1"].get("dice"))
    return row


def compare_runs(
    run_dirs: Sequence[str | Path], *, attribute: Optional[str] = None, names: Optional[Sequence[str]] = None
) -> pd.DataFrame:
    """Comparison table (one row per run) of evaluated runs; see :func:`format_table`."""
    require(len(run_dirs) >= 1, "compare: give at least one run directory")
    require(
        names is None or len(names) == len(run_dirs),
        f"compare: {len(names or [])} names for {len(run_dirs)} runs; expected one name per run",
    )
    rows = [run_row(d, attribute, None if names is None else names[i]) for i, d in enumerate(run_dirs)]
    attrs = {r["attribute"] for r in rows}
    require(len(attrs) == 1, f"compare: runs use different group attributes {sorted(attrs)}; choose one with --by")
    require_same_evaluation(run_dirs)
    df = pd.DataFrame(rows)
    if df["method"].duplicated().any():
        df["method"] = [f"{m} ({Path(r).name})" for m, r in zip(df["method"], df["run"])]
    return df


def _evaluation_identity(run: RunDir) -> tuple[Any, Any, Optional[set[str]]]:
    """``(split, data, case ids)`` of a run's evaluation: the split and data ``summary.json`` names
    (the data of the run's config.yaml for evaluations that did not record it), the ids of cases.csv."""
    summary = run.read_json(run.summary, "summary")
    data = summary.get("data")
    if data is None and run.config.is_file():  # the resolved config the run saved (plain YAML)
        import yaml

        try:
            section = (yaml.safe_load(run.config.read_text(encoding="utf-8")) or {}).get("data") or {}
            data = {"kind": section.get("kind"), "args": dict(section.get("args") or {})}
        except (yaml.YAMLError, AttributeError, TypeError, ValueError, RecursionError):
            data = None
    ids = None
    if run.cases.is_file():
        ids = set(read_table(run.cases, text_columns=["case_id"])["case_id"].astype(str))
    return summary.get("split"), data, ids


def require_same_evaluation(run_dirs: Sequence[str | Path]) -> None:
    """Refuse runs evaluated on different splits, different data or different cases: their numbers
    are not comparable (a ranking of them would compare the data, not the methods)."""
    if len(run_dirs) < 2:
        return
    first = RunDir(run_dirs[0])
    split0, data0, ids0 = _evaluation_identity(first)
    for d in run_dirs[1:]:
        run = RunDir(d)
        split, data, ids = _evaluation_identity(run)
        require(
            split == split0,
            f"compare: {first.root} was evaluated on split '{split0}' and {run.root} on '{split}'; "
            f"compare evaluations of the same split (duetfair evaluate --split)",
        )
        require(
            data0 is None or data is None or data == data0,
            f"compare: {first.root} and {run.root} were evaluated on different data ({_short(data0)} vs "
            f"{_short(data)}); compare runs evaluated on the same data",
        )
        if ids0 is not None and ids is not None:
            shared = len(ids0 & ids)
            require(
                ids0 == ids,
                f"compare: {first.root} ({len(ids0)} cases) and {run.root} ({len(ids)} cases) were evaluated on "
                f"different cases ({shared} shared); compare runs evaluated on the same cases",
            )


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def value_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns shown in the table, in display order."""
    groups = [c for c in df.columns if c.startswith("dice[")] + [c for c in df.columns if c.startswith("iou[")]
    tail = [c for c in ("worst_dice", "worst_cvar10", "hidden_dice") if c in df.columns]
    return list(HEADLINE) + groups + tail


def best_rows(df: pd.DataFrame) -> dict[str, list[str]]:
    """Column -> methods with the best (highest) value (ties all marked; NaN ignored)."""
    out: dict[str, list[str]] = {}
    for col in value_columns(df):
        values = pd.to_numeric(df[col], errors="coerce")
        if values.notna().any() and len(df) > 1:
            top = values.max()
            out[col] = [m for m, v in zip(df["method"], values) if v == top]
    return out


_LATEX = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def latex_text(value: Any) -> str:
    """``value`` as LaTeX text that typesets as itself (no command of the data is run), one line."""
    return "".join(_LATEX.get(ch, ch) for ch in " ".join(str(value).split()))


def _cell(value: float, ci: Optional[list[float]], digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if ci and all(c is not None and math.isfinite(c) for c in ci):
        text += f" ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})"
    return text


def paper_table(df: pd.DataFrame, digits: int = 3) -> Table:
    """The papers' comparison table (one row per method, :func:`value_columns` with intervals, the
    best value per column marked, the worst group) as a typed :class:`~duetfair.audit.report.tables.Table`."""
    best = best_rows(df)
    cols = value_columns(df)
    header = ["Method"] + [LABELS.get(c, c.replace("dice[", "Dice ").replace("iou[", "IoU ").rstrip("]")) for c in cols]
    header += ["Worst group"] if "worst_group" in df.columns else []
    rows = []
    for _, r in df.iterrows():
        cells = [Cell(str(r["method"]))]
        for c in cols:
            ci = r.get(f"{c}_ci") if f"{c}_ci" in df.columns else None
            cells.append(Cell(_cell(r[c], ci, digits), best=r["method"] in best.get(c, [])))
        cells += [Cell(str(r["worst_group"]))] if "worst_group" in df.columns else []
        rows.append(cells)
    note = (
        f"Groups: {df['attribute'].iloc[0]}. Values: point estimate (95 % bootstrap interval); best per column in "
        "bold. Worst-group CVaR10 = mean Dice of the worst 10 % of cases in the worst group (hidden failures)."
    )
    return Table.of(header, rows, note=note)


def _json(df: pd.DataFrame) -> str:
    records = [
        {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}
        for _, r in df.iterrows()
    ]
    body = {
        "attribute": str(df["attribute"].iloc[0]),
        "higher_is_better": True,
        "methods": records,
        "best": best_rows(df),
    }
    return json.dumps(body, indent=2) + "\n"


def _csv(df: pd.DataFrame) -> str:
    out = df.drop(columns=[c for c in df.columns if c.endswith("_ci")]).copy()
    for c in HEADLINE:
        out[f"{c}_ci_low"] = [ci[0] for ci in df[f"{c}_ci"]]
        out[f"{c}_ci_high"] = [ci[1] for ci in df[f"{c}_ci"]]
    for c, methods in best_rows(df).items():
        out[f"best_{c}"] = out["method"].isin(methods)
    return out.to_csv(index=False)


def _latex(table: Table) -> str:
    header, *rows = table.render(latex_text, lambda t: f"\\textbf{{{t}}}")
    spec = "l" + "c" * (len(header) - 1)
    lines = ["\\begin{tabular}{" + spec + "}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    lines += [" & ".join(cells) + " \\\\" for cells in rows]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def format_table(df: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """Render the comparison as ``md``, ``csv``, ``json`` or ``latex``."""
    require(fmt in FORMATS, f"--format '{fmt}': expected one of {', '.join(FORMATS)}")
    if fmt == "json":
        return _json(df)
    if fmt == "csv":
        return _csv(df)
    table = paper_table(df, digits)
    return table.markdown() if fmt == "md" else _latex(table)


# ---- the comparison report ---------------------------------------------------------------------

PAIRED = ("dice", "worst_dice", "es_dice")
"""Scores of the paired differences to the baseline (overall Dice, worst-group Dice, ES-Dice)."""


def _case_dice(run: RunDir, attribute: str) -> tuple[pd.DataFrame, str]:
    """Case-level Dice of a run's ``cases.csv`` with the group label of ``attribute`` (the run's
    group spec), and the ES variant of its audit."""
    from duetfair.data.groups import GroupSpec
    from duetfair.metrics.cases import case_level

    require(run.cases.is_file(), f"{run.root}: missing {run.cases.name}; run 'duetfair evaluate {run.root}' first")
    frame = case_level(read_table(run.cases, text_columns=["case_id"]), ["dice"])
    spec = GroupSpec.load(run.group_spec) if run.group_spec.is_file() else None
    labels = GroupSpec.for_table(frame, [attribute], base=spec).labels(frame, attribute)
    audit = run.read_json(run.audit, "audit") if run.audit.is_file() else {}
    variant = str(audit.get("settings", {}).get("es_variant", "sum_abs"))
    out = pd.DataFrame(
        {
            "case_id": frame["case_id"].astype(str).to_numpy(),
            "dice": pd.to_numeric(frame["dice"], errors="coerce").to_numpy(dtype=float),
            "group": labels.astype(object).to_numpy(),
        }
    )
    return out.drop_duplicates("case_id").set_index("case_id"), variant


def _paired_stats(values: np.ndarray, codes: np.ndarray, k: int, idx: np.ndarray, variant: str) -> np.ndarray:
    """``[3, B]``: overall mean, worst-group mean and equity-scaled value of the resamples ``idx [B, n]``."""
    from duetfair.metrics.bootstrap import equity_scaled

    v, c = values[idx], codes[idx]
    overall = v.mean(axis=1)
    means = np.full((idx.shape[0], k), np.nan)
    for g in range(k):
        mask = c == g
        count = mask.sum(axis=1)
        means[:, g] = np.where(count > 0, (v * mask).sum(axis=1) / np.maximum(count, 1), np.nan)
    with np.errstate(all="ignore"):
        worst = np.nanmin(np.where(np.isnan(means).all(axis=1, keepdims=True), 0.0, means), axis=1)
    return np.vstack([overall, worst, equity_scaled(overall, means, variant)])


def _paired_bootstrap(
    both: pd.DataFrame, variant: str, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Differences ``b - a`` of the :data:`PAIRED` scores on the cases of ``both`` (columns ``a``,
    ``b``, ``group``): the point values ``[3]`` and ``n_boot`` paired resamples ``[3, n_boot]``."""
    cats = [g for g in pd.unique(both["group"].dropna())]
    codes = np.array([cats.index(g) if g in cats else -1 for g in both["group"]], dtype=np.int64)
    a, b = both["a"].to_numpy(dtype=float), both["b"].to_numpy(dtype=float)
    full = np.arange(len(both))[None, :]
    point = (
        _paired_stats(b, codes, len(cats), full, variant)[:, 0]
        - _paired_stats(a, codes, len(cats), full, variant)[:, 0]
    )
    diffs = []
    block = max(1, min(n_boot, (1 << 20) // len(both)))
    for start in range(0, n_boot, block):
        idx = rng.integers(0, len(both), size=(min(block, n_boot - start), len(both)))
        diffs.append(
            _paired_stats(b, codes, len(cats), idx, variant) - _paired_stats(a, codes, len(cats), idx, variant)
        )
    return point, (np.concatenate(diffs, axis=1) if diffs else np.empty((3, 0)))


def paired_differences(
    run_dirs: Sequence[str | Path],
    *,
    names: Optional[Sequence[str]] = None,
    attribute: Optional[str] = None,
    baseline: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired differences of every run to the baseline run on the same test cases.

    Per run and score (:data:`PAIRED`: overall Dice, worst-group Dice, ES-Dice of ``attribute``,
    groups from the baseline's group spec): the difference to the baseline and its percentile
    bootstrap interval from ``n_boot`` resamples of the cases both runs scored (the same resample
    for both, so the case-to-case noise cancels), and a verdict (``better`` / ``worse`` when the
    interval excludes 0, else ``no clear difference``).

    Returns:
        ``method``, ``metric``, ``diff``, ``low``, ``high``, ``verdict``, ``n_cases``; empty when
        the runs share fewer than 2 cases.
    """
    from duetfair.audit.method_findings import verdict
    from duetfair.metrics.bootstrap import percentile_ci

    require(0 <= baseline < len(run_dirs), f"baseline {baseline}: expected an index into the {len(run_dirs)} runs")
    table = compare_runs(run_dirs, attribute=attribute, names=names)
    attribute = str(table["attribute"].iloc[0])
    frames = [_case_dice(RunDir(d), attribute) for d in run_dirs]
    base, variant = frames[baseline]
    cols = ["method", "metric", "diff", "low", "high", "verdict", "n_cases"]
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for i, (frame, _) in enumerate(frames):
        if i == baseline:
            continue
        common = base.index.intersection(frame.index)
        both = pd.DataFrame(
            {"a": base.loc[common, "dice"], "b": frame.loc[common, "dice"], "group": base.loc[common, "group"]}
        ).dropna(subset=["a", "b"])
        if len(both) < 2:
            continue
        point, boot = _paired_bootstrap(both, variant, n_boot, rng)
        for j, metric in enumerate(PAIRED):
            lo, hi = percentile_ci(boot[j][np.isfinite(boot[j])], level) if boot.shape[1] else (math.nan, math.nan)
            rows.append(
                {
                    "method": table["method"].iloc[i],
                    "metric": metric,
                    "diff": float(point[j]),
                    "low": float(lo),
                    "high": float(hi),
                    "verdict": verdict(lo, hi),
                    "n_cases": int(len(both)),
                }
            )
    return pd.DataFrame(rows, columns=cols)


def report_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Compare table (:func:`compare_runs`) -> the report's method frame (``method``, scores and
    ``_low``/``_high``), every score higher-is-better."""
    out = pd.DataFrame({"method": df["method"]})
    for col in ("es_dice", "dice", "es_iou", "iou"):
        out[col] = df[col]
        out[f"{col}_low"] = [ci[0] for ci in df[f"{col}_ci"]]
        out[f"{col}_high"] = [ci[1] for ci in df[f"{col}_ci"]]
    out["worst_group_dice"] = df["worst_dice"]
    out["cvar10"] = df["worst_cvar10"]
    if "hidden_dice" in df.columns:
        out["hidden_dice"] = df["hidden_dice"]
    return out


def _runs_provenance(table: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Provenance of a comparison: the runs compared, the bootstrap seed and the runs' configs."""
    runs = {str(m): str(r) for m, r in zip(table["method"], table["run"])}
    configs = {m: RunDir(r).config.read_text(encoding="utf-8") for m, r in runs.items() if RunDir(r).config.is_file()}
    return {
        "data": "evaluated runs: " + "; ".join(f"{m}: {r}" for m, r in runs.items()),
        "seed": f"{seed} (paired bootstrap)",
        **({"configs": configs} if configs else {}),
    }


def _method_of(table: pd.DataFrame, run_dir: str | Path) -> str:
    """The method name of ``run_dir`` in a comparison table (its folder name when not compared)."""
    rows = zip(table["method"], table["run"])
    return next((str(m) for m, r in rows if Path(r).resolve() == Path(run_dir).resolve()), Path(run_dir).name)


def comparison_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    names: Optional[Sequence[str]] = None,
    attribute: Optional[str] = None,
    baseline: int = 0,
    audit_run: Optional[str | Path] = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "duetfair method comparison",
    provenance: Optional[dict[str, Any]] = None,
) -> Path:
    """The HTML comparison report of evaluated runs (``duetfair compare --format html``, the demo).

    Methods side by side with their intervals, paired differences to the ``baseline`` run with
    verdicts (:func:`paired_differences`), the papers' table (:func:`paper_table`), and, with
    ``audit_run``, that run's full audit (with its cases) below.
    """
    from duetfair.audit.report import render_html
    from duetfair.metrics.cases import case_level

    table = compare_runs(run_dirs, attribute=attribute, names=names)
    paired = paired_differences(run_dirs, names=names, attribute=attribute, baseline=baseline, n_boot=n_boot, seed=seed)
    audit = cases = None
    if audit_run is not None:
        run = RunDir(audit_run)
        audit = run.read_json(run.audit, "audit")
        cases = case_level(read_table(run.cases, text_columns=["case_id"])) if run.cases.is_file() else None
    attr = str(table["attribute"].iloc[0])
    n = int(paired["n_cases"].max()) if len(paired) else 0
    notes = [
        f"Groups: {attr}. Intervals of the methods: 95% bootstrap intervals of each run's audit; paired "
        f"differences resample the {n} test cases the runs share ({n_boot} resamples), the same cases for both "
        f"methods."
    ]
    return render_html(
        audit,
        out,
        cases=cases,
        comparison=report_frame(table),
        paired=paired,
        paper_tables=[paper_table(table)],
        baseline=str(table["method"].iloc[baseline]),
        comparison_notes=notes,
        audit_name=None if audit_run is None else _method_of(table, audit_run),
        provenance={**_runs_provenance(table, seed), **(provenance or {})},
        title=title,
    )


MIN_VERDICT_SEEDS = 5
"""Fewest seeds for a better / worse verdict across seeds. With 2 or 3 seeds the percentile
bootstrap interval of their mean is exactly their min-max range (every resample of 3 values has a
chance of at least 1/27 > 2.5 % to repeat the smallest), not a 95 % interval: too thin to judge."""


def seed_verdict(low: Any, high: Any, n_seeds: Any) -> str:
    """Verdict of a difference across seeds: ``too few seeds`` below :data:`MIN_VERDICT_SEEDS`
    (the evidence is too thin to call), else ``better`` / ``worse`` / ``no clear difference`` as for
    cases."""
    from duetfair.audit.method_findings import verdict

    n = int(n_seeds) if n_seeds is not None and n_seeds == n_seeds else 0
    return "too few seeds" if n < MIN_VERDICT_SEEDS else verdict(low, high)


def _seed_frame(aggregate: pd.DataFrame, cols: Sequence[str], references: Sequence[str]) -> pd.DataFrame:
    """The report's method frame of a benchmark aggregate: scores with their intervals across seeds,
    reference rows (``references`` keys) marked as no contenders."""
    from duetfair.audit.method_findings import CONTENDER

    frame = pd.DataFrame({"method": aggregate["method"].astype(str)})
    frame[CONTENDER] = ~aggregate["key"].isin(list(references))
    for c in cols:
        frame[c] = aggregate[c].astype(float)
        frame[f"{c}_low"] = [ci[0] if isinstance(ci, (list, tuple)) else math.nan for ci in aggregate[f"{c}_ci"]]
        frame[f"{c}_high"] = [ci[1] if isinstance(ci, (list, tuple)) else math.nan for ci in aggregate[f"{c}_ci"]]
    return frame


def _seed_paired(aggregate: pd.DataFrame, cols: Sequence[str], baseline: str) -> pd.DataFrame:
    """Paired differences across seeds to ``baseline`` (the aggregate's ``<col>_vs_<baseline>``)."""
    rows = []
    for _, r in aggregate.iterrows():
        if r["key"] == baseline:
            continue
        for c in cols:
            d, ci = r.get(f"{c}_vs_{baseline}"), r.get(f"{c}_vs_{baseline}_ci")
            if d is None or not isinstance(ci, (list, tuple)):
                continue
            rows.append(
                {
                    "method": str(r["method"]),
                    "metric": c,
                    "diff": float(d),
                    "low": float(ci[0]),
                    "high": float(ci[1]),
                    "verdict": seed_verdict(ci[0], ci[1], r.get("n_seeds")),
                    "n_cases": None,
                }
            )
    return pd.DataFrame(rows, columns=["method", "metric", "diff", "low", "high", "verdict", "n_cases"])


def seed_comparison_report(
    aggregate: pd.DataFrame,
    tables: Sequence[Table],
    baseline: str,
    out: str | Path,
    *,
    columns: Sequence[str] = ("es_dice", "dice", "worst_dice", "worst_cvar10", "hidden_dice"),
    title: str = "duetfair benchmark",
    notes: Sequence[str] = (),
    provenance: Optional[dict[str, Any]] = None,
    references: Sequence[str] = (),
) -> Path:
    """The HTML report of a multi-seed benchmark: ``aggregate`` has one row per method (``method``,
    ``key``, per score ``<col>``, ``<col>_ci`` across seeds and ``<col>_vs_<baseline>`` /
    ``..._ci``, as :func:`duetfair.experiments.methods.aggregate_seeds` writes it); ``tables`` are
    its tables (:func:`duetfair.experiments.methods.benchmark_tables`), each shown with its caption.
    ``references``: keys of rows shown as a reference (a ceiling), never the best."""
    from duetfair.audit.report import render_html

    cols = [c for c in columns if c in aggregate.columns and aggregate[c].notna().any()]
    is_base = aggregate["key"] == baseline
    return render_html(
        None,
        out,
        comparison=_seed_frame(aggregate, cols, references),
        paired=_seed_paired(aggregate, cols, baseline),
        paper_tables=tables,
        baseline=str(aggregate.loc[is_base, "method"].iloc[0]) if is_base.any() else baseline,
        comparison_notes=list(notes),
        provenance=provenance,
        title=title,
    )
