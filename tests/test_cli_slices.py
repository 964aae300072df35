"""``duetfair score --images`` end to end: descriptors in cases.csv, hidden slices in the audit and
the report's section with each slice's worst cases, on a synthetic lesion dataset written to disk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from duetfair.data.synthetic import write_synthetic
from helpers import run
from slice_models import erm_like


def test_score_with_images_finds_the_hidden_slice(tmp_path, capsys):
    manifest = write_synthetic("lesion2d", 120, str(tmp_path / "data"), seed=0, image_size=48)
    table = pd.read_csv(manifest)
    labels = np.stack([np.asarray(Image.open(tmp_path / "data" / p)) for p in table["label"]])
    hidden = table["hidden_subtype"].to_numpy() == 1
    preds = tmp_path / "preds"
    preds.mkdir()
    for cid, mask in zip(table["case_id"], erm_like(labels, hidden, seed=0)):
        Image.fromarray(mask.astype(np.uint8)).save(preds / f"{cid}.png")
    table[["case_id", "sex", "site"]].to_csv(tmp_path / "meta.csv", index=False)
    out = tmp_path / "audit"
    args = ["score", str(preds), str(tmp_path / "data" / "labels"), "--meta", str(tmp_path / "meta.csv")]
    args += ["--out", str(out), "--images", str(tmp_path / "data" / "images"), "--bootstrap", "50", "--workers", "2"]
    args += ["--metric", "dice"]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    cases = pd.read_csv(out / "cases.csv")
    assert {"desc_size", "desc_contrast", "desc_noise", "desc_fn_size"} <= set(cases.columns)
    assert "hidden_subtype" not in cases.columns
    audit = json.loads((out / "audit.json").read_text())
    top = audit["hidden_slices"][0]
    assert {"definition", "within", "n", "mean", "gap", "q", "members"} <= set(top)
    assert top["definition"] == "structures lighter than the surroundings"  # the amelanotic lesions
    assert set(top["members"]) == set(table["case_id"][hidden]) or top["within"] != "overall"
    html = (out / "report.html").read_text()
    section = html[html.index('id="hidden-slices"') : html.index('<section id="metric-')]
    assert 'data-fig="slices"' in section and 'class="thumb" data-case=' in section
    assert "## Hidden failure slices" in (out / "audit.md").read_text()
    plain_args = [*args[:5], "--out", str(tmp_path / "plain"), "--metric", "dice", "--bootstrap", "50"]
    code, _, err = run([*plain_args, "--no-descriptors"], capsys)
    assert code == 0, err
    plain = pd.read_csv(tmp_path / "plain" / "cases.csv")
    assert not any(c.startswith("desc_") for c in plain.columns)
    assert "hidden_slices" not in json.loads((tmp_path / "plain" / "audit.json").read_text())
