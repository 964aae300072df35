"""Descriptor slices, size-controlled gaps and their report on hand-built per-case tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from duetfair.audit import audit_table
from duetfair.audit.confounding import adjusted_gaps
from duetfair.audit.report import render_html, render_markdown
from duetfair.audit.slices import SliceSettings, definition, descriptor_levels, find_slices
from duetfair.data.groups import GroupSpec
from duetfair.errors import DuetfairError
from helpers import run


def planted(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Cases with descriptors; small low-contrast cases of site B (and only those) fail."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(5, 0.6, n)
    contrast = rng.normal(0, 1.5, n)
    site = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
    small, weak = size < np.quantile(size, 1 / 3), np.abs(contrast) < np.quantile(np.abs(contrast), 1 / 3)
    hard = small & weak & (site == "B")
    dice = np.clip(rng.normal(0.85, 0.05, n) - 0.4 * hard, 0, 1)
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i:03d}" for i in range(n)],
            "dice": dice,
            "site": site,
            "sex": rng.choice(["F", "M"], n),
            "desc_size": size,
            "desc_contrast": contrast,
            "desc_compactness": rng.uniform(0.5, 1, n),
            "desc_volume_error": np.where(hard, -0.5, 0.0),
        }
    )
    return frame, hard


def test_levels_are_tertiles_in_plain_words():
    frame, _ = planted()
    levels, attrs = descriptor_levels(frame)
    assert [a.name for a in attrs] == ["size", "contrast", "polarity", "compactness"]  # error descriptors: no
    counts = levels["size"].value_counts()
    assert set(counts.index) == {"small", "medium-sized", "large"} and counts.min() >= 130
    small = frame["desc_size"] <= frame["desc_size"].quantile(1 / 3)
    assert (levels["size"][small] == "small").all()
    assert set(levels["polarity"]) == {"darker than the surroundings", "lighter than the surroundings"}
    weak = np.abs(frame["desc_contrast"]) <= np.abs(frame["desc_contrast"]).quantile(1 / 3)
    assert (levels["contrast"][weak] == "low-contrast").all()


def test_definitions_read_as_words():
    _, attrs = descriptor_levels(planted()[0])
    by = {a.name: a for a in attrs}
    assert definition({"size": "small", "contrast": "low-contrast"}, by) == "small, low-contrast structures"
    assert definition({"polarity": "darker than the surroundings"}, by) == "structures darker than the surroundings"
    per_class = pd.DataFrame({"desc_size[cup]": [1.0, 2.0, 3.0, 4.0], "desc_contrast[rim]": [-1.0, 1.0, -2.0, 2.0]})
    _, attrs = descriptor_levels(per_class, min_share=0.1)
    by = {a.name: a for a in attrs}
    words = {"size[cup]": "small", "polarity[rim]": "darker than the surroundings"}
    assert definition(words, by) == "small cup and rim darker than the surroundings"


def test_planted_slice_is_found_inside_its_group_with_its_members():
    frame, hard = planted()
    spec = GroupSpec.for_table(frame, ["site", "sex"])
    labels = {a: spec.labels(frame, a) for a in ("site", "sex")}
    found = find_slices(frame, "dice", labels, failure_threshold=0.5)
    top = found["hidden_slices"][0]
    assert top["within"] in ("site=B", "overall")
    assert set(top["itemset"]) == {"size", "contrast"}
    assert top["definition"] == "small, low-contrast structures"
    members = set(top["members"])
    truth = set(frame["case_id"][hard])
    assert members >= truth and len(members - truth) <= 0.1 * len(members) + (
        len(members) if top["within"] == "overall" else 0
    )
    inside_b = next(s for s in found["hidden_slices"] if s["within"] == "site=B")
    assert set(inside_b["members"]) == truth  # inside site B the slice is exactly the hard cases
    assert inside_b["gap"] < -0.3 and inside_b["gap_ci"][1] < -0.3 and inside_b["q"] < 1e-6
    assert inside_b["failure_rate"] == pytest.approx(np.mean(frame["dice"][hard] < 0.5))
    assert inside_b["median_volume_error"] == pytest.approx(-0.5)
    search = found["slice_search"]
    assert search["n_significant"] >= 1 and {"overall", "site=A", "site=B", "site=C"} <= {
        s["within"] for s in search["scopes"]
    }


def test_no_descriptor_is_ever_an_attribute_and_bad_settings_are_refused():
    frame, _ = planted()
    audit = audit_table(frame, by=["site"], n_boot=0)
    assert list(audit["metrics"]["dice"]["attributes"]) == ["site"]
    assert all(not k.startswith("desc_") for s in audit["metrics"]["dice"]["subgroups"] for k in s["itemset"])
    assert audit["hidden_slices"] and "adjusted_gaps" in audit
    with pytest.raises(DuetfairError, match="slice levels=5"):
        audit_table(frame, by=["site"], n_boot=0, slices=SliceSettings(levels=5))
    with pytest.raises(DuetfairError, match="--adjust scanner"):
        audit_table(frame, by=["site"], n_boot=0, adjust=["scanner"])
    none = audit_table(frame.drop(columns=[c for c in frame.columns if c.startswith("desc_")]), by=["site"], n_boot=0)
    assert "hidden_slices" not in none


def test_multiple_testing_is_one_family_over_every_scope():
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "case_id": [str(i) for i in range(n)],
            "dice": rng.uniform(0.4, 1.0, n),
            "site": rng.choice(["A", "B", "C", "D"], n),
            "desc_size": rng.lognormal(5, 1, n),
            "desc_contrast": rng.normal(0, 1, n),
            "desc_noise": rng.uniform(0, 1, n),
        }
    )
    audit = audit_table(frame, by=["site"], n_boot=0)
    search = audit["slice_search"]
    assert len(search["scopes"]) == 5 and search["n_tests"] > 5 * 30
    assert audit["hidden_slices"] == [] and search["most_divergent"]["q"] > 0.05
    assert any(f["kind"] == "no_hidden_slice" for f in audit["findings"])


def confounded(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Group Y has smaller structures; Dice depends on size only (and on the site)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["X", "Y"], n)
    size = np.where(group == "Y", rng.lognormal(4, 0.5, n), rng.lognormal(5, 0.5, n))
    site = rng.choice(["s1", "s2"], n)
    dice = 0.6 + 0.05 * np.log(size) - 0.05 * (site == "s2") + rng.normal(0, 0.03, n)
    return pd.DataFrame({"case_id": range(n), "dice": dice, "group": group, "site": site, "desc_size": size})


def test_a_gap_explained_by_size_is_said_so():
    frame = confounded()
    spec = GroupSpec.for_table(frame, ["group", "site"])
    gaps = adjusted_gaps(frame, "dice", ["group"], spec, adjust=["site"], n_boot=200)
    g = gaps["group"]
    assert g["worst_group"] == "Y" and g["raw_gap"] > 0.03 and g["raw_ci"][0] > 0.03
    assert abs(g["size_gap"]) < 0.5 * g["raw_gap"] and g["size_explained"] >= 0.5
    assert g["adjusted_by"] == ["size", "site"] and g["adjusted_explained"] >= 0.5
    audit = audit_table(frame, by=["group"], n_boot=200, adjust=["site"])
    text = next(f["text"] for f in audit["findings"] if f["kind"] == "size_explained" and f["attribute"] == "group")
    assert text.startswith("Most of the dice gap by group (Y vs X") and "explained by structure size" in text


def test_a_gap_not_explained_by_size_persists():
    frame = confounded()
    frame["dice"] = frame["dice"] - 0.1 * (frame["group"] == "Y")
    frame["desc_size"] = np.random.default_rng(1).lognormal(5, 0.5, len(frame))  # size unrelated to group
    audit = audit_table(frame, by=["group"], n_boot=100)
    found = next(f for f in audit["findings"] if f["kind"] == "gap_persists")
    assert "persists after stratifying by structure size" in found["text"]


def test_report_shows_the_section_at_the_top(tmp_path):
    frame, _ = planted()
    audit = audit_table(frame, by=["site", "sex"], n_boot=50)
    path = render_html(audit, tmp_path / "r.html", cases=frame)
    html = path.read_text()
    assert 'id="hidden-slices"' in html and 'data-fig="slices"' in html
    assert html.index("Hidden failure slices</h3>") < html.index("<h4>dice</h4>")
    assert "small, low-contrast structures" in html
    md = render_markdown(audit)
    assert md.index("**Hidden failure slices**") < md.index("**dice**") and "## Hidden failure slices" in md


def test_cli_audit_with_adjust(tmp_path, capsys):
    frame = confounded()
    frame.to_csv(tmp_path / "cases.csv", index=False)
    code, out, err = run(["audit", str(tmp_path / "cases.csv"), "--by", "group", "--adjust", "site"], capsys)
    assert code == 0, err
    audit = json.loads(out)
    assert audit["adjusted_gaps"]["adjust"] == ["site"] and "group" in audit["adjusted_gaps"]["attributes"]
    code, _, err = run(["audit", str(tmp_path / "cases.csv"), "--by", "group", "--adjust", "nope"], capsys)
    assert code == 2 and "--adjust nope" in err
