"""The columns of a run's ``history.csv``: one row per finished epoch, written by the trainer and
read by the reports (training curves, the selected epoch) and the progress lines.

Every row has :data:`EPOCH` (1-based), :data:`STEP` (optimiser steps so far), :data:`LR`,
:data:`TRAIN_LOSS` (mean over the epoch's steps), :data:`EPOCH_SECONDS` (training time of the
epoch, s) and :data:`BEST_EPOCH` (the selected epoch so far, -1 before any). A validated epoch adds
:data:`VALIDATION` (:data:`VAL_DICE` overall, :data:`VAL_WORST_DICE` and its group
:data:`VAL_WORST_GROUP`, :data:`VAL_ES_DICE`, :data:`VAL_IOU`, :data:`SCORE` of the selection rule)
and ``val_dice/<group>`` (:func:`group_dice`). The objective's log values are ``obj/<name>``
(:func:`objective_column`; e.g. GroupDRO's weights ``obj/q_0``, ``obj/q_1``).
"""

from __future__ import annotations

EPOCH = "epoch"
STEP = "step"
LR = "lr"
TRAIN_LOSS = "train_loss"
EPOCH_SECONDS = "epoch_seconds"
VAL_DICE = "val_dice"
VAL_WORST_DICE = "val_worst_dice"
VAL_ES_DICE = "val_es_dice"
VAL_IOU = "val_iou"
VAL_WORST_GROUP = "val_worst_group"
SCORE = "score"
BEST_EPOCH = "best_epoch"
OBJECTIVE_PREFIX = "obj/"

VALIDATION = (VAL_DICE, VAL_WORST_DICE, VAL_ES_DICE, VAL_IOU, VAL_WORST_GROUP, SCORE)


def group_dice(group: str) -> str:
    """Column of the validation Dice of one group: ``val_dice/<group>``."""
    return f"{VAL_DICE}/{group}"


def objective_column(name: str) -> str:
    """Column of an objective's log value: ``obj/<name>``."""
    return f"{OBJECTIVE_PREFIX}{name}"


def tensorboard_tag(column: str) -> str:
    """TensorBoard tag of a history column (``val_dice`` -> ``val/dice``, ``train_loss`` -> ``train/loss``)."""
    return column.replace("val_", "val/").replace("train_", "train/")
