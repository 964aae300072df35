from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from duetfair.data.groups import (
    HAM_AGE_EDGES,
    HAM_AGE_LABELS,
    MAMAMIA_AGE_EDGES,
    MAMAMIA_AGE_LABELS,
    AttributeSpec,
    GroupSpec,
    binned,
    categorical,
)
from duetfair.errors import DuetfairError


def fairseg_spec() -> GroupSpec:
    return GroupSpec(
        [
            categorical("race", ["Asian", "Black", "White"], value_map={0: "Asian", 1: "Black", 2: "White"}),
            binned("age", [60], ["<60", ">=60"]),
        ]
    )


def test_categorical_value_map_and_bins():
    spec = fairseg_spec()
    assert spec.encode({"race": 2, "age": 71.5}) == [2, 1]
    assert spec.encode({"race": "1.0", "age": 59.99}) == [1, 0]
    assert spec.encode({"race": "White", "age": 60}) == [2, 1]  # names match too
    assert spec.cardinalities == [3, 2] and spec.num_intersections == 6


def test_missing_and_unseen_are_unknown_and_counted():
    spec = fairseg_spec()
    df = pd.DataFrame({"race": [0, 7, None, "white", np.nan], "age": [10, "n/a", np.inf, 80, None]})
    codes = spec.encode_frame(df)
    assert codes.tolist() == [[0, 0], [-1, -1], [-1, -1], [2, 1], [-1, -1]]
    assert spec.unknown_counts(df) == {"race": 3, "age": 3}
    assert spec.unseen_values(df) == {"race": ["7"], "age": ["inf"]}  # "n/a" is a missing token
    assert spec.counts(df)["race"] == {"Asian": 1, "Black": 0, "White": 1, "unknown": 3}


def test_ham_and_mamamia_bins_edges():
    ham = binned("age", HAM_AGE_EDGES, HAM_AGE_LABELS)
    assert [ham.encode(a) for a in (0, 19.9, 20, 39, 40, 60, 79.5, 80, 95)] == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    mm = binned("age", MAMAMIA_AGE_EDGES, MAMAMIA_AGE_LABELS, right=True)
    assert [mm.encode(a) for a in (25, 40, 41, 50, 51, 60, 61, 70, 71, 99)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # vectorised path agrees with the scalar path
    vals = pd.Series([25, 40, 40.5, None, "x", 70, 70.1])
    assert mm.encode_series(vals).tolist() == [mm.encode(v) for v in vals]


def test_menopause_prefix_map_with_missing_group():
    meno = categorical(
        "menopause",
        ["pre", "post", "unknown"],
        value_map={"pre": "pre", "peri": "pre", "post": "post"},
        match="prefix",
        missing="unknown",
    )
    got = [meno.encode(v) for v in ["pre", "Peri-menopausal", "postmenopausal", None, "", "other"]]
    assert got == [0, 0, 1, 2, 2, -1]


def test_intersection_ids_and_unknown():
    spec = fairseg_spec()
    codes = torch.tensor([[0, 0], [0, 1], [1, 0], [2, 1], [-1, 1], [2, -1]])
    assert spec.intersection(codes).tolist() == [0, 1, 2, 5, -1, -1]
    assert spec.intersection_names()[5] == "White & >=60"
    with pytest.raises(DuetfairError):
        spec.intersection(torch.tensor([[3, 0]]))
    batched = spec.intersection(codes.reshape(2, 3, 2))
    assert batched.shape == (2, 3)


def test_round_trip_json_yaml(tmp_path):
    spec = GroupSpec(
        [
            fairseg_spec()["race"],
            fairseg_spec()["age"],
            categorical(
                "meno", ["pre", "post", "unknown"], value_map={"peri": "pre"}, match="prefix", missing="unknown"
            ),
        ]
    )
    d = spec.to_dict()
    assert GroupSpec.from_dict(json.loads(json.dumps(d))) == spec
    spec.save(tmp_path / "g.json")
    again = GroupSpec.load(tmp_path / "g.json")
    assert again.encode({"race": 1, "age": 61, "meno": "perimenopause"}) == [1, 1, 0]
    import yaml

    (tmp_path / "g.yaml").write_text(yaml.safe_dump(d))
    assert GroupSpec.load(tmp_path / "g.yaml") == spec


def test_bad_specs_are_refused():
    with pytest.raises(DuetfairError, match="edges"):
        AttributeSpec("age", ["a", "b"], edges=[60, 50])
    with pytest.raises(DuetfairError, match="labels"):
        binned("age", [60], ["only-one"])
    with pytest.raises(DuetfairError, match="not in values"):
        categorical("race", ["A"], value_map={0: "B"})
    with pytest.raises(DuetfairError, match="duplicate"):
        GroupSpec([categorical("a", [1]), categorical("a", [2])])
    with pytest.raises(DuetfairError, match="unknown keys"):
        GroupSpec.from_dict({"attributes": [{"name": "a", "values": ["x"], "colour": 1}]})


def test_infer_from_frame():
    df = pd.DataFrame({"site": ["b", "a", None, "b"], "age": [10, 70, 30, None], "grade": [2, 10, 1, 2]})
    spec = GroupSpec.infer(df, ["site", "age", "grade"], bins={"age": [60]})
    assert spec.group_names("site") == ["a", "b"]
    assert spec.group_names("grade") == ["1", "2", "10"]  # numeric order, not string order
    assert spec.encode_frame(df).tolist() == [[1, 0, 1], [0, 1, 2], [-1, 0, 0], [1, -1, 1]]
    with pytest.raises(DuetfairError, match="not in the table"):
        GroupSpec.infer(df, ["nope"])
    with pytest.raises(DuetfairError, match="bins"):
        GroupSpec.infer(pd.DataFrame({"x": np.arange(100.0)}), ["x"])


# ---- the analysis-only hidden column ----------------------------------------------------------


def test_hidden_column_flags_01_words_and_named_hard_values() -> None:
    from duetfair.data.groups import HiddenColumn

    default = HiddenColumn.parse(None)
    assert default.name == "hidden_subtype" and default.hard is None
    flags = default.flags([0, 1, 2.0, "yes", "No", "TRUE", "hard", "", None, float("nan"), True])
    assert flags.tolist() == [0, 1, 1, 1, 0, 1, 1, -1, -1, -1, 1]
    morph = HiddenColumn.parse("morphology=irregular, spiculated")
    assert (morph.name, morph.hard, str(morph)) == (
        "morphology",
        ("irregular", "spiculated"),
        "morphology=irregular,spiculated",
    )
    assert morph.flags(["irregular", "regular", "spiculated", "unknown"]).tolist() == [1, 0, 1, -1]
    with pytest.raises(
        DuetfairError,
        match=r"hidden column 'morphology': value 'irregular' is not 0/1.*"
        r"morphology=irregular",
    ):
        HiddenColumn.parse("morphology").flags(["irregular"])
    for bad in ("=x", "morphology="):
        with pytest.raises(DuetfairError, match="hidden column"):
            HiddenColumn.parse(bad)


def test_hidden_column_check_names_missing_column_and_unseen_values() -> None:
    from duetfair.data.groups import HiddenColumn

    df = pd.DataFrame({"morphology": ["regular", "irregular"]})
    HiddenColumn.parse("morphology=irregular").check(df, "t.csv")
    with pytest.raises(DuetfairError, match=r"t.csv: hidden column 'shape' is missing; columns are \['morphology'\]"):
        HiddenColumn.parse("shape").check(df, "t.csv")
    with pytest.raises(DuetfairError, match="never holds \\['irreg'\\]; its values are \\['irregular', 'regular'\\]"):
        HiddenColumn.parse("morphology=irreg").check(df, "t.csv")
