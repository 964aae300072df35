"""How concentrated FairDRO's within-group weights are during training.

FairDRO logs, per group and epoch, the mean relative effective sample size of its within-group
weights, ``obj/ess_<g>`` in ``history.csv`` (1 = the plain group mean; ``alpha`` for CVaR_alpha;
``1 / n_g`` = all weight on one case). This script reads the ``history.csv`` of every run folder
given (e.g. all seeds of a benchmark's ``fair_dro`` runs) and prints, per group, the mean over runs
at the first, middle and last epoch, plus the learned thresholds ``obj/eta_<g>`` of the dual-form
CVaR when present.

    python benchmarks/weight_concentration.py runs/bench/fundus2d/seed*/fair_dro

Writes ``benchmarks/results/weight_concentration.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from duetfair.io import write_json  # noqa: E402


def concentration(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per logged column (``obj/ess_<g>``, ``obj/eta_<g>``) with the group name and the mean
    over runs at the first, middle and last epoch."""
    frames = []
    for run in run_dirs:
        hist = pd.read_csv(run / "history.csv")
        names = json.loads((run / "group_spec.json").read_text())
        attr = json.loads((run / "run.json").read_text()).get("group_attribute")
        values = next((a["values"] for a in names["attributes"] if a["name"] == attr), None)
        cols = [c for c in hist.columns if c.startswith(("obj/ess_", "obj/eta_"))]
        n = len(hist)
        for c in cols:
            g = int(c.rsplit("_", 1)[1])
            frames.append(
                {
                    "run": str(run),
                    "value": c.split("/")[1].rsplit("_", 1)[0],
                    "group": values[g] if values else str(g),
                    "first": hist[c].iloc[0],
                    "middle": hist[c].iloc[n // 2],
                    "last": hist[c].iloc[-1],
                }
            )
    table = pd.DataFrame(frames)
    return table.groupby(["value", "group"], sort=False)[["first", "middle", "last"]].mean().reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "weight_concentration.json"))
    args = parser.parse_args()
    table = concentration(args.runs)
    print(f"{len(args.runs)} runs; mean over runs of the per-epoch value")
    print("| value | group | first epoch | middle epoch | last epoch |\n|---|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.value} | {r.group} | {r.first:.3f} | {r.middle:.3f} | {r.last:.3f} |")
    write_json(args.out, {"runs": [str(r) for r in args.runs], "table": table.to_dict(orient="records")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
