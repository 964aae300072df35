"""`duetfair score`: folders / nnU-Net summary -> cases.csv + audit, metrics equal to MONAI's, and
one-line errors with exit code 2."""

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from duetfair.audit.inputs import join_metadata, read_metadata
from duetfair.cli import app, main
from duetfair.metrics.folders import Region, read_label_map, score_folders

runner = CliRunner()
SPACING = (0.7, 0.7, 3.0)
SHAPE = (24, 22, 8)
RACES = ["Black", "White", "Asian"]


def _volume(rng, shift=0):
    grids = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    c = [n / 2 + rng.uniform(-2, 2) for n in SHAPE]
    d = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grids, c, SPACING))
    out = (d <= rng.uniform(4, 6) ** 2).astype(np.uint8)
    out[d <= rng.uniform(1.5, 2.5) ** 2] = 2
    return np.roll(out, shift, axis=0)


def _save(arr, path, spacing=SPACING):
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), np.diag([*spacing, 1.0])), str(path))


def build(root, n=9, seed=0, meta_rows=None):
    """preds/ (case.nii.gz), refs/ (case_seg.nii.gz), patients.csv (race, sex, age)."""
    rng = np.random.default_rng(seed)
    for d in ("preds", "refs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ref = _volume(rng)
        _save(ref, root / "refs" / f"pt{i:02d}_seg.nii.gz")
        _save(np.roll(ref, int(rng.integers(0, 3)) if i % 3 else 0, axis=1), root / "preds" / f"pt{i:02d}.nii.gz")
    rows = meta_rows if meta_rows is not None else range(n)
    meta = pd.DataFrame(
        {
            "patient_id": [f"pt{i:02d}" for i in rows],
            "race": [RACES[i % 3] for i in rows],
            "sex": ["F" if i % 2 else "M" for i in rows],
            "age": [30 + 4 * i for i in rows],
        }
    )
    meta.to_csv(root / "patients.csv", index=False)
    return root / "preds", root / "refs", root / "patients.csv"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    preds, refs, meta = build(root)
    out = root / "audit"
    res = runner.invoke(
        app,
        [
            "score",
            str(preds),
            str(refs),
            "--meta",
            str(meta),
            "--out",
            str(out),
            "--ref-pattern",
            "{case}_seg.nii.gz",
            "--labels",
            "1,2",
            "--label-names",
            "rim,cup",
            "--region",
            "disc=1+2",
            "--bins",
            "age=50",
            "--bootstrap",
            "20",
            "--workers",
            "2",
            "--nsd-tolerance",
            "1.5",
        ],
    )
    return res, preds, refs, meta, out


def test_outputs_and_schema(scored):
    res, _, _, _, out = scored
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "audit.md", "cases.csv", "report.html"]
    cases = pd.read_csv(out / "cases.csv")
    descriptors = [c for c in cases.columns if c.startswith("desc_")]
    assert {"desc_size", "desc_components", "desc_fn_size", "desc_error_boundary_share"} <= set(descriptors)
    assert not {"desc_contrast", "desc_noise"} & set(descriptors)  # no --images: no image descriptors
    assert [c for c in cases.columns if c not in descriptors] == [
        "case_id",
        "class",
        "dice",
        "iou",
        "hd95",
        "normhd",
        "nsd",
        "n_ref",
        "n_pred",
        "race",
        "sex",
        "age",
    ]
    assert len(cases) == 27 and cases["class"].tolist()[:3] == ["rim", "cup", "disc"]
    audit = json.loads((out / "audit.json").read_text())
    assert audit["by"] == ["race", "sex", "age"] and "age" in audit["bins"]
    assert {"dice[rim]", "dice[cup]", "dice[disc]", "hd95[disc]", "nsd[cup]", "iou[rim]"} <= set(audit["metrics"])
    assert audit["inputs"]["kind"] == "folders" and audit["inputs"]["join"]["n_without_metadata"] == 0
    groups = [g["value"] for g in audit["metrics"]["dice[rim]"]["attributes"]["age"]["groups"]]
    assert groups == ["<50", ">=50"]
    assert "dice[disc] by race" in (out / "audit.md").read_text()
    assert "dice[rim]: overall" in res.stdout


def test_every_metric_equals_monai(scored):
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

    _, preds, refs, _, out = scored
    cases = pd.read_csv(out / "cases.csv")
    for _, row in cases.iterrows():
        pred, _ = read_label_map(preds / f"{row['case_id']}.nii.gz")
        ref, spacing = read_label_map(refs / f"{row['case_id']}_seg.nii.gz")
        assert spacing == pytest.approx(SPACING)
        ids = {"rim": [1], "cup": [2], "disc": [1, 2]}[row["class"]]
        p, r = (torch.stack([~m, m])[None].float() for m in (torch.as_tensor(np.isin(x, ids)) for x in (pred, ref)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = {
                "dice": compute_dice(p, r, include_background=False),
                "iou": compute_iou(p, r, include_background=False),
                "hd95": compute_hausdorff_distance(
                    p, r, include_background=False, percentile=95, spacing=list(SPACING)
                ),
                "nsd": compute_surface_dice(p, r, [1.5], include_background=False, spacing=list(SPACING)),
            }
        for name, value in expected.items():
            assert row[name] == pytest.approx(float(value[0, 0]), rel=1e-5, abs=1e-6), (
                row["case_id"],
                row["class"],
                name,
            )
        assert row["normhd"] == pytest.approx(row["hd95"] / 150.0)


def test_python_api_gives_the_cli_table(scored):
    _, preds, refs, meta, out = scored
    table = score_folders(
        preds,
        refs,
        ref_pattern="{case}_seg.nii.gz",
        labels=[1, 2],
        label_names={1: "rim", 2: "cup"},
        regions=[Region("disc", (1, 2))],
        nsd_tolerance=1.5,
        descriptors=True,
    )
    joined, report = join_metadata(table, read_metadata(meta))
    cli = pd.read_csv(out / "cases.csv")
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), cli, check_dtype=False, rtol=1e-9)
    assert report.messages() == []


def test_nnunet_summary_command(tmp_path):
    entries = [
        {
            "prediction_file": f"/val/pt{i:02d}.nii.gz",
            "reference_file": f"/gt/pt{i:02d}.nii.gz",
            "metrics": {
                "1": {
                    "Dice": 0.5 + 0.05 * i,
                    "IoU": 0.4,
                    "n_ref": 100,
                    "n_pred": 90,
                    "TP": 80,
                    "FP": 10,
                    "FN": 20,
                    "TN": 900,
                }
            },
        }
        for i in range(9)
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"metric_per_case": entries, "mean": {}, "foreground_mean": {}}))
    _, _, meta = build(tmp_path, n=0, meta_rows=range(9))
    res = runner.invoke(
        app,
        [
            "score",
            "--nnunet",
            str(tmp_path / "summary.json"),
            "--meta",
            str(meta),
            "--out",
            str(tmp_path / "o"),
            "--by",
            "race",
            "--by",
            "sex",
            "--bootstrap",
            "10",
            "--no-discovery",
        ],
    )
    assert res.exit_code == 0, res.output
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert set(audit["metrics"]) == {"dice", "iou"} and audit["inputs"]["kind"] == "nnunet"
    groups = {g["value"]: g["mean"] for g in audit["metrics"]["dice"]["attributes"]["race"]["groups"]}
    assert groups["Black"] == pytest.approx(np.mean([0.5 + 0.05 * i for i in (0, 3, 6)]))


def test_metadata_mismatch_warns(tmp_path):
    preds, refs, meta = build(tmp_path, n=9, meta_rows=list(range(1, 9)) + [20, 21])
    res = runner.invoke(
        app,
        [
            "score",
            str(preds),
            str(refs),
            "--meta",
            str(meta),
            "--out",
            str(tmp_path / "o"),
            "--ref-pattern",
            "{case}_seg.nii.gz",
            "--by",
            "race",
            "--bootstrap",
            "0",
            "--no-discovery",
            "--workers",
            "1",
            "--metric",
            "dice",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1 of 9 cases have no metadata row (pt00)" in res.stderr
    assert "2 metadata rows match no case (pt20, pt21); ignored" in res.stderr
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["metrics"]["dice[1]"]["attributes"]["race"]["n_unknown"] == 1


# ---- errors: exit 2, one line, naming the thing ----------------------------------------------------


def _break(kind, preds, refs):
    if kind == "orphan":
        _save(np.zeros(SHAPE), preds / "stray.nii.gz")
    elif kind == "missing":
        for i in range(7):
            (preds / f"pt{i:02d}.nii.gz").unlink()
    elif kind == "shape":
        _save(np.zeros((24, 22, 7)), preds / "pt04.nii.gz")
    elif kind == "spacing":
        _save(np.zeros(SHAPE), preds / "pt05.nii.gz", spacing=(1.0, 1.0, 1.0))
    elif kind == "float":
        arr = np.zeros(SHAPE, np.float32)
        arr[3, 3, 3] = 1.5
        nib.save(nib.Nifti1Image(arr, np.diag([*SPACING, 1.0])), str(preds / "pt02.nii.gz"))
    elif kind == "range":
        arr = np.zeros(SHAPE, np.uint8)
        arr[1, 1, 1] = 7
        _save(arr, preds / "pt03.nii.gz")


@pytest.mark.parametrize(
    "kind,extra,message",
    [
        ("orphan", [], "1 predictions have no reference in"),
        ("missing", [], "7 references have no prediction in"),
        (
            "shape",
            [],
            "case 'pt04': prediction shape (24, 22, 7) (pt04.nii.gz) differs from reference shape (24, 22, 8)",
        ),
        (
            "spacing",
            [],
            "case 'pt05': prediction spacing (1, 1, 1) (pt05.nii.gz) differs from reference spacing (0.7, 0.7, 3)",
        ),
        ("float", [], "pt02.nii.gz: label value 1.5 is not an integer"),
        ("range", ["--labels", "1,2"], "pt03.nii.gz: label value 7 is out of range"),
        ("range", [], "case 'pt03': the prediction has label 7, which no reference has"),
        ("meta13", ["--by", "age"], "attribute 'age' is continuous (13 distinct numbers); bin it"),
        (None, ["--by", "ethnicity"], "--by ethnicity: 'ethnicity' is not a metadata column"),
        (
            None,
            ["--id-column", "age"],
            "no case id matches the metadata ids (cases: pt00, pt01, pt02 and 6 more; metadata: 30, 34, 38",
        ),
        (None, ["--id-column", "sex"], "2 case ids appear twice in column 'sex'"),
        (None, ["--metric", "volume"], "--metric volume: expected one of dice, iou, hd95, nsd"),
        (None, ["--empty", "zero"], "--empty: 'zero' is not one of 'nnunet', 'nan', 'fairseg', 'mamamia'"),
        (None, ["--pattern", "{case}_{case}"], "expected {case} exactly once"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, kind, extra, message):
    preds, refs, meta = build(tmp_path, n=9)
    if kind == "meta13":  # 13 metadata rows (13 distinct ages), 9 of them scored
        build(tmp_path / "m", n=0, meta_rows=range(13))
        meta = tmp_path / "m" / "patients.csv"
    if kind in ("orphan", "missing", "shape", "spacing", "float", "range"):
        _break(kind, preds, refs)
    args = [
        "score",
        str(preds),
        str(refs),
        "--meta",
        str(meta),
        "--out",
        str(tmp_path / "o"),
        "--bootstrap",
        "0",
        "--workers",
        "2",
        "--metric",
        "dice",
    ]
    if "--pattern" not in extra:
        args += ["--ref-pattern", "{case}_seg.nii.gz"]
    if "--metric" in extra:
        args.remove("--metric")
        args.remove("dice")
    with pytest.raises(SystemExit) as exc:
        main([*args, *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err


def test_missing_listing_and_allow_missing(tmp_path, capsys):
    preds, refs, meta = build(tmp_path, n=9)
    _break("missing", preds, refs)
    args = [
        "score",
        str(preds),
        str(refs),
        "--meta",
        str(meta),
        "--out",
        str(tmp_path / "o"),
        "--ref-pattern",
        "{case}_seg.nii.gz",
        "--by",
        "race",
        "--bootstrap",
        "0",
        "--no-discovery",
        "--metric",
        "dice",
        "--workers",
        "1",
    ]
    with pytest.raises(SystemExit):
        main(args)
    assert "pt00, pt01, pt02, pt03, pt04 and 2 more (--allow-missing" in capsys.readouterr().err
    res = runner.invoke(app, [*args, "--allow-missing", "--labels", "1,2"])
    assert res.exit_code == 0, res.output
    assert "7 references have no prediction; scored as empty predictions" in res.stderr
    cases = pd.read_csv(tmp_path / "o" / "cases.csv")
    assert (cases["dice"].iloc[:7] == 0).all() and (cases["n_pred"].iloc[:7] == 0).all()


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "expected one input: PRED_DIR REF_DIR, --nnunet FILE, --monai-csv FILE or --merge PARTS (got none)"),
        (["p"], "expected REF_DIR after PRED_DIR"),
        (["p", "r", "--nnunet", "s.json"], "got PRED_DIR REF_DIR, --nnunet"),
    ],
)
def test_inputs_are_exclusive(tmp_path, capsys, args, message):
    (tmp_path / "m.csv").write_text("case_id,race\na,B\n")
    with pytest.raises(SystemExit) as exc:
        main(["score", *args, "--meta", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_help_documents_matching():
    res = runner.invoke(app, ["score", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.stdout.replace("│", " ").split())
    for part in (
        "{case}_seg.nii.gz",
        "--allow-missing",
        "--nnunet",
        "--region",
        "--workers",
        "name without the extension",
    ):
        assert part in text, part
