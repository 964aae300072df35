"""Speed of ``duetfair score``: scoring folders of masks in worker processes vs a plain MONAI loop.

Data: N pairs of 3D NIfTI label maps (default 50 of 128^3 voxels, spacing 0.8 x 0.8 x 2.5 mm, labels
1 and 2: an ellipsoid with an inner core; predictions shifted, resized, with false-positive islands),
written once to a temporary folder (not timed).

(a) ``ours, 1 worker``: :func:`duetfair.metrics.folders.score_folders` in this process;
(b) ``ours, 2 workers``: the same with 2 worker processes (what ``duetfair score --workers 2`` runs);
(a', b') the same with the case descriptors (``descriptors=True``: the mask and error descriptors
    of every structure, what ``duetfair score`` adds to ``cases.csv``; target: at least 75 % of the
    throughput without them);
(c) ``MONAI loop``: for each case, MONAI ``LoadImage`` of both files, one-hot, then
    ``DiceMetric``, ``compute_iou``, ``compute_hausdorff_distance(percentile=95, spacing)`` and
    ``compute_surface_dice(spacing)`` -- what a user would write by hand; once with torch's
    default intra-op threads, once with 1 thread (what our workers use).

Paths alternate round by round (``--repeats``), the best time of each is reported: on a machine
shared with other processes, torch's intra-op threads are sensitive to the load (the load average
is printed and stored).

All paths read the files and compute Dice, IoU, HD95 and NSD (1 mm) for both labels; the script
checks that they agree and prints a table with the speed-ups.

Dice / IoU only, against nnU-Net v2's evaluator (when ``nnunetv2`` is installed: ``pip install
nnunetv2==2.8.1``; it is not a dependency of duetfair, and without it this part is skipped and
says so):

(d) ``nnU-Net, W workers``: ``compute_metrics_on_folder`` of ``nnunetv2.evaluation.
    evaluate_predictions`` -- the function behind ``nnUNetv2_evaluate_folder`` -- with its
    SimpleITK reader, labels 1 and 2 and W processes of its own pool, no output file;
(e) ``ours, W workers``: :func:`~duetfair.metrics.folders.score_folders` with ``metrics=("dice",
    "iou")`` and W workers (what ``duetfair score --metric dice --metric iou --workers W`` scores);
(f) ``duetfair score CLI``: the whole command in a fresh process (``--metric dice --metric iou``,
    reading, scoring, joining the metadata, the audit with 1000 bootstrap resamples and subgroup
    discovery, cases.csv / audit.json / audit.md / report.html), for scale.

Dice, IoU, ``n_ref`` and ``n_pred`` of (d) and (e) must agree exactly. Writes
``benchmarks/results/bench_score.json``.

    python benchmarks/bench_score.py                       # 50 volumes of 128^3
    python benchmarks/bench_score.py --cases 12 --size 64  # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.io import write_json  # noqa: E402
from duetfair.metrics.folders import score_folders  # noqa: E402

SPACING = (0.8, 0.8, 2.5)
METRICS = ("dice", "iou", "hd95", "nsd")


def make_case(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(reference, prediction)`` uint8 label maps [size, size, size] with labels 1 (outer) and 2 (core)."""
    grid = [
        (np.arange(size, dtype=np.float32) * s).reshape([-1 if j == i else 1 for j in range(3)])
        for i, s in enumerate(SPACING)
    ]
    extent = size * min(SPACING)
    center = rng.uniform(0.4, 0.6, 3) * np.array([size * s for s in SPACING])
    radii = rng.uniform(0.12, 0.25, 3) * extent

    def ellipsoid(c: np.ndarray, r: np.ndarray) -> np.ndarray:
        return sum(((g - c[i]) / r[i]) ** 2 for i, g in enumerate(grid)) <= 1.0

    ref = ellipsoid(center, radii).astype(np.uint8)
    ref[ellipsoid(center, radii * 0.45)] = 2
    shift = rng.normal(0, 1.5, 3) * np.array(SPACING)
    scale = rng.uniform(0.85, 1.15)
    pred = ellipsoid(center + shift, radii * scale).astype(np.uint8)
    pred[ellipsoid(center + shift, radii * scale * rng.uniform(0.35, 0.55))] = 2
    for _ in range(int(rng.integers(0, 4))):  # false-positive islands
        lo = rng.integers(0, size - 4, 3)
        pred[lo[0] : lo[0] + 3, lo[1] : lo[1] + 3, lo[2] : lo[2] + 2] = 1
    return ref, pred


def write_data(root: Path, n: int, size: int, seed: int) -> tuple[Path, Path]:
    """``preds/`` and ``refs/`` with ``case_XXX.nii.gz``."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    affine = np.diag([*SPACING, 1.0])
    for sub in ("preds", "refs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ref, pred = make_case(size, rng)
        nib.save(nib.Nifti1Image(ref, affine), str(root / "refs" / f"case_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(pred, affine), str(root / "preds" / f"case_{i:03d}.nii.gz"))
    return root / "preds", root / "refs"


def monai_loop(
    pred_dir: Path, ref_dir: Path, labels: tuple[int, ...] = (1, 2), threads: int | None = None
) -> pd.DataFrame:
    """The hand-written baseline: MONAI's loader and metric functions, one case after the other
    (``threads``: torch intra-op threads during the loop; None keeps torch's default)."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    try:
        return _loop(pred_dir, ref_dir, labels)
    finally:
        torch.set_num_threads(default_threads)


def _loop(pred_dir: Path, ref_dir: Path, labels: tuple[int, ...]) -> pd.DataFrame:
    import torch
    from monai.metrics import DiceMetric, compute_hausdorff_distance, compute_iou, compute_surface_dice
    from monai.networks.utils import one_hot
    from monai.transforms import LoadImage

    load = LoadImage(image_only=True, ensure_channel_first=True)
    dice_metric = DiceMetric(include_background=False, reduction="none")
    n_classes = max(labels) + 1
    rows = []
    for ref_path in sorted(ref_dir.glob("*.nii.gz")):
        case = ref_path.name[: -len(".nii.gz")]
        ref = load(str(ref_path))
        pred = load(str(pred_dir / ref_path.name))
        spacing = [float(s) for s in ref.pixdim]
        p = one_hot(torch.as_tensor(np.asarray(pred))[None].long(), n_classes)
        r = one_hot(torch.as_tensor(np.asarray(ref))[None].long(), n_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = {
                "dice": dice_metric(p, r)[0],
                "iou": compute_iou(p, r, include_background=False)[0],
                "hd95": compute_hausdorff_distance(p, r, include_background=False, percentile=95, spacing=spacing)[0],
                "nsd": compute_surface_dice(p, r, [1.0] * (n_classes - 1), include_background=False, spacing=spacing)[
                    0
                ],
            }
        for j, lab in enumerate(labels):
            rows.append({"case_id": case, "class": lab, **{m: float(v[j]) for m, v in values.items()}})
    return pd.DataFrame(rows)


def nnunet_available() -> bool:
    try:
        import nnunetv2.evaluation.evaluate_predictions  # noqa: F401
    except ImportError:
        return False
    return True


def nnunet_evaluator(pred_dir: Path, ref_dir: Path, workers: int, labels: tuple[int, ...] = (1, 2)) -> pd.DataFrame:
    """nnU-Net v2's own evaluator on the folders (its pool, its SimpleITK reader) -> rows
    ``case_id, class, dice, iou, n_ref, n_pred``."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    result = compute_metrics_on_folder(
        str(ref_dir), str(pred_dir), None, SimpleITKIO(), ".nii.gz", list(labels), None, workers
    )
    rows = []
    for entry in result["metric_per_case"]:
        case = Path(entry["prediction_file"]).name[: -len(".nii.gz")]
        for lab, m in entry["metrics"].items():
            rows.append(
                {
                    "case_id": case,
                    "class": int(lab),
                    "dice": float(m["Dice"]),
                    "iou": float(m["IoU"]),
                    "n_ref": int(m["n_ref"]),
                    "n_pred": int(m["n_pred"]),
                }
            )
    return pd.DataFrame(rows).sort_values(["case_id", "class"]).reset_index(drop=True)


def cli_score(pred_dir: Path, ref_dir: Path, root: Path, workers: int) -> pd.DataFrame:
    """``duetfair score`` (Dice / IoU) as a user runs it, in a fresh process; returns its cases.csv."""
    import subprocess

    meta = root / "patients.csv"
    if not meta.exists():
        ids = sorted(p.name[: -len(".nii.gz")] for p in ref_dir.glob("*.nii.gz"))
        pd.DataFrame({"case_id": ids, "site": [f"S{i % 3}" for i in range(len(ids))]}).to_csv(meta, index=False)
    out = root / "cli_out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable,
        "-m",
        "duetfair",
        "score",
        str(pred_dir),
        str(ref_dir),
        "--meta",
        str(meta),
        "--out",
        str(out),
        "--metric",
        "dice",
        "--metric",
        "iou",
        "--labels",
        "1,2",
        "--workers",
        str(workers),
    ]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return pd.read_csv(out / "cases.csv")


def overlap_comparison(preds: Path, refs: Path, root: Path, workers: list[int], repeats: int) -> dict:
    """(d)-(f) of the module docstring: seconds, ratios and the largest differences."""
    if not nnunet_available():
        print("nnU-Net v2 is not installed (pip install nnunetv2==2.8.1): Dice/IoU vs nnU-Net not measured")
        return {"nnunet": "not installed; not measured"}
    paths: dict[str, Callable[[], pd.DataFrame]] = {}
    for w in workers:
        paths[f"nnU-Net evaluator, {w} workers"] = partial(nnunet_evaluator, preds, refs, w)
        paths[f"ours (Dice/IoU), {w} workers"] = partial(
            score_folders, preds, refs, labels=[1, 2], workers=w, metrics=("dice", "iou")
        )
        paths[f"duetfair score CLI, {w} workers"] = partial(cli_score, preds, refs, root, w)
    nnunet_evaluator(preds, refs, workers[0])  # warm-up: file cache, imports
    seconds, results, _ = timed_round_robin(paths, repeats)
    ref = results[f"nnU-Net evaluator, {workers[0]} workers"]
    ours = results[f"ours (Dice/IoU), {workers[0]} workers"].sort_values(["case_id", "class"]).reset_index(drop=True)
    diffs = {c: float(np.nanmax(np.abs(ours[c].to_numpy(float) - ref[c].to_numpy(float)))) for c in ("dice", "iou")}
    diffs.update({c: int(np.abs(ours[c].to_numpy() - ref[c].to_numpy()).max()) for c in ("n_ref", "n_pred")})
    print(f"{'Dice/IoU path':<36}{'seconds':>10}{'cases/s':>10}{'nnU-Net / path':>16}")
    n = len(ref) // 2
    for name, sec in seconds.items():
        w = name.rsplit(", ", 1)[1]
        base = seconds[f"nnU-Net evaluator, {w}"]
        print(f"{name:<36}{sec:>10.2f}{n / sec:>10.2f}{base / sec:>16.2f}")
    print("max |ours - nnU-Net|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return {
        "seconds": seconds,
        "nnunet_over_path": {k: seconds[f"nnU-Net evaluator, {k.rsplit(', ', 1)[1]}"] / v for k, v in seconds.items()},
        "max_abs_difference_vs_nnunet": diffs,
    }


def _cpu() -> float:
    """CPU seconds of this process and its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed_round_robin(
    paths: dict[str, Callable[[], pd.DataFrame]], repeats: int
) -> tuple[dict[str, float], dict, dict[str, float]]:
    """Best wall time of every path over ``repeats`` rounds (paths alternate, so load from other
    processes on a shared machine spreads over all of them), each path's last result and its best
    CPU time (this process and its workers: what the path costs whatever the machine's load)."""
    best = {name: float("inf") for name in paths}
    cpu = {name: float("inf") for name in paths}
    results: dict[str, pd.DataFrame] = {}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0, c0 = time.perf_counter(), _cpu()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], _cpu() - c0)
    # a process pool's workers are not reaped when it returns: their CPU time is not counted
    cpu = {name: (float("nan") if "workers" in name else v) for name, v in cpu.items()}
    return best, results, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--size", type=int, default=128, help="volume side in voxels")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per path")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="folder for the generated volumes (default: a temporary one)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_score.json"))
    parser.add_argument("--only-overlap", action="store_true", help="only the Dice/IoU comparison with nnU-Net")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data) if args.data else Path(tmp)
        t0 = time.perf_counter()
        preds, refs = write_data(root, args.cases, args.size, args.seed)
        print(f"wrote {args.cases} pairs of {args.size}^3 NIfTI in {time.perf_counter() - t0:.1f} s")
        load_overlap = os.getloadavg()
        overlap = overlap_comparison(preds, refs, root, args.workers, args.repeats)
        overlap["load_average_before_after"] = [load_overlap[0], os.getloadavg()[0]]
        if args.only_overlap:
            write_json(args.out, {"benchmark": "score", "cases": args.cases, "size": args.size, "overlap": overlap})
            print(f"wrote {args.out}")
            return
        score_folders(preds, refs, labels=[1, 2], workers=1, metrics=METRICS)  # warm-up: imports
        monai_loop(preds, refs)
        paths: dict[str, Callable[[], pd.DataFrame]] = {}
        for w in args.workers:
            name = f"ours, {w} worker{'s' if w > 1 else ''}"
            paths[name] = partial(score_folders, preds, refs, labels=[1, 2], workers=w, metrics=METRICS)
            paths[name + " + descriptors"] = partial(
                score_folders, preds, refs, labels=[1, 2], workers=w, metrics=METRICS, descriptors=True
            )
        paths["MONAI loop, torch default"] = partial(monai_loop, preds, refs)
        paths["MONAI loop, 1 torch thread"] = partial(monai_loop, preds, refs, threads=1)
        load_before = os.getloadavg()
        seconds, results, cpu = timed_round_robin(paths, args.repeats)
        load_after = os.getloadavg()

    ours, loop = results[next(iter(results))], results["MONAI loop, torch default"]
    merged = ours.merge(loop, on=["case_id", "class"], suffixes=("", "_monai"))
    diffs = {
        m: float(
            np.nanmax(
                np.abs(
                    np.where(
                        np.isinf(merged[m]) & np.isinf(merged[f"{m}_monai"]), 0.0, merged[m] - merged[f"{m}_monai"]
                    )
                )
            )
        )
        for m in METRICS
    }
    base = seconds["MONAI loop, torch default"]
    print(
        f"{args.cases} cases of {args.size}^3, labels 1 and 2, Dice + IoU + HD95 + NSD; best of {args.repeats}; "
        f"{os.cpu_count()} CPU cores, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after"
    )
    print(f"{'path':<32}{'seconds':>10}{'cases/s':>10}{'loop / path':>14}{'CPU seconds':>14}")
    for name, sec in seconds.items():
        print(f"{name:<32}{sec:>10.2f}{args.cases / sec:>10.2f}{base / sec:>14.2f}{cpu[name]:>14.2f}")
    print("max |ours - MONAI loop|: " + ", ".join(f"{m} {v:.2e}" for m, v in diffs.items()))
    with_desc = [name for name in seconds if name + " + descriptors" in seconds]
    keep = {name: seconds[name] / seconds[name + " + descriptors"] for name in with_desc}
    keep_cpu = {name: cpu[name] / cpu[name + " + descriptors"] for name in with_desc}
    for name in with_desc:
        print(
            f"throughput kept with descriptors ({name}): wall {keep[name]:.2f}, CPU {keep_cpu[name]:.2f} "
            "(target >= 0.75)"
        )
    write_json(
        args.out,
        {
            "benchmark": "score",
            "cases": args.cases,
            "size": args.size,
            "spacing": list(SPACING),
            "labels": [1, 2],
            "metrics": list(METRICS),
            "repeats": args.repeats,
            "seconds": seconds,
            "speedup_over_loop": {name: base / sec for name, sec in seconds.items()},
            "max_abs_difference_vs_loop": diffs,
            "throughput_kept_with_descriptors": keep,
            "cpu_seconds": cpu,
            "cpu_throughput_kept_with_descriptors": keep_cpu,
            "load_average_before_after": [load_before[0], load_after[0]],
            "overlap": overlap,
            "machine": {
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
            },
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
