"""``duetfair compare``: the papers' comparison table from evaluated runs.

One row per run (method): ES-Dice, Dice, ES-IoU, IoU with bootstrap intervals, per-group Dice and
IoU, the worst group and its Dice, and the hidden-failure number: the worst group's CVaR10 of
per-case Dice (mean Dice of the worst 10 % of a group's cases, the tail a group mean hides), plus
the hidden-subtype Dice when the data knows the subtype. Every column is higher-is-better; the best
value per column is marked (``**bold**`` in Markdown, ``\\textbf`` in LaTeX, ``best`` entry in JSON,
``best_*`` flags in CSV).

Input is what ``duetfair evaluate`` writes into each run directory (``audit.json``, ``summary.json``,
``run.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from duetfair.errors import DuetfairError, require
from duetfair.rundir import RunDir

FORMATS = ("md", "csv", "json", "latex")
HEADLINE = ("es_dice", "dice", "es_iou", "iou")
LABELS = {"es_dice": "ES-Dice", "dice": "Dice", "es_iou": "ES-IoU", "iou": "IoU", "worst_dice": "Worst-group Dice",
          "worst_cvar10": "Worst-group CVaR10", "hidden_dice": "Hidden-subtype Dice"}


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


def run_row(run_dir: str | Path, attribute: Optional[str] = None, name: Optional[str] = None) -> dict[str, Any]:
    """Numbers of one evaluated run (see the module docstring) as a flat dict."""
    run = RunDir(run_dir)
    root = run.root
    require(root.is_dir(), f"run directory {root} not found")
    audit = run.read_json(run.audit, "audit")
    summary = run.read_json(run.summary, "summary")
    record = run.read_record() if run.record.is_file() else None
    if attribute is None:
        attribute = (record.group_attribute if record else None) or next(iter(audit["metrics"]["dice"].get("attributes", {})), None)
    require(attribute is not None, f"{root}: no attribute to compare; pass --by")
    dice = _attr_entry(audit, "dice", attribute, root)
    iou = _attr_entry(audit, "iou", attribute, root)
    row: dict[str, Any] = {
        "method": name or (record.method or record.name if record else None) or root.name,
        "run": str(root),
        "attribute": attribute,
        "n_cases": summary.get("n_cases"),
        "es_dice": _nan(dice["es"]), "es_dice_ci": [_nan(v) for v in dice.get("es_ci", [None, None])],
        "dice": _nan(dice["overall"]["mean"]), "dice_ci": [_nan(v) for v in dice["overall"].get("ci", [None, None])],
        "es_iou": _nan(iou["es"]), "es_iou_ci": [_nan(v) for v in iou.get("es_ci", [None, None])],
        "iou": _nan(iou["overall"]["mean"]), "iou_ci": [_nan(v) for v in iou["overall"].get("ci", [None, None])],
        "worst_group": dice.get("worst_group"), "worst_dice": _nan(dice.get("worst_mean")),
        "worst_cvar10": _nan(dice.get("worst_cvar10", min((g.get("cvar10", math.nan) for g in dice["groups"]), default=None))),
    }
    for g in dice["groups"]:
        row[f"dice[{g['value']}]"] = _nan(g["mean"])
    for g in iou["groups"]:
        row[f"iou[{g['value']}]"] = _nan(g["mean"])
    hidden = summary.get("hidden_subtype") or {}
    if "1" in hidden:
        row["hidden_dice"] = _nan(hidden["1"].get("dice"))
    return row


def compare_runs(run_dirs: Sequence[str | Path], *, attribute: Optional[str] = None,
                 names: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Comparison table (one row per run) of evaluated runs; see :func:`format_table`."""
    require(len(run_dirs) >= 1, "compare: give at least one run directory")
    require(names is None or len(names) == len(run_dirs),
            f"compare: {len(names or [])} names for {len(run_dirs)} runs; expected one name per run")
    rows = [run_row(d, attribute, None if names is None else names[i]) for i, d in enumerate(run_dirs)]
    attrs = {r["attribute"] for r in rows}
    require(len(attrs) == 1, f"compare: runs use different group attributes {sorted(attrs)}; choose one with --by")
    df = pd.DataFrame(rows)
    if df["method"].duplicated().any():
        df["method"] = [f"{m} ({Path(r).name})" for m, r in zip(df["method"], df["run"])]
    return df


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


def _cell(value: float, ci: Optional[list[float]], digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if ci and all(c is not None and math.isfinite(c) for c in ci):
        text += f" ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})"
    return text


def format_table(df: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """Render the comparison as ``md``, ``csv``, ``json`` or ``latex``."""
    require(fmt in FORMATS, f"--format '{fmt}': expected one of {', '.join(FORMATS)}")
    best = best_rows(df)
    cols = value_columns(df)
    if fmt == "json":
        records = []
        for _, r in df.iterrows():
            rec = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}
            records.append(rec)
        return json.dumps({"attribute": str(df["attribute"].iloc[0]), "higher_is_better": True,
                           "methods": records, "best": best}, indent=2) + "\n"
    if fmt == "csv":
        out = df.drop(columns=[c for c in df.columns if c.endswith("_ci")]).copy()
        for c in HEADLINE:
            out[f"{c}_ci_low"] = [ci[0] for ci in df[f"{c}_ci"]]
            out[f"{c}_ci_high"] = [ci[1] for ci in df[f"{c}_ci"]]
        for c, methods in best.items():
            out[f"best_{c}"] = out["method"].isin(methods)
        return out.to_csv(index=False)
    header = [LABELS.get(c, c.replace("dice[", "Dice ").replace("iou[", "IoU ").rstrip("]")) for c in cols]
    lines: list[list[str]] = []
    for _, r in df.iterrows():
        cells = [str(r["method"])]
        for c in cols:
            ci = r.get(f"{c}_ci") if f"{c}_ci" in df.columns else None
            text = _cell(r[c], ci, digits)
            if r["method"] in best.get(c, []):
                text = f"**{text}**" if fmt == "md" else f"\\textbf{{{text}}}"
            cells.append(text)
        if "worst_group" in df.columns:
            cells.append(str(r["worst_group"]))
        lines.append(cells)
    header = ["Method"] + header + (["Worst group"] if "worst_group" in df.columns else [])
    if fmt == "md":
        attr = df["attribute"].iloc[0]
        rows = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        rows += ["| " + " | ".join(c for c in cells) + " |" for cells in lines]
        note = (f"\nGroups: `{attr}`. Values: point estimate (95 % bootstrap interval); best per column in bold. "
                "Worst-group CVaR10 = mean Dice of the worst 10 % of cases in the worst group (hidden failures).\n")
        return "\n".join(rows) + "\n" + note
    esc = [h.replace("_", "\\_").replace("%", "\\%").replace("&", "\\&") for h in header]
    body = [" & ".join(c.replace("_", "\\_").replace("&", "\\&") if not c.startswith("\\textbf") else c for c in cells) + " \\\\"
            for cells in lines]
    spec = "l" + "c" * (len(header) - 1)
    return "\n".join(["\\begin{tabular}{" + spec + "}", "\\toprule", " & ".join(esc) + " \\\\", "\\midrule",
                      *body, "\\bottomrule", "\\end{tabular}"]) + "\n"
