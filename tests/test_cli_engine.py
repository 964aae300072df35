"""CLI of the engine: train -> evaluate -> compare -> predict, help texts, and user errors
(exit code 2, one line on stderr, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TINY, run, sets


def _tiny(*extra: str) -> list[str]:
    return sets(*TINY, *extra)


def test_train_evaluate_compare_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for method in ("erm", "dmoe"):
        out = tmp_path / method
        code, stdout, err = run(["train", f"fundus2d_{method}", *_tiny(), "--out", str(out)], capsys)
        assert code == 0, err
        assert "done: 1 epochs" in stdout and (out / "checkpoints" / "best.pt").is_file()
        code, stdout, err = run(["evaluate", str(out), "--bootstrap", "10"], capsys)
        assert code == 0, err
        assert "ES-Dice (race)" in stdout and (out / "cases.csv").is_file()
        runs.append(str(out))
    code, stdout, err = run(["compare", *runs, "--format", "json", "--out", str(tmp_path / "t.json")], capsys)
    assert code == 0, err
    table = json.loads(stdout)
    assert [m["method"] for m in table["methods"]] == ["erm", "dmoe"]
    assert json.loads((tmp_path / "t.json").read_text()) == table
    code, stdout, _ = run(["compare", *runs], capsys)
    assert code == 0 and stdout.startswith("| Method | ES-Dice")

    Image.fromarray((np.random.default_rng(1).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    code, stdout, err = run(["predict", runs[1], str(tmp_path / "a.png"), "--out", str(tmp_path / "pred")], capsys)
    assert code == 0, err
    assert "attribute-free fallback" in err and (tmp_path / "pred" / "a_mask.png").is_file()
    code, stdout, err = run(
        ["predict", runs[1], str(tmp_path / "a.png"), "--out", str(tmp_path / "pred"), "--attr", "race=White"], capsys
    )
    assert code == 0 and "group: White" in stdout and "fallback" not in err

    # resume of a finished run: nothing left to do, still a clean exit
    code, stdout, err = run(["train", runs[0], "--resume"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "no_such_config"], "config 'no_such_config' not found"),
        (["train", "fundus2d_erm", "--set", "train.select=best"], "train.select: 'best' is not one of"),
        (["train", "fundus2d_erm", "--set", "optim.lrr=1"], "optim.lrr: unknown key"),
        (["train", "fundus2d_erm", "--set", "train.epochs"], "expected KEY=VALUE"),
        (["evaluate", "no/such/run"], "run directory no/such/run not found"),
        (["compare", "."], "missing audit.json"),
        (["predict", ".", "x.png", "--out", "o", "--attr", "race"], "expected NAME=VALUE"),
        (["compare", ".", "--format", "docx"], "--format: 'docx' is not one of 'md', 'csv', 'json', 'latex', 'html'"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(args, capsys)
    assert code == 2
    assert "Traceback" not in err
    assert expected in err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "fundus2d_erm", *_tiny(), "--out", str(tmp_path / "fresh"), "--resume"], capsys)
    assert code == 2 and "no checkpoint" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "compare", "benchmark", "demo", "init-config"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run([command, "--help"], capsys)
    assert code == 0
    assert "Example" in stdout and f"duetfair {command}" in stdout
