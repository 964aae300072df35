"""GroupMetricFrame: paper rows, unknowns, intersections, binning, worst/gap/skewness, CIs."""

import numpy as np
import pandas as pd
import pytest

from duetfair.data.groups import bin_labels, group_labels, parse_bins
from duetfair.errors import DuetfairError
from duetfair.metrics.frame import GroupMetricFrame, point_summary


def table_with_group_means(groups, sizes, attr="race"):
    """Per-case table whose group means are exactly ``groups`` (two values per group)."""
    rows = []
    for label, (mean, n) in groups.items():
        vals = np.full(n, mean)
        vals[: n // 2] += 0.01
        vals[n // 2 : 2 * (n // 2)] -= 0.01
        rows += [{attr: label, "dice": v} for v in vals]
    return pd.DataFrame(rows)


# REFERENCE.md section 5: (overall Dice, group means, sizes) -> printed ES-Dice
PAPER_ROWS = [
    (0.793, [0.746, 0.731, 0.811], [169, 299, 1532], 0.703),  # FairSeg race rim, TransUNet
    (0.813, [0.769, 0.776, 0.825], [169, 299, 1532], 0.743),  # + dMoE
    (0.848, [0.827, 0.849, 0.850], [169, 299, 1532], 0.828),  # cup, TransUNet
    (0.610, [0.493, 0.569, 0.659, 0.656], [11, 129, 114, 21], 0.487),  # 3D T-stage, ResUNet
    (0.650, [0.718, 0.585, 0.693, 0.778], [11, 129, 114, 21], 0.499),  # + dMoE
]


@pytest.mark.parametrize("overall,means,sizes,es", PAPER_ROWS)
def test_paper_rows_es_from_group_means(overall, means, sizes, es):
    labels = [f"g{i}" for i in range(len(means))]
    df = table_with_group_means({l: (m, n) for l, m, n in zip(labels, means, sizes)}, sizes)
    # the printed overall is over all cases; add unknown-attribute cases to move M_all onto it
    total = sum(m * n for m, n in zip(means, sizes))
    n_all = sum(sizes)
    extra = pd.DataFrame({"race": [None] * 10, "dice": [(overall * (n_all + 10) - total) / 10] * 10})
    frame = GroupMetricFrame(pd.concat([df, extra], ignore_index=True), "dice", "race", n_boot=0)
    assert frame.overall == pytest.approx(overall, abs=1e-9)
    np.testing.assert_allclose(frame.group_means, means, atol=1e-9)
    assert frame.es == pytest.approx(es, abs=0.001)


def test_unknowns_count_in_overall_only():
    df = pd.DataFrame({"race": ["A", "A", "B", "B", "", "unknown", None], "dice": [0.9, 0.7, 0.5, 0.3, 0.0, 0.0, 1.0]})
    f = GroupMetricFrame(df, "dice", "race", n_boot=0)
    assert f.group_names == ["A", "B"]
    assert f.overall == pytest.approx(3.4 / 7)
    assert f.n_unknown == 3
    np.testing.assert_allclose(f.group_means, [0.8, 0.4])
    assert f.worst_group == "B" and f.best_group == "A" and f.gap == pytest.approx(0.4)
    assert f.skewness == pytest.approx(0.6 / 0.2)


def test_nan_metric_values_are_left_out():
    df = pd.DataFrame({"sex": ["F", "F", "M", "M"], "dice": [0.5, np.nan, 1.0, 0.0]})
    f = GroupMetricFrame(df, "dice", "sex", n_boot=0)
    assert f.n_cases == 3 and f.n_missing == 1
    np.testing.assert_allclose(f.group_means, [0.5, 0.5])


def test_lower_is_better_metric_direction():
    df = pd.DataFrame({"site": ["a", "a", "b", "b"], "hd95": [1.0, 3.0, 10.0, 12.0]})
    f = GroupMetricFrame(df, "hd95", "site", n_boot=0)
    assert f.worst_group == "b" and f.skewness is None


def test_bins_and_intersections():
    assert bin_labels([20, 40, 60, 80]) == ["<20", "20-39", "40-59", "60-79", ">=80"]
    assert parse_bins("age=20,40") == ("age", {"edges": [20.0, 40.0], "right": False})
    assert parse_bins("age=40,50:right") == ("age", {"edges": [40.0, 50.0], "right": True})
    assert bin_labels([40, 50, 60, 70], right=True) == ["<=40", "41-50", "51-60", "61-70", ">70"]
    df = pd.DataFrame({"age": [10, 20, 39.5, 85, None], "sex": ["F", "M", "F", "M", "F"], "race": [0, 1, 1.0, "1", 0]})
    labels = group_labels(df, "age", bins=[20, 40, 60, 80])
    assert labels.astype(object).tolist()[:4] == ["<20", "20-39", "20-39", ">=80"] and pd.isna(labels.iloc[4])
    assert group_labels(df, "race").astype(str).tolist() == ["0", "1", "1", "1", "0"]
    inter = group_labels(df, "race+sex")
    assert inter.astype(object).tolist() == ["0 & F", "1 & M", "1 & F", "1 & M", "0 & F"]
    assert list(inter.cat.categories) == ["0 & F", "0 & M", "1 & F", "1 & M"]  # every combination, code order


def test_bootstrap_intervals_cover_point_estimates_and_are_seeded():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": rng.choice(["a", "b", "c"], 600, p=[0.6, 0.3, 0.1]), "dice": rng.beta(8, 2, 600)})
    f1 = GroupMetricFrame(df, "dice", "g", n_boot=300, seed=3)
    f2 = GroupMetricFrame(df, "dice", "g", n_boot=300, seed=3)
    assert f1.to_dict() == f2.to_dict()
    lo, hi = f1.overall_ci
    assert lo < f1.overall < hi
    lo, hi = f1.es_ci
    assert lo < f1.es < hi
    table = f1.by_group
    assert ((table["ci_low"] < table["mean"]) & (table["mean"] < table["ci_high"])).all()
    assert f1.es_bootstrap_mean < f1.es + 0.02


@pytest.mark.parametrize(
    "df,by,match",
    [
        (pd.DataFrame({"r": ["a", "a"], "dice": [0.1, 0.2]}), "r", "only 1 group"),
        (pd.DataFrame({"r": ["a", "b"], "dice": [0.1, 1.2]}), "r", "outside"),
        (pd.DataFrame({"r": ["a", "b"], "dice": ["x", 0.2]}), "r", "not numeric"),
        (pd.DataFrame({"r": ["a", "b"], "dice": [0.1, 0.2]}), "q", "'q' not in the table"),
        (pd.DataFrame({"r": [], "dice": []}), "r", "empty"),
    ],
)
def test_bad_input(df, by, match):
    with pytest.raises(DuetfairError, match=match):
        GroupMetricFrame(df, "dice", by, n_boot=0)


def test_bad_bins():
    with pytest.raises(DuetfairError, match="increasing"):
        parse_bins("age=40,20")
    with pytest.raises(DuetfairError, match="numbers"):
        parse_bins("age=a,b")
    with pytest.raises(DuetfairError, match="not numeric"):
        group_labels(pd.DataFrame({"age": ["old", 30]}), "age", bins=[50])


def test_equity_scaled_is_undefined_for_distances():
    """ES of HD95 would reward a larger spread (dividing a distance); it must be null, not a number."""
    df = pd.DataFrame({"hd95": [1.0, 2.0, 10.0, 12.0], "dice": [0.9, 0.8, 0.5, 0.4], "g": ["a", "a", "b", "b"]})
    hd = GroupMetricFrame(df, "hd95", "g", n_boot=20)
    assert not hd.es_defined and np.isnan(hd.es) and all(np.isnan(hd.es_ci))
    assert hd.worst_group == "b"
    dice = GroupMetricFrame(df, "dice", "g", n_boot=20)
    assert dice.es_defined and dice.es == pytest.approx(0.65 / (1 + 0.2 + 0.2))


def test_point_summary_matches_equity_scaled_definition():
    df = pd.DataFrame({"dice": [0.9, 0.7, 0.8, 0.6, 0.5], "g": ["a", "a", "b", "b", "unknown"]})
    s = point_summary(df, "dice", "g")
    overall = df["dice"].mean()
    es = overall / (1 + abs(overall - 0.8) + abs(overall - 0.7))
    assert s["overall"] == pytest.approx(overall) and s["es"] == pytest.approx(es)
    assert s["worst_group"] == "b" and s["worst"] == pytest.approx(0.7)
    single = point_summary(pd.DataFrame({"dice": [0.5, 0.7], "g": ["a", "a"]}), "dice", "g")
    assert single["worst"] == pytest.approx(0.6) and single["es"] == pytest.approx(0.6)
