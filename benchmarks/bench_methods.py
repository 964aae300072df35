"""Synthetic method comparison over several seeds (the script form of ``duetfair benchmark``).

Trains ERM, GroupDRO, FEBS, MoE, dMoE and FairDRO on the synthetic fundus benchmark (race groups,
hidden hard subtype) for every seed (data and training both change with the seed), evaluates each
run on its test split and reports per method the mean over seeds with a percentile bootstrap
interval across seeds, and the paired difference to ERM with a verdict (better / worse / no clear
difference, by whether the interval of the difference excludes 0). Same data, model size, epochs
and optimiser for every method; nothing is tuned per method.

    python benchmarks/bench_methods.py --seeds 3 --size quick

Prints the Markdown table and writes ``benchmarks/results/bench_methods.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.experiments.methods import DEMO_METHODS, run_benchmark  # noqa: E402
from duetfair.io import write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", default="quick", choices=["quick", "default", "bench"])
    parser.add_argument("--task", default="fundus2d")
    parser.add_argument("--methods", nargs="+", default=list(DEMO_METHODS))
    parser.add_argument("--runs", default=None, help="keep the runs in this folder (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_methods.json"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_benchmark(
            args.runs or tmp,
            task=args.task,
            methods=args.methods,
            seeds=list(range(args.seeds)),
            size=args.size,
            log=lambda s: print(s, flush=True),
        )
    result["seconds"] = time.perf_counter() - t0
    print(result.pop("markdown"))
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
