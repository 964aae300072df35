"""Edges of the audit's intervals: a group of one case has none (not a zero-width interval that
"lies below all others"), and intervals of metrics bounded in [0, 1] never leave [0, 1]."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from duetfair.audit import audit_table
from duetfair.audit.findings import build_findings


def test_a_one_case_group_has_no_interval_and_is_not_called_separated() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "case_id": range(61),
            "site": ["A"] * 30 + ["B"] * 30 + ["C"],
            "dice": np.r_[rng.uniform(0.7, 0.9, 60), 0.1],  # the one case of C fails
        }
    )
    audit = audit_table(df, ["site"], n_boot=200, discovery=False)
    a = audit["metrics"]["dice"]["attributes"]["site"]
    c = next(g for g in a["groups"] if g["value"] == "C")
    assert a["worst_group"] == "C" and c["n"] == 1 and all(math.isnan(x) for x in c["ci"]) and c["small"]
    finding = next(f for f in build_findings(audit) if f["kind"] == "worst_group")
    assert "below those of all other groups" not in finding["text"]
    assert "One case has no interval" in finding["text"]


def test_bounded_intervals_stay_in_0_1() -> None:
    """Mostly perfect Dice: the mean of a resample summed in floating point once ended 1.0000000030."""
    rng = np.random.default_rng(0)
    n = int(rng.integers(5, 60))
    values = np.where(rng.random(n) < 0.9, 1.0, rng.choice([0.1, 0.3, 0.7, 0.9, 1 / 3, 2 / 3], n))
    df = pd.DataFrame({"case_id": range(n), "g": rng.choice(["a", "b"], n), "dice": values})
    m = audit_table(df, ["g"], n_boot=200, discovery=False, seed=0)["metrics"]["dice"]
    a = m["attributes"]["g"]
    bounds = [*m["overall"]["ci"], *a["es_ci"], *(x for g in a["groups"] for x in g["ci"])]
    assert all(0.0 <= x <= 1.0 for x in bounds if not math.isnan(x)), bounds
    assert max(bounds) == 1.0
