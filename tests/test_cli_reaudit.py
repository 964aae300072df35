"""`duetfair audit RUN/cases.csv` (no --by) reproduces the run's audit.json for every packaged
synthetic task: the attributes, the case-level granularity, the metrics, the group spec and the
bootstrap settings come from the run, as `duetfair evaluate` used them (`--bootstrap` of
`evaluate` included)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import TINY_MODEL, TINY_SYNTH, run, sets

TINY_3D = [
    "data.args.n_train=8",
    "data.args.n_val=4",
    "data.args.n_test=8",
    "data.args.image_size=32",
    "model.args.feature_size=8",
    "train.batch_size=4",
    "train.progress=false",
    "train.tensorboard=false",
    "eval.metrics=[dice,iou]",
    "eval.n_boot=10",
    "schedule.warmup_epochs=0",
]
"""One epoch of the 3D task at the smallest size that trains."""

SIZES = {"fundus2d": [*TINY_SYNTH, *TINY_MODEL], "lesion2d": [*TINY_SYNTH, *TINY_MODEL], "tumor3d": TINY_3D}


@pytest.mark.parametrize("task", sorted(SIZES))
def test_reaudit_of_a_run_reproduces_its_audit(task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run(["train", f"{task}_erm", *sets(*SIZES[task], "train.epochs=1"), "--out", str(out)], capsys)
    assert code == 0, err
    code, _, err = run(["evaluate", str(out), "--no-report", "--bootstrap", "7"], capsys)  # not the config's 10
    assert code == 0, err
    code, stdout, err = run(["audit", str(out / "cases.csv")], capsys)
    assert code == 0, err
    assert f"groups: {out / 'group_spec.json'}" in err
    again, saved = json.loads(stdout), json.loads((out / "audit.json").read_text())
    assert again["by"] == saved["by"] and set(again["metrics"]) == set(saved["metrics"]) == {"dice", "iou"}
    for metric in ("dice", "iou"):  # the group numbers, intervals and tests of every attribute
        assert again["metrics"][metric] == saved["metrics"][metric], metric
    assert again == saved  # and everything else: settings, group spec, findings, slices
    if pd.read_csv(out / "cases.csv")["class"].nunique() > 1:  # per class only when asked for
        code, stdout, err = run(["audit", str(out / "cases.csv"), "--class", "1", "--bootstrap", "0"], capsys)
        assert code == 0, err
        assert json.loads(stdout)["settings"]["class"] == "1"


def test_audit_of_a_plain_table_still_needs_by(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"case_id": ["a", "b"], "race": ["A", "B"], "dice": [0.5, 0.6]}).to_csv(tmp_path / "t.csv")
    code, _, err = run(["audit", str(tmp_path / "t.csv")], capsys)
    assert code == 2 and err.startswith("error: --by: expected an attribute") and len(err.splitlines()) == 1
