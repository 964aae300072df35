"""``duetfair score --shard K/N`` + ``--merge``: the merged table and audit equal one process's;
overlaps, gaps and mixed parts are refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duetfair.errors import DuetfairError
from duetfair.metrics.shards import Shard, merge_parts, shard_of
from helpers import run

DATA = Path(__file__).parents[1] / "audit" / "data" / "nnunet_v2"  # 40 3D cases, empty ones included


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=50, unique=True), st.integers(1, 9))
@settings(max_examples=50, deadline=None)
def test_every_case_in_exactly_one_shard(ids, n):
    owners = [[k for k in range(1, n + 1) if Shard(k, n).owns(c)] for c in ids]
    assert all(len(o) == 1 and o[0] == shard_of(c, n) for o, c in zip(owners, ids))


def test_shard_is_stable():
    """Fixed values: the share of a case never depends on the process, machine or Python version."""
    assert [shard_of(f"case_{i:03d}", 4) for i in range(8)] == [shard_of(f"case_{i:03d}", 4) for i in range(8)]
    assert (
        shard_of("case_000", 4) == 1 + int.from_bytes(__import__("hashlib").sha256(b"case_000").digest()[:8], "big") % 4
    )


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/4", "3", "1/0", "-1/2"])
def test_bad_shard_spec(text):
    with pytest.raises(DuetfairError, match=f"--shard {text}: expected"):
        Shard.parse(text)


def _score(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(["score", *args], capsys)
    assert code == 0, err
    return out


def _write_parts(root: Path, n: int, capsys: pytest.CaptureFixture[str], extra: list[str] = ()) -> Path:
    for k in range(1, n + 1):
        out = _score(
            [
                str(DATA / "preds"),
                str(DATA / "labelsTs"),
                "--shard",
                f"{k}/{n}",
                "--out",
                str(root / f"part{k}"),
                "--workers",
                "1",
                *extra,
            ],
            capsys,
        )
        assert f"(shard {k}/{n})" in out
    return root


def test_sharded_equals_unsharded(tmp_path, capsys):
    """4 parts merged: the same cases.csv (every case, structure and number) and the same audit."""
    common = [
        "--meta",
        str(DATA / "patients.csv"),
        "--bootstrap",
        "200",
        "--by",
        "site",
        "--metric",
        "dice",
        "--metric",
        "hd95",
        "--label-names",
        "outer,middle,inner",
    ]
    _score(
        [str(DATA / "preds"), str(DATA / "labelsTs"), "--out", str(tmp_path / "one"), "--workers", "2", *common], capsys
    )
    parts = _write_parts(tmp_path / "parts", 4, capsys, common[6:])  # the same metrics and names
    assert not (parts / "part1" / "audit.json").exists()  # a part is not audited on its own
    _score(["--merge", str(parts), "--out", str(tmp_path / "merged"), *common[:-2]], capsys)
    one = (tmp_path / "one" / "cases.csv").read_text()
    merged = (tmp_path / "merged" / "cases.csv").read_text()
    assert merged == one
    a = json.loads((tmp_path / "one" / "audit.json").read_text())
    b = json.loads((tmp_path / "merged" / "audit.json").read_text())
    assert a["metrics"] == b["metrics"] and a["findings"] == b["findings"]
    assert b["inputs"]["shards"] == 4 and len(b["inputs"]["parts"]) == 4


def test_merge_fills_labels_a_shard_never_saw(tmp_path):
    """Labels are found in the references of the whole cohort: a part whose cases lack label 2 gets
    its rows at the merge, as one process would add them."""
    from duetfair.metrics.folders import score_folders

    rng = np.random.default_rng(0)
    for sub in ("p", "r"):
        (tmp_path / sub).mkdir()
    for i in range(9):
        ref = np.zeros((8, 8, 4), np.uint8)
        ref[2:6, 2:6, 1:3] = 1
        if i == 4:
            ref[3:5, 3:5, 1:3] = 2
        pred = np.roll(ref, int(rng.integers(0, 2)), axis=0)
        nib.save(nib.Nifti1Image(ref, np.eye(4)), str(tmp_path / "r" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(pred, np.eye(4)), str(tmp_path / "p" / f"c{i}.nii.gz"))
    from duetfair.cli.scoring import score_shard
    from duetfair.metrics.folders import ScoreSpec

    for k in (1, 2, 3):
        score_shard(
            str(tmp_path / "p"),
            str(tmp_path / "r"),
            shard_text=f"{k}/3",
            spec=ScoreSpec(),
            names={},
            pred_pattern=None,
            ref_pattern=None,
            allow_missing=False,
            workers=1,
            out=str(tmp_path / f"s{k}"),
        )
    merged, _ = merge_parts([str(tmp_path / f"s{k}") for k in (1, 2, 3)])
    pd.testing.assert_frame_equal(merged, score_folders(tmp_path / "p", tmp_path / "r"))
    assert sorted(set(merged["class"])) == [1, 2] and len(merged) == 18


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Three parts of the fixture cohort, written as ``--shard K/3`` writes them."""
    from duetfair.cli.scoring import score_shard
    from duetfair.metrics.folders import ScoreSpec

    root = tmp_path_factory.mktemp("parts")
    for k in (1, 2, 3):
        score_shard(
            str(DATA / "preds"),
            str(DATA / "labelsTs"),
            shard_text=f"{k}/3",
            spec=ScoreSpec(metrics=("dice", "iou")),
            names={},
            pred_pattern=None,
            ref_pattern=None,
            allow_missing=False,
            workers=1,
            out=str(root / f"part{k}"),
        )
    return root


def _merge_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], *locations: Path) -> str:
    code, _, err = run(
        [
            "score",
            *[a for loc in locations for a in ("--merge", str(loc))],
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o" / "audit.json").exists()
    return err


def test_merge_refuses_gaps_overlaps_and_mixed_parts(tmp_path, capsys, parts):
    # a gap: shard 2 of 3 missing
    err = _merge_error(tmp_path, capsys, parts / "part1", parts / "part3")
    assert "1 of 3 shards missing (2/3)" in err
    # an overlap: the same shard twice
    shutil.copytree(parts / "part1", tmp_path / "again")
    err = _merge_error(tmp_path, capsys, parts, tmp_path / "again")
    assert "shard 1/3 given twice" in err
    # a case in two parts (a part's shard.json edited to claim another shard's case)
    bad = tmp_path / "bad"
    shutil.copytree(parts, bad)
    info = json.loads((bad / "part2" / "shard.json").read_text())
    other = json.loads((bad / "part1" / "shard.json").read_text())["case_ids"][0]
    info["case_ids"].append(other)
    (bad / "part2" / "shard.json").write_text(json.dumps(info))
    assert "is in two parts" in _merge_error(tmp_path, capsys, bad)
    # parts of another scoring run (other settings)
    mixed = tmp_path / "mixed"
    shutil.copytree(parts, mixed)
    info = json.loads((mixed / "part3" / "shard.json").read_text())
    info["settings"]["empty"] = "nan"
    (mixed / "part3" / "shard.json").write_text(json.dumps(info))
    assert "differ in their scoring settings" in _merge_error(tmp_path, capsys, mixed)
    # a part whose task died before writing its table
    cut = tmp_path / "cut"
    shutil.copytree(parts, cut)
    (cut / "part2" / "cases.csv").unlink()
    assert "the part is incomplete" in _merge_error(tmp_path, capsys, cut)
    # not parts at all
    assert "no shard.json" in _merge_error(tmp_path, capsys, DATA / "preds")


def test_merge_names_every_part(tmp_path, capsys, parts):
    """``--merge a b`` (the shell's glob): one line saying how to give several parts."""
    code, _, err = run(
        [
            "score",
            "--merge",
            str(parts / "part1"),
            str(parts / "part2"),
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "--merge takes one folder each" in err and "--merge parts" in err


def test_shard_needs_folders_and_merge_needs_meta(tmp_path, capsys):
    code, _, err = run(
        ["score", "--nnunet", str(DATA / "summary.json"), "--shard", "1/2", "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "--shard 1/2: shards split the scoring of mask folders" in err
    code, _, err = run(["score", str(DATA / "preds"), str(DATA / "labelsTs"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "--meta FILE: expected the metadata table" in err
