"""The same predictions through nnU-Net v2's own summary.json and through the mask folders give the
same per-case table and the same audit, empty cases included.

The fixture (``data/nnunet_v2``, made by its ``make_fixture.py``) holds 40 small anisotropic 3D
cases with healthy cases (empty reference), false positives on some of them, total misses and
cases with both masks empty, and the ``summary.json`` files written by nnU-Net v2.8.1's evaluator
(``compute_metrics_on_folder``) on exactly those masks: per label, and with BraTS-style regions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duetfair.audit.inputs import read_nnunet_summary
from duetfair.metrics.folders import Region, score_folders
from helpers import run

DATA = Path(__file__).parent / "data" / "nnunet_v2"
REGIONS = {(1, 2, 3): "wt", (2, 3): "tc", (3,): "et"}


def _counts() -> tuple[np.ndarray, np.ndarray]:
    """Reference / prediction voxel counts per case of the fixture (label 1 = any label here)."""
    summary = json.loads((DATA / "summary.json").read_text())
    n_ref = np.array([e["metrics"]["1"]["n_ref"] for e in summary["metric_per_case"]])
    n_pred = np.array([e["metrics"]["1"]["n_pred"] for e in summary["metric_per_case"]])
    return n_ref, n_pred


def test_fixture_has_every_empty_case():
    n_ref, n_pred = _counts()
    assert ((n_ref == 0) & (n_pred > 0)).sum() >= 4  # false positives on healthy cases
    assert ((n_ref > 0) & (n_pred == 0)).sum() >= 2  # total misses
    assert ((n_ref == 0) & (n_pred == 0)).sum() >= 2  # nothing to find, nothing found


@pytest.mark.parametrize("regions", [False, True])
def test_per_case_table_equals_nnunets(regions):
    """Dice, IoU, n_ref and n_pred of every case and structure equal nnU-Net's, exactly."""
    if regions:
        folders = score_folders(
            DATA / "preds",
            DATA / "labelsTs",
            regions=[Region(n, ids) for ids, n in REGIONS.items()],
            metrics=("dice", "iou"),
        )
        nnunet = read_nnunet_summary(DATA / "summary_regions.json", regions=REGIONS)
    else:
        folders = score_folders(DATA / "preds", DATA / "labelsTs", metrics=("dice", "iou"))
        nnunet = read_nnunet_summary(DATA / "summary.json")
    assert len(folders) == len(nnunet) == 120
    assert folders["case_id"].tolist() == nnunet["case_id"].tolist()
    assert folders["class"].tolist() == nnunet["class"].tolist()
    for col in ("n_ref", "n_pred"):
        assert (folders[col].to_numpy() == nnunet[col].to_numpy()).all()
    for col in ("dice", "iou"):
        a, b = folders[col].to_numpy(dtype=float), nnunet[col].to_numpy(dtype=float)
        assert (np.isnan(a) == np.isnan(b)).all()
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=1e-12)
    # a false positive on a healthy case is a failure (Dice 0), as in nnU-Net, not a missing value
    fp = (nnunet["n_ref"] == 0) & (nnunet["n_pred"] > 0)
    assert fp.sum() > 0 and (folders.loc[fp.to_numpy(), "dice"] == 0).all()


def _audit(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code, _, err = run(
        [
            "score",
            *args,
            "--meta",
            str(DATA / "patients.csv"),
            "--out",
            str(out),
            "--metric",
            "dice",
            "--metric",
            "iou",
            "--bootstrap",
            "200",
            "--by",
            "site",
            "--by",
            "sex",
        ],
        capsys,
    )
    assert code == 0, err
    return json.loads((out / "audit.json").read_text())


@pytest.mark.parametrize("regions", [False, True])
def test_both_routes_give_the_same_audit(tmp_path, capsys, regions):
    """``duetfair score --nnunet summary.json`` and ``duetfair score preds/ labelsTs/`` on the same
    predictions: the same groups, means, intervals, worst groups and findings."""
    region_args = ["--region", "wt=1+2+3,tc=2+3,et=3"] if regions else []
    summary = DATA / ("summary_regions.json" if regions else "summary.json")
    folders = [str(DATA / "preds"), str(DATA / "labelsTs"), "--no-descriptors"]  # a summary.json has no masks
    a = _audit([*folders, *region_args], tmp_path / "folders", capsys)
    b = _audit(["--nnunet", str(summary), *region_args], tmp_path / "nnunet", capsys)
    assert a["metrics"] == b["metrics"]
    assert [f["text"] for f in a["findings"]] == [f["text"] for f in b["findings"]]
    keys = set(a["metrics"])
    assert keys == (
        {f"{m}[{c}]" for m in ("dice", "iou") for c in ("wt", "tc", "et")}
        if regions
        else {f"{m}[{c}]" for m in ("dice", "iou") for c in (1, 2, 3)}
    )
    ca = pd.read_csv(tmp_path / "folders" / "cases.csv")
    cb = pd.read_csv(tmp_path / "nnunet" / "cases.csv")
    pd.testing.assert_frame_equal(ca[cb.columns], cb, check_dtype=False)
