"""How much of the oracle's headroom on the hidden subtype a method captures, and how well a
two-stage method's first step found the subtype.

*Share of the oracle headroom* (per method, across seeds paired by seed):

    ``share = mean_s (m_s - erm_s) / mean_s (oracle_s - erm_s)``

on the hidden-subtype Dice, with a percentile bootstrap interval that resamples seeds (the same
seeds for numerator and denominator; a resample whose denominator is not positive is dropped).
1 = the method gains on the hidden cases as much as the oracle that knows them; 0 = no gain over
ERM; negative = it loses on them.

*First-stage match* (per run of ``jtt`` / ``subclass_dro``, from ``RUN/first_stage/subgroups.csv``):
inside every group the subgroup that matches the group's hidden cases best (highest F1); the union
of these over the groups is compared with all hidden training cases: its ``purity`` (share of
hidden cases in it; the subtype's prevalence is the value of a random subgroup) and ``recall``
(share of the hidden cases it holds). For JTT the subgroups are the error set and the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.audit.report.tables import Table
from duetfair.errors import require

__all__ = ["headroom_share", "first_stage_match", "headroom_table", "headroom_report_table"]


def headroom_share(
    method: np.ndarray, erm: np.ndarray, oracle: np.ndarray, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Share of the oracle headroom and its 95 % interval from per-seed scores ``[S]`` (paired by
    position; seeds with a missing value left out). ``(nan, (nan, nan))`` without headroom."""
    m, e, o = (np.asarray(v, dtype=float) for v in (method, erm, oracle))
    require(m.shape == e.shape == o.shape, f"headroom: per-seed arrays differ in shape {m.shape}, {e.shape}, {o.shape}")
    ok = np.isfinite(m) & np.isfinite(e) & np.isfinite(o)
    gain, room = (m - e)[ok], (o - e)[ok]
    nan = float("nan")
    if gain.size == 0 or room.mean() <= 0:
        return nan, (nan, nan)
    share = float(gain.mean() / room.mean())
    if gain.size < 2:
        return share, (nan, nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, gain.size, size=(n_boot, gain.size))
    num, den = gain[idx].mean(axis=1), room[idx].mean(axis=1)
    keep = den > 0
    ratios = num[keep] / den[keep]
    if ratios.size < 0.5 * n_boot:
        return share, (nan, nan)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return share, (float(lo), float(hi))


def first_stage_match(run_dir: str | Path) -> dict[str, float] | None:
    """``purity``, ``recall`` and ``prevalence`` of the best-matching subgroups of a two-stage
    run (module docstring); ``None`` when the run has no first stage or no known hidden cases."""
    path = Path(run_dir) / "first_stage" / "subgroups.csv"
    if not path.is_file():
        return None
    cases = pd.read_csv(path, dtype={"case_id": str, "group": str, "subgroup": str})
    known = cases[cases["hidden"] >= 0]
    if known.empty or known["hidden"].sum() == 0:
        return None
    chosen = []
    for _, part in known.groupby("group"):
        best, best_f1 = None, 0.0
        for name, sub in part.groupby("subgroup"):
            tp = float(sub["hidden"].sum())
            f1 = 2 * tp / (len(sub) + part["hidden"].sum()) if tp else 0.0
            if f1 > best_f1:
                best, best_f1 = name, f1
        if best is not None:
            chosen.append(part[part["subgroup"] == best])
    hidden = float(known["hidden"].sum())
    union = pd.concat(chosen) if chosen else known.iloc[:0]
    tp = float(union["hidden"].sum())
    return {
        "purity": tp / len(union) if len(union) else float("nan"),
        "recall": tp / hidden,
        "prevalence": hidden / len(known),
    }


def headroom_table(per_seed: pd.DataFrame, runs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """Per method (not ERM, not the oracle): ``hidden_gain`` (hidden-subtype Dice minus ERM's, mean
    over seeds), ``share`` of the oracle headroom with ``share_ci``, and for two-stage methods the
    first-stage ``purity``, ``recall`` and subtype ``prevalence`` (means over seeds). Empty when
    ERM, the oracle or the hidden scores are missing.

    Args:
        per_seed: one row per (``key``, ``seed``) with ``hidden_dice``.
        runs: run folder of every (``key``, ``seed``).
    """
    keys = set(per_seed["key"])
    if not {"erm", "oracle"} <= keys or "hidden_dice" not in per_seed:
        return pd.DataFrame()
    table = per_seed.pivot_table(index="seed", columns="key", values="hidden_dice", aggfunc="first", dropna=False)
    erm, oracle = table["erm"].to_numpy(dtype=float), table["oracle"].to_numpy(dtype=float)
    rows = []
    for key in dict.fromkeys(per_seed["key"]):
        if key in ("erm", "oracle"):
            continue
        vals = table[key].to_numpy(dtype=float)
        share, ci = headroom_share(vals, erm, oracle)
        diff = vals - erm
        row: dict[str, Any] = {
            "key": key,
            "hidden_gain": float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan"),
            "share": share,
            "share_ci": list(ci),
        }
        found = [m for m in (first_stage_match(runs[(key, int(s))]) for s in table.index if (key, int(s)) in runs) if m]
        for name in ("purity", "recall", "prevalence"):
            vals_m = [float(m[name]) for m in found if math.isfinite(float(m[name]))]
            row[name] = float(np.mean(vals_m)) if vals_m else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def headroom_report_table(table: pd.DataFrame, display: dict[str, str]) -> Table:
    """:func:`headroom_table` for people (a :class:`~duetfair.audit.report.tables.Table` with its caption)."""
    caption = (
        "Hidden subtype: share of the oracle headroom captured (method - ERM over oracle - ERM, "
        "hidden-subtype Dice, paired by seed, 95% interval across seeds) and, for two-stage methods, "
        "how well the first step found the subtype (best-matching subgroup of every group, mean over seeds):"
    )
    header = ["Method", "hidden-subtype Dice vs ERM", "share of oracle headroom", "first step: purity", "recall"]
    rows = []
    for _, r in table.iterrows():
        cells = [display.get(r["key"], r["key"]), _signed(r["hidden_gain"]), _share(r["share"], r["share_ci"])]
        rows.append(cells + [_num(r[k]) for k in ("purity", "recall", "prevalence")])
    return Table.of([*header, "subtype prevalence"], rows, caption=caption)


def _signed(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:+.3f}"


def _share(v: float, ci: tuple[float, float]) -> str:
    if not math.isfinite(v):
        return "- (no headroom)"
    text = f"{v:.0%}"
    if all(math.isfinite(c) for c in ci):
        text += f" ({ci[0]:.0%} to {ci[1]:.0%})"
    return text


def _num(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else "-"
