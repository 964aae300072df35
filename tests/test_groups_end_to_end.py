"""One owner for groups: training, model selection, evaluate and `duetfair audit` label every case
the same way (an explicit `unknown` group, a binned attribute), and a multi-attribute dMoE run
trains and evaluates through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from duetfair.cli import main
from duetfair.data.groups import GroupSpec, binned, categorical
from helpers import TINY_MODEL, run, sets


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dMoE run on a user manifest with a MAMA-MIA-style `menopause` (explicit `unknown` group),
    age binned at 50 (right-closed, like the challenge), routed on race and menopause."""
    root = tmp_path_factory.mktemp("groups")
    try:
        main(["synth", "fundus2d", "--n", "48", "--out", str(root / "data"), "--size", "32", "--seed", "1"])
    except SystemExit as exc:
        assert not exc.code
    manifest = root / "data" / "manifest.csv"
    df = pd.read_csv(manifest)
    df["menopause"] = (["pre", "post", "unknown", ""] * 12)[: len(df)]
    df["age"] = ([50, 49, 51, 38] * 12)[: len(df)]
    df.to_csv(manifest, index=False)
    spec = GroupSpec(
        [
            categorical("race", ["Asian", "Black", "White"]),
            categorical("menopause", ["pre", "post", "unknown"], missing="unknown"),
            binned("age", [50], right=True),
        ]
    )
    config = {
        "extends": "fundus2d_dmoe.yaml",
        "data": {
            "kind": "manifest",
            "args": {"path": str(manifest), "group_spec": spec.to_dict()},
            "group_attribute": "menopause",
            "audit_attributes": ["menopause", "age"],
            "cache": True,
        },
        "model": {"route_attributes": ["race", "menopause"]},
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    tiny = sets(*TINY_MODEL, "train.epochs=2")
    for args in (
        ["train", str(root / "exp.yaml"), *tiny, "--out", str(root / "run")],
        ["evaluate", str(root / "run"), "--bootstrap", "10"],
    ):
        try:
            main(args)
        except SystemExit as exc:
            assert not exc.code, args
    return root / "run"


def test_unknown_group_is_trained_selected_evaluated_and_audited(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.loads((trained_run / "run.json").read_text())
    assert record["group_names"] == ["pre", "post", "unknown"]
    history = pd.read_csv(trained_run / "history.csv")
    assert "val_dice/unknown" in history.columns  # model selection sees the unknown group
    audit = json.loads((trained_run / "audit.json").read_text())
    evaluated = [g["value"] for g in audit["metrics"]["dice"]["attributes"]["menopause"]["groups"]]
    assert "unknown" in evaluated and audit["metrics"]["dice"]["attributes"]["menopause"]["n_unknown"] == 0
    code, out, err = run(
        [
            "audit",
            str(trained_run / "cases.csv"),
            "--by",
            "menopause",
            "--class",
            "1",
            "--no-discovery",
            "--bootstrap",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    assert "group_spec.json" in err  # the run's own groups were used
    audited = [g["value"] for g in json.loads(out)["metrics"]["dice"]["attributes"]["menopause"]["groups"]]
    assert audited == evaluated


def test_binned_attribute_has_one_set_of_labels_everywhere(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training = GroupSpec.load(trained_run / "group_spec.json").group_names("age")
    assert training == ["<=50", ">50"]  # age 50 is in the lower, right-closed bin
    audit = json.loads((trained_run / "audit.json").read_text())
    evaluated = {g["value"]: g["n"] for g in audit["metrics"]["dice"]["attributes"]["age"]["groups"]}
    cases = pd.read_csv(trained_run / "cases.csv").drop_duplicates("case_id")
    assert evaluated == {"<=50": int((cases["age"] <= 50).sum()), ">50": int((cases["age"] > 50).sum())}
    for extra in ([], ["--bins", "age=50:right"]):
        code, out, err = run(
            [
                "audit",
                str(trained_run / "cases.csv"),
                "--by",
                "age",
                "--class",
                "1",
                "--no-discovery",
                "--bootstrap",
                "0",
                *extra,
            ],
            capsys,
        )
        assert code == 0, err
        audited = {g["value"]: g["n"] for g in json.loads(out)["metrics"]["dice"]["attributes"]["age"]["groups"]}
        assert audited == evaluated
    code, out, err = run(
        [
            "audit",
            str(trained_run / "cases.csv"),
            "--by",
            "age",
            "--class",
            "1",
            "--no-discovery",
            "--bootstrap",
            "0",
            "--bins",
            "age=50",
        ],
        capsys,
    )
    left = {g["value"]: g["n"] for g in json.loads(out)["metrics"]["dice"]["attributes"]["age"]["groups"]}
    assert left == {"<50": int((cases["age"] < 50).sum()), ">=50": int((cases["age"] >= 50).sum())}


def test_multi_attribute_dmoe_routes_on_both_attributes(trained_run: Path) -> None:
    from duetfair.engine.evaluate import load_model

    record = json.loads((trained_run / "run.json").read_text())
    assert record["route_attributes"] == ["race", "menopause"]
    model, _, _, _ = load_model(trained_run)
    moes = [m for m in model.modules() if type(m).__name__ == "DistributionAwareMoE"]
    assert moes and all(m.num_groups == [3, 3] for m in moes)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["n_cases"] > 0 and 0.0 <= summary["dice"] <= 1.0
