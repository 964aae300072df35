"""Evaluate / compare / predict on tiny trained runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from duetfair.audit.compare import compare_runs, format_table
from duetfair.engine.predict import predict_files
from duetfair.errors import DuetfairError


def test_evaluate_writes_case_table_summary_audit_report(evaluated_runs: dict[str, Path]) -> None:
    run = evaluated_runs["fair_dro"]
    for name in ("cases.csv", "summary.json", "audit.json", "report.html"):
        assert (run / name).is_file(), name
    cases = pd.read_csv(run / "cases.csv")
    for col in ("case_id", "class", "dice", "iou", "n_ref", "n_pred", "race", "age", "sex", "hidden_subtype"):
        assert col in cases.columns, col
    assert sorted(cases["class"].unique()) == [1, 2]  # rim, cup
    assert cases["case_id"].nunique() == 12 and len(cases) == 24
    summary = json.loads((run / "summary.json").read_text())
    assert summary["split"] == "test" and summary["n_cases"] == 12
    assert set(summary["per_class"]) == {"1", "2"}
    assert set(summary["hidden_subtype"]) <= {"0", "1"}
    race = summary["audit"]["metrics"]["dice"]["attributes"]["race"]
    assert {"es", "es_ci", "worst_group", "groups"} <= set(race)
    # the summary's overall Dice is the mean of the per-case means over classes
    per_case = cases.groupby("case_id")["dice"].mean()
    assert summary["dice"] == pytest.approx(per_case.mean())


def test_compare_formats_mark_best(evaluated_runs: dict[str, Path]) -> None:
    table = compare_runs([evaluated_runs["erm"], evaluated_runs["fair_dro"]], names=["ERM", "FairDRO"])
    assert list(table["method"]) == ["ERM", "FairDRO"]
    for col in ("es_dice", "dice", "es_iou", "iou", "worst_dice", "worst_cvar10"):
        assert col in table.columns
    assert any(c.startswith("dice[") for c in table.columns)
    md = format_table(table, "md")
    assert md.startswith("| Method | ES-Dice | Dice | ES-IoU | IoU") and "**" in md
    js = json.loads(format_table(table, "json"))
    assert js["attribute"] == "race" and len(js["methods"]) == 2
    best_dice = js["best"]["dice"]
    top = table.loc[table["dice"].idxmax(), "method"]
    assert top in best_dice
    csv = format_table(table, "csv")
    assert "best_dice" in csv.splitlines()[0] and "es_dice_ci_low" in csv.splitlines()[0]
    tex = format_table(table, "latex")
    assert tex.startswith("\\begin{tabular}") and "\\textbf{" in tex
    with pytest.raises(DuetfairError, match="expected one of md, csv, json, latex"):
        format_table(table, "html")


def test_compare_needs_evaluated_runs(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(DuetfairError, match="run 'duetfair evaluate"):
        compare_runs([tmp_path / "run"])


def test_predict_png_keeps_size_and_reports_fallback(evaluated_runs: dict[str, Path], tmp_path: Path) -> None:
    run = evaluated_runs["fair_dro"]
    img = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "scan.png")
    table = predict_files(run, [tmp_path / "scan.png"], tmp_path / "out")
    mask = np.asarray(Image.open(tmp_path / "out" / "scan_mask.png"))
    assert mask.shape == (40, 50) and mask.max() <= 2
    assert table["group_source"].iloc[0].startswith("none given") and table["group"].iloc[0] == "unknown"
    with_attr = predict_files(run, [tmp_path / "scan.png"], tmp_path / "out2", attrs={"race": "Black"})
    assert with_attr["group"].iloc[0] == "Black"
    assert (tmp_path / "out2" / "predictions.csv").is_file()
    with pytest.raises(DuetfairError, match=r"--attr race=Martian: value not known"):
        predict_files(run, [tmp_path / "scan.png"], tmp_path / "out3", attrs={"race": "Martian"})
    with pytest.raises(DuetfairError, match="does not exist"):
        predict_files(run, [tmp_path / "missing.png"], tmp_path / "out4")


def test_predict_nifti_keeps_affine(evaluated_runs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    import nibabel as nib

    from duetfair.engine import predict

    mask = np.zeros((6, 7, 5), dtype=np.uint8)
    mask[2:4, 3:5, 1:3] = 1
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [10.0, -4.0, 3.0]
    src = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 5), np.float32), affine), str(src))
    out = predict.write_mask(mask, src, tmp_path / "masks")
    back = nib.load(str(out))
    assert out.name == "vol_mask.nii.gz"
    assert np.allclose(back.affine, affine) and np.array_equal(np.asarray(back.dataobj), mask)


def test_evaluate_another_split_into_its_own_folder(evaluated_runs: dict[str, Path], capsys) -> None:
    from helpers import run

    root = evaluated_runs["erm"]
    before = (root / "summary.json").read_text()
    code, out, _ = run(
        ["evaluate", str(root), "--split", "val", "--out", str(root / "eval-val"), "--no-report"], capsys
    )
    assert code == 0 and "[val," in out and str(root / "eval-val") in out.replace("\n", "")
    assert json.loads((root / "eval-val" / "summary.json").read_text())["split"] == "val"
    assert (root / "summary.json").read_text() == before  # the test evaluation is untouched
