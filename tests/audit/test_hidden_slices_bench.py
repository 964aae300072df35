"""The hidden failure slices of the method benchmark's trained ERM models find the planted subtype.

The fixtures in ``data/bench_erm`` are the per-case tables of the ERM runs of the published method
benchmark (``duetfair benchmark --task <suite> --size bench``, seeds 0-4: 256 test cases in 2D,
128 in 3D), cut to what the slice search reads (``benchmarks/bench_slices.py --model bench
--export``). Each is audited **without** the ``hidden_subtype`` column, and the first significant
slice overall or inside the worst group of the first attribute is compared with the subtype's
cases of its scope (precision, recall, F1), as in ``docs/benchmarks.md``.

The issue's target: mean F1 >= 0.6 over the five seeds on every suite. Measured (the table of
``docs/benchmarks.md``): fundus2d 0.90 (5/5 seeds at least 0.6), lesion2d 0.67 (4/5), tumor3d
0.61 (3/5). The per-seed floors below are the measured values less 0.05; a seed with no
significant slice in the scored scopes (tumor3d seed 1) scores 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from duetfair.audit import audit_table
from duetfair.audit.slices import SliceSettings
from duetfair.data.synthetic import group_spec
from duetfair.metrics.cases import case_level
from duetfair.options import HIDDEN_COLUMN
from slice_models import Audited

DATA = Path(__file__).parent / "data" / "bench_erm"
SEEDS = range(5)

MEASURED = {  # F1 of the scored slice on seeds 0-4
    "fundus2d": (0.92, 0.93, 0.89, 0.87, 0.90),
    "lesion2d": (0.68, 0.68, 0.72, 0.67, 0.59),
    "tumor3d": (0.59, 0.00, 0.89, 0.81, 0.74),
}


def audited(task: str, seed: int, **slices: object) -> Audited:
    """The audit of one benchmark run's cases without the hidden column."""
    frame = case_level(pd.read_csv(DATA / f"{task}_seed{seed}.csv.gz"))
    hidden = frame.pop(HIDDEN_COLUMN).to_numpy() == 1
    spec = group_spec(task)
    audit = audit_table(
        frame, by=list(spec.attributes), metrics=("dice",), n_boot=0, spec=spec, slices=SliceSettings(**slices)
    )
    return Audited(task, frame, hidden, audit, spec)


def f1_of_top(a: Audited) -> float:
    top = a.top_slice()
    return 0.0 if top is None else a.prf(top)[2]


@pytest.mark.parametrize("task", sorted(MEASURED))
def test_top_slice_of_the_benchmark_models_recovers_the_subtype(task):
    f1 = []
    for seed in SEEDS:
        a = audited(task, seed)
        f1.append(f1_of_top(a))
        top = a.top_slice()
        if top is not None:
            members = a.frame["case_id"].isin(top["members"]).to_numpy()
            assert top["q"] <= 0.05 and top["gap"] < 0 and top["n"] == members.sum()
    assert np.mean(f1) >= 0.6, (task, f1)
    assert all(got >= want - 0.05 for got, want in zip(f1, MEASURED[task])), (task, f1)


def test_without_the_new_selection_the_fundus_slice_is_lost_inside_other_groups():
    """The change the target needed: with raw group scopes and no merging, the fundus2d audit's
    scored slice misses the subtype on three of five seeds (the slices inside ``sex`` and ``age``
    groups then follow the harder races' descriptors, and crowd out the overall ones)."""
    old = {"within": "raw", "merge_scopes": False, "refine": False}
    f1 = [f1_of_top(audited("fundus2d", seed, **old)) for seed in SEEDS]
    assert sum(x < 0.6 for x in f1) >= 2, f1
    assert np.mean(f1) < 0.6, f1
