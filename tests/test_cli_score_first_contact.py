"""`duetfair score` as a new user meets it: a continuous metadata column does not stop the default
audit, misses are failures and said so, distances carry their unit, --fail works, MONAI CSVs with a
background column are read right, progress shows in a log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from duetfair.audit.inputs import read_monai_csv
from duetfair.errors import DuetfairError
from duetfair.progress import ProgressLine, fmt_duration, time_text
from helpers import run

DATA = Path(__file__).parent / "audit" / "data" / "nnunet_v2"  # 40 3D cases, empty ones included


@pytest.fixture()
def meta_with_age(tmp_path: Path) -> Path:
    meta = pd.read_csv(DATA / "patients.csv")
    meta["age"] = [23 + 2 * i for i in range(len(meta))]  # continuous: 40 distinct numbers
    path = tmp_path / "patients.csv"
    meta.to_csv(path, index=False)
    return path


def test_default_attributes_skip_a_continuous_column_with_a_note(tmp_path, capsys, meta_with_age):
    code, out, err = run(
        [
            "score",
            str(DATA / "preds"),
            str(DATA / "labelsTs"),
            "--meta",
            str(meta_with_age),
            "--out",
            str(tmp_path / "o"),
            "--metric",
            "dice",
            "--metric",
            "hd95",
            "--bootstrap",
            "50",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "attribute 'age' skipped: continuous (40 distinct numbers); audit it with --bins age=" in err
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["by"] == ["site", "sex"]
    # an infinite HD95 (one mask empty) is a failure: counted and said, apart from the undefined cases
    block = audit["metrics"]["hd95[1]"]
    assert block["n_inf"] > 0 and block["n_missing"] > block["n_inf"]
    md = (tmp_path / "o" / "audit.md").read_text()
    assert f"{block['n_inf']} with an infinite distance" in md and "count as failures" in md
    assert "## hd95[1], mm (lower is better)" in md  # the unit of a distance, from the NIfTI headers
    assert audit["units"] == {"hd95": "mm"}
    html = (tmp_path / "o" / "report.html").read_text()
    assert "hd95[1], mm" in html and "count as failures" in html
    # asked for explicitly, a continuous column keeps the clear error
    code, _, err = run(
        [
            "score",
            str(DATA / "preds"),
            str(DATA / "labelsTs"),
            "--meta",
            str(meta_with_age),
            "--out",
            str(tmp_path / "o2"),
            "--by",
            "age",
        ],
        capsys,
    )
    assert code == 2 and "attribute 'age' is continuous (40 distinct numbers); bin it" in err


def test_fail_cut_off_counts_infinite_distances(tmp_path, capsys):
    code, _, err = run(
        [
            "score",
            str(DATA / "preds"),
            str(DATA / "labelsTs"),
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o"),
            "--metric",
            "hd95",
            "--region",
            "any=1+2+3",
            "--fail",
            "hd95>1000",
            "--bootstrap",
            "0",
            "--by",
            "site",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    block = json.loads((tmp_path / "o" / "audit.json").read_text())["metrics"]["hd95"]
    groups = block["attributes"]["site"]["groups"]
    assert block["attributes"]["site"]["failure_threshold"] == 1000.0
    # no finite HD95 is above 1000 mm here: every failure is an infinite distance
    for g in groups:
        assert g["failure_rate"] == pytest.approx(g["n_inf"] / (g["n"] + g["n_inf"]))
    assert sum(g["n_inf"] for g in groups) == block["n_inf"] > 0


def _monai_files(tmp_path: Path) -> tuple[Path, Path]:
    """A Dice CSV written with include_background=True (class0 = background) and an HD95 CSV of the
    same run without it, as MONAI's MetricsSaver writes them."""
    dice = tmp_path / "mean_dice_raw.csv"
    dice.write_text(
        "filename,class0,class1,class2,mean\n"
        "/d/p1_0000.nii.gz,0.998,0.81,0.7,0.836\n/d/p2_0000.nii.gz,0.997,0.62,0.5,0.705\n"
        "/d/p3_0000.nii.gz,0.999,0.9,0.8,0.9\n"
    )
    hd = tmp_path / "hausdorff_distance_raw.csv"
    hd.write_text(
        "filename,class0,class1,mean\n/d/p1_0000.nii.gz,3.0,4.0,3.5\n/d/p2_0000.nii.gz,5,inf,inf\n"
        "/d/p3_0000.nii.gz,1.0,2.0,1.5\n"
    )
    return dice, hd


def test_monai_background_column(tmp_path):
    dice, hd = _monai_files(tmp_path)
    # without --labels: the two layouts disagree -> one line naming both files and the remedy
    with pytest.raises(DuetfairError, match=r"has 3 class columns, .* has 2: .*pass --labels 0,1,2"):
        read_monai_csv([str(dice), str(hd)], pattern="{case}_0000.nii.gz")
    notes: list[str] = []
    read_monai_csv([str(dice)], pattern="{case}_0000.nii.gz", notes=notes)
    assert "scores like the background" in notes[0] and "--labels 0,1,2" in notes[0]
    # --labels 0,1,2: class0 dropped as the background; the HD95 file of the same run takes 1, 2
    table = read_monai_csv([str(dice), str(hd)], pattern="{case}_0000.nii.gz", labels=[0, 1, 2])
    assert table["class"].tolist() == [1, 2] * 3
    assert table["dice"].tolist()[:2] == [0.81, 0.7] and table["hd95"].tolist()[:2] == [3.0, 4.0]


def test_monai_csv_cli_with_unit(tmp_path, capsys):
    dice, hd = _monai_files(tmp_path)
    (tmp_path / "m.csv").write_text("case_id,site\np1,A\np2,B\np3,B\n")
    code, _, err = run(
        [
            "score",
            "--monai-csv",
            str(dice),
            "--monai-csv",
            str(hd),
            "--pattern",
            "{case}_0000.nii.gz",
            "--labels",
            "0,1,2",
            "--hd95-unit",
            "voxels",
            "--meta",
            str(tmp_path / "m.csv"),
            "--out",
            str(tmp_path / "o"),
            "--bootstrap",
            "0",
            "--no-discovery",
        ],
        capsys,
    )
    assert code == 0, err
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["units"] == {"hd95": "voxels"} and "dice[1]" in audit["metrics"]
    assert "hd95[1], voxels" in (tmp_path / "o" / "audit.md").read_text()
    code, _, err = run(
        [
            "score",
            "--monai-csv",
            str(dice),
            "--pattern",
            "{case}_0000.nii.gz",
            "--labels",
            "0,1,2",
            "--meta",
            str(tmp_path / "m.csv"),
            "--out",
            str(tmp_path / "o2"),
            "--metric",
            "dice",
            "--bootstrap",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    # without --hd95-unit an HD95 of unknown unit says so
    code, _, err = run(
        [
            "score",
            "--monai-csv",
            str(dice),
            "--monai-csv",
            str(hd),
            "--pattern",
            "{case}_0000.nii.gz",
            "--labels",
            "0,1,2",
            "--meta",
            str(tmp_path / "m.csv"),
            "--out",
            str(tmp_path / "o3"),
            "--bootstrap",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    assert "hd95[1], unit unknown" in (tmp_path / "o3" / "audit.md").read_text()


def test_nnunet_region_named_and_unknown_region_refused(tmp_path, capsys):
    code, _, err = run(
        [
            "score",
            "--nnunet",
            str(DATA / "summary_regions.json"),
            "--region",
            "et=3",
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o"),
            "--bootstrap",
            "0",
            "--no-discovery",
        ],
        capsys,
    )
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "o" / "cases.csv")["class"]) == {"et"}
    code, _, err = run(
        [
            "score",
            "--nnunet",
            str(DATA / "summary_regions.json"),
            "--region",
            "ed=1",
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o2"),
        ],
        capsys,
    )
    assert (
        code == 2
        and "--region ed=1: nnU-Net's summary_regions.json has no such" in err
        and "it has 3, (1, 2, 3), (2, 3)" in err
    )


def test_progress_lines():
    lines: list[str] = []
    line = ProgressLine("cases", 4, lines.append, label="scoring", every=0.0)
    for _ in range(4):
        line.advance()
    assert len(lines) == 4 and lines[0].startswith("scoring: 1/4 cases, ") and "left" in lines[0]
    assert lines[-1].endswith("elapsed, done")
    quiet: list[str] = []
    fast = ProgressLine("cases", 3, quiet.append, every=3600.0)
    for _ in range(3):
        fast.advance()
    assert quiet == []  # work shorter than the interval prints nothing
    assert fmt_duration(5) == "5 s" and fmt_duration(185) == "3 min 05 s" and fmt_duration(3720) == "1 h 02 min"
    assert time_text(1, 4, 10.0) == "10 s elapsed, about 30 s left"


def test_score_prints_progress_in_a_log(tmp_path, capsys, monkeypatch):
    """Not a terminal (as under pytest): plain lines instead of a bar."""
    import duetfair.cli.scoring as cs

    monkeypatch.setattr(
        cs,
        "progress_step",
        lambda total, log, every=10.0: ProgressLine("cases", total, log, label="scoring", every=0.0).advance,
    )
    preds = tmp_path / "p"
    shutil.copytree(DATA / "preds", preds)
    code, out, err = run(
        [
            "score",
            str(preds),
            str(DATA / "labelsTs"),
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o"),
            "--metric",
            "dice",
            "--bootstrap",
            "0",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "scoring: 40/40 cases" in out and "scoring: 1/40 cases" in out
