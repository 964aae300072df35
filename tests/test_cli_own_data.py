"""Every workflow on the user's own data, through the CLI: init-config from a manifest (own column
names, a continuous attribute, an own hidden column), the packaged manifest_example config, train
-> evaluate -> audit with the hidden column named, and a resumable multi-seed benchmark of a config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from duetfair.cli import main
from helpers import TINY_MODEL, run, sets

SETS = sets(*TINY_MODEL, "train.epochs=1", "data.args.image_size=[32,32]")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic fundus manifest (40 cases, 32 x 32) as a user would have it: the mask column
    named ``mask``, the known hard cases in ``morphology`` (irregular / regular)."""
    root = tmp_path_factory.mktemp("own")
    try:
        main(["synth", "fundus2d", "--n", "40", "--out", str(root / "synth"), "--size", "32", "--seed", "2"])
    except SystemExit as exc:
        assert not exc.code
    df = pd.read_csv(root / "synth" / "manifest.csv")
    own = df.rename(columns={"label": "mask"}).drop(columns=["hidden_subtype"])
    own["morphology"] = ["irregular" if h else "regular" for h in df["hidden_subtype"]]
    own.to_csv(root / "synth" / "own.csv", index=False)
    return root


def test_init_config_writes_a_commented_config_that_trains(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, config = data / "synth" / "own.csv", data / "own.yaml"
    code, out, err = run(
        ["init-config", str(manifest), "--out", str(config), "--hidden", "morphology=irregular"], capsys
    )
    assert code == 0, err
    assert "attributes race, sex, age" in out and "group attribute race" in out
    text = config.read_text()
    assert text.startswith("# duetfair experiment config for") and "# data.hidden_column" in text
    raw = yaml.safe_load(text)
    assert raw["extends"] == "fundus2d.yaml" and raw["data"]["kind"] == "manifest"
    args = raw["data"]["args"]
    assert args["columns"] == {"label": "mask"} and list(args["bins"]) == ["age"] and args["seed"] == 0
    assert raw["data"]["group_attribute"] == "race" and raw["data"]["hidden_column"] == "morphology=irregular"
    code, _, err = run(["init-config", str(manifest), "--out", str(config)], capsys)
    assert code == 2 and "--overwrite" in err

    code, out, err = run(["train", str(config), *SETS, "--out", str(data / "run")], capsys)
    assert code == 0, err
    assert "epoch 1/1" in out  # not a terminal: one plain line per epoch
    code, out, err = run(["evaluate", str(data / "run"), "--bootstrap", "10"], capsys)
    assert code == 0, err
    audit = json.loads((data / "run" / "audit.json").read_text())
    hidden = audit["metrics"]["dice"]["hidden_subtype"]
    assert hidden["column"] == "morphology" and hidden["hard"] == ["irregular"]
    assert audit["settings"]["hidden_column"] == "morphology=irregular"
    summary = json.loads((data / "run" / "summary.json").read_text())
    assert summary["hidden_column"] == "morphology=irregular" and set(summary["hidden_subtype"]) <= {"0", "1"}
    assert "morphology" in pd.read_csv(data / "run" / "cases.csv").columns
    assert "morphology = irregular" in (data / "run" / "report.html").read_text()


def test_audit_of_the_run_uses_its_hidden_column_and_hidden_errors(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = str(data / "run" / "cases.csv")
    code, out, err = run(
        ["audit", cases, "--by", "race", "--bootstrap", "0", "--no-discovery", "--format", "md"], capsys
    )
    assert code == 0, err
    assert "Hidden hard subtype (morphology = irregular)" in out
    table = pd.read_csv(cases).assign(hard=lambda d: (d["morphology"] == "irregular").astype(int))
    table.drop(columns=["morphology"]).to_csv(data / "plain.csv", index=False)
    code, out, err = run(
        ["audit", str(data / "plain.csv"), "--by", "race", "--bootstrap", "0", "--no-discovery", "--hidden", "hard"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["metrics"]["dice[1]"]["hidden_subtype"]["column"] == "hard"
    for hidden, expected in (
        ("morphology", "value 'irregular' is not 0/1"),
        ("shape", "hidden column 'shape' is missing"),
    ):
        code, _, err = run(["audit", cases, "--by", "race", "--hidden", hidden], capsys)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_manifest_example_extends_fundus2d_and_trains(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = data / "synth" / "manifest.csv"
    code, out, err = run(
        ["train", "manifest_example", *SETS, "--set", f"data.args.path={manifest}", "--out", str(data / "example")],
        capsys,
    )
    assert code == 0, err
    config = yaml.safe_load((data / "example" / "config.yaml").read_text())
    assert config["data"]["kind"] == "manifest" and "task" not in config["data"]["args"]
    assert config["model"]["name"] == "vit_seg" and config["data"]["hidden_column"] == "hidden_subtype"
    code, out, err = run(["evaluate", str(data / "example"), "--bootstrap", "10"], capsys)
    assert code == 0 and "ES-Dice (race)" in out, err


def test_benchmark_of_a_config_is_resumable(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out_dir = data / "own.yaml", data / "bench"
    if not config.is_file():
        pytest.skip("needs the config of test_init_config_writes_a_commented_config_that_trains")
    args = [
        "benchmark",
        str(config),
        "--method",
        "erm",
        "--method",
        "dmoe",
        "--seeds",
        "2",
        *SETS,
        "--set",
        "train.progress=false",
        "--out",
        str(out_dir),
    ]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert out.count("test Dice") == 4 and "| Method | seeds |" in out and "verdict" in out
    result = json.loads((out_dir / "methods.json").read_text())
    assert result["config"] == str(config) and result["task"] is None and result["seeds"] == [0, 1]
    runs = {(r["key"], r["seed"]) for r in result["per_seed"]}
    assert runs == {("erm", 0), ("erm", 1), ("dmoe", 0), ("dmoe", 1)}
    record = json.loads((out_dir / "seed1" / "dmoe" / "run.json").read_text())
    assert record["method"] == "dmoe" and record["model"] == "vit_seg_dmoe"
    # a run killed before evaluation and one killed while training: the same command finishes them
    (out_dir / "seed0" / "erm" / "summary.json").unlink()
    (out_dir / "seed1" / "dmoe" / "summary.json").unlink()
    (out_dir / "seed1" / "dmoe" / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert out.count("reusing finished run") == 2 and "resuming unfinished run" in out
    assert out.count("test Dice") == 2
    for bad, expected in (
        (["--size", "quick"], "--size quick: applies to the synthetic --task only"),
        (["--task", "lesion2d"], "a synthetic task or a CONFIG"),
        (["--method", "best"], "--method: 'best' is not one of"),
    ):
        code, _, err = run([*args[:2], *bad, "--out", str(data / "bad")], capsys)
        assert code == 2 and expected in err, err


def test_benchmark_of_a_config_with_the_two_stage_methods(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out_dir = data / "own.yaml", data / "bench_two_stage"
    if not config.is_file():
        pytest.skip("needs the config of test_init_config_writes_a_commented_config_that_trains")
    methods = ["--method", "erm", "--method", "jtt", "--method", "subclass_dro", "--method", "subclass_moe"]
    args = ["benchmark", str(config), *methods, "--seeds", "1", *SETS, "--set", "train.progress=false"]
    code, out, err = run([*args, "--set", "objective.first_stage.epochs=1", "--out", str(out_dir)], capsys)
    assert code == 0, err
    table = (out_dir / "methods.md").read_text()
    assert "| JTT (up-sample errors) |" in table and "| Subclass DRO (clusters) |" in table
    html = (out_dir / "report.html").read_text()
    assert "JTT (up-sample errors)" in html and "Subclass DRO (clusters)" in html
    assert "| Subclass dMoE (routes on clusters) |" in table
    cases = pd.read_csv(out_dir / "seed0" / "subclass_moe" / "cases.csv")
    assert cases["subclass"].str.fullmatch(r"c\d").all()  # every test case routed on its cluster
    for method in ("jtt", "subclass_dro", "subclass_moe"):
        found = pd.read_csv(out_dir / "seed0" / method / "first_stage" / "subgroups.csv")
        # the user's own hidden column (morphology=irregular) is what the first step is measured against
        assert set(found["hidden"]) <= {0, 1} and found["hidden"].sum() > 0 and found["subgroup"].notna().all()
