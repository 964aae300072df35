"""Bad-input corpus: every command answers bad input with exit 2 and one line naming the problem.

Each case is (name, command line, text the error must contain). The command runs in-process
through the console entry point; the test asserts exit code 2, exactly one line on stderr starting
with ``error:``, no traceback, and (for commands that write) no half-written output left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from duetfair.cli import main
from helpers import TINY, sets


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of good and bad inputs, and one tiny trained run (``w/run``)."""
    root = tmp_path_factory.mktemp("corpus")
    n = 40
    pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "race": ["A", "B"] * (n // 2),
            "age": range(n),
            "dice": np.linspace(0.3, 0.95, n),
            "hd95": np.linspace(1, 20, n),
        }
    ).to_csv(root / "cases.csv", index=False)
    (root / "file.txt").write_text("x")
    (root / "folder").mkdir()
    (root / "empty.csv").write_text("")
    (root / "header_only.csv").write_text("case_id,race,dice\n")
    (root / "bad.parquet").write_bytes(b"not parquet")
    (root / "binary.csv").write_bytes(b"\x00\x01\x02\xff\xfe")
    (root / "text_dice.csv").write_text("case_id,race,dice\na,A,good\nb,B,0.5\n")
    (root / "dice_big.csv").write_text("case_id,race,dice\na,A,1.5\nb,B,0.5\n")
    (root / "dice_neg.csv").write_text("case_id,race,dice\na,A,-0.1\nb,B,0.5\n")
    (root / "dice_inf.csv").write_text("case_id,race,dice\na,A,inf\nb,B,0.5\n")
    (root / "hd_neg.csv").write_text("case_id,race,hd95\na,A,-3\nb,B,5\n")
    (root / "one_group.csv").write_text("case_id,race,dice\na,A,0.4\nb,A,0.5\n")
    (root / "all_unknown.csv").write_text("case_id,race,dice\na,,0.4\nb,unknown,0.5\n")
    (root / "dup.csv").write_text("case_id,race,dice\na,A,0.9\na,A,0.9\nb,B,0.5\n")
    (root / "nan_dice.csv").write_text("case_id,race,dice\na,A,\nb,B,\n")
    (root / "bad.yaml").write_text("train: [1, 2\n")
    (root / "empty.yaml").write_text("")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "dup_keys.yaml").write_text("extends: fundus2d_erm.yaml\ntrain:\n  epochs: 1\ntrain:\n  epochs: 2\n")
    (root / "bomb.yaml").write_text(
        "extends: fundus2d_erm.yaml\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
    )
    (root / "cycle_a.yaml").write_text("extends: cycle_b.yaml\n")
    (root / "cycle_b.yaml").write_text("extends: cycle_a.yaml\n")
    (root / "unknown_key.yaml").write_text("extends: fundus2d_erm.yaml\ntrian: {epochs: 1}\n")
    (root / "bad_kind.yaml").write_text("extends: fundus2d_erm.yaml\ndata: {kind: dicom}\n")
    (root / "missing_parent.yaml").write_text("extends: nowhere.yaml\n")
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(root / "tiny.png")
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(root / "ok.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "meta.csv").write_text("case_id,race\nc0,A\n")
    (root / "preds").mkdir()
    (root / "refs").mkdir()
    for d in ("preds", "refs"):
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(root / d / "c0.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "preds" / "c1.png")
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(root / "refs" / "c1.png")
    try:
        main(["train", "fundus2d_erm", *sets(*TINY), "--out", str(root / "run")])
    except SystemExit as exc:
        assert not exc.code
    # a damaged copy of the run, one per kind of damage
    import shutil

    for name in ("run_badjson", "run_nojson", "run_badckpt", "run_otherckpt", "run_nan"):
        shutil.copytree(root / "run", root / name)
    for name in ("run_nobest", "run_bestdir", "run_deepjson", "run_randomckpt", "run_zipckpt"):
        shutil.copytree(root / "run", root / name)
    (root / "run_nobest" / "checkpoints" / "best.pt").unlink()  # run.json says an epoch was selected
    (root / "run_bestdir" / "checkpoints" / "best.pt").unlink()
    (root / "run_bestdir" / "checkpoints" / "best.pt").mkdir()
    (root / "run_deepjson" / "run.json").write_text("[" * 100000 + "]" * 100000)
    (root / "run_randomckpt" / "checkpoints" / "best.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "run_zipckpt" / "checkpoints" / "best.pt").write_bytes(b"PK\x03\x04" + bytes(600))
    (root / "pm_escape.csv").write_text("image\n../../etc/passwd\n")
    (root / "pm_abs.csv").write_text("image\n/etc/passwd\n")
    (root / "pm_noimage.csv").write_text("case_id\na\n")
    (root / "pm_empty.csv").write_text("image,case_id\n,a\n")
    (root / "run_badjson" / "run.json").write_text("{not json")
    (root / "run_nojson" / "run.json").unlink()
    (root / "run_badckpt" / "checkpoints" / "best.pt").write_bytes(b"garbage")
    import torch

    state = torch.load(root / "run_nan" / "checkpoints" / "best.pt", weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, root / "run_nan" / "checkpoints" / "best.pt")
    rec = json.loads((root / "run_otherckpt" / "run.json").read_text())
    rec["num_classes"] = 5
    (root / "run_otherckpt" / "run.json").write_text(json.dumps(rec))
    return root


def _cases(w: Path) -> list[tuple[str, list[str], str]]:
    c, r = str(w / "cases.csv"), str(w / "run")
    audit = ["audit", c, "--by", "race", "--no-discovery", "--bootstrap", "0"]
    out = "OUT"  # replaced by a folder of the case's own, which must not exist afterwards
    return [
        # ---- audit: the table ----
        ("audit missing table", ["audit", str(w / "nope.csv"), "--by", "race"], "does not exist"),
        ("audit table is a folder", ["audit", str(w / "folder"), "--by", "race"], "not a file"),
        ("audit empty table", ["audit", str(w / "empty.csv"), "--by", "race"], "empty"),
        ("audit header only", ["audit", str(w / "header_only.csv"), "--by", "race"], "empty"),
        ("audit corrupt parquet", ["audit", str(w / "bad.parquet"), "--by", "race"], "cannot be read"),
        ("audit binary csv", ["audit", str(w / "binary.csv"), "--by", "race"], ""),
        ("audit text metric", ["audit", str(w / "text_dice.csv"), "--by", "race"], "not numeric"),
        ("audit dice > 1", ["audit", str(w / "dice_big.csv"), "--by", "race"], "outside [0, 1]"),
        ("audit dice < 0", ["audit", str(w / "dice_neg.csv"), "--by", "race"], "outside [0, 1]"),
        ("audit dice inf", ["audit", str(w / "dice_inf.csv"), "--by", "race"], "outside [0, 1]"),
        ("audit negative hd95", ["audit", str(w / "hd_neg.csv"), "--by", "race", "--metric", "hd95"], "negative"),
        ("audit one group", ["audit", str(w / "one_group.csv"), "--by", "race"], "at least 2 groups"),
        ("audit all unknown", ["audit", str(w / "all_unknown.csv"), "--by", "race"], "no non-missing values"),
        ("audit duplicate case", ["audit", str(w / "dup.csv"), "--by", "race"], "duplicate row"),
        ("audit no finite metric", ["audit", str(w / "nan_dice.csv"), "--by", "race"], "no finite value"),
        # ---- audit: the options ----
        ("audit unknown column", [*audit[:3], "sex"], "'sex' not in the table"),
        ("audit unknown metric", [*audit, "--metric", "nsd"], "'nsd' not in the table"),
        ("audit continuous by", ["audit", c, "--by", "age"], "looks continuous"),
        ("audit metric as by", ["audit", c, "--by", "dice"], "looks continuous"),
        ("audit empty intersection part", ["audit", c, "--by", "race+"], "columns joined by"),
        ("audit bins no equals", [*audit, "--bins", "age"], "ATTR=EDGE"),
        ("audit bins no name", [*audit, "--bins", "=20,40"], "missing attribute name"),
        ("audit bins not numbers", [*audit, "--bins", "age=a,b"], "numbers"),
        ("audit bins decreasing", [*audit, "--bins", "age=40,20"], "strictly increasing"),
        ("audit bins inf", [*audit, "--bins", "age=inf"], "finite"),
        ("audit bins closure", [*audit, "--bins", "age=20:middle"], "'left' or 'right'"),
        ("audit bins unknown column", [*audit, "--bins", "weight=50"], "'weight' not in the table"),
        ("audit bins on text", ["audit", c, "--by", "race", "--bins", "race=1"], "not numeric"),
        ("audit bins on intersection", ["audit", c, "--by", "race+age", "--bins", "race+age=1"], "not in the table"),
        ("audit es variant", [*audit, "--es-variant", "max"], "'max' is not one of"),
        ("audit negative bootstrap", [*audit, "--bootstrap", "-5"], ">= 0"),
        ("audit huge bootstrap", ["audit", c, "--by", "race", "--bootstrap", "1000000000"], "at most"),
        ("audit negative seed", [*audit, "--seed", "-1"], "seed"),
        ("audit huge seed", [*audit, "--seed", str(2**70)], "seed"),
        ("audit min support 0", ["audit", c, "--by", "race", "--min-support", "0"], "fraction"),
        ("audit min support 2", ["audit", c, "--by", "race", "--min-support", "2"], "fraction"),
        ("audit max length 0", ["audit", c, "--by", "race", "--max-length", "0"], "max-length"),
        ("audit class absent", [*audit, "--class", "1"], "no 'class' column"),
        ("audit format", [*audit, "--format", "pdf"], "--format: 'pdf' is not one of 'json', 'md', 'html'"),
        ("audit html without out", [*audit, "--format", "html"], "--out"),
        ("audit fail syntax", [*audit, "--fail", "dice=0.5"], "expected '<metric>"),
        ("audit fail direction", [*audit, "--metric", "hd95", "--fail", "hd95<3"], "hd95>3"),
        ("audit fail unknown metric", [*audit, "--fail", "nsd<0.5"], "nsd"),
        ("audit cvar method", [*audit, "--cvar-method", "median"], "median"),
        ("audit fdr", ["audit", c, "--by", "race", "--fdr", "2"], "fdr"),
        ("audit out is folder", [*audit, "--format", "md", "--out", str(w / "folder")], "it is a folder"),
        ("audit out under a file", [*audit, "--format", "md", "--out", str(w / "file.txt" / "a.md")], "cannot use"),
        ("audit group spec missing", [*audit, "--group-spec", str(w / "nope.json")], "does not exist"),
        ("audit group spec bad json", [*audit, "--group-spec", str(w / "file.txt")], "cannot be parsed"),
        ("audit hidden column missing", [*audit, "--hidden", "morphology"], "morphology"),
        # ---- score ----
        (
            "score missing preds",
            ["score", str(w / "nope"), str(w / "refs"), "--meta", str(w / "meta.csv"), "--out", out],
            "not found",
        ),
        (
            "score missing refs",
            ["score", str(w / "preds"), str(w / "nope"), "--meta", str(w / "meta.csv"), "--out", out],
            "not found",
        ),
        (
            "score shape mismatch",
            ["score", str(w / "preds"), str(w / "refs"), "--meta", str(w / "meta.csv"), "--out", out],
            "shape",
        ),
        (
            "score missing meta",
            ["score", str(w / "refs"), str(w / "refs"), "--meta", str(w / "nope.csv"), "--out", out],
            "does not exist",
        ),
        (
            "score bad empty",
            ["score", str(w / "refs"), str(w / "refs"), "--meta", str(w / "meta.csv"), "--out", out, "--empty", "zero"],
            "'zero'",
        ),
        (
            "score bad labels",
            ["score", str(w / "refs"), str(w / "refs"), "--meta", str(w / "meta.csv"), "--out", out, "--labels", "a,b"],
            "labels",
        ),
        (
            "score bad region",
            [
                "score",
                str(w / "refs"),
                str(w / "refs"),
                "--meta",
                str(w / "meta.csv"),
                "--out",
                out,
                "--region",
                "disc",
            ],
            "region",
        ),
        (
            "score bad workers",
            ["score", str(w / "refs"), str(w / "refs"), "--meta", str(w / "meta.csv"), "--out", out, "--workers", "0"],
            "workers",
        ),
        ("score no inputs", ["score", "--meta", str(w / "meta.csv"), "--out", out], ""),
        (
            "score bad nnunet",
            ["score", "--nnunet", str(w / "file.txt"), "--meta", str(w / "meta.csv"), "--out", out],
            "file.txt",
        ),
        # ---- train: config files ----
        ("train missing config", ["train", str(w / "nope.yaml")], "not found"),
        ("train invalid yaml", ["train", str(w / "bad.yaml")], "not valid YAML"),
        ("train empty config", ["train", str(w / "empty.yaml")], "is empty"),
        ("train list config", ["train", str(w / "list.yaml")], "mapping of sections"),
        ("train duplicate keys", ["train", str(w / "dup_keys.yaml")], "given twice"),
        ("train alias bomb", ["train", str(w / "bomb.yaml")], "expands to more than"),
        ("train extends cycle", ["train", str(w / "cycle_a.yaml")], "cycle"),
        ("train unknown key", ["train", str(w / "unknown_key.yaml")], "trian: unknown key"),
        ("train bad data kind", ["train", str(w / "bad_kind.yaml")], "'dicom'"),
        ("train missing parent", ["train", str(w / "missing_parent.yaml")], "not found"),
        ("train folder without config", ["train", str(w / "folder")], "without config.yaml"),
        # ---- train: overrides ----
        ("train set no equals", ["train", "fundus2d_erm", "--set", "train.epochs"], "KEY=VALUE"),
        ("train set empty key", ["train", "fundus2d_erm", "--set", "=3"], "dotted key"),
        ("train set into value", ["train", "fundus2d_erm", "--set", "seed.x=1"], "is a value"),
        ("train zero epochs", ["train", "fundus2d_erm", "--set", "train.epochs=0"], "train.epochs"),
        ("train negative lr", ["train", "fundus2d_erm", "--set", "optim.lr=-1"], "optim.lr"),
        ("train text batch", ["train", "fundus2d_erm", "--set", "train.batch_size=many"], "train.batch_size"),
        ("train bad select", ["train", "fundus2d_erm", "--set", "train.select=best"], "'best' is not one of"),
        ("train bad method", ["train", "fundus2d_erm", "--set", "method=dmo"], "'dmo' is not one of"),
        ("train bad amp", ["train", "fundus2d_erm", "--set", "train.amp=fp8"], "train.amp"),
        ("train bad device", ["train", "fundus2d_erm", "--set", "train.device=tpu"], "train.device"),
        ("train negative seed", ["train", "fundus2d_erm", "--set", "seed=-1"], "seed"),
        ("train huge seed", ["train", "fundus2d_erm", "--set", f"seed={2**70}"], "seed"),
        ("train zero threads", ["train", "fundus2d_erm", "--set", "train.threads=0"], "train.threads"),
        ("train unknown model", ["train", "fundus2d_erm", "--set", "model.name=resnet"], "unknown name"),
        (
            "train unknown objective",
            [
                "train",
                "fundus2d_erm",
                "--set",
                "objective.name=magic",
                "--set",
                "method=null",
                *sets(*TINY),
                "--out",
                str(w / "r_obj"),
            ],
            "unknown objective",
        ),
        (
            "train unknown objective option",
            [
                "train",
                "fundus2d_fair_dro",
                "--set",
                "objective.args.temperature=2",
                *sets(*TINY),
                "--out",
                str(w / "r_opt"),
            ],
            "unknown option",
        ),
        (
            "train unknown data arg",
            [
                "train",
                "fundus2d_erm",
                "--set",
                "data.args.colour=red",
                *sets(*TINY),
                "--out",
                str(w / "r_arg"),
            ],
            "unknown parameters",
        ),
        (
            "train group attribute",
            [
                "train",
                "fundus2d_erm",
                "--set",
                "data.group_attribute=height",
                *sets(*TINY),
                "--out",
                str(w / "r_ga"),
            ],
            "height",
        ),
        (
            "train route attribute",
            [
                "train",
                "fundus2d_dmoe",
                "--set",
                "model.route_attributes=[race,height]",
                *sets(*TINY),
                "--out",
                str(w / "r_ra"),
            ],
            "height",
        ),
        (
            "train cuda without cuda",
            [
                "train",
                "fundus2d_erm",
                "--set",
                "train.device=cuda",
                *sets(*TINY),
                "--out",
                str(w / "r_cuda"),
            ],
            "CUDA",
        ),
        ("train out exists", ["train", "fundus2d_erm", "--out", r], "already holds a run"),
        ("train resume nothing", ["train", "fundus2d_erm", "--resume", "--out", str(w / "fresh")], "no checkpoint"),
        (
            "train out is file",
            ["train", "fundus2d_erm", *sets(*TINY), "--out", str(w / "file.txt")],
            "cannot use",
        ),
        # ---- evaluate ----
        ("evaluate missing run", ["evaluate", str(w / "nope")], "not found"),
        ("evaluate file as run", ["evaluate", str(w / "file.txt")], "not found"),
        ("evaluate folder not a run", ["evaluate", str(w / "folder")], "missing config.yaml"),
        ("evaluate corrupt run.json", ["evaluate", str(w / "run_badjson")], "not valid JSON"),
        ("evaluate no run.json", ["evaluate", str(w / "run_nojson")], "missing run.json"),
        ("evaluate corrupt checkpoint", ["evaluate", str(w / "run_badckpt")], "best.pt"),
        ("evaluate checkpoint of another model", ["evaluate", str(w / "run_otherckpt")], "does not fit"),
        ("evaluate NaN weights", ["evaluate", str(w / "run_nan")], "NaN or inf"),
        ("evaluate bad checkpoint name", ["evaluate", r, "--checkpoint", "final"], "'final' is not one of 'best'"),
        ("evaluate bad split", ["evaluate", r, "--split", "holdout"], "holdout"),
        ("evaluate bad data config", ["evaluate", r, "--data", str(w / "bad.yaml")], "not valid YAML"),
        ("evaluate negative bootstrap", ["evaluate", r, "--bootstrap", "-1"], "bootstrap"),
        # ---- predict ----
        ("predict missing run", ["predict", str(w / "nope"), str(w / "ok.png"), "--out", out], "not found"),
        ("predict missing input", ["predict", r, str(w / "nope.png"), "--out", out], "does not exist"),
        ("predict corrupt image", ["predict", r, str(w / "corrupt.png"), "--out", out], "cannot read"),
        ("predict tiny image", ["predict", r, str(w / "tiny.png"), "--out", out], "too small"),
        ("predict attr syntax", ["predict", r, str(w / "ok.png"), "--out", out, "--attr", "race"], "NAME=VALUE"),
        ("predict attr unknown", ["predict", r, str(w / "ok.png"), "--out", out, "--attr", "height=2"], "height"),
        ("predict attr value", ["predict", r, str(w / "ok.png"), "--out", out, "--attr", "race=Martian"], "Martian"),
        (
            "predict attr twice",
            ["predict", r, str(w / "ok.png"), "--out", out, "--attr", "race=Black", "--attr", "race=White"],
            "race",
        ),
        ("predict normalize", ["predict", r, str(w / "ok.png"), "--out", out, "--normalize", "minmax"], "minmax"),
        ("predict out is file", ["predict", r, str(w / "ok.png"), "--out", str(w / "file.txt")], "cannot use"),
        # ---- synth ----
        ("synth unknown task", ["synth", "xray2d", "--out", out], "xray2d"),
        ("synth zero cases", ["synth", "fundus2d", "--n", "0", "--out", out], ">= 1"),
        ("synth too many cases", ["synth", "fundus2d", "--n", "1000000000", "--out", out], "at most"),
        ("synth huge image", ["synth", "fundus2d", "--n", "2", "--size", "100000", "--out", out], "GiB"),
        ("synth small image", ["synth", "fundus2d", "--n", "2", "--size", "4", "--out", out], "image_size"),
        ("synth hidden prob", ["synth", "fundus2d", "--n", "2", "--hidden-prob", "2", "--out", out], "hidden_prob"),
        ("synth negative seed", ["synth", "fundus2d", "--n", "2", "--seed", "-3", "--out", out], "seed"),
        ("synth out is file", ["synth", "fundus2d", "--n", "2", "--out", str(w / "file.txt")], "cannot use"),
        # ---- compare / benchmark / init-config / demo ----
        ("compare missing run", ["compare", str(w / "nope")], "not found"),
        ("compare not evaluated", ["compare", r], "duetfair evaluate"),
        ("compare format", ["compare", r, "--format", "docx"], "docx"),
        ("compare names count", ["compare", r, "--name", "a", "--name", "b"], "names"),
        ("benchmark zero seeds", ["benchmark", "--seeds", "0"], "at least 1"),
        ("benchmark unknown task", ["benchmark", "--task", "xray2d"], "xray2d"),
        ("benchmark unknown method", ["benchmark", "--method", "magic"], "magic"),
        ("benchmark unknown size", ["benchmark", "--size", "huge"], "huge"),
        ("init-config missing", ["init-config", str(w / "nope.csv"), "--out", str(w / "x.yaml")], "does not exist"),
        ("init-config not a manifest", ["init-config", str(w / "cases.csv"), "--out", str(w / "x.yaml")], "image"),
        ("demo tiny table", ["demo", "--table-only", "--n", "3", "--out", out], "at least 10"),
        ("demo out is file", ["demo", "--table-only", "--out", str(w / "file.txt")], "cannot use"),
        # ---- damaged run folders and prediction manifests (issue 28) ----
        ("evaluate best.pt gone", ["evaluate", str(w / "run_nobest")], "missing although epoch"),
        ("evaluate best.pt a folder", ["evaluate", str(w / "run_bestdir")], "not a file"),
        ("evaluate deep run.json", ["evaluate", str(w / "run_deepjson")], "nested too deeply"),
        ("evaluate random-bytes checkpoint", ["evaluate", str(w / "run_randomckpt")], "damaged, cut short"),
        ("evaluate broken zip checkpoint", ["evaluate", str(w / "run_zipckpt")], "damaged, cut short"),
        ("predict best.pt gone", ["predict", str(w / "run_nobest"), str(w / "ok.png"), "--out", out], "missing"),
        ("predict manifest escape", ["predict", r, "--manifest", str(w / "pm_escape.csv"), "--out", out], "escapes"),
        ("predict manifest absolute", ["predict", r, "--manifest", str(w / "pm_abs.csv"), "--out", out], "absolute"),
        ("predict manifest no image", ["predict", r, "--manifest", str(w / "pm_noimage.csv"), "--out", out], "image"),
        ("predict manifest no file", ["predict", r, "--manifest", str(w / "pm_empty.csv"), "--out", out], "empty"),
    ]


CASES = [name for name, _, _ in _cases(Path("."))]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_ends_in_one_line_and_exit_2(name: str, w: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, expect = next((a, e) for n, a, e in _cases(w) if n == name)
    out = w / ("out_" + "_".join(name.split()))
    with pytest.raises(SystemExit) as info:
        main([str(out) if a == "OUT" else a for a in args])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    assert expect.lower() in err.lower(), err
    assert not out.exists(), f"{out} was written"


def test_the_corpus_is_wide() -> None:
    assert len(CASES) >= 100 and len(set(CASES)) == len(CASES)
