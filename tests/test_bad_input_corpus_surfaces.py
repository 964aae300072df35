"""Bad-input corpus, part 2: the surfaces added since the first corpus (``score`` on NIfTI folders,
the nnU-Net and MONAI readers, metadata tables, ``compare`` of evaluated runs, own configs for
``train`` / ``benchmark``, ``init-config``, damaged run folders).

Same harness as ``test_bad_input_corpus.py``: each case runs in-process through the console entry
point and must end with exit code 2, exactly one line on stderr starting with ``error:`` that
contains the expected words, no traceback, and no output left behind (``OUT`` is a folder of the
case's own that must not exist afterwards; ``OUTFILE`` a file).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from duetfair.audit import audit_table
from duetfair.cli import main

AFFINE = np.array([[2.0, 0, 0, -10], [0, 1.5, 0, 20], [0, 0, 3.0, 5], [0, 0, 0, 1]])


def _nii(path: Path, arr: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), affine), str(path))


def _mask(shift: int = 0, label: int = 1) -> np.ndarray:
    a = np.zeros((10, 8, 6), np.uint8)
    a[2 + shift : 6 + shift, 2:6, 1:4] = label
    return a


def _pair(root: Path, name: str, pred: np.ndarray, pred_affine: np.ndarray = AFFINE, ref=None) -> Path:
    """A folder ``root/name`` with ``preds/`` and ``refs/`` of two cases (c1 as given, c2 a good pair)."""
    base = root / name
    _nii(base / "refs" / "c1.nii.gz", _mask() if ref is None else ref)
    _nii(base / "preds" / "c1.nii.gz", pred, pred_affine)
    _nii(base / "refs" / "c2.nii.gz", _mask(1))
    _nii(base / "preds" / "c2.nii.gz", _mask(1))
    return base


def _summary(entries: object) -> str:
    return json.dumps({"metric_per_case": entries})


def _entry(metrics: object, file: str = "/data/preds/c1.nii.gz") -> dict:
    return {"prediction_file": file, "reference_file": file.replace("preds", "refs"), "metrics": metrics}


def _fake_run(root: Path, name: str, *, split: str = "test", ids: list[str] | None = None, seed: int = 0) -> Path:
    """An evaluated run folder made without training: config, run.json, group spec, cases.csv,
    audit.json and summary.json, as ``duetfair evaluate`` writes them."""
    run = root / name
    run.mkdir(parents=True)
    ids = ids or [f"c{i}" for i in range(40)]
    rng = np.random.default_rng(seed)
    cases = pd.DataFrame(
        {
            "case_id": ids,
            "class": 1,
            "dice": rng.uniform(0.5, 1, len(ids)),
            "iou": rng.uniform(0.3, 0.9, len(ids)),
            "race": ["A", "B"] * (len(ids) // 2),
        }
    )
    cases.to_csv(run / "cases.csv", index=False)
    audit = audit_table(cases, ["race"], metrics=("dice", "iou"), n_boot=0, discovery=False)
    (run / "audit.json").write_text(json.dumps(audit, default=str))
    data = {"kind": "synthetic", "args": {"seed": seed}}
    summary = {"split": split, "n_cases": len(ids), "name": name, "data": data, "dice": 0.7}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text(f"data:\n  kind: synthetic\n  args: {{seed: {seed}}}\n")
    (run / "group_spec.json").write_text(json.dumps({"attributes": [{"name": "race", "values": ["A", "B"]}]}))
    return run


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus2")
    # ---- score: NIfTI folders ----
    shifted = AFFINE.copy()
    shifted[0, 3] += 100  # the same array 100 mm away
    _pair(root, "origin", _mask(), shifted)
    rot = AFFINE.copy()
    rot[:2, :2] = [[0, -1.5], [2.0, 0]]  # axes rotated by 90 degrees in the plane: another grid
    _pair(root, "rotated", _mask(), rot)
    spaced = AFFINE.copy()
    spaced[2, 2] = 2.5
    _pair(root, "spacing", _mask(), spaced)
    _pair(root, "shape", np.zeros((10, 8, 7), np.uint8))
    _pair(root, "pred4d", np.stack([_mask(), _mask()], axis=-1))
    _pair(root, "ref4d", _mask(), ref=np.stack([_mask(), _mask(1)], axis=-1))
    _pair(root, "pred5d", _mask()[..., None, None].repeat(2, axis=-1))
    _pair(root, "fraction", _mask().astype(np.float32) * 0.5)
    _pair(root, "negative", _mask().astype(np.int16) * -1)
    nan = _mask().astype(np.float32)
    nan[0, 0, 0] = np.nan
    _pair(root, "nanlabel", nan)
    _pair(root, "extra_label", _mask(label=3))
    empty = np.zeros((10, 8, 6), np.uint8)
    for name, pred in (("empty_refs", _mask()), ("empty_all", empty)):
        base = _pair(root, name, pred, ref=empty)
        _nii(base / "refs" / "c2.nii.gz", empty)
        _nii(base / "preds" / "c2.nii.gz", empty)
    _pair(root, "good", _mask())
    for name, data in (("corrupt", b"\x1f\x8b not gzip at all"), ("zero", b"")):
        base = _pair(root, name, _mask())
        (base / "preds" / "c1.nii.gz").write_bytes(data)
    base = _pair(root, "orphan", _mask())
    _nii(base / "preds" / "c9.nii.gz", _mask())
    base = _pair(root, "missing_pred", _mask())
    (base / "preds" / "c2.nii.gz").unlink()
    base = _pair(root, "two_files", _mask())
    np.save(base / "preds" / "c1.npy", _mask())
    base = root / "npy1d"
    (base / "preds").mkdir(parents=True)
    (base / "refs").mkdir()
    np.save(base / "preds" / "c1.npy", np.zeros(16, np.uint8))
    np.save(base / "refs" / "c1.npy", np.zeros(16, np.uint8))
    (root / "nolabelmaps").mkdir()
    (root / "nolabelmaps" / "notes.txt").write_text("x")
    (root / "file.txt").write_text("x")
    (root / "folder").mkdir()
    # ---- metadata tables ----
    (root / "meta.csv").write_text("case_id,race,site\nc1,A,x\nc2,B,y\n")
    (root / "meta_zeros.csv").write_text("case_id,race\n001,A\n002,B\n")
    (root / "meta_dup.csv").write_text("case_id,race\nc1,A\nc1.nii.gz,B\nc2,B\n")
    (root / "meta_empty_id.csv").write_text("case_id,race\nc1,A\n,B\n")
    (root / "meta_both.csv").write_text("pid,case_id,race\n1,c1,A\n2,c2,B\n")
    (root / "meta_clash.csv").write_text("case_id,dice\nc1,0.5\nc2,0.6\n")
    (root / "meta_empty.csv").write_text("")
    (root / "meta_header.csv").write_text("case_id,race\n")
    (root / "meta_age.csv").write_text("case_id,age\n" + "".join(f"c{i},{20 + i}\n" for i in range(1, 30)))
    (root / "meta_constant.csv").write_text("case_id,race\nc1,A\nc2,A\n")
    (root / "meta_na.csv").write_text("case_id,race\nc1,NA\nc2,NA\n")
    # ---- nnU-Net summaries ----
    good = [_entry({"1": {"Dice": 0.9, "IoU": 0.8, "n_ref": 10, "n_pred": 11}})]
    nn = {
        "nn_bad_json": "{not json",
        "nn_empty": "",
        "nn_list": "[1, 2]",
        "nn_no_cases": json.dumps({"foreground_mean": {}}),
        "nn_empty_cases": _summary([]),
        "nn_entry_not_object": _summary([1]),
        "nn_metrics_list": _summary([_entry([0.9])]),
        "nn_metric_not_object": _summary([_entry({"1": 0.9})]),
        "nn_dice_true": _summary([_entry({"1": {"Dice": True}})]),
        "nn_dice_text": _summary([_entry({"1": {"Dice": "0.9"}})]),
        "nn_dice_list": _summary([_entry({"1": {"Dice": [0.9]}})]),
        "nn_dice_big": _summary([_entry({"1": {"Dice": 1.5}}), _entry({"1": {"Dice": 0.5}}, "/p/c2.nii.gz")]),
        "nn_nref_negative": _summary([_entry({"1": {"Dice": 0.9, "n_ref": -5}})]),
        "nn_nref_float": _summary([_entry({"1": {"Dice": 0.9, "n_ref": 2.5}})]),
        "nn_nref_text": _summary([_entry({"1": {"Dice": 0.9, "n_ref": "ten"}})]),
        "nn_npred_bool": _summary([_entry({"1": {"Dice": 0.9, "n_pred": False}})]),
        "nn_nref_inf": '{"metric_per_case": [{"prediction_file": "c1.nii.gz", "metrics": '
        '{"1": {"Dice": 0.9, "n_ref": Infinity}}}]}',
        "nn_no_file": _summary([{"metrics": {"1": {"Dice": 0.9}}}]),
        "nn_no_dice": _summary([_entry({"1": {"IoU": 0.8}})]),
        "nn_bad_key": _summary([_entry({"(a, b)": {"Dice": 0.9}})]),
        "nn_twice": _summary(good + good),
        "nn_dup_key": '{"metric_per_case": [], "metric_per_case": ' + json.dumps(good) + "}",
        "nn_dup_metric": '{"metric_per_case": [{"prediction_file": "c1.nii.gz", "metrics": '
        '{"1": {"Dice": 0.9, "Dice": 0.1}}}]}',
        "nn_deep": '{"metric_per_case": ' + "[" * 50000 + "]" * 50000 + "}",
        "nn_good": _summary(good + [_entry({"1": {"Dice": 0.7}}, "/data/preds/c2.nii.gz")]),
    }
    for name, text in nn.items():
        (root / f"{name}.json").write_text(text)
    (root / "nn_binary.json").write_bytes(b"\xff\xfe\x00garbage")
    # ---- MONAI CSVs ----
    monai = {
        "mo_no_id.csv": "name,class0\nc1,0.9\n",
        "mo_text.csv": "filename,class0\nc1.nii.gz,good\nc2.nii.gz,0.5\n",
        "mo_bool.csv": "filename,class0\nc1.nii.gz,True\nc2.nii.gz,0.5\n",
        "mo_big.csv": "filename,class0\nc1.nii.gz,1.5\nc2.nii.gz,0.5\n",
        "mo_neg_nref.csv": "case_id,dice,n_ref\nc1,0.9,-3\nc2,0.8,4\n",
        "mo_float_nref.csv": "case_id,dice,n_ref\nc1,0.9,2.5\nc2,0.8,4\n",
        "mo_text_dice.csv": "case_id,dice\nc1,excellent\nc2,0.8\n",
        "scores.csv": "filename,class0\nc1.nii.gz,0.9\nc2.nii.gz,0.8\n",
        "mo_empty.csv": "",
        "mo_header.csv": "filename,class0\n",
        "mean_dice_raw.csv": "filename,class0,class1\nc1.nii.gz,0.9,0.8\nc2.nii.gz,0.7,0.6\n",
        "mo_twice.csv": "case_id,dice\nc1,0.9\nc1,0.8\n",
    }
    for name, text in monai.items():
        (root / name).write_text(text)
    # ---- per-case tables for audit ----
    pd.DataFrame({"case_id": ["a", "b", "c", "d"], "race": ["A", "B"] * 2, "dice": [True, False] * 2}).to_parquet(
        root / "bool_dice.parquet"
    )
    (root / "cases_na.csv").write_text("case_id,race,dice\na,NA,0.5\nb,None,0.6\nc,NA,0.7\nd,NA,0.8\n")
    (root / "deep_spec.json").write_text("[" * 100000 + "]" * 100000)
    (root / "list_spec.json").write_text("[]")
    (root / "cases.csv").write_text(
        "case_id,race,dice\n" + "".join(f"c{i},{'AB'[i % 2]},0.{i + 10}\n" for i in range(40))
    )
    # ---- evaluated runs for compare ----
    _fake_run(root, "run_a")
    _fake_run(root, "run_val", split="val")
    _fake_run(root, "run_other_data", seed=1)
    _fake_run(root, "run_disjoint", ids=[f"x{i}" for i in range(40)])
    _fake_run(root, "run_fewer", ids=[f"c{i}" for i in range(20)])
    shutil.copytree(root / "run_a", root / "run_deep_summary")
    (root / "run_deep_summary" / "summary.json").write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}")
    shutil.copytree(root / "run_a", root / "run_list_summary")
    (root / "run_list_summary" / "summary.json").write_text("[1]")
    shutil.copytree(root / "run_a", root / "run_bad_audit")
    (root / "run_bad_audit" / "audit.json").write_text('{"metrics": {}}')
    # ---- configs ----
    cfg = root / "cfg"
    (cfg / "sub").mkdir(parents=True)
    configs = {
        "abs.yaml": "extends: /etc/passwd\n",
        "up.yaml": "extends: ../outside.yaml\n",
        "sub/up2.yaml": "extends: ../../outside.yaml\n",
        "dots.yaml": "extends: sub/../../outside.yaml\n",
        "list_parent.yaml": "extends: [a.yaml]\n",
        "blank_parent.yaml": "extends: ''\n",
        "null_parent.yaml": "extends: 3\n",
        "deep.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "tag.yaml": "extends: fundus2d_erm.yaml\ntrain: !!python/object/apply:os.system ['true']\n",
        "nowhere_sub.yaml": "extends: sub/none.yaml\n",
        "binary.yaml": "\udcff",
        "tabs.yaml": "train:\n\tepochs: 1\n",
    }
    for name, text in configs.items():
        (cfg / name).write_text(text, errors="surrogateescape")
    (root / "outside.yaml").write_text("seed: 1\n")
    os.symlink(root / "outside.yaml", cfg / "link.yaml")
    (cfg / "via_link.yaml").write_text("extends: link.yaml\n")
    # ---- init-config manifests ----
    (root / "man_empty.csv").write_text("")
    (root / "man_header.csv").write_text("image,label,race\n")
    (root / "man_noimage.csv").write_text("case_id,race\na,A\nb,B\n")
    (root / "man_noattr.csv").write_text("case_id,image,label\na,a.png,a_seg.png\nb,b.png,b_seg.png\n")
    (root / "man_ok.csv").write_text("case_id,image,label,race\na,a.png,a_seg.png,A\nb,b.png,b_seg.png,B\n")
    (root / "existing.yaml").write_text("seed: 0\n")
    # ---- predict manifests ----
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "ok.png")
    (root / "pm_escape.csv").write_text("image\n../../etc/passwd\n")
    (root / "pm_abs.csv").write_text("image\n/etc/passwd\n")
    (root / "pm_noimage.csv").write_text("case_id\na\n")
    (root / "pm_empty_image.csv").write_text("image,case_id\n,a\n")
    return root


def _cases(w: Path) -> list[tuple[str, list[str], str]]:  # noqa: PLR0915 - one list of cases
    def score(name: str, *extra: str, meta: str = "meta.csv") -> list[str]:
        base = w / name
        return [
            "score",
            str(base / "preds"),
            str(base / "refs"),
            "--meta",
            str(w / meta),
            "--out",
            "OUT",
            "--workers",
            "1",
            "--bootstrap",
            "0",
            "--no-discovery",
            *extra,
        ]

    def nn(name: str, *extra: str) -> list[str]:
        return ["score", "--nnunet", str(w / f"{name}.json"), "--meta", str(w / "meta.csv"), "--out", "OUT", *extra]

    def mo(*files: str, extra: tuple[str, ...] = ()) -> list[str]:
        args = ["score"]
        for f in files:
            args += ["--monai-csv", f if "=" in f else str(w / f)]
        return [*args, "--meta", str(w / "meta.csv"), "--out", "OUT", *extra]

    def cmp(*runs: str, extra: tuple[str, ...] = ()) -> list[str]:
        return ["compare", *(str(w / r) for r in runs), "--out", "OUTFILE", *extra]

    c = str(w / "cases.csv")
    audit = ["audit", c, "--by", "race", "--no-discovery", "--bootstrap", "0"]
    cfg = w / "cfg"
    return [
        # ---- score: geometry of NIfTI masks ----
        ("score origin 100 mm away", score("origin"), "different grids in physical space"),
        ("score rotated grid", score("rotated"), "different grids in physical space"),
        ("score spacing differs", score("spacing"), "spacing"),
        ("score shape differs", score("shape"), "shape"),
        ("score 4D prediction", score("pred4d"), "expected a 2D or 3D label map"),
        ("score 4D reference", score("ref4d"), "expected a 2D or 3D label map"),
        ("score 5D prediction", score("pred5d"), "expected a 2D or 3D label map"),
        ("score fractional label", score("fraction"), "not an integer"),
        ("score negative label", score("negative"), "negative"),
        ("score NaN label", score("nanlabel"), "not an integer"),
        ("score label no reference has", score("extra_label"), "no reference has"),
        ("score label outside --labels", score("extra_label", "--labels", "1"), "out of range"),
        ("score labels only in predictions", score("empty_refs"), "no reference has"),
        ("score every mask empty", score("empty_all"), "hold no label"),
        ("score corrupt nifti", score("corrupt"), "cannot read the label map"),
        ("score empty nifti file", score("zero"), "cannot read the label map"),
        ("score 1D npy", score("npy1d"), "expected a 2D or 3D label map"),
        ("score prediction without reference", score("orphan"), "have no reference"),
        ("score reference without prediction", score("missing_pred"), "no prediction"),
        ("score two files for a case", score("two_files"), "several files"),
        (
            "score no label maps",
            ["score", str(w / "nolabelmaps"), str(w / "nolabelmaps"), "--meta", str(w / "meta.csv"), "--out", "OUT"],
            "no file matches",
        ),
        (
            "score prediction folder is a file",
            ["score", str(w / "file.txt"), str(w / "good" / "refs"), "--meta", str(w / "meta.csv"), "--out", "OUT"],
            "folder not found",
        ),
        # ---- score: options ----
        ("score nsd tolerance inf", score("good", "--nsd-tolerance", "inf"), "finite distance"),
        ("score nsd tolerance nan", score("good", "--nsd-tolerance", "nan"), "finite distance"),
        ("score nsd tolerance 0", score("good", "--nsd-tolerance", "0"), "finite distance"),
        ("score nsd tolerance negative", score("good", "--nsd-tolerance", "-1"), "finite distance"),
        ("score label name a number", score("good", "--label-names", "1=2"), "is a number"),
        ("score label named twice", score("good", "--label-names", "1=rim,1=cup"), "named twice"),
        ("score one name two labels", score("good", "--labels", "1,2", "--label-names", "rim,rim"), "two labels"),
        ("score pair name two labels", score("good", "--label-names", "1=rim,2=rim"), "two labels"),
        ("score empty label name", score("good", "--label-names", "1="), "empty"),
        ("score label name id not a number", score("good", "--label-names", "a=rim"), "ID=NAME"),
        ("score label names mixed", score("good", "--label-names", "rim,2=cup"), "not both"),
        ("score label names count", score("good", "--labels", "1", "--label-names", "rim,cup"), "2 names for 1"),
        ("score positional names count", score("good", "--label-names", "rim,cup"), "2 names"),
        ("score label 0", score("good", "--labels", "0"), "> 0"),
        ("score label twice", score("good", "--labels", "1,1"), "twice"),
        ("score label negative", score("good", "--labels", "-1"), "labels"),
        ("score region no ids", score("good", "--region", "disc="), "at least one label"),
        ("score region no name", score("good", "--region", "=1+2"), "region name"),
        ("score region text ids", score("good", "--region", "disc=a"), "integer label ids"),
        ("score region twice", score("good", "--region", "disc=1,disc=1"), "used twice"),
        ("score pattern without case", score("good", "--pattern", "seg.nii.gz"), "{case}"),
        ("score pattern case twice", score("good", "--pattern", "{case}{case}.nii.gz"), "exactly once"),
        ("score regex invalid", score("good", "--pattern", "re:(("), "invalid regular expression"),
        ("score regex no group", score("good", "--pattern", "re:c1"), "group"),
        ("score unknown metric", score("good", "--metric", "hd100"), "expected one of"),
        ("score workers negative", score("good", "--workers", "-3"), "workers"),
        ("score empty policy", score("good", "--empty", "zero"), "'zero'"),
        ("score negative bootstrap", score("good", "--bootstrap", "-2"), "bootstrap"),
        ("score bins syntax", score("good", "--bins", "age"), "ATTR=EDGE"),
        ("score bins unknown column", score("good", "--bins", "age=40"), "not a metadata column"),
        ("score by unknown column", score("good", "--by", "sex"), "not a metadata column"),
        ("score by continuous", score("good", "--by", "age", meta="meta_age.csv"), "continuous"),
        ("score no attribute left", score("good", meta="meta_constant.csv"), "no attribute to audit"),
        ("score folders and nnunet", [*score("good"), "--nnunet", str(w / "nn_good.json")], "expected one input"),
        (
            "score prediction folder only",
            ["score", str(w / "good" / "preds"), "--meta", str(w / "meta.csv"), "--out", "OUT"],
            "REF_DIR",
        ),
        ("score images with nnunet", nn("nn_good", "--images", str(w / "folder")), "PRED_DIR"),
        ("score images missing", score("good", "--images", str(w / "nope")), "folder not found"),
        ("score out is a file", [*score("good")[:6], str(w / "file.txt")], "file.txt"),
        # ---- score: metadata ----
        ("score metadata ids keep zeros", score("good", meta="meta_zeros.csv"), "no case id matches"),
        ("score metadata duplicate id", score("good", meta="meta_dup.csv"), "appear twice"),
        ("score metadata empty id", score("good", meta="meta_empty_id.csv"), "empty id"),
        ("score metadata two id columns", score("good", "--id-column", "pid", meta="meta_both.csv"), "rename one"),
        ("score metadata column clash", score("good", meta="meta_clash.csv"), "clashes"),
        ("score metadata empty", score("good", meta="meta_empty.csv"), "empty"),
        ("score metadata header only", score("good", meta="meta_header.csv"), "empty"),
        ("score metadata missing", score("good", meta="nope.csv"), "does not exist"),
        ("score metadata id column", score("good", "--id-column", "patient"), "--id-column 'patient'"),
        ("score NA declared missing", score("good", "--missing", "NA", meta="meta_na.csv"), "no attribute to audit"),
        # ---- score --nnunet ----
        ("nnunet not json", nn("nn_bad_json"), "not valid JSON"),
        ("nnunet empty file", nn("nn_empty"), "not valid JSON"),
        ("nnunet binary file", nn("nn_binary"), "not valid JSON"),
        ("nnunet top level list", nn("nn_list"), "metric_per_case"),
        ("nnunet no per-case list", nn("nn_no_cases"), "metric_per_case"),
        ("nnunet empty per-case list", nn("nn_empty_cases"), "metric_per_case"),
        ("nnunet entry not an object", nn("nn_entry_not_object"), "has no 'metrics'"),
        ("nnunet metrics a list", nn("nn_metrics_list"), "has no 'metrics'"),
        ("nnunet label metrics not an object", nn("nn_metric_not_object"), "expected an object of metrics"),
        ("nnunet Dice true", nn("nn_dice_true"), "not a number"),
        ("nnunet Dice text", nn("nn_dice_text"), "not a number"),
        ("nnunet Dice list", nn("nn_dice_list"), "not a number"),
        ("nnunet Dice above 1", nn("nn_dice_big"), "outside [0, 1]"),
        ("nnunet negative n_ref", nn("nn_nref_negative"), "not a voxel count"),
        ("nnunet fractional n_ref", nn("nn_nref_float"), "not a voxel count"),
        ("nnunet text n_ref", nn("nn_nref_text"), "not a number"),
        ("nnunet boolean n_pred", nn("nn_npred_bool"), "not a number"),
        ("nnunet infinite n_ref", nn("nn_nref_inf"), "not a voxel count"),
        ("nnunet no file name", nn("nn_no_file"), "neither 'prediction_file'"),
        ("nnunet no Dice", nn("nn_no_dice"), "no 'Dice'"),
        ("nnunet bad metrics key", nn("nn_bad_key"), "is neither a label"),
        ("nnunet case twice", nn("nn_twice"), "appears twice"),
        ("nnunet duplicate key", nn("nn_dup_key"), "given twice"),
        ("nnunet duplicate metric key", nn("nn_dup_metric"), "given twice"),
        ("nnunet deep nesting", nn("nn_deep"), "nested too deeply"),
        ("nnunet missing file", nn("nn_nope"), "file not found"),
        ("nnunet pattern mismatch", nn("nn_good", "--pattern", "{case}_seg.nii.gz"), "does not match"),
        ("nnunet metric not available", nn("nn_good", "--metric", "hd95"), "not available"),
        # ---- score --monai-csv ----
        ("monai no id column", mo("mo_no_id.csv"), "no 'filename' or 'case_id'"),
        ("monai text score", mo("dice=" + str(w / "mo_text.csv")), "not a number"),
        ("monai boolean score", mo("dice=" + str(w / "mo_bool.csv")), "not a number"),
        ("monai score above 1", mo("dice=" + str(w / "mo_big.csv")), "outside [0, 1]"),
        ("monai negative n_ref", mo("mo_neg_nref.csv"), "not a voxel count"),
        ("monai fractional n_ref", mo("mo_float_nref.csv"), "not a voxel count"),
        ("monai text dice column", mo("mo_text_dice.csv"), "not a number"),
        ("monai metric unknown", mo("scores.csv"), "cannot tell the metric"),
        ("monai empty csv", mo("mo_empty.csv"), "empty"),
        ("monai header only", mo("mo_header.csv"), "no rows"),
        ("monai labels count", mo("mean_dice_raw.csv", extra=("--labels", "1")), "class columns"),
        ("monai metric twice", mo("mean_dice_raw.csv", "dice=" + str(w / "scores.csv")), "given by two"),
        ("monai case twice", mo("mo_twice.csv"), "appears twice"),
        ("monai missing file", mo("mo_nope.csv"), "does not exist"),
        # ---- audit: tables, group names, specs ----
        ("audit boolean metric", ["audit", str(w / "bool_dice.parquet"), "--by", "race"], "true/false"),
        ("audit NA declared missing", ["audit", str(w / "cases_na.csv"), "--by", "race", "--missing", "NA"], "groups"),
        ("audit deep group spec", [*audit, "--group-spec", str(w / "deep_spec.json")], "cannot be parsed"),
        ("audit list group spec", [*audit, "--group-spec", str(w / "list_spec.json")], "mapping"),
        ("audit out under a file md", [*audit, "--format", "md", "--out", str(w / "file.txt" / "x.md")], "cannot use"),
        # ---- compare ----
        ("compare different splits", cmp("run_a", "run_val"), "split"),
        ("compare different data", cmp("run_a", "run_other_data"), "different data"),
        ("compare no shared case", cmp("run_a", "run_disjoint"), "0 shared"),
        ("compare other cases", cmp("run_a", "run_fewer"), "different cases"),
        ("compare html different splits", cmp("run_a", "run_val", extra=("--format", "html")), "split"),
        ("compare deep summary", cmp("run_deep_summary"), "nested too deeply"),
        ("compare list summary", cmp("run_list_summary"), "JSON object"),
        ("compare audit without dice", cmp("run_bad_audit"), "no metric 'dice'"),
        ("compare unknown attribute", cmp("run_a", extra=("--by", "sex")), "no attribute 'sex'"),
        # ---- own configs: extends and parsing ----
        ("train extends absolute path", ["train", str(cfg / "abs.yaml")], "absolute"),
        ("train extends parent folder", ["train", str(cfg / "up.yaml")], "escapes"),
        ("train extends two up", ["train", str(cfg / "sub" / "up2.yaml")], "escapes"),
        ("train extends through sub", ["train", str(cfg / "dots.yaml")], "escapes"),
        ("train extends a symlink out", ["train", str(cfg / "via_link.yaml")], "escapes"),
        ("train extends a list", ["train", str(cfg / "list_parent.yaml")], "expected a file name"),
        ("train extends empty", ["train", str(cfg / "blank_parent.yaml")], "expected a file name"),
        ("train extends a number", ["train", str(cfg / "null_parent.yaml")], "expected a file name"),
        ("train extends missing in sub", ["train", str(cfg / "nowhere_sub.yaml")], "not found"),
        ("train deep yaml", ["train", str(cfg / "deep.yaml")], "nested too deeply"),
        ("train yaml python tag", ["train", str(cfg / "tag.yaml")], "not valid YAML"),
        ("train config not utf-8", ["train", str(cfg / "binary.yaml")], "cannot read"),
        ("train yaml tabs", ["train", str(cfg / "tabs.yaml")], "not valid YAML"),
        ("benchmark extends escape", ["benchmark", str(cfg / "up.yaml"), "--out", "OUT"], "escapes"),
        ("benchmark deep yaml", ["benchmark", str(cfg / "deep.yaml"), "--out", "OUT"], "nested too deeply"),
        ("benchmark config missing", ["benchmark", str(cfg / "nope.yaml"), "--out", "OUT"], "not found"),
        (
            "benchmark config and task",
            ["benchmark", str(cfg / "up.yaml"), "--task", "fundus2d", "--out", "OUT"],
            "not both",
        ),
        (
            "benchmark config twice",
            ["benchmark", str(cfg / "up.yaml"), "--config", str(cfg / "abs.yaml"), "--out", "OUT"],
            "given twice",
        ),
        # ---- init-config ----
        ("init-config empty manifest", ["init-config", str(w / "man_empty.csv"), "--out", "OUTFILE"], "empty"),
        ("init-config header only", ["init-config", str(w / "man_header.csv"), "--out", "OUTFILE"], "no rows"),
        ("init-config no image column", ["init-config", str(w / "man_noimage.csv"), "--out", "OUTFILE"], "image"),
        ("init-config no attribute", ["init-config", str(w / "man_noattr.csv"), "--out", "OUTFILE"], "attribute"),
        (
            "init-config hidden column missing",
            ["init-config", str(w / "man_ok.csv"), "--out", "OUTFILE", "--hidden", "morphology"],
            "morphology",
        ),
        (
            "init-config out exists",
            ["init-config", str(w / "man_ok.csv"), "--out", str(w / "existing.yaml")],
            "exists",
        ),
        ("init-config out is a folder", ["init-config", str(w / "man_ok.csv"), "--out", str(w / "folder")], "folder"),
        # ---- synth ----
        ("synth negative cases", ["synth", "fundus2d", "--n", "-1", "--out", "OUT"], ">= 1"),
        ("synth zero size", ["synth", "fundus2d", "--n", "2", "--size", "0", "--out", "OUT"], "image_size"),
        ("synth negative hidden share", ["synth", "fundus2d", "--n", "2", "--hidden-prob", "-0.1", "--out", "OUT"], ""),
    ]


CASES = [name for name, _, _ in _cases(Path("."))]


def run_case(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run one case in-process; ``(exit code, stderr)``."""
    swap = {"OUT": str(out), "OUTFILE": str(out.with_suffix(".yaml"))}
    with pytest.raises(SystemExit) as info:
        main([swap.get(a, a) for a in args])
    return int(info.value.code or 0), capsys.readouterr().err.strip()


def check_one_line(code: int, err: str, expect: str, out: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    assert expect.lower() in err.lower(), err
    assert not out.exists() and not out.with_suffix(".yaml").exists(), f"{out} was written"
    assert not list(out.parent.glob(".partial-*")) and not list(out.parent.glob(".commit-*"))


@pytest.mark.parametrize("name", CASES)
def test_bad_input_ends_in_one_line_and_exit_2(name: str, w: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, expect = next((a, e) for n, a, e in _cases(w) if n == name)
    out = w / ("out_" + "_".join(name.split()))
    code, err = run_case(args, out, capsys)
    check_one_line(code, err, expect, out)


def test_the_corpus_covers_250_kinds() -> None:
    from test_bad_input_corpus import CASES as FIRST

    assert len(set(CASES)) == len(CASES) and not set(CASES) & set(FIRST)
    assert len(CASES) + len(FIRST) >= 250, len(CASES) + len(FIRST)
