"""Memory of ``duetfair synth`` per case written: streamed manifest rows against accumulated ones.

``duetfair synth`` may write up to 1,000,000 cases, so its memory must not grow with the number of
cases. For two dataset sizes (64x64 fundus2d cases) each way of writing runs in a fresh process,
and its peak resident memory (``ru_maxrss``) is measured; the growth between the sizes divided by
the extra cases is the memory kept per case written:

(a) ``streamed (ours)``: ``duetfair.data.synthetic.write_synthetic``: the files of every chunk of
    256 cases are written and their manifest rows streamed to a temporary CSV; only the two numbers
    the split is stratified by are kept per case (int8);
(b) ``accumulated (baseline)``: the earlier way: the metadata frame of every chunk and the file
    names kept in lists, concatenated at the end and written as one table.

Prints a table and writes ``benchmarks/results/bench_synth_memory.json``.

    python benchmarks/bench_synth_memory.py --small 2000 --large 10000
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.io import write_json  # noqa: E402

CHILD = r"""
import json, resource, sys
from pathlib import Path
import pandas as pd
from duetfair.data import synthetic as s

mode, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if mode == "streamed":
    s.write_synthetic("fundus2d", n, str(out), image_size=64)
else:  # the accumulating loop of the earlier write_synthetic
    from duetfair.data.splits import assign_group_splits
    from duetfair.options import HIDDEN_COLUMN
    spec = s.group_spec("fundus2d", s.make_params("fundus2d", 64))
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    img_col, lab_col, metas = [], [], []
    for images, labels, part in s.generate_chunks("fundus2d", n, image_size=64):
        for i, cid in enumerate(part["case_id"]):
            im, lb = s._write_case_2d(out, cid, images[i], labels[i])
            img_col.append(im)
            lab_col.append(lb)
        metas.append(part)
    meta = pd.concat(metas, ignore_index=True)
    meta["split"] = assign_group_splits(meta, spec, extra=[HIDDEN_COLUMN])
    meta.insert(0, "label", lab_col)
    meta.insert(0, "image", img_col)
    meta.to_csv(out / "manifest.csv", index=False)
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_kib(mode: str, n: int) -> int:
    """Peak resident memory (KiB) of a fresh process writing ``n`` cases the ``mode`` way."""
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(n), str(Path(tmp) / "data")],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        )
    return int(json.loads(run.stdout.strip().splitlines()[-1])["maxrss_kib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=10000)
    args = parser.parse_args()
    rows = {}
    for mode in ("streamed", "accumulated"):
        small, large = peak_kib(mode, args.small), peak_kib(mode, args.large)
        per_case = max(large - small, 0) * 1024 / (args.large - args.small)
        rows[mode] = {"peak_small_mib": small / 1024, "peak_large_mib": large / 1024, "bytes_per_case": per_case}
    print(f"| way of writing | peak, {args.small} cases | peak, {args.large} cases | kept per case |")
    print("|---|---:|---:|---:|")
    for mode, r in rows.items():
        label = "streamed (ours)" if mode == "streamed" else "accumulated (baseline)"
        print(
            f"| {label} | {r['peak_small_mib']:.0f} MiB | {r['peak_large_mib']:.0f} MiB | "
            f"{r['bytes_per_case'] / 1024:.1f} KiB |"
        )
    base, ours = rows["accumulated"]["bytes_per_case"], rows["streamed"]["bytes_per_case"]
    ratio = base / ours if ours > 0 else float("inf")
    print(f"\nmemory kept per case: baseline / ours = {ratio:.1f}x" if ours > 0 else "\nours keeps no memory per case")
    write_json(
        ROOT / "benchmarks" / "results" / "bench_synth_memory.json",
        {"machine": platform.platform(), "small": args.small, "large": args.large, "rows": rows, "ratio": ratio},
    )


if __name__ == "__main__":
    main()
