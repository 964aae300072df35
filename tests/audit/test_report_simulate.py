"""Markdown / HTML reports and the synthetic table demo."""

import base64
import re

import pandas as pd

from duetfair.audit import audit_table
from duetfair.audit.report import build_figures, render_html, render_markdown, render_summary
from duetfair.audit.simulate import run_table_demo, simulate_case_table


def test_simulated_table_has_imbalance_and_hidden_failures():
    df = simulate_case_table(3000, seed=0)
    assert df.equals(simulate_case_table(3000, seed=0))
    shares = df["race"].value_counts(normalize=True)
    assert shares["White"] > 0.6 and shares["Asian"] < 0.15 and (df["race"] == "").any()
    assert df["dice"].between(0, 1).all() and (df["hd95"] > 0).all()
    hidden = df["hidden_subtype"] == 1
    assert 0.05 < hidden.mean() < 0.2
    assert df.loc[hidden, "dice"].mean() < df.loc[~hidden, "dice"].mean() - 0.3
    assert df.groupby("race")["hidden_subtype"].mean()["Black"] > df.groupby("race")["hidden_subtype"].mean()["White"]


def test_markdown_and_html_reports(cases, tmp_path):
    audit = audit_table(cases, ["race", "age"], bins={"age": [50, 70]}, n_boot=50)
    md = render_markdown(audit, title="T")
    assert md.startswith("# T") and "### dice by race" in md and "Divergent subgroups" in md
    comparison = pd.DataFrame(
        {
            "method": ["erm", "fairdro"],
            "dice": [0.8, 0.82],
            "dice_low": [0.78, 0.8],
            "dice_high": [0.82, 0.84],
            "es_dice": [0.7, 0.75],
            "worst_group_dice": [0.7, 0.74],
            "cvar10": [0.3, 0.4],
        }
    )
    figs = build_figures(audit, cases, comparison)
    assert set(figs) == {
        "means/dice/race",
        "means/dice/age",
        "dist/dice/race",
        "dist/dice/age",
        "tail/dice/race",
        "tail/dice/age",
        "heat/dice/race+age",
        "certify/dice/race",
        "certify/dice/age",
        "comparison",
    }
    path = render_html(audit, tmp_path / "r.html", cases=cases, comparison=comparison, title="Report <x>")
    html = path.read_text()
    assert "Report &lt;x&gt;" in html and "fairdro" in html and "0.820 (0.800-0.840)" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 10 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "worst" in render_summary(audit)


def test_table_demo_writes_all_outputs(tmp_path):
    result = run_table_demo(tmp_path / "demo", n=300, n_boot=20, html=False)
    assert {p.name for p in (tmp_path / "demo").iterdir()} == {"cases.csv", "audit.json", "audit.md"}
    assert "hidden_subtype" in result["audit"]["metrics"]["dice"]
