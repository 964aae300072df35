"""init-config: what a manifest's columns turn into (roles, attributes, bins, 2D / 3D, group_by,
left-out columns), and the written config validates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from duetfair.engine.config import load_config
from duetfair.engine.starter import nice_edges, summarize_manifest, write_starter_config
from duetfair.errors import DuetfairError


def _manifest(tmp_path: Path, **columns: list) -> Path:
    n = len(next(iter(columns.values())))
    df = pd.DataFrame(
        {
            "image": [f"img/{i}_0000.nii.gz;img/{i}_0001.nii.gz" for i in range(n)],
            "seg": [f"lab/{i}.nii.gz" for i in range(n)],
            **columns,
        }
    )
    path = tmp_path / "cases.csv"
    df.to_csv(path, index=False)
    return path


def test_nice_edges_are_round_tertiles() -> None:
    ages = pd.Series(np.linspace(21, 89, 200))
    assert nice_edges(ages) == [40, 70]
    assert nice_edges(pd.Series(np.linspace(0.1, 0.9, 50))) == [0.4, 0.6]
    assert nice_edges(pd.Series([5.0] * 20 + [6.0])) == [5]


def test_summary_of_a_3d_multi_phase_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 30
    path = _manifest(
        tmp_path,
        subject=[f"s{i}" for i in range(n)],
        patient_id=[f"p{i // 2}" for i in range(n)],
        age=rng.integers(25, 85, n),
        site=["A", "B", "C"] * 10,
        scanner=["x"] * n,
        notes=[f"note {i}" for i in range(n)],
        density=rng.choice([1, 2, 3, 4], n),
        hidden_subtype=rng.integers(0, 2, n),
    )
    s = summarize_manifest(path)
    assert s.roles == {"image": "image", "label": "seg", "case_id": "subject"}
    assert (s.spatial_dims, s.files_per_case, s.group_by, s.hidden) == (3, 2, "patient_id", "hidden_subtype")
    assert s.categorical == ["site", "density"] and list(s.continuous) == ["age"]
    assert s.attributes[0] == "site"
    assert any("'scanner'" in n for n in s.notes) and any("'notes'" in n for n in s.notes)
    out, _ = write_starter_config(path, tmp_path / "mri.yaml")
    raw = yaml.safe_load(out.read_text())
    assert raw["extends"] == "tumor3d.yaml" and raw["data"]["args"]["image_size"] == [32, 32, 32]
    assert raw["data"]["args"]["group_by"] == "patient_id" and raw["data"]["args"]["columns"] == {
        "label": "seg",
        "case_id": "subject",
    }
    assert "2 file(s) per case stacked as channels" in out.read_text()
    cfg = load_config(out)
    assert cfg.data.group_attribute == "site" and cfg.model.name == "resunet3d"


def test_continuous_only_manifest_and_refusals(tmp_path: Path) -> None:
    path = _manifest(tmp_path, case_id=[f"c{i}" for i in range(20)], age=list(range(30, 70, 2)))
    s = summarize_manifest(path)
    assert s.categorical == [] and s.attributes == ["age"]
    with pytest.raises(DuetfairError, match="no attribute column"):
        summarize_manifest(_manifest(tmp_path, case_id=[f"c{i}" for i in range(20)]))
    with pytest.raises(DuetfairError, match="hidden column 'morph' is missing"):
        summarize_manifest(path, hidden="morph")
    with pytest.raises(DuetfairError, match="expected a .yaml file"):
        write_starter_config(path, tmp_path / "x.txt")
