from __future__ import annotations

import pandas as pd
import torch
from typer.testing import CliRunner

from duetfair.cli import app
from duetfair.data import build_datasets
from duetfair.data.synthetic import generate


def test_synth_writes_manifest_that_loads_like_user_data(tmp_path):
    out = tmp_path / "fundus"
    res = CliRunner().invoke(app, ["synth", "fundus2d", "--n", "12", "--out", str(out), "--seed", "3", "--size", "32"])
    assert res.exit_code == 0, res.output
    m = pd.read_csv(out / "manifest.csv")
    assert list(m.columns) == ["image", "label", "case_id", "race", "age", "sex", "split", "hidden_subtype"]
    ds = build_datasets("manifest", path=str(out / "manifest.csv"))
    assert sum(len(d) for d in ds.values()) == 12
    d = ds["train"]
    assert d.num_classes == 3 and d.group_spec.attributes == ["race", "age", "sex"]
    ref = generate("fundus2d", 12, seed=3, image_size=32)
    case = d[0]
    i = ref.meta.index[ref.meta["case_id"] == case["case_id"]][0]
    assert torch.equal(case["label"], ref.labels[i])
    assert torch.allclose(case["image"], ref.images[i], atol=1 / 255)  # 8-bit PNG round trip
    assert case["hidden"] == int(ref.meta.at[i, "hidden_subtype"])


def test_synth_3d_and_errors(tmp_path):
    out = tmp_path / "t"
    res = CliRunner().invoke(app, ["synth", "tumor3d", "--n", "3", "--out", str(out), "--size", "16"])
    assert res.exit_code == 0, res.output
    ds = build_datasets("manifest", path=str(out / "manifest.csv"))
    case = next(iter(ds.values()))[0]
    assert case["image"].shape == (3, 16, 16, 16)
    again = CliRunner().invoke(app, ["synth", "tumor3d", "--n", "3", "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    bad = CliRunner().invoke(app, ["synth", "xray", "--n", "3", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown synthetic task" in str(bad.exception)
