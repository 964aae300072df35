"""A hand-made first stage for the two-stage objectives' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from duetfair.objectives.base import ObjectiveContext
from duetfair.objectives.stage import FirstStageCases


def planted_first_stage(n_per_group: int = 40, groups: int = 2, hard_share: float = 0.25, seed: int = 0):
    """Cases of ``groups`` groups; in each the first ``hard_share`` are a planted hard subtype:
    low Dice, features and descriptors shifted by 6 standard deviations. Returns (first stage, hard flags)."""
    rng = np.random.default_rng(seed)
    rows, feats, hard = [], [], []
    for g in range(groups):
        for i in range(n_per_group):
            h = i < hard_share * n_per_group
            rows.append(
                {
                    "case_id": f"g{g}_{i}",
                    "group": g,
                    "dice": (0.4 if h else 0.9) + 0.02 * rng.standard_normal(),
                    "desc_contrast": (-5.0 if h else 5.0) + 0.5 * rng.standard_normal(),
                    "desc_size_mm2": float(rng.uniform(10, 20)),
                }
            )
            feats.append(rng.standard_normal(16) + (6.0 if h else 0.0))
            hard.append(h)
    first = FirstStageCases(pd.DataFrame(rows), np.asarray(feats, dtype=np.float32))
    return first, np.asarray(hard)


def context_of(first: FirstStageCases, groups: int) -> ObjectiveContext:
    counts = tuple(int((first.groups == g).sum()) for g in range(groups))
    return ObjectiveContext(num_groups=groups, group_counts=counts, first_stage=first)
