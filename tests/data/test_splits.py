from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from duetfair.data.groups import GroupSpec, binned
from duetfair.data.splits import assign_group_splits, assign_splits
from duetfair.errors import DuetfairError


def _meta(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "patient": [f"p{i // 3}" for i in range(n)],
            "race": rng.choice(["A", "B", "W"], size=n, p=[0.1, 0.15, 0.75]),
            "age": rng.uniform(20, 90, size=n),
        }
    )


def test_deterministic_and_row_order_independent():
    m = _meta()
    a = assign_splits(m, stratify=["race"], group_by="patient", seed=1)
    b = assign_splits(m.sample(frac=1.0, random_state=5), stratify=["race"], group_by="patient", seed=1)
    assert a.equals(b.loc[a.index])
    assert not a.equals(assign_splits(m, stratify=["race"], group_by="patient", seed=2))


def test_patients_never_in_two_splits_and_fractions_hold():
    m = _meta()
    s = assign_splits(m, stratify=["race"], group_by="patient", seed=0)
    assert (m.assign(split=s).groupby("patient")["split"].nunique() == 1).all()
    share = s.value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["val"] - 0.1) < 0.03


def test_stratified_per_group():
    m = _meta(2000)
    s = assign_splits(m, stratify=["race"], seed=0)
    tab = pd.crosstab(m["race"], s, normalize="index")
    assert (abs(tab["train"] - 0.8) < 0.02).all() and (abs(tab["test"] - 0.1) < 0.02).all()


def test_group_splits_use_encoded_bins():
    m = _meta(300)
    spec = GroupSpec([binned("age", [60], ["<60", ">=60"])])
    s = assign_group_splits(m, spec, seed=0)
    old = m["age"] >= 60
    assert abs((s[old] == "train").mean() - 0.8) < 0.05 and (s == "test").sum() > 20


def test_bad_arguments():
    with pytest.raises(DuetfairError, match="missing"):
        assign_splits(_meta(10), stratify=["nope"])
    with pytest.raises(DuetfairError, match="fractions"):
        assign_splits(_meta(10), fractions=(0.5, 0.5))
