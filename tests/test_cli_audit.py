"""`duetfair audit` / `duetfair demo`: outputs and one-line errors with exit code 2."""

import json

import pytest
from typer.testing import CliRunner

from duetfair.audit.simulate import simulate_case_table
from duetfair.cli import app, main

runner = CliRunner()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cases.csv"
    simulate_case_table(400, seed=2).to_csv(path, index=False)
    return path


def test_audit_json_to_stdout(table):
    res = runner.invoke(
        app, ["audit", str(table), "--by", "race", "--by", "age", "--bins", "age=40,60,70", "--bootstrap", "30"]
    )
    assert res.exit_code == 0, res.output
    audit = json.loads(res.stdout)
    assert [g["value"] for g in audit["metrics"]["dice"]["attributes"]["age"]["groups"]] == [
        "<40",
        "40-59",
        "60-69",
        ">=70",
    ]
    assert audit["settings"]["n_boot"] == 30


def test_audit_markdown_json_html_files(table, tmp_path):
    for fmt, name in (("md", "a.md"), ("json", "a.json"), ("html", "a.html")):
        res = runner.invoke(
            app,
            [
                "audit",
                str(table),
                "--by",
                "race+sex",
                "--metric",
                "dice",
                "--metric",
                "hd95",
                "--bootstrap",
                "20",
                "--format",
                fmt,
                "--out",
                str(tmp_path / name),
                "--es-variant",
                "std",
            ],
        )
        assert res.exit_code == 0, res.output
    assert "dice by race+sex" in (tmp_path / "a.md").read_text()
    assert json.loads((tmp_path / "a.json").read_text())["settings"]["es_variant"] == "std"
    # per metric: group means, tail and distribution; the first metric's race x sex heatmap and its
    # chart of the failure-share bounds by race+sex
    assert (tmp_path / "a.html").read_text().count("data:image/png;base64") == 8


def test_demo_command(tmp_path):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--n", "300", "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    assert "hidden hard subtype" in res.stdout
    assert (tmp_path / "d" / "report.html").exists()


def _bad_tables(tmp_path):
    df = simulate_case_table(100, seed=0)
    paths = {}
    (tmp_path / "unreadable.parquet").write_bytes(b"garbage")
    paths["unreadable"] = tmp_path / "unreadable.parquet"
    df.assign(dice=["x"] + list(df["dice"][1:])).to_csv(tmp_path / "text.csv", index=False)
    paths["text"] = tmp_path / "text.csv"
    df.assign(dice=df["dice"] * 100).to_csv(tmp_path / "percent.csv", index=False)
    paths["percent"] = tmp_path / "percent.csv"
    df.assign(sex="F").to_csv(tmp_path / "single.csv", index=False)
    paths["single"] = tmp_path / "single.csv"
    df.iloc[0:0].to_csv(tmp_path / "empty.csv", index=False)
    paths["empty"] = tmp_path / "empty.csv"
    df.to_csv(tmp_path / "ok.csv", index=False)
    paths["ok"] = tmp_path / "ok.csv"
    return paths


@pytest.mark.parametrize(
    "case,extra,message",
    [
        ("missing", ["--by", "race"], "does not exist"),
        ("unreadable", ["--by", "race"], "cannot be read"),
        ("ok", ["--by", "ethnicity"], "column 'ethnicity' not in the table"),
        ("text", ["--by", "race"], "value 'x' is not numeric"),
        ("percent", ["--by", "race"], "outside [0, 1]"),
        ("single", ["--by", "sex"], "expected at least 2 groups"),
        ("empty", ["--by", "race"], "empty"),
        ("ok", ["--by", "race", "--bins", "age=x"], "--bins"),
        ("ok", ["--by", "race", "--format", "pdf"], "--format"),
        ("ok", ["--by", "race", "--es-variant", "max"], "--es-variant: 'max' is not one of 'sum_abs', 'std'"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, case, extra, message):
    paths = _bad_tables(tmp_path)
    path = paths.get(case, tmp_path / "missing.csv")
    with pytest.raises(SystemExit) as exc:
        main(["audit", str(path), "--bootstrap", "0", *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().count("\n") == 0, err


def test_failure_thresholds_are_per_metric(table, tmp_path):
    """HD95 has no failure cut-off unless the user sets one; a contradicting direction is refused."""
    import pandas as pd

    res = runner.invoke(
        app,
        [
            "audit",
            str(table),
            "--by",
            "race",
            "--metric",
            "dice",
            "--metric",
            "hd95",
            "--bootstrap",
            "0",
            "--no-discovery",
        ],
    )
    assert res.exit_code == 0, res.output
    audit = json.loads(res.stdout)
    assert all(g["failure_rate"] is None for g in audit["metrics"]["hd95"]["attributes"]["race"]["groups"])
    assert audit["metrics"]["dice"]["attributes"]["race"]["failure_threshold"] == 0.5
    res = runner.invoke(
        app,
        [
            "audit",
            str(table),
            "--by",
            "race",
            "--metric",
            "hd95",
            "--bootstrap",
            "0",
            "--no-discovery",
            "--fail",
            "hd95>10",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(table)
    got = {
        g["value"]: g["failure_rate"] for g in json.loads(res.stdout)["metrics"]["hd95"]["attributes"]["race"]["groups"]
    }
    want = df.dropna(subset=["hd95"]).groupby("race")["hd95"].apply(lambda v: float((v > 10).mean())).to_dict()
    assert got == pytest.approx(want)
    res = runner.invoke(app, ["audit", str(table), "--by", "race", "--metric", "hd95", "--fail", "hd95<10"])
    assert res.exit_code != 0 and "hd95>10" in str(res.exception) + res.output
