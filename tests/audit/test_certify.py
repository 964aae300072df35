"""The certified statements in the audit: JSON blocks with method names, plain-words findings that
lead, the insufficient-evidence verdict instead of the fixed n < 20 flag, tested gaps after
correction, the report's chart and table, and the CLI options."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from duetfair.audit import SCHEMA, audit_table
from duetfair.audit.certify import parse_detect, resolve_reference
from duetfair.audit.report import render_html, render_markdown, render_summary
from duetfair.cli import app, main
from duetfair.errors import DuetfairError
from duetfair.io import write_json

runner = CliRunner()


def _table(seed=0):
    """Site A: 300 cases (spread 0.05); T: 12 tightly spread cases; W: 30 widely spread cases;
    D: 6 good cases; B: 80 cases worse by 0.15."""
    rng = np.random.default_rng(seed)
    parts = [
        ("A", np.clip(rng.normal(0.85, 0.05, 300), 0, 1)),
        ("T", np.clip(rng.normal(0.85, 0.01, 12), 0, 1)),
        ("W", np.clip(rng.normal(0.80, 0.25, 30), 0, 1)),
        ("D", rng.uniform(0.75, 0.95, 6)),
        ("B", np.clip(rng.normal(0.70, 0.08, 80), 0, 1)),
    ]
    site = np.concatenate([[name] * len(v) for name, v in parts])
    dice = np.concatenate([v for _, v in parts])
    return pd.DataFrame(
        {
            "case_id": np.arange(dice.size),
            "site": site,
            "sex": rng.choice(["F", "M"], dice.size),
            "dice": dice,
            "hd95": 30 * (1 - dice),
        }
    )


@pytest.fixture(scope="module")
def audit():
    return audit_table(_table(), ["site", "sex"], metrics=("dice", "hd95"), n_boot=200)


def _group(audit, value, attr="site", metric="dice"):
    return next(g for g in audit["metrics"][metric]["attributes"][attr]["groups"] if g["value"] == value)


def test_json_blocks_with_method_names(audit, tmp_path):
    assert audit["schema"] == SCHEMA
    m = audit["metrics"]["dice"]
    assert {"mean", "ci", "certificate", "failure_curve", "new_case"} <= set(m["overall"])
    d = _group(audit, "D")
    assert {"small", "failure_rate", "certificate", "failure_curve", "new_case", "evidence", "gap_test"} <= set(d)
    for block in ("certificate", "failure_curve", "new_case", "evidence", "gap_test"):
        assert "method" in d[block], block
    assert "Clopper-Pearson" in d["certificate"]["method"] and "ksone" in d["failure_curve"]["band_method"]
    assert d["gap_test"]["fdr_method"] == "Benjamini-Hochberg" and "permutation" in d["gap_test"]["method"]
    site = m["attributes"]["site"]
    assert {"selection", "reference", "insufficient_groups", "group_correction"} <= set(site)
    assert all("method" in site["selection"][k] for k in ("worst_mean", "gap", "worst_cvar10"))
    assert audit["settings"]["confidence"] == 0.95 and audit["settings"]["detect"] == {"dice": 0.05, "hd95": None}
    assert audit["gap_tests"]["n_tests"] == 2 * (5 + 2)
    assert json.loads(write_json(tmp_path / "a.json", audit).read_text())["schema"] == SCHEMA


def test_certificate_numbers_are_the_exact_bounds(audit):
    d = _group(audit, "D")["certificate"]
    assert (d["failures"], d["n"], d["cutoff"]) == (0, 6, 0.5)
    exact = stats.binomtest(0, 6, alternative="less").proportion_ci(0.95, method="exact").high
    assert d["upper"] == pytest.approx(exact) and round(d["upper"], 3) == 0.393
    sidak = stats.binomtest(0, 6, alternative="less").proportion_ci(0.95 ** (1 / 5), method="exact").high
    assert d["upper_all_groups"] == pytest.approx(sidak)
    curve = _group(audit, "D")["failure_curve"]
    assert len(curve["cutoffs"]) == 21 and curve["upper"][10] >= d["upper"] - 1e-4  # rounded up
    assert all(b >= u - 1e-9 for b, u in zip(curve["band_all_groups"], curve["band"]))
    assert _group(audit, "D")["new_case"]["bound"] is None  # 6 < 29 cases
    assert _group(audit, "A")["new_case"]["bound"] is not None
    overall = audit["metrics"]["dice"]["overall"]["certificate"]
    assert overall["n"] == 428 and overall["upper"] >= overall["share"]
    assert _group(audit, "A", metric="hd95")["certificate"]["cutoff"] is None  # no cut-off for distances


def test_insufficient_evidence_replaces_the_fixed_small_flag(audit):
    """12 tightly spread cases are enough, 30 widely spread ones are not."""
    t, w = _group(audit, "T"), _group(audit, "W")
    assert t["small"] and t["evidence"]["verdict"] == "enough evidence"
    assert w["evidence"]["verdict"] == "insufficient evidence"
    assert w["evidence"]["n_needed"] > 30 and w["evidence"]["more_cases"] == w["evidence"]["n_needed"] - 30
    found = audit["findings"]
    assert not [f for f in found if f["kind"] == "small_group"]
    warning = next(f for f in found if f["kind"] == "insufficient_evidence" and f["attribute"] == "site")
    assert {g["group"] for g in warning["groups"]} == {"W", "D"}  # not T (n=12) and not B (n=80)
    assert "W (n=30" in warning["text"] and "T (n=12" not in warning["text"]
    assert f"about {w['evidence']['n_needed']} cases needed" in warning["text"]


def test_tested_gaps_and_findings_lead(audit):
    b = _group(audit, "B")
    assert b["gap_test"]["significant"] and b["gap_test"]["direction"] == "worse"
    assert b["verdict"] == "worse than the reference" and b["gap_test"]["q_value"] <= 0.05
    kinds = [f["kind"] for f in audit["findings"]]
    assert kinds[:3] == ["certificate", "certificate", "certificate"]  # overall, site, sex
    assert kinds.index("gap_test") < kinds.index("worst_group")
    site = next(f for f in audit["findings"] if f["kind"] == "certificate" and f["attribute"] == "site")
    assert site["text"].startswith("With 95% confidence, at most 39.3% of site D cases have dice < 0.5 (0 of 6")
    gaps = [f for f in audit["findings"] if f["kind"] == "gap_test"]
    worse = [f for f in gaps if "worse than the rest" in f["text"]]
    assert worse and all("B is worse than the rest" in f["text"] for f in worse)
    sex = next(f for f in gaps if f["attribute"] == "sex" and f["metric"] == "dice")
    assert "no group differs from the rest" in sex["text"]


def test_worse_than_the_rest_only_after_correction():
    """Null data, 12 groups: no group is called worse (the corrected tests find nothing)."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": rng.integers(0, 12, 600).astype(str), "dice": np.clip(rng.normal(0.8, 0.1, 600), 0, 1)})
    audit = audit_table(df, ["g"], n_boot=0, discovery=False)
    texts = " ".join(f["text"] for f in audit["findings"])
    assert "worse than" not in texts and "no group differs from the rest" in texts
    raw = [g["gap_test"]["p_value"] for g in audit["metrics"]["dice"]["attributes"]["g"]["groups"]]
    qs = [g["gap_test"]["q_value"] for g in audit["metrics"]["dice"]["attributes"]["g"]["groups"]]
    assert all(q >= p for p, q in zip(raw, qs))


def test_reference_group_confidence_and_detect():
    df = _table(1)
    audit = audit_table(df, ["site", "sex"], n_boot=0, reference="A", confidence=0.9, detect=0.1, discovery=False)
    a = _group(audit, "A")
    assert a["verdict"] == "reference" and a["gap_test"] is None
    b = _group(audit, "B")
    assert b["gap_test"]["reference"] == "A" and b["gap_test"]["n_ref"] == 300
    assert b["evidence"]["detect"] == 0.1 and b["certificate"]["confidence"] == 0.9
    assert audit["metrics"]["dice"]["attributes"]["sex"]["reference"] == "rest"  # sex has no group A
    assert audit["settings"]["level"] == 0.95 and audit["settings"]["confidence"] == 0.9
    assert "With 90% confidence" in audit["findings"][0]["text"]
    only = audit_table(df, ["site", "sex"], n_boot=0, reference="sex=F", discovery=False)
    assert only["metrics"]["dice"]["attributes"]["site"]["reference"] == "rest"
    assert only["metrics"]["dice"]["attributes"]["sex"]["reference"] == "F"
    welch = audit_table(df, ["site"], n_boot=0, gap_test="welch", discovery=False)
    assert _group(welch, "B")["gap_test"]["test"] == "welch"


def test_option_errors():
    with pytest.raises(DuetfairError, match=r"--reference Z: not a group of any audited attribute \(site: A, B"):
        resolve_reference("Z", {"site": ["A", "B"], "sex": ["F", "M"]})
    with pytest.raises(DuetfairError, match="--reference site=Z: 'Z' is not a group of site"):
        resolve_reference("site=Z", {"site": ["A", "B"]})
    assert parse_detect(None, ["dice", "hd95"]) == {"dice": 0.05, "hd95": None}
    assert parse_detect(["0.1", "hd95=5"], ["dice", "hd95"]) == {"dice": 0.1, "hd95": 5.0}
    for bad, match in (("-1", "positive gap"), ("x", "positive gap"), ("nsd=0.1", "metric 'nsd' is not audited")):
        with pytest.raises(DuetfairError, match=match):
            parse_detect(bad, ["dice"])
    with pytest.raises(DuetfairError, match="--confidence"):
        audit_table(_table(), ["site"], confidence=1.5, n_boot=0)


def test_report_chart_table_and_summary(audit, tmp_path):
    html = render_html(audit, tmp_path / "r.html", cases=_table()).read_text()
    assert 'data-fig="certify/dice/site"' in html and 'data-fig="certify/dice/sex"' in html
    assert 'data-fig="certify/hd95/site"' not in html  # the first metric only
    assert html.index("certify/dice/site") < html.index("dice by site: the worst group")  # near the top
    assert html.index("With 95% confidence, at most") < html.index("certify/dice/site")
    assert "guarantee-table" in html and "insufficient evidence" in html
    md = render_markdown(audit)
    assert "## Guarantees, evidence and tested gaps (dice)" in md
    assert "| D | 6 | 0/6 | 0.0% (0.0%-45.9%) | \u2264 39.3% |" in md
    assert "at most 39.3% of D fail (0/6)" in render_summary(audit)
    # an audit written before the certified blocks still renders, with the old small-group warning
    old = json.loads(json.dumps(audit))
    for m in old["metrics"].values():
        for key in ("certificate", "failure_curve", "new_case"):
            m["overall"].pop(key)
        for a in m["attributes"].values():
            for g in a["groups"]:
                for key in ("certificate", "failure_curve", "new_case", "evidence", "gap_test", "verdict"):
                    g.pop(key)
    old.pop("findings")
    assert "Guarantees" not in render_markdown(old) and "fewer than 20 cases" in render_markdown(old)


def test_cli_options(tmp_path, capsys):
    path = tmp_path / "cases.csv"
    _table().to_csv(path, index=False)
    args = ["audit", str(path), "--by", "site", "--bootstrap", "0", "--no-discovery"]
    res = runner.invoke(app, [*args, "--confidence", "0.9", "--detect", "0.1", "--reference", "A"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["settings"]["confidence"] == 0.9 and out["settings"]["reference"] == "A"
    assert out["metrics"]["dice"]["attributes"]["site"]["reference"] == "A"
    for extra, message in (
        (["--confidence", "1.2"], "--confidence 1.2: expected a confidence level"),
        (["--reference", "Q"], "--reference Q: not a group of any audited attribute"),
        (["--detect", "dice=0"], "--detect dice=0: expected a positive gap"),
    ):
        with pytest.raises(SystemExit) as exc:
            main([*args, *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and "Traceback" not in err, err
    help_text = runner.invoke(app, ["score", "--help"]).output
    assert "--confidence" in help_text and "--detect" in help_text and "--reference" in help_text


def test_score_passes_the_options(tmp_path):
    df = _table()
    df[["case_id", "dice"]].assign(case_id=lambda d: "c" + d["case_id"].astype(str)).to_csv(
        tmp_path / "scores.csv", index=False
    )
    df[["case_id", "site"]].assign(case_id=lambda d: "c" + d["case_id"].astype(str)).to_csv(
        tmp_path / "meta.csv", index=False
    )
    res = runner.invoke(
        app,
        [
            "score",
            "--monai-csv",
            f"dice={tmp_path / 'scores.csv'}",
            "--meta",
            str(tmp_path / "meta.csv"),
            "--out",
            str(tmp_path / "o"),
            "--bootstrap",
            "0",
            "--no-discovery",
            "--confidence",
            "0.9",
            "--detect",
            "0.1",
            "--reference",
            "A",
        ],
    )
    assert res.exit_code == 0, res.output
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["settings"]["confidence"] == 0.9 and audit["settings"]["detect"]["dice"] == 0.1
    assert audit["metrics"]["dice"]["attributes"]["site"]["reference"] == "A"
    assert "at most" in res.stdout and "Guarantees" in (tmp_path / "o" / "audit.md").read_text()


def test_distances_without_a_gap_to_detect_get_the_detectable_gaps():
    audit = audit_table(_table(), ["site"], metrics=("hd95",), n_boot=0, discovery=False)
    kinds = [f["kind"] for f in audit["findings"]]
    assert "small_group" not in kinds and "insufficient_evidence" not in kinds
    found = next(f for f in audit["findings"] if f["kind"] == "detectable_gaps")
    assert "--detect hd95=GAP" in found["text"] and set(found["detectable_gaps"]) == {"A", "T", "W", "D", "B"}
    assert all(
        g["verdict"] in ("no significant gap", "worse than the reference", "better than the reference")
        for g in audit["metrics"]["hd95"]["attributes"]["site"]["groups"]
    )
    md = render_markdown(audit)
    assert "worst-group CVaR10" in md and "(at least " in md  # a distance's tail: one-sided interval
    with_gap = audit_table(_table(), ["site"], metrics=("hd95",), n_boot=0, discovery=False, detect="hd95=1")
    assert any(f["kind"] == "insufficient_evidence" for f in with_gap["findings"])
