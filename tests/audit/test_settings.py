"""Typed audit settings: one object, single settings by name on top, the JSON block written from it;
a report that fails to render never hides an input error."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from duetfair.audit import AuditSettings, audit_table
from duetfair.audit.report.guard import render_or_warn
from duetfair.errors import DuetfairError


def _same(a: dict, b: dict) -> bool:
    """Equal audits (NaN equals NaN, as in the JSON files)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _cases(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"case_id": [f"c{i}" for i in range(n)], "site": rng.choice(["A", "B"], n), "dice": rng.uniform(0.4, 1, n)}
    )


def test_settings_object_and_single_options_give_the_same_audit() -> None:
    df = _cases()
    typed = audit_table(df, ["site"], settings=AuditSettings(n_boot=0, discovery=False, fdr=0.1))
    named = audit_table(df, ["site"], n_boot=0, discovery=False, fdr=0.1)
    assert _same(typed, named)
    assert typed["settings"]["fdr"] == 0.1 and typed["settings"]["n_boot"] == 0
    mixed = audit_table(df, ["site"], settings=AuditSettings(n_boot=0, discovery=False), fdr=0.1)
    assert _same(mixed, named)  # a single option overrides the object's value


def test_settings_are_keyword_only_checked_and_complete() -> None:
    with pytest.raises(TypeError):
        AuditSettings(("dice",))  # type: ignore[misc]
    with pytest.raises(TypeError):
        audit_table(_cases(), ["site"], n_bootstrap=0)
    with pytest.raises(DuetfairError, match="--fdr 1.5"):
        audit_table(_cases(), ["site"], n_boot=0, fdr=1.5)
    block = audit_table(_cases(), ["site"], n_boot=0, discovery=False)["settings"]
    assert {"es_variant", "n_boot", "seed", "level", "cvar_method", "failure_thresholds", "confidence"} <= set(block)


def test_a_report_failure_warns_but_an_input_error_is_raised() -> None:
    assert render_or_warn(lambda: None, complete="x") is True

    def plotting_problem() -> None:
        raise ValueError("empty axis")

    with pytest.warns(RuntimeWarning, match="report.html not written .empty axis.; cases.csv are complete"):
        assert render_or_warn(plotting_problem, complete="cases.csv") is False

    def bad_input() -> None:
        raise DuetfairError("--images: folder x not found")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DuetfairError, match="folder x not found"):
            render_or_warn(bad_input, complete="cases.csv")
