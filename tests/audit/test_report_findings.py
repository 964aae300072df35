"""Findings first: the plain-words findings of an audit, the summary cards, and the same findings
and numbers in the JSON, the Markdown and the HTML."""

import html as htmllib
import json
import math

import numpy as np
import pandas as pd

from duetfair.audit import audit_table
from duetfair.audit.findings import build_findings, headline_cards
from duetfair.audit.formatting import fmt_ci, fmt_signed_ci
from duetfair.audit.markdown import md_text
from duetfair.audit.method_findings import comparison_findings, verdict
from duetfair.audit.report import render_html, render_markdown
from duetfair.io import write_json


def _group(value, n, mean, ci, cvar10=0.3, rate=0.1):
    return {
        "value": value,
        "n": n,
        "mean": mean,
        "ci": ci,
        "cvar10": cvar10,
        "p10": 0.4,
        "std": 0.1,
        "failure_rate": rate,
    }


def _audit(groups, *, worst, best, n_unknown=0, threshold=0.5, subgroups=(), higher=True, n_cases=300):
    means = {g["value"]: g["mean"] for g in groups}
    return {
        "by": ["race"],
        "settings": {"seed": 0, "fdr": 0.05, "es_variant": "sum_abs"},
        "metrics": {
            "dice": {
                "n_cases": n_cases,
                "n_missing": 0,
                "higher_is_better": higher,
                "overall": {"mean": 0.8, "ci": [0.78, 0.82]},
                "attributes": {
                    "race": {
                        "groups": groups,
                        "n_unknown": n_unknown,
                        "worst_group": worst,
                        "worst_mean": means[worst],
                        "best_group": best,
                        "best_mean": means[best],
                        "gap": abs(means[best] - means[worst]),
                        "es": 0.7,
                        "es_ci": [0.65, 0.75],
                        "es_std": 0.72,
                        "es_sum_abs": 0.7,
                        "skewness": 1.2,
                        "worst_cvar10": 0.2,
                        "failure_threshold": threshold,
                    }
                },
                "subgroups": list(subgroups),
            }
        },
    }


def _kinds(found, kind):
    return [f for f in found if f["kind"] == kind]


def test_worst_group_interval_separation_and_failure_shares():
    groups = [
        _group("A", 100, 0.85, [0.83, 0.87], rate=0.05),
        _group("B", 80, 0.70, [0.66, 0.74], 0.15, rate=0.25),
        _group("C", 120, 0.74, [0.71, 0.77], rate=0.10),
    ]
    found = build_findings(_audit(groups, worst="B", best="A"))
    w = _kinds(found, "worst_group")[0]
    assert (w["group"], w["n"], w["best_group"]) == ("B", 80, "A") and math.isclose(w["gap"], 0.15)
    assert w["separated_from"] == ["A"] and w["overlaps"] == ["C"]
    assert "0.700 (0.660-0.740)" in w["text"] and "lies below that of A but overlaps that of C" in w["text"]
    f = _kinds(found, "failures")[0]
    assert [s["group"] for s in f["shares"]] == ["B", "C", "A"]  # highest share first
    assert f["shares"][0] == {"group": "B", "n": 80, "failures": 20, "share": 0.25, "cvar10": 0.15}
    assert "dice < 0.5" in f["text"] and "B 25.0% (20/80)" in f["text"] and f["worst_cvar_group"] == "B"
    # all intervals apart / all overlapping
    apart = [_group("A", 100, 0.85, [0.83, 0.87]), _group("B", 80, 0.70, [0.66, 0.74])]
    assert (
        "lies below those of all other groups"
        in _kinds(build_findings(_audit(apart, worst="B", best="A")), "worst_group")[0]["text"]
    )
    close = [_group("A", 100, 0.75, [0.70, 0.80]), _group("B", 80, 0.72, [0.66, 0.78])]
    text = _kinds(build_findings(_audit(close, worst="B", best="A")), "worst_group")[0]["text"]
    assert "overlaps those of all other groups, so the gap may be chance" in text
    # lower-is-better metric: the worst group is the highest; its interval lies above
    hd = [_group("A", 100, 5.0, [4.5, 5.5]), _group("B", 80, 9.0, [8.0, 10.0])]
    text = _kinds(build_findings(_audit(hd, worst="B", best="A", higher=False, threshold=None)), "worst_group")[0]
    assert "lies above those of all other groups" in text["text"]


def test_no_intervals_no_threshold_and_tail():
    groups = [_group("A", 100, 0.85, [None, None]), _group("B", 80, 0.70, [None, None], cvar10=0.1)]
    found = build_findings(_audit(groups, worst="B", best="A", threshold=None))
    assert "separation not assessed" in _kinds(found, "worst_group")[0]["text"]
    assert not _kinds(found, "failures")
    tail = _kinds(found, "tail")[0]
    assert tail["group"] == "B" and tail["cvar10"] == 0.1 and "--fail dice<VALUE" in tail["text"]


def test_most_divergent_significant_subgroup():
    sub = [
        {
            "itemset": {"race": "B", "sex": "M"},
            "support": 0.1,
            "n": 30,
            "mean": 0.6,
            "divergence": -0.2,
            "t": -5,
            "welch_t": -5.0,
            "p_value": 0.2,
            "q_value": 0.3,
            "significant": False,
        },
        {
            "itemset": {"race": "B"},
            "support": 0.27,
            "n": 80,
            "mean": 0.7,
            "divergence": -0.1,
            "t": -4,
            "welch_t": -4.2,
            "p_value": 0.0001,
            "q_value": 0.0004,
            "significant": True,
        },
    ]
    groups = [_group("A", 100, 0.85, [0.83, 0.87]), _group("B", 80, 0.70, [0.66, 0.74])]
    s = _kinds(build_findings(_audit(groups, worst="B", best="A", subgroups=sub)), "subgroup")[0]
    assert s["significant"] and s["itemset"] == {"race": "B"} and s["q_value"] == 0.0004
    assert "0.100 below the overall mean" in s["text"] and "q < 0.001" in s["text"]
    for item in sub:
        item["significant"] = False
    s = _kinds(build_findings(_audit(groups, worst="B", best="A", subgroups=sub)), "subgroup")[0]
    assert not s["significant"] and s["text"].startswith("No subgroup of dice diverges significantly")


def test_warnings_small_groups_and_unknowns():
    groups = [_group("A", 250, 0.85, [0.83, 0.87]), _group("B", 12, 0.70, [0.6, 0.8]), _group("C", 5, 0.75, [0.6, 0.9])]
    found = build_findings(_audit(groups, worst="B", best="A", n_unknown=60, n_cases=327))
    small = _kinds(found, "small_group")[0]
    assert small["level"] == "warning" and [g["group"] for g in small["groups"]] == ["B", "C"]
    assert "B (n=12) and C (n=5) have fewer than 20 cases" in small["text"]
    unknown = _kinds(found, "unknowns")[0]
    assert unknown["n_unknown"] == 60 and "60 of 327 cases (18.3%)" in unknown["text"]
    assert found[-2:] == [small, unknown]  # warnings last
    assert not _kinds(build_findings(_audit(groups, worst="B", best="A", n_unknown=10)), "unknowns")
    assert not _kinds(build_findings(_audit(groups, worst="B", best="A"), min_n=5), "small_group")


def test_cards_hold_the_headline_numbers():
    groups = [
        _group("A", 100, 0.85, [0.83, 0.87], cvar10=0.4, rate=0.05),
        _group("B", 80, 0.70, [0.66, 0.74], cvar10=0.15, rate=0.25),
    ]
    cards = {c["label"]: c for c in headline_cards(_audit(groups, worst="B", best="A"))}
    assert cards["overall dice"]["text"] == "0.800 (0.780-0.820)"
    assert cards["worst race: B"]["text"] == "0.700 (0.660-0.740)" and "gap 0.150" in cards["worst race: B"]["note"]
    assert cards["ES-dice (race)"]["text"] == "0.700 (0.650-0.750)"
    assert cards["worst-group CVaR10"]["value"] == 0.15 and cards["highest failure share"]["text"] == "25.0%"


def test_number_formatting():
    assert fmt_ci(0.5, [0.4, 0.6]) == "0.500 (0.400-0.600)"
    assert fmt_ci(-0.01, [-0.03, 0.01]) == "-0.010 (-0.030 to 0.010)"
    assert fmt_ci(0.5, [None, None]) == "0.500"
    assert fmt_signed_ci(0.012, [-0.003, 0.027]) == "+0.012 (-0.003 to +0.027)"
    assert [verdict(0.01, 0.02), verdict(-0.02, -0.01), verdict(-0.01, 0.01), verdict(None, 1)] == [
        "better",
        "worse",
        "no clear difference",
        "n/a",
    ]


def test_audit_json_markdown_and_html_carry_the_same_findings(cases, tmp_path):
    cases = cases.assign(race=np.where(np.arange(len(cases)) % 5 == 0, "", cases["race"]))  # 20% unknown
    audit = audit_table(cases, ["race", "sex"], metrics=("dice", "hd95"), n_boot=50)
    found = audit["findings"]
    kinds = {f["kind"] for f in found}
    assert {"worst_group", "failures", "tail", "subgroup", "hidden_subtype", "unknowns"} <= kinds
    assert found == build_findings(audit)
    # JSON round trip: every finding is plain JSON
    write_json(tmp_path / "a.json", audit)
    assert json.loads((tmp_path / "a.json").read_text())["findings"] == json.loads(json.dumps(found))
    md = render_markdown(audit)
    assert md.index("## Findings") < md.index("## dice")
    page = htmllib.unescape(render_html(audit, tmp_path / "r.html", cases=cases).read_text())
    assert page.index('id="findings"') < page.index('id="metric-dice"')
    for f in found:  # the Markdown escapes the text (a group name may hold markup), the HTML too
        assert md_text(f["text"]) in md and f["text"] in page
    for card in headline_cards(audit):
        assert md_text(card["text"]) in md and card["text"] in page


def test_comparison_findings_name_the_best_and_the_verdicts():
    comp = pd.DataFrame(
        {
            "method": ["ERM", "FairDRO"],
            "dice": [0.80, 0.82],
            "dice_low": [0.78, 0.80],
            "dice_high": [0.82, 0.84],
            "es_dice": [0.70, 0.70],
        }
    )
    paired = pd.DataFrame(
        {
            "method": ["FairDRO"],
            "metric": ["dice"],
            "diff": [0.02],
            "low": [0.01],
            "high": [0.03],
            "verdict": ["better"],
        }
    )
    found = comparison_findings(comp, paired, "ERM", {"dice": "Dice", "es_dice": "ES-Dice"})
    texts = [f["text"] for f in found]
    assert "Highest Dice: FairDRO with 0.820 (0.800-0.840)." in texts
    assert "Highest ES-Dice: ERM and FairDRO (tied) with 0.700." in texts
    assert "FairDRO vs ERM: Dice +0.020 (+0.010 to +0.030): better." in texts
