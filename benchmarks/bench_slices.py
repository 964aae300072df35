"""Do the hidden failure slices find the planted subtype? Precision, recall and F1 over seeds.

For each synthetic suite (``fundus2d``, ``lesion2d``, ``tumor3d``) and seed, a small ERM model is
trained (the settings of ``tests/audit/test_hidden_failure_synthetic.py``: seconds for the 2D
suites, about a minute for ``tumor3d`` on 2 CPU cores) and evaluated on its test split with
``duetfair evaluate`` (which writes the case descriptors of the reference, the prediction and the
model's input image). The case-level table is then audited **without** the ``hidden_subtype``
column; the slice scored is the first significant one of the ``hidden_slices`` list whose scope is
``overall`` or the worst group of the first attribute. Its members are compared with the subtype's
cases of the same scope: precision, recall, F1 (0 when no slice is significant there).

Per suite: the mean over seeds with a 95 % percentile bootstrap interval across seeds, and the
number of seeds with F1 >= 0.6. Writes ``benchmarks/results/bench_slices.json``; runs are kept in
``--runs`` (a finished run is reused).

    python benchmarks/bench_slices.py --seeds 5                  # all three suites, about 8 minutes
    python benchmarks/bench_slices.py --task lesion2d --seeds 2  # quick
    python benchmarks/bench_slices.py --model standin --seeds 5  # the test's stand-in model, 2 minutes
    python benchmarks/bench_slices.py --model bench --runs runs/bench --seeds 5  # the method benchmark's ERM runs

``--model bench`` scores the ERM runs of the published method benchmark (``duetfair benchmark --task
<suite> --size bench --out <runs>/<suite>``: ``<runs>/<suite>/seed<S>/erm``, trained at the
``bench`` size and evaluated on the test split with descriptors); nothing is trained. With
``--export DIR`` it also writes each run's per-case table, cut to what the slice search reads
(case id, class, Dice, the group columns, ``hidden_subtype``, the descriptors with words and the
two error descriptors; 5 significant digits), as ``DIR/<suite>_seed<S>.csv.gz``: the fixtures of
``tests/audit/test_hidden_slices_bench.py``.

    python benchmarks/bench_slices.py --model bench --runs runs/bench --seeds 5 --export tests/audit/data/bench_erm
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.io import write_json  # noqa: E402

TINY_VIT = (
    "model.args.dim=32",
    "model.args.depth=1",
    "model.args.heads=2",
    "model.args.patch_size=8",
    "model.args.head_channels=16",
    "model.args.decoder_channels=[8,8,8]",
    "train.batch_size=8",
)
QUIET = (
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every_epoch=false",
    "train.threads=1",
    "eval.metrics=[dice,iou]",
    "eval.n_boot=0",
    "schedule.warmup_epochs=0",
)
SETUPS = {  # the settings of tests/audit/test_hidden_failure_synthetic.py
    "fundus2d": (
        *TINY_VIT,
        "model.args.patch_size=4",
        "model.args.decoder_channels=[8,8]",
        "data.args.n_train=128",
        "data.args.n_val=16",
        "data.args.n_test=192",
        "data.args.image_size=32",
        "train.epochs=25",
    ),
    "lesion2d": (
        *TINY_VIT,
        "data.args.n_train=128",
        "data.args.n_val=16",
        "data.args.n_test=192",
        "data.args.image_size=32",
        "train.epochs=8",
    ),
    "tumor3d": (
        "data.args.n_train=48",
        "data.args.n_val=8",
        "data.args.n_test=192",
        "data.args.image_size=32",
        "model.args.feature_size=8",
        "objective.loss.include_background=false",
        "train.batch_size=2",
        "train.epochs=8",
    ),
}


def run_once(task: str, seed: int, root: Path) -> Path:
    """Train and evaluate the task's small ERM model (reused when its cases.csv exists)."""
    from duetfair.engine.config import load_config
    from duetfair.engine.evaluate import evaluate_run
    from duetfair.engine.trainer import train

    run = root / f"{task}_seed{seed}"
    if not (run / "cases.csv").is_file():
        cfg = load_config(f"{task}_erm", [*QUIET, *SETUPS[task], f"seed={seed}", f"data.args.seed={seed}"])
        train(cfg, run)
        evaluate_run(run, n_boot=0, report=False, threads=1)
    return run


def bench_run(task: str, seed: int, root: Path) -> Path:
    """The method benchmark's evaluated ERM run of ``task`` and ``seed`` under ``root``."""
    run = root / task / f"seed{seed}" / "erm"
    if not (run / "cases.csv").is_file():
        raise SystemExit(f"{run / 'cases.csv'} not found: run `duetfair benchmark --task {task} --size bench` first")
    return run


ERROR_DESCRIPTORS = ("desc_volume_error", "desc_error_boundary_share")
"""Error descriptors the slice entries report (how a slice fails)."""


def export_cases(run: Path, out: Path) -> None:
    """The run's per-case table cut to what the slice search reads (module docstring), gzipped."""
    from duetfair.io import atomic_path
    from duetfair.metrics.descriptors import descriptor_columns, descriptor_of

    cases = pd.read_csv(run / "cases.csv")
    groups = [a["name"] for a in json.loads((run / "group_spec.json").read_text())["attributes"]]
    words = [c for c in descriptor_columns(cases) if (d := descriptor_of(c)) is not None and d.levels is not None]
    keep = ["case_id", "class", "dice", *groups, "hidden_subtype", *words, *ERROR_DESCRIPTORS]
    with atomic_path(out) as tmp:
        cases[[c for c in keep if c in cases.columns]].to_csv(tmp, index=False, float_format="%.5g", compression="gzip")


def score_run(run: Path) -> dict:
    """Audit the run's cases without the hidden column; precision / recall / F1 of the top slice."""
    from duetfair.data.groups import GroupSpec

    by = json.loads((run / "audit.json").read_text())["by"]
    return score_cases(pd.read_csv(run / "cases.csv"), GroupSpec.load(run / "group_spec.json"), by)


def score_cases(cases: pd.DataFrame, spec, by: list[str]) -> dict:  # noqa: ANN001
    """Precision / recall / F1 of the top slice of the audit of ``cases`` without the hidden column."""
    from duetfair.audit import audit_table
    from duetfair.audit.slices import OVERALL
    from duetfair.metrics.cases import case_level

    frame = case_level(cases)
    hidden = frame.pop("hidden_subtype").to_numpy() == 1
    audit = audit_table(frame, by=by, metrics=("dice",), n_boot=0, spec=spec, hidden=None)
    worst = audit["metrics"]["dice"]["attributes"][by[0]]["worst_group"]
    scopes = {OVERALL, f"{by[0]}={worst}"}
    top = next((s for s in audit.get("hidden_slices", []) if s["within"] in scopes), None)
    out = {"worst_group": f"{by[0]}={worst}", "slice": None, "within": None, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    if top is None:
        return out
    scope = np.ones(len(frame), dtype=bool)
    if top["within"] != OVERALL:
        scope = spec.labels(frame, top["attribute"]).astype(object).to_numpy() == top["group"]
    ids = frame["case_id"].astype(str).to_numpy()
    truth, members = set(ids[scope & hidden]), set(top["members"])
    tp = len(truth & members)
    p, r = tp / len(members), (tp / len(truth) if truth else 0.0)
    out.update(slice=top["definition"], within=top["within"], precision=p, recall=r)
    out["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return out


def standin_run(task: str, seed: int) -> dict:
    """The same score for the documented ERM stand-in of the default test suite
    (``tests/slice_models.py``: boundary jitter everywhere, 30-80 % of every subtype structure
    missed) on 240 fresh cases of the suite."""
    sys.path.insert(0, str(ROOT / "tests"))
    from slice_models import audit_predictions, erm_like, suite

    images, labels, meta = suite(task, 240, seed)
    hidden = meta["hidden_subtype"].to_numpy() == 1
    audited = audit_predictions(task, erm_like(labels, hidden, seed), images, labels, meta)
    top = audited.top_slice()
    p, r, f1 = audited.prf(top) if top is not None else (0.0, 0.0, 0.0)
    return {
        "slice": None if top is None else top["definition"],
        "within": None if top is None else top["within"],
        "precision": p,
        "recall": r,
        "f1": f1,
    }


def bootstrap_mean(values: list[float], n: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    draws = v[np.random.default_rng(seed).integers(0, v.size, size=(n, v.size))].mean(1)
    return float(v.mean()), float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=sorted(SETUPS), help="suite (repeatable; default all)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench_slices"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_slices.json"))
    parser.add_argument(
        "--model",
        choices=["erm", "standin", "bench"],
        default="erm",
        help="small trained ERM, the test's stand-in, or the method benchmark's ERM runs (--runs: its root)",
    )
    parser.add_argument("--export", help="--model bench: also write the fixtures of the bench test into this folder")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for task in args.task or list(SETUPS):
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            if args.model == "standin":
                found = standin_run(task, seed)
            else:
                make = run_once if args.model == "erm" else bench_run
                run = make(task, seed, Path(args.runs))
                found = score_run(run)
                if args.export and args.model == "bench":
                    export_cases(run, Path(args.export) / f"{task}_seed{seed}.csv.gz")
            row = {"seed": seed, **found}
            row["seconds"] = time.perf_counter() - t0
            results.setdefault(task, []).append(row)
            print(f"{task} seed {seed}: F1 {row['f1']:.2f} ({row['within']}: {row['slice']}) {row['seconds']:.0f} s")
    summary = {}
    print("\n| suite | precision | recall | F1 | seeds with F1 >= 0.6 |\n|---|---|---|---|---|")
    for task, rows in results.items():
        stats = {k: bootstrap_mean([r[k] for r in rows]) for k in ("precision", "recall", "f1")}
        hits = sum(r["f1"] >= 0.6 for r in rows)
        summary[task] = {**{k: list(v) for k, v in stats.items()}, "seeds_f1_at_least_0.6": hits, "seeds": len(rows)}
        cells = [f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in stats.values()]
        print(f"| `{task}` | {' | '.join(cells)} | {hits}/{len(rows)} |")
    out = args.out if args.model == "erm" else args.out.replace(".json", f"_{args.model}.json")
    write_json(out, {"benchmark": "slices", "model": args.model, "per_seed": results, "summary": summary})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
