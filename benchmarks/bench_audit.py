"""Speed of the audit: vectorised bootstrap against a per-resample loop.

Table: 100,000 cases x 2 attributes (3 and 5 groups, imbalanced, 2 % unknown) x 1000 bootstrap
resamples; quantities: overall mean, per-group means and the equity-scaled value with their
percentile intervals (overall: all cases resampled; groups and ES: each group resampled
separately).

(a) ``whole audit``: ``duetfair.audit.audit_table`` of that table (bootstrap included, subgroup
    discovery excluded), i.e. what ``duetfair audit --no-discovery`` computes (target < 5 s);
(b) ``bootstrap (ours)``: only the resampling of (a) (``duetfair.metrics.bootstrap``);
(c) ``bootstrap (loop)``: a straightforward per-resample loop in the style of the reference
    analysis: for each of the 1000 iterations, ``sklearn.utils.resample`` of all cases for the
    overall mean and of every group for the group means and ES (target (c)/(b) >= 3);
(d) ``random indices only``: drawing the same number of int32 indices, the floor of any exact
    bootstrap.

Prints a table and writes ``benchmarks/results/bench_audit.json``.

    python benchmarks/bench_audit.py --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from duetfair.audit import audit_table  # noqa: E402
from duetfair.io import write_json  # noqa: E402
from duetfair.metrics.bootstrap import bootstrap_means, equity_scaled, percentile_ci, stratified_bootstrap_means  # noqa: E402


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic per-case table: ``race`` (3 groups), ``site`` (5 groups), ``dice``."""
    rng = np.random.default_rng(seed)
    race = rng.choice(np.array(["Asian", "Black", "White"], dtype=object), n, p=[0.1, 0.15, 0.75])
    race[rng.random(n) < 0.02] = None
    site = rng.choice(np.array(["A", "B", "C", "D", "E"], dtype=object), n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    dice = np.clip(rng.beta(8, 2, n) - 0.05 * (race == "Black"), 0, 1)
    return pd.DataFrame({"race": race, "site": site, "dice": dice})


def codes_of(df: pd.DataFrame, attr: str) -> tuple[np.ndarray, int]:
    cat = pd.Categorical(df[attr])
    return cat.codes.astype(np.int64), len(cat.categories)


def ours_bootstrap(values: np.ndarray, strata: list[tuple[np.ndarray, int]], n_boot: int, seed: int) -> dict:
    out = {"overall": percentile_ci(bootstrap_means(values, n_boot, np.random.default_rng(seed)))}
    for i, (codes, g) in enumerate(strata):
        groups, overall = stratified_bootstrap_means(values, codes, g, n_boot, np.random.default_rng((seed, i)))
        out[f"es{i}"] = percentile_ci(equity_scaled(overall, groups))
    return out


def loop_bootstrap(values: np.ndarray, strata: list[tuple[np.ndarray, int]], n_boot: int, seed: int) -> dict:
    """One resample per iteration with ``sklearn.utils.resample`` (reference-analysis style)."""
    from sklearn.utils import resample

    rs = np.random.RandomState(seed)
    members = [[values[codes == g] for g in range(-1, k)] for codes, k in strata]
    overall, es = [], [[] for _ in strata]
    for _ in range(n_boot):
        overall.append(resample(values, random_state=rs).mean())
        for i, parts in enumerate(members):
            sums, means = 0.0, []
            for j, part in enumerate(parts):
                if part.size == 0:
                    continue
                r = resample(part, random_state=rs)
                sums += r.sum()
                if j > 0:
                    means.append(r.mean())
            m_all = sums / values.size
            es[i].append(m_all / (1.0 + sum(abs(m_all - m) for m in means)))
    out = {"overall": percentile_ci(np.asarray(overall))}
    for i, samples in enumerate(es):
        out[f"es{i}"] = percentile_ci(np.asarray(samples))
    return out


def indices_only(n: int, n_draws: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    block = max(1, (1 << 20) // n)
    for start in range(0, n_draws, block):
        rng.integers(0, n, size=(min(block, n_draws - start), n), dtype=np.int32)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_audit.json"))
    args = parser.parse_args()

    df = make_table(args.cases, args.seed)
    values = df["dice"].to_numpy()
    strata = [codes_of(df, "race"), codes_of(df, "site")]
    n_boot = args.bootstrap

    t_audit, audit = timed(
        lambda: audit_table(df, ["race", "site"], n_boot=n_boot, seed=args.seed, discovery=False), args.repeats
    )
    t_ours, ours = timed(lambda: ours_bootstrap(values, strata, n_boot, args.seed), args.repeats)
    t_loop, loop = timed(lambda: loop_bootstrap(values, strata, n_boot, args.seed), args.loop_repeats)
    # every exact bootstrap draws 1 + len(strata) full-size resamples per iteration
    t_idx, _ = timed(lambda: indices_only(args.cases, n_boot * (1 + len(strata)), args.seed), args.repeats)

    rows = [
        ("whole audit (audit_table, no discovery)", t_audit),
        ("bootstrap (ours, vectorised)", t_ours),
        ("bootstrap (loop, sklearn.utils.resample)", t_loop),
        ("random indices only (floor)", t_idx),
    ]
    print(
        f"{args.cases} cases x 2 attributes (3, 5 groups) x {n_boot} "
        f"resamples; median of {args.repeats} (loop: {args.loop_repeats})"
    )
    print(f"{'path':<44}{'seconds':>10}")
    for name, sec in rows:
        print(f"{name:<44}{sec:>10.3f}")
    speedup = t_loop / t_ours
    print(
        f"bootstrap speed-up loop/ours: {speedup:.2f}x (target >= 3); whole "
        f"audit {t_audit:.2f} s (target < 5); ours / floor: {t_ours / t_idx:.2f}"
    )
    # both paths estimate the same intervals (different random streams): agree to Monte-Carlo error
    diffs = {k: max(abs(a - b) for a, b in zip(ours[k], loop[k])) for k in ours}
    print("max |CI ours - CI loop|: " + ", ".join(f"{k} {v:.4f}" for k, v in diffs.items()))
    write_json(
        args.out,
        {
            "benchmark": "audit",
            "cases": args.cases,
            "attributes": {"race": 3, "site": 5},
            "n_boot": n_boot,
            "seconds": {name: sec for name, sec in rows},
            "speedup_loop_over_ours": speedup,
            "targets": {"whole_audit_s": 5.0, "speedup": 3.0},
            "met": {"whole_audit": t_audit < 5.0, "speedup": speedup >= 3.0},
            "ci_difference_ours_vs_loop": diffs,
            "es_race": audit["metrics"]["dice"]["attributes"]["race"]["es"],
            "machine": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "processor": platform.processor() or platform.machine(),
            },
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
