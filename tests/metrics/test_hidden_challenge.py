"""MAMA-MIA challenge scores (the intra-group tail tests are in test_hidden.py)."""

import pandas as pd
import pytest

from duetfair.metrics.challenge import mamamia_scores


def test_mamamia_scores_follow_the_challenge_definition():
    df = pd.DataFrame(
        {
            "dice": [0.8, 0.6, 0.9, 0.7, 0.5],
            "normhd": [0.1, 0.3, 0.05, 0.2, 1.0],
            "age": [35, 45, 55, 65, 75],
            "menopause": ["pre", "pre", "post", "post", None],
        }
    )
    s = mamamia_scores(df, ["age", "menopause"], bins={"age": [50]})
    perf = 0.5 * (df.dice.mean() + 1 - df.normhd.mean())
    assert s["performance"] == pytest.approx(perf)
    # age: <50 -> dice .7, hd .2 ; >=50 -> dice .7, hd (.05+.2+1)/3
    f_age = 1 - 0.5 * (0.0 + abs(0.2 - (0.05 + 0.2 + 1.0) / 3))
    f_meno = 1 - 0.5 * (abs(0.5 - 0.8) + abs(1.0 - 0.125))  # missing menopause: its own "unknown" group
    assert s["fairness_per_variable"]["age"] == pytest.approx(f_age)
    assert s["fairness_per_variable"]["menopause"] == pytest.approx(f_meno)
    assert s["fairness"] == pytest.approx((f_age + f_meno) / 2)
    assert s["total"] == pytest.approx(0.5 * perf + 0.5 * s["fairness"])
    assert s["groups"]["menopause"]["pre"]["n"] == 2
