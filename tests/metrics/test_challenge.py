"""MAMA-MIA challenge scoring: the challenge's groups (unknown menopause, right-closed age bins)."""

import pandas as pd
import pytest

from duetfair.metrics.challenge import challenge_spec, mamamia_scores


def test_unknown_menopause_is_its_own_group_as_in_the_challenge():
    df = pd.DataFrame(
        {"dice": [0.9, 0.9, 0.5, 0.5], "normhd": [0.1] * 4, "menopause": ["pre", "post", "unknown", None]}
    )
    s = mamamia_scores(df, ["menopause"])
    assert s["fairness_per_variable"]["menopause"] == pytest.approx(0.8)
    assert s["groups"]["menopause"]["unknown"]["n"] == 2


def test_age_bins_are_right_closed_with_the_challenge_labels():
    df = pd.DataFrame({"dice": [0.9, 0.8, 0.7, 0.6], "normhd": [0.1] * 4, "age": [40, 41, 50, 71]})
    s = mamamia_scores(df, ["age"])
    assert {k: v["n"] for k, v in s["groups"]["age"].items()} == {"0-40": 1, "41-50": 2, "71+": 1}


def test_alias_column_keeps_its_name():
    spec = challenge_spec(["menopausal_status", "site"])
    assert spec.attributes == ["menopausal_status"]
    assert spec.group_names("menopausal_status") == ["pre", "post", "unknown"]
