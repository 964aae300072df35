"""Model selection on validation: the numbers of a validated epoch and its line on the console.

The validation cases are scored per case (mean Dice / IoU over foreground classes) and summarised
with the run's group spec, exactly as the audit of the run's ``cases.csv`` labels them. The
selection score is the rule's number (``train.select``): ``overall`` Dice, ``worst_group`` Dice or
``es`` (equity-scaled Dice); higher is better.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from duetfair import history as H
from duetfair.data.groups import GroupSpec
from duetfair.metrics.frame import point_summary


def validation_row(cases: pd.DataFrame, *, by: str, spec: GroupSpec, es_variant: Any, rule: Any) -> dict[str, Any]:
    """History columns of a validated epoch (:mod:`duetfair.history`) from its case-level table
    ``cases`` (one row per case): ``val_dice``, ``val_worst_dice``, ``val_es_dice``, ``val_iou``,
    ``val_worst_group``, ``score`` and ``val_dice/<group>`` for every group of the attribute ``by``."""
    d = point_summary(cases, "dice", by, spec, es_variant)
    iou = point_summary(cases, "iou", by, spec, es_variant)
    score = {"overall": d["overall"], "worst_group": d["worst"], "es": d["es"]}[rule]
    row: dict[str, Any] = {
        H.VAL_DICE: d["overall"],
        H.VAL_WORST_DICE: d["worst"],
        H.VAL_ES_DICE: d["es"],
        H.VAL_IOU: iou["overall"],
        H.VAL_WORST_GROUP: d["worst_group"],
        H.SCORE: score,
    }
    row.update({H.group_dice(g): v for g, v in d["groups"].items()})
    return row


def epoch_line(row: dict[str, Any], *, epochs: int, rule: Any, improved: bool, val_seconds: float) -> str:
    """One plain line of a finished epoch: training loss, validation overall / worst-group Dice
    (when validated), seconds (training + validation) and the selection."""
    parts = [f"epoch {row[H.EPOCH]}/{epochs}", f"loss {row[H.TRAIN_LOSS]:.4f}"]
    if H.VAL_DICE in row:
        parts += [
            f"val Dice {row[H.VAL_DICE]:.4f}",
            f"worst-group Dice {row[H.VAL_WORST_DICE]:.4f} ({row[H.VAL_WORST_GROUP]})",
        ]
    train_seconds = row[H.EPOCH_SECONDS]
    seconds = train_seconds + val_seconds if math.isfinite(train_seconds) else val_seconds
    parts.append(f"{seconds:.1f} s")
    if improved:
        parts.append(f"selected ({rule} {row[H.SCORE]:.4f})")
    return "  ".join(parts)
