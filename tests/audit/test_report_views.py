"""Report views: the gallery of failing cases, the training view, the comparison views (paired
differences to the baseline with verdicts, the paper-style table, the multi-seed benchmark) and
provenance."""

import base64
import html as htmllib
import io
import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from duetfair.audit import audit_table
from duetfair.audit.compare import comparison_report, paired_differences, seed_comparison_report
from duetfair.audit.gallery import FolderGallery, Gallery, build_gallery, list_images, thumbnail, worst_cases
from duetfair.audit.report import TrainingView, build_figures, provenance, render_html
from duetfair.cli import main
from duetfair.errors import DuetfairError
from duetfair.io import write_json


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


# ---- gallery --------------------------------------------------------------------------------------


def test_worst_cases_per_group(cases):
    picks = worst_cases(cases, "dice", ["race", "sex"], per_group=3)
    assert list(picks.columns) == ["case_id", "attribute", "group", "score"]
    for (attr, group), part in picks.groupby(["attribute", "group"]):
        assert len(part) == 3 and part["score"].is_monotonic_increasing
        members = cases[cases[attr] == group]
        assert part["score"].iloc[0] == pytest.approx(members["dice"].min())
    assert "" not in set(picks["group"])  # unknown race is in no group
    worst_hd = worst_cases(cases, "hd95", ["sex"], per_group=2)  # a distance: the highest first
    first = worst_hd["group"].iloc[0]
    assert worst_hd["score"].iloc[0] == pytest.approx(cases.loc[cases["sex"] == first, "hd95"].max())
    assert len(worst_cases(cases, "dice", ["race", "sex"], per_group=50, max_cases=7)) == 7


def test_thumbnail_2d_and_3d():
    rng = np.random.default_rng(0)
    ref = np.zeros((64, 80), np.int64)
    ref[20:40, 30:50] = 1
    ref[26:34, 36:44] = 2
    pred = np.roll(ref, 4, axis=1)
    yy, xx = np.mgrid[0:64, 0:80]
    image = np.stack([np.sin(xx / 9.0) + np.cos(yy / 7.0), xx / 80.0, yy / 64.0]) + 0.05 * rng.random((3, 64, 80))
    uri, where = thumbnail(image, ref, pred)
    img = _decode(uri)
    assert img.size == (96, 96) and img.format == "JPEG" and where == ""
    pixels = np.asarray(img.convert("RGB")).astype(int)
    greenish = (pixels[..., 1] > 150) & (pixels[..., 0] < 120) & (pixels[..., 2] < 120)
    magenta = (pixels[..., 0] > 150) & (pixels[..., 2] > 150) & (pixels[..., 1] < 120)
    assert greenish.sum() > 20 and magenta.sum() > 20  # both contours drawn
    assert len(uri) < 12_000  # small
    vol = np.zeros((32, 32, 8), np.int64)
    vol[10:20, 10:20, 5] = 1
    vol[12:14, 12:14, 2] = 1
    uri3, where3 = thumbnail(rng.random((1, 32, 32, 8)), vol, np.zeros_like(vol), size=64)
    assert where3 == "slice 6/8" and _decode(uri3).size == (64, 64)
    with pytest.raises(ValueError, match="differ in shape"):
        thumbnail(rng.random((32, 32)), ref, ref)


def test_build_gallery_keeps_what_it_could_draw():
    picks = pd.DataFrame(
        {
            "case_id": ["a", "b", "a"],
            "attribute": ["race", "race", "sex"],
            "group": ["X", "X", "F"],
            "score": [0.1, 0.2, 0.1],
        }
    )
    asked = []

    def draw(ids):
        asked.append(list(ids))
        return {"a": ("data:image/jpeg;base64,AAAA", "")}

    g = build_gallery(picks, draw, metric="dice")
    assert asked == [["a", "b"]]  # each case drawn once
    assert [e["case_id"] for e in g.entries] == ["a", "a"] and "1 case(s) not drawn (b: no image found)" in g.notes[0]


def _png(path, arr):
    Image.fromarray(arr.astype(np.uint8)).save(path)


def test_folder_gallery_reads_images_and_masks(tmp_path, cases):
    rng = np.random.default_rng(1)
    for d in ("img", "pred", "ref"):
        (tmp_path / d).mkdir()
    table = cases.head(12).copy()
    for i, cid in enumerate(table["case_id"]):
        ref = np.zeros((40, 40), np.uint8)
        ref[10:30, 10:30] = 1
        _png(tmp_path / "ref" / f"{cid}.png", ref)
        _png(tmp_path / "pred" / f"{cid}.png", np.roll(ref, i % 5, axis=0))
        if i != 3:  # one image missing: a note, not an error
            _png(tmp_path / "img" / f"{cid}_0000.png", rng.integers(0, 255, (40, 40, 3)))
    assert set(list_images(tmp_path / "img")) >= {table["case_id"].iloc[0], f"{table['case_id'].iloc[0]}_0000"}
    audit = audit_table(table, ["sex"], n_boot=0, discovery=False)
    g = FolderGallery(tmp_path / "img", tmp_path / "pred", tmp_path / "ref", per_group=6).build(table, audit)
    assert len(g.entries) >= 10 and all(_decode(e["src"]).size == (96, 96) for e in g.entries)
    missing = table["case_id"].iloc[3]
    assert missing not in {e["case_id"] for e in g.entries} and f"{missing}: no image" in g.notes[0]
    # a broken source never stops the report: the gallery becomes a note
    out = render_html(
        audit,
        tmp_path / "r.html",
        cases=table,
        gallery=FolderGallery(tmp_path / "img", tmp_path / "nope", tmp_path / "ref"),
    )
    assert "gallery not drawn" in out.read_text() or "no masks" in out.read_text()


def test_score_with_images_shows_the_failing_cases(tmp_path):
    rng = np.random.default_rng(0)
    for d in ("preds", "refs", "images"):
        (tmp_path / d).mkdir()
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    ids = [f"pt{i:02d}" for i in range(8)]
    for i, cid in enumerate(ids):
        ref = np.zeros((20, 18, 6), np.uint8)
        ref[5:14, 4:12, 1:5] = 1
        pred = np.roll(ref, i % 4, axis=0)
        nib.save(nib.Nifti1Image(ref, affine), str(tmp_path / "refs" / f"{cid}.nii.gz"))
        nib.save(nib.Nifti1Image(pred, affine), str(tmp_path / "preds" / f"{cid}.nii.gz"))
        nib.save(
            nib.Nifti1Image(rng.normal(size=ref.shape).astype(np.float32), affine),
            str(tmp_path / "images" / f"{cid}_0000.nii.gz"),
        )
    pd.DataFrame({"case_id": ids, "race": ["A", "B"] * 4}).to_csv(tmp_path / "meta.csv", index=False)
    out = tmp_path / "audit"
    try:
        main(
            [
                "score",
                str(tmp_path / "preds"),
                str(tmp_path / "refs"),
                "--meta",
                str(tmp_path / "meta.csv"),
                "--out",
                str(out),
                "--images",
                str(tmp_path / "images"),
                "--bootstrap",
                "20",
                "--workers",
                "1",
                "--metric",
                "dice",
                "--no-discovery",
            ]
        )
    except SystemExit as exc:
        assert not exc.code
    page = (out / "report.html").read_text()
    assert 'id="gallery"' in page and page.count('class="thumb"') == 8  # 4 per race group
    assert re.search(r"slice \d/6", page)
    assert json.loads((out / "audit.json").read_text())["inputs"]["images"] == str(tmp_path / "images")
    with pytest.raises(SystemExit) as err:
        main(
            [
                "score",
                "--nnunet",
                str(tmp_path / "x.json"),
                "--meta",
                str(tmp_path / "meta.csv"),
                "--out",
                str(out),
                "--images",
                str(tmp_path / "images"),
            ]
        )
    assert err.value.code == 2


# ---- training view -----------------------------------------------------------------------------


def _fake_run(root, history):
    root.mkdir(parents=True)
    history.to_csv(root / "history.csv", index=False)
    record = {
        "status": "completed",
        "name": "x",
        "model": "vit_seg",
        "objective": "group_dro",
        "select": "worst_group",
        "best_epoch": 3,
        "num_classes": 2,
        "in_channels": 3,
        "spatial_dims": 2,
        "image_shape": [3, 8, 8],
        "group_names": ["Asian", "Black", "White"],
        "num_groups": 3,
        "config_hash": "abc",
    }
    (root / "run.json").write_text(json.dumps(record))
    return root


def test_training_view_of_a_run(tmp_path, cases):
    epochs = np.arange(1, 6)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 1 / epochs,
            "val_dice": 0.5 + 0.05 * epochs,
            "val_worst_dice": [0.3, np.nan, 0.45, 0.44, 0.46],
            "val_worst_group": "Black",
            "best_epoch": [1, 1, 3, 3, 3],
            "obj/q_0": 0.3,
            "obj/q_1": 0.4,
            "obj/q_2": 0.3,
            "obj/max_weight": 2.0,
        }
    )
    view = TrainingView.from_run(_fake_run(tmp_path / "run", history))
    assert view is not None and view.best_epoch == 3 and view.group_names == ["Asian", "Black", "White"]
    figs = build_figures(None, training=view)
    assert set(figs) == {"training/curves", "training/obj/q", "training/obj/max_weight"}
    labels = [t.get_text() for t in figs["training/obj/q"].axes[0].get_legend().get_texts()]
    assert labels == ["Asian", "Black", "White"]
    audit = audit_table(cases, ["race"], n_boot=0, discovery=False)
    page = render_html(audit, tmp_path / "r.html", training=view).read_text()
    assert 'id="training"' in page and "selected epoch <b>3</b>" in page and "worst group 0.450 (Black)" in page
    assert TrainingView.from_run(tmp_path / "missing") is None
    assert view.subgroups is None and "Subgroups found by the first stage" not in page


def test_training_view_shows_the_first_stage_subgroups(tmp_path, cases):
    history = pd.DataFrame({"epoch": [1, 2], "val_dice": [0.5, 0.6], "best_epoch": [1, 2]})
    run = _fake_run(tmp_path / "run", history)
    (run / "first_stage").mkdir()
    summary = pd.DataFrame(
        {
            "group": ["White", "White"],
            "subgroup": ["c0", "c1"],
            "n": [150, 40],
            "mean_dice": [0.88, 0.61],
            "hidden": [2, 25],
            "purity": [2 / 150, 25 / 40],
            "recall": [2 / 27, 25 / 27],
        }
    )
    summary.to_csv(run / "first_stage" / "subgroup_summary.csv", index=False)
    view = TrainingView.from_run(run)
    audit = audit_table(cases, ["race"], n_boot=0, discovery=False)
    page = render_html(audit, tmp_path / "r.html", training=view).read_text()
    assert "Subgroups found by the first stage" in page
    assert "<td>c1</td><td>40</td><td>0.610</td><td>25</td><td>0.625</td><td>0.926</td>" in page


# ---- comparison views ---------------------------------------------------------------------------


def _evaluated(root, cases, shift):
    """A folder shaped like an evaluated run (cases.csv, audit.json, summary.json) of shifted Dice."""
    root.mkdir(parents=True)
    c = cases.assign(dice=(cases["dice"] + shift).clip(0, 1))
    c = c.assign(iou=c["dice"] / (2 - c["dice"]))
    c.to_csv(root / "cases.csv", index=False)
    write_json(root / "audit.json", audit_table(c, ["race"], metrics=("dice", "iou"), n_boot=50, discovery=False))
    write_json(root / "summary.json", {"n_cases": len(c)})
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cases):
    root = tmp_path_factory.mktemp("runs")
    return [_evaluated(root / n, cases, s) for n, s in (("erm", 0.0), ("better", 0.05), ("same", 0.0))]


def test_paired_differences_give_verdicts(runs):
    paired = paired_differences(runs, names=["ERM", "Better", "Same"], n_boot=200)
    assert list(paired.columns) == ["method", "metric", "diff", "low", "high", "verdict", "n_cases"]
    better = paired[paired["method"] == "Better"].set_index("metric")
    assert set(better.index) == {"dice", "worst_dice", "es_dice"} and (better["n_cases"] == 600).all()
    assert 0.03 < better.loc["dice", "diff"] <= 0.05 and better.loc["dice", "verdict"] == "better"
    assert better.loc["dice", "low"] > 0 and better.loc["worst_dice", "verdict"] == "better"
    same = paired[paired["method"] == "Same"]
    assert (same["diff"] == 0).all() and (same["verdict"] == "no clear difference").all()
    swapped = paired_differences(runs, names=["ERM", "Better", "Same"], baseline=1, n_boot=100)
    assert (swapped.loc[swapped["metric"] == "dice", "verdict"] == "worse").all()


def test_comparison_report_has_every_view(runs, tmp_path):
    path = comparison_report(
        runs,
        tmp_path / "cmp.html",
        names=["ERM", "Better", "Same"],
        audit_run=runs[1],
        n_boot=100,
        provenance={"note": "test"},
    )
    page = htmllib.unescape(path.read_text())
    for section in ('id="findings"', 'id="comparison"', 'id="metric-dice"', 'id="provenance"'):
        assert section in page
    assert 'data-fig="comparison"' in page and 'data-fig="paired"' in page
    assert "Paired differences to ERM" in page and ">better<" in page and "Paper-style table" in page
    assert "Audit of Better" in page and page.index("Better vs ERM") < page.index("Audit of Better")
    assert "Highest Dice: Better with" in page and "Better vs ERM: Dice +0.0" in page
    assert "evaluated runs: ERM:" in page and ">note<" in page
    out = tmp_path / "cli.html"
    try:
        main(["compare", *map(str, runs[:2]), "--format", "html", "--out", str(out)])
    except SystemExit as exc:
        assert not exc.code
    assert 'id="comparison"' in out.read_text() and 'id="metric-dice"' not in out.read_text()
    with pytest.raises(SystemExit) as err:
        main(["compare", *map(str, runs[:2]), "--format", "html"])
    assert err.value.code == 2


def test_benchmark_report_from_seed_aggregate(tmp_path):
    from duetfair.experiments.methods import aggregate_seeds, benchmark_markdown, benchmark_tables

    rows = []
    for seed, (a, b) in enumerate([(0.70, 0.75), (0.60, 0.66), (0.80, 0.84), (0.65, 0.70), (0.75, 0.80)]):
        rows.append({"key": "erm", "method": "ERM", "seed": seed, "es_dice": a, "dice": a, "worst_dice": a - 0.1})
        rows.append({"key": "x", "method": "X", "seed": seed, "es_dice": b, "dice": b, "worst_dice": a - 0.1})
    few = aggregate_seeds(pd.DataFrame(rows[:6]))  # 3 seeds: the interval is their range, no verdict
    thin = seed_comparison_report(few, benchmark_tables(few), "erm", tmp_path / "t.html").read_text()
    assert 'class="verdict-too-few-seeds"' in thin and 'class="verdict-better"' not in thin
    assert "3 seeds are too few for a verdict" in benchmark_markdown(few)
    agg = aggregate_seeds(pd.DataFrame(rows))
    path = seed_comparison_report(
        agg,
        benchmark_tables(agg),
        "erm",
        tmp_path / "b.html",
        notes=["three seeds"],
        provenance=provenance(seed="0, 1, 2"),
    )
    page = htmllib.unescape(path.read_text())
    assert "Paired differences to ERM" in page and "three seeds" in page and "verdict" in page
    header = re.search(r"<tr><th>method</th>(.*?)</tr>", page).group(1)
    assert header.count("<th>") == 3 and header.index("ES-Dice") < header.index("Worst-group Dice")
    row = re.search(r"<tr><td>X</td>(.*?)</tr>", page).group(1)
    better = r'<td>\+0\.050 \(\+0\.0[45]\d to \+0\.0[56]\d\)<br><span class="verdict-better">better</span></td>'
    assert re.match(better, row)
    assert '<td>+0.000 (+0.000 to +0.000)<br><span class="verdict-no-clear-difference">' in row
    assert 'id="metric-' not in page  # no audit in a benchmark report


def test_provenance_and_refusals(tmp_path, cases):
    prov = provenance(config="a: 1\n", data="my data", seed=3, run="runs/x")
    assert {"duetfair", "command", "date", "seed", "data", "config", "run"} <= set(prov)
    audit = audit_table(cases, ["race"], n_boot=0, discovery=False)
    page = render_html(audit, tmp_path / "r.html", provenance=prov).read_text()
    assert "<summary>config</summary><pre>a: 1\n</pre>" in page and "my data" in page
    default = render_html(audit, tmp_path / "d.html").read_text()
    assert "0 (bootstrap)" in default and 'id="provenance"' in default
    with pytest.raises(DuetfairError, match="expected an audit or a comparison"):
        render_html(None, tmp_path / "x.html")
    assert isinstance(Gallery().entries, list)


def test_reference_rows_are_never_the_best(tmp_path):
    from duetfair.audit.method_findings import comparison_findings

    frame = pd.DataFrame(
        {"method": ["ERM", "FairDRO", "Oracle"], "contender": [True, True, False], "dice": [0.7, 0.75, 0.9]}
    )
    best = [f for f in comparison_findings(frame) if f["kind"] == "best_method"]
    assert [f["method"] for f in best] == ["FairDRO"]
    assert all(f["method"] == "Oracle" for f in comparison_findings(frame.drop(columns="contender"))[:1])
