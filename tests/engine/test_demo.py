"""Demo and multi-seed benchmark: a fast smoke run in the default suite, the real
``duetfair demo --quick`` as a slow test, and the across-seed aggregation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duetfair.experiments.methods import aggregate_seeds, benchmark_markdown, run_benchmark, run_demo, seed_ci

TINY_DEMO = [
    "data.args.n_train=16",
    "data.args.n_val=8",
    "data.args.n_test=8",
    "model.args.dim=32",
    "model.args.depth=1",
    "model.args.patch_size=8",
    "model.args.head_channels=16",
    "model.args.decoder_channels=[8,8,8]",
    "train.epochs=1",
    "train.batch_size=8",
]


def test_demo_smoke(tmp_path: Path) -> None:
    logs: list[str] = []
    md = run_demo(tmp_path / "demo", quick=True, methods=("erm", "fair_dro"), extra=TINY_DEMO, log=logs.append)
    assert md.startswith("| Method | ES-Dice") and "FairDRO (dMoE + DRO)" in md
    for name in ("comparison.md", "comparison.json", "comparison.csv", "report.html"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert json.loads((tmp_path / "demo" / "comparison.json").read_text())["attribute"] == "race"
    # a second call reuses the finished runs instead of training again
    logs.clear()
    run_demo(tmp_path / "demo", quick=True, methods=("erm", "fair_dro"), extra=TINY_DEMO, log=logs.append)
    assert sum("reusing finished run" in line for line in logs) == 2


def test_demo_prints_a_line_per_epoch_with_the_time_left(tmp_path: Path) -> None:
    """Without a terminal nothing else would show progress: one line per epoch of the whole demo,
    with the method, the time elapsed and an estimate of what is left; one torch thread."""
    logs: list[str] = []
    extra = [e for e in TINY_DEMO if not e.startswith("train.epochs")] + ["train.epochs=2"]
    run_demo(tmp_path / "demo", quick=True, methods=("erm", "fair_dro"), extra=extra, log=logs.append)
    lines = [line for line in logs if line.strip().startswith("training:")]
    assert len(lines) == 4, logs
    assert "1/4 epochs (ERM epoch 1/2" in lines[0] and "elapsed, about" in lines[0] and "left" in lines[0]
    assert "4/4 epochs (FairDRO (dMoE + DRO) epoch 2/2" in lines[-1] and lines[-1].endswith("done")
    assert json.loads((tmp_path / "demo" / "erm" / "run.json").read_text())  # trained
    import yaml

    cfg = yaml.safe_load((tmp_path / "demo" / "erm" / "config.yaml").read_text())
    assert cfg["train"]["threads"] == 1


def test_benchmark_with_dice_only_and_a_report_per_run(tmp_path: Path) -> None:
    """``--set eval.metrics=[dice]`` works (no IoU anywhere), and every run folder has its report."""
    result = run_benchmark(
        tmp_path / "b",
        methods=("erm", "dmoe"),
        seeds=(0,),
        extra=[*TINY_DEMO, "eval.metrics=[dice]"],
        n_boot=10,
        log=lambda s: None,
    )
    assert "ERM" in result["markdown"]
    for m in ("erm", "dmoe"):
        run = tmp_path / "b" / "seed0" / m
        assert (run / "report.html").stat().st_size > 1000
        assert set(json.loads((run / "audit.json").read_text())["metrics"]) == {"dice"}


def test_benchmark_smoke_two_seeds(tmp_path: Path) -> None:
    result = run_benchmark(
        tmp_path / "b", methods=("erm", "dmoe"), seeds=(0, 1), extra=TINY_DEMO, n_boot=10, log=lambda s: None
    )
    agg = pd.DataFrame(result["aggregate"])
    assert list(agg["key"]) == ["erm", "dmoe"] and (agg["n_seeds"] == 2).all()
    assert agg.loc[agg["key"] == "erm", "dice_vs_erm"].iloc[0] == pytest.approx(0.0)
    assert (tmp_path / "b" / "methods.md").is_file() and (tmp_path / "b" / "methods.json").is_file()
    assert "verdict" in result["markdown"]


def test_benchmark_on_validation_keeps_the_test_evaluation(tmp_path: Path) -> None:
    """Choosing on validation writes methods-val.* and <run>/eval-val; the test outputs stay apart."""
    out = tmp_path / "b"
    test = run_benchmark(out, methods=("erm", "dmoe", "oracle"), seeds=(0,), extra=TINY_DEMO, n_boot=10, log=print)
    before = (out / "seed0" / "dmoe" / "summary.json").read_text()
    val = run_benchmark(
        out, methods=("erm", "dmoe", "oracle"), seeds=(0,), extra=TINY_DEMO, n_boot=10, split="val", log=print
    )
    assert (out / "methods-val.md").is_file() and (out / "methods.md").is_file()
    assert json.loads((out / "seed0" / "dmoe" / "eval-val" / "summary.json").read_text())["split"] == "val"
    assert (out / "seed0" / "dmoe" / "summary.json").read_text() == before
    assert val["split"] == "val" and val["baselines"] == ["erm", "dmoe"]
    assert "Paired difference to dMoE" in test["markdown"] and "Oracle (knows the subtype)" in test["markdown"]
    # the oracle routes on the true subtype and draws it as often as the typical cases
    cfg = json.loads((out / "seed0" / "oracle" / "run.json").read_text())
    assert cfg["route_attributes"] == ["race", "hidden_subtype"]


def test_aggregate_seeds_paired_differences() -> None:
    rows = []
    for seed, (a, b) in enumerate([(0.70, 0.75), (0.60, 0.66), (0.80, 0.84)]):
        rows.append({"key": "erm", "method": "ERM", "seed": seed, "es_dice": a, "dice": a})
        rows.append({"key": "x", "method": "X", "seed": seed, "es_dice": b, "dice": b})
    agg = aggregate_seeds(pd.DataFrame(rows))
    x = agg[agg["key"] == "x"].iloc[0]
    assert x["es_dice"] == pytest.approx(np.mean([0.75, 0.66, 0.84]))
    assert x["es_dice_vs_erm"] == pytest.approx(np.mean([0.05, 0.06, 0.04]))
    lo, hi = x["es_dice_vs_erm_ci"]
    assert 0.04 - 1e-9 <= lo <= hi <= 0.06 + 1e-9
    md = benchmark_markdown(agg)
    assert "ES-Dice: better" not in md and "3 seeds are too few for a verdict" in md  # 3 seeds: their range
    assert "Paired difference to ERM" in md and "| ERM |" in md.split("Paired")[0]
    more = [
        {**r, "seed": r["seed"] + 3 * k, "es_dice": r["es_dice"] + 0.001 * k, "dice": r["dice"] + 0.001 * k}
        for k in range(2)
        for r in rows
    ]
    md = benchmark_markdown(aggregate_seeds(pd.DataFrame(more)))
    assert "ES-Dice: better" in md  # 6 seeds, every one improved: the interval excludes 0
    assert np.isnan(seed_ci(np.array([0.5]))[0])  # one seed: no interval


@pytest.mark.slow
def test_cli_demo_quick_end_to_end(tmp_path: Path) -> None:
    from duetfair.cli import main

    try:
        main(["demo", "--quick", "--out", str(tmp_path / "demo")])
    except SystemExit as exc:
        assert not exc.code
    table = (tmp_path / "demo" / "comparison.md").read_text()
    for name in ("ERM", "GroupDRO", "FEBS", "MoE", "dMoE", "FairDRO"):
        assert f"| {name}" in table
    assert (tmp_path / "demo" / "report.html").stat().st_size > 1000


def test_benchmark_config_seeds_and_method_pairing(tmp_path: Path) -> None:
    from duetfair.errors import DuetfairError
    from duetfair.experiments.methods import method_config, seed_overrides

    assert seed_overrides(3) == ["seed=3", "data.args.seed=3"]
    assert seed_overrides(3, config="manifest_example") == ["seed=3", "data.args.seed=3"]  # its data.args has seed
    (tmp_path / "fixed.yaml").write_text("extends: fundus2d.yaml\ndata: {kind: manifest, args: {path: m.csv}}\n")
    assert seed_overrides(3, config=tmp_path / "fixed.yaml") == ["seed=3"]  # no split seed: split kept
    cfg = method_config("fair_dro", ["seed=2"], config="manifest_example")
    assert (cfg.method, cfg.model.name, cfg.objective.name, cfg.seed) == ("fair_dro", "vit_seg_dmoe", "fair_dro", 2)
    assert cfg.data.kind == "manifest"
    with pytest.raises(DuetfairError, match="drop --set method/objective.name/model.name"):
        method_config("erm", ["objective.name=group_dro"], config="manifest_example")


@pytest.mark.parametrize("task", ["fundus2d", "lesion2d", "tumor3d"])
def test_every_size_and_benchmark_method_gives_a_valid_config(task: str) -> None:
    from duetfair.experiments.methods import BENCH_METHODS, SIZES, method_config, size_overrides

    family = "3d" if task == "tumor3d" else "2d"
    for size in SIZES[family]:
        for method in BENCH_METHODS:
            # the paper size asks for a GPU; the config itself must be valid anywhere
            cfg = method_config(method, [*size_overrides(task, size), "train.device=auto"], task=task)
            assert cfg.method == method
    with pytest.raises(Exception, match="size 'huge'"):
        size_overrides(task, "huge")


def test_tumor3d_bench_budget_is_the_converged_one() -> None:
    """The 3D ``bench`` size trains 24 epochs with a 2-epoch warm-up (ERM had not converged at 16 on
    generator version 2) and validates on 128 cases, so that the rarest stage (5 %) has about six
    cases to select a checkpoint by; ``quick`` keeps no warm-up."""
    from duetfair.experiments.methods import method_config, size_overrides

    bench = method_config("erm", size_overrides("tumor3d", "bench"), task="tumor3d")
    assert (bench.train.epochs, bench.schedule.warmup_epochs) == (24, 2)
    assert bench.data.args["n_val"] == 128
    quick = method_config("erm", size_overrides("tumor3d", "quick"), task="tumor3d")
    assert (quick.train.epochs, quick.schedule.warmup_epochs) == (6, 0)
