"""predict on runs whose channels come from several files per case (MRI phases) or from a
repeated grayscale image: all of a case's files, a refused single file, per-case attributes from a
manifest, and --attr given twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from duetfair.cli import main
from duetfair.engine.config import load_config
from duetfair.engine.predict import parse_attrs, predict_files
from duetfair.engine.trainer import train
from duetfair.errors import DuetfairError
from helpers import TINY_MODEL


def _write_cases(root: Path, n: int = 24, phases: int = 3, size: int = 32) -> Path:
    """``n`` cases of ``phases`` grayscale PNGs each (a bright square, brighter in later phases)
    and a mask; manifest columns image (``;``-joined), label, case_id, sex, split."""
    rng = np.random.default_rng(0)
    rows = []
    (root / "img").mkdir(parents=True)
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        r, c = rng.integers(4, size - 12, 2)
        mask[r : r + 8, c : c + 8] = 1
        files = []
        for k in range(phases):
            img = (rng.random((size, size)) * 60 + mask * (80 + 40 * k)).astype(np.uint8)
            Image.fromarray(img).save(root / "img" / f"c{i}_{k}.png")
            files.append(f"img/c{i}_{k}.png")
        Image.fromarray(mask).save(root / "img" / f"c{i}_mask.png")
        split = "train" if i < 16 else ("val" if i < 20 else "test")
        rows.append(
            {
                "image": ";".join(files),
                "label": f"img/c{i}_mask.png",
                "case_id": f"c{i}",
                "sex": "F" if i % 2 else "M",
                "split": split,
            }
        )
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _train(root: Path, manifest: Path, name: str, **args: object) -> Path:
    config = {
        "extends": "fundus2d_dmoe.yaml",
        "data": {
            "kind": "manifest",
            "group_attribute": "sex",
            "args": {"path": str(manifest), "image_size": [32, 32], "num_classes": 2, **args},
        },
    }
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    train(load_config(root / f"{name}.yaml", [*TINY_MODEL, "train.epochs=1"]), root / name)
    return root / name


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dMoE run (routed on sex) trained on 3 channels from 3 PNG files per case."""
    root = tmp_path_factory.mktemp("phases")
    return _train(root, _write_cases(root / "data"), "run")


def test_run_records_channels_from_files(phase_run: Path) -> None:
    record = json.loads((phase_run / "run.json").read_text())
    assert record["in_channels"] == 3 and record["channel_source"] == "files"


def test_predict_takes_all_files_of_a_case_and_refuses_one(phase_run: Path, tmp_path: Path) -> None:
    data = phase_run.parent / "data"
    case = ";".join(str(data / "img" / f"c20_{k}.png") for k in range(3))
    table = predict_files(phase_run, [case], tmp_path / "out", attrs={"sex": "F"})
    assert table["case_id"].tolist() == ["c20_0"] and table["group"].tolist() == ["F"]
    mask = np.asarray(Image.open(tmp_path / "out" / "c20_0_mask.png"))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1}
    with pytest.raises(DuetfairError, match=r"1 channel; the run was trained on 3 channels from separate files"):
        predict_files(phase_run, [data / "img" / "c20_0.png"], tmp_path / "out1")
    with pytest.raises(DuetfairError, match="2 channels; the run was trained on 3"):
        predict_files(phase_run, [f"{data}/img/c20_0.png;{data}/img/c20_1.png"], tmp_path / "out2")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DuetfairError, match="different spatial shapes"):
        predict_files(phase_run, [f"{data}/img/c20_0.png;{data}/img/c20_1.png;{tmp_path}/small.png"], tmp_path / "out3")


def test_manifest_gives_every_case_its_own_attributes(phase_run: Path, tmp_path: Path) -> None:
    data = phase_run.parent / "data"
    rows = [
        {"image": ";".join(f"img/c{i}_{k}.png" for k in range(3)), "case_id": f"p{i}", "sex": sex}
        for i, sex in ((20, "F"), (21, "M"), (22, ""))
    ]
    pd.DataFrame(rows).to_csv(data / "to_predict.csv", index=False)
    table = predict_files(phase_run, [], tmp_path / "out", manifest=data / "to_predict.csv")
    assert table["group"].tolist() == ["F", "M", "unknown"]
    assert table["group_source"].iloc[2].startswith("none given")
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == [
        "p20_mask.png",
        "p21_mask.png",
        "p22_mask.png",
    ]
    rows[0]["sex"] = "X"
    pd.DataFrame(rows).to_csv(data / "bad.csv", index=False)
    with pytest.raises(DuetfairError, match=r"bad.csv' row 2 \(case 'p20'\): sex=X: value not known"):
        predict_files(phase_run, [], tmp_path / "out_bad", manifest=data / "bad.csv")
    with pytest.raises(DuetfairError, match="has a column of that name"):
        predict_files(phase_run, [], tmp_path / "o", manifest=data / "to_predict.csv", attrs={"sex": "F"})


def test_attr_given_twice_is_refused() -> None:
    assert parse_attrs(["race=Black", "sex=F"]) == {"race": "Black", "sex": "F"}
    with pytest.raises(DuetfairError, match="--attr race given twice"):
        parse_attrs(["race=Black", "race=White"])


def test_cli_predict_phases_and_errors(phase_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = phase_run.parent / "data" / "img"
    case = ";".join(str(img / f"c21_{k}.png") for k in range(3))

    def run(*args: str) -> tuple[int, str]:
        try:
            main(["predict", str(phase_run), *args, "--out", str(tmp_path / "masks")])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    code, err = run(case, "--attr", "sex=M")
    assert code == 0, err
    assert (tmp_path / "masks" / "c21_0_mask.png").is_file()
    for args, expected in (
        ((str(img / "c21_0.png"),), "from separate files"),
        ((case, "--attr", "sex=M", "--attr", "sex=F"), "--attr sex given twice"),
        ((), "expected input images or --manifest"),
    ):
        code, err = run(*args)
        assert code == 2 and expected in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_single_file_is_repeated_only_for_runs_trained_that_way(phase_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "gray"
    manifest = _write_cases(root / "data", n=24, phases=1)
    run = _train(root, manifest, "run", channels=3)
    record = json.loads((run / "run.json").read_text())
    assert record["in_channels"] == 3 and record["channel_source"] == "repeat"
    table = predict_files(run, [root / "data" / "img" / "c20_0.png"], tmp_path / "out")
    assert len(table) == 1
    # a run folder written before channel_source existed: 1 -> 3 channels stays allowed (grayscale to RGB)
    old = tmp_path / "old"
    shutil.copytree(phase_run, old)
    record = json.loads((old / "run.json").read_text())
    record.pop("channel_source")
    (old / "run.json").write_text(json.dumps(record))
    assert len(predict_files(old, [phase_run.parent / "data" / "img" / "c20_0.png"], tmp_path / "out_old")) == 1
