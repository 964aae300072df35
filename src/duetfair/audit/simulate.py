"""A realistic synthetic per-case table and the table demo (``duetfair demo``).

:func:`simulate_case_table` draws the per-case results a segmentation model could produce on a
cohort like Harvard-FairSeg: imbalanced race groups (Asian 9 %, Black 15 %, White 73 %, 3 %
unknown), sex, continuous age, four sites of different size, and group effects on Dice. Inside
every group a *hidden hard subtype* (about 10 % of the cases, more in some groups; column
``hidden_subtype``) fails badly: the group means move a little, the tails a lot, which is the
"intra-group hidden failure" that CVaR and failure rates expose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.errors import require
from duetfair.io import atomic_path, write_json, write_text

RACES = ("Asian", "Black", "White")
RACE_P = (0.09, 0.15, 0.73)
SITES = ("A", "B", "C", "D")
SITE_P = (0.45, 0.30, 0.17, 0.08)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate_case_table(
    n: int = 2000,
    seed: int = 0,
    *,
    hidden_rate: float = 0.10,
    group_effect: float = 1.0,
    unknown_rate: float = 0.03,
) -> pd.DataFrame:
    """Synthetic per-case results: ``case_id, race, sex, age, site, hidden_subtype, dice, iou, hd95``.

    Args:
        n: number of cases.
        seed: random seed (the table is a deterministic function of all arguments).
        hidden_rate: base rate of the hidden hard subtype inside each group (x1.8 for Black,
            x1.4 for age >= 70).
        group_effect: scale of the between-group Dice differences (0: none).
        unknown_rate: fraction of cases with an unknown race (empty cell).

    Returns:
        DataFrame, one row per case; ``dice``/``iou`` in [0, 1], ``hd95`` in pixels.
    """
    require(n >= 10, f"simulate: n={n}; expected at least 10 cases")
    require(0.0 <= hidden_rate < 0.5, f"simulate: hidden_rate={hidden_rate}; expected a rate in [0, 0.5)")
    require(0.0 <= unknown_rate < 0.5, f"simulate: unknown_rate={unknown_rate}; expected a rate in [0, 0.5)")
    rng = np.random.default_rng(seed)
    race = rng.choice(len(RACES) + 1, size=n, p=[*RACE_P, 1.0 - sum(RACE_P)])
    race = np.where(rng.random(n) < unknown_rate, len(RACES), np.where(race == len(RACES), 2, race))
    sex = rng.choice(np.array(["F", "M"]), size=n, p=[0.56, 0.44])
    age = np.clip(rng.normal(61.0, 14.0, size=n), 18.0, 95.0).round(1)
    site = rng.choice(len(SITES), size=n, p=SITE_P)

    race_shift = np.array([-0.35, -0.55, 0.0, -0.1])[race]
    site_shift = np.array([0.0, 0.05, -0.15, -0.35])[site]
    age_shift = -0.012 * np.clip(age - 55.0, 0.0, None)
    mu = 2.3 + group_effect * (race_shift + site_shift + age_shift)
    hidden_p = hidden_rate * np.where(race == 1, 1.8, 1.0) * np.where(age >= 70, 1.4, 1.0)
    hidden = rng.random(n) < np.clip(hidden_p, 0.0, 0.9)
    logit = mu + rng.normal(0.0, 0.55, size=n)
    logit = np.where(hidden, rng.normal(-0.6, 0.9, size=n), logit)
    dice = np.clip(_sigmoid(logit), 0.0, 1.0)
    iou = dice / (2.0 - dice)
    hd95 = np.round((1.0 - dice) * 40.0 * np.exp(rng.normal(0.0, 0.35, size=n)) + rng.uniform(0.5, 1.5, size=n), 3)
    race_txt = np.array([*RACES, ""], dtype=object)[race]
    return pd.DataFrame(
        {
            "case_id": [f"case_{i:05d}" for i in range(n)],
            "race": race_txt,
            "sex": sex,
            "age": age,
            "site": np.array(SITES, dtype=object)[site],
            "hidden_subtype": hidden.astype(np.int64),
            "dice": dice.round(6),
            "iou": iou.round(6),
            "hd95": hd95,
        }
    )


DEMO_BY = ("race", "sex", "age", "site")
DEMO_BINS = {"age": [40.0, 60.0, 70.0]}


def run_table_demo(
    out_dir: str | os.PathLike[str],
    *,
    n: int = 2000,
    seed: int = 0,
    n_boot: int = 1000,
    html: bool = True,
) -> dict[str, Any]:
    """Simulate a per-case table, audit it and write the results into ``out_dir``.

    Writes ``cases.csv``, ``audit.json``, ``audit.md`` and (``html=True``) ``report.html``.

    Returns:
        ``{"audit": <audit dict>, "cases": <DataFrame>, "paths": {name: Path}}``.
    """
    from duetfair.audit.report import render_html, render_markdown
    from duetfair.audit.table import audit_table

    out = Path(out_dir)
    cases = simulate_case_table(n, seed)
    audit = audit_table(
        cases, DEMO_BY, metrics=("dice", "hd95"), bins=DEMO_BINS, n_boot=n_boot, seed=seed, min_support=0.05
    )
    paths = {"cases": out / "cases.csv", "json": out / "audit.json", "markdown": out / "audit.md"}
    with atomic_path(paths["cases"]) as tmp:
        cases.to_csv(tmp, index=False)
    write_json(paths["json"], audit)
    write_text(paths["markdown"], render_markdown(audit, title="duetfair demo: audit of a synthetic per-case table"))
    if html:
        paths["html"] = render_html(
            audit, out / "report.html", cases=cases, title="duetfair demo: audit of a synthetic per-case table"
        )
    return {"audit": audit, "cases": cases, "paths": paths}
