"""Speed of the data layer: synthetic generation and manifest loading.

(a) ``synthetic fundus2d (ours)``: ``duetfair.data.synthetic.generate`` of 128x128 fundus cases,
    vectorised over chunks of cases (target >= 500 cases/s on 2 cores);
(b) ``synthetic fundus2d (per-case loop)``: the same generator called once per case (the
    non-vectorised way of writing it), reported as the ratio (a)/(b);
(c) ``synthetic tumor3d``: 32^3 three-phase volumes;
(d) ``manifest loading``: reading every case of a ``duetfair synth`` PNG dataset through the CSV
    manifest loader (MONAI ``LoadImage``, checks, normalisation), cases/s.

Prints a table and writes ``benchmarks/results/bench_data.json``.

    python benchmarks/bench_data.py --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.data import build_datasets  # noqa: E402
from duetfair.data.synthetic import generate, write_synthetic  # noqa: E402
from duetfair.io import write_json  # noqa: E402


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=1024, help="cases of the vectorised 2D generation")
    ap.add_argument("--n-loop", type=int, default=128, help="cases of the per-case baseline")
    ap.add_argument("--n-manifest", type=int, default=200, help="cases written and read back")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_data.json"))
    args = ap.parse_args()

    rows = []
    t_vec = _median_time(lambda: generate("fundus2d", args.n, seed=0, image_size=128), args.repeats)
    rows.append(("synthetic fundus2d 128x128 (ours)", args.n / t_vec))
    t_loop = _median_time(
        lambda: [generate("fundus2d", 1, seed=i, image_size=128) for i in range(args.n_loop)], args.repeats
    )
    rows.append(("synthetic fundus2d 128x128 (per-case loop)", args.n_loop / t_loop))
    n3 = max(16, args.n // 16)
    t3 = _median_time(lambda: generate("tumor3d", n3, seed=0, image_size=32), args.repeats)
    rows.append(("synthetic tumor3d 3x32^3 (ours)", n3 / t3))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_synthetic("fundus2d", args.n_manifest, tmp, seed=0, image_size=128)

        def read_all() -> None:
            for ds in build_datasets("manifest", path=str(manifest)).values():
                for i in range(len(ds)):
                    ds[i]

        t_man = _median_time(read_all, args.repeats)
        rows.append(("manifest loading, PNG 128x128 (ours)", args.n_manifest / t_man))

    ratio = rows[0][1] / rows[1][1]
    print(f"{'quantity':48s} {'cases/s':>10s}")
    for name, rate in rows:
        print(f"{name:48s} {rate:10.0f}")
    print(f"vectorised / per-case loop: {ratio:.1f}x   (target: fundus2d >= 500 cases/s)")
    write_json(
        args.out,
        {
            "rows": [{"name": n, "cases_per_s": r} for n, r in rows],
            "ratio_vectorised_vs_loop": ratio,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "repeats": args.repeats,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
