"""Plain-words notes on a metric block of an audit: what was left out of the means, and in which
unit a distance is.

Two kinds of value leave a metric's means:

* undefined values (NaN: both masks empty, or what the empty-mask policy leaves undefined);
* infinite distances (``n_inf``: HD95 with one mask empty -- a structure missed entirely, or
  predicted on a case whose reference has none). These are failures, not gaps in the data: the
  audit counts them per group, includes them in the failure rate when a cut-off is set, and says so.

Distances (HD95) are in the unit of the voxel spacing they were computed with: millimetres for
NIfTI / NRRD / MHA masks, pixels for 2D images, voxels when a tool computed them without spacing
(MONAI's ``MetricsSaver`` does). The audit stores that unit under ``units`` (``{"hd95": "mm"}``);
``unknown`` when the input does not say.
"""

from __future__ import annotations

from typing import Any, Mapping

from duetfair.metrics.registry import DISTANCE_METRICS as DISTANCE_METRICS  # re-exported (hd95, normhd)


def missing_note(block: Mapping[str, Any]) -> str:
    """`` (k undefined, left out)`` / the infinite distances counted as failures; ``""`` when none."""
    n_missing, n_inf = int(block.get("n_missing") or 0), int(block.get("n_inf") or 0)
    parts = []
    if n_inf:
        parts.append(
            f"{n_inf} with an infinite distance (one mask empty: a structure missed, or predicted where the "
            f"reference has none) count as failures and are left out of the mean"
        )
    if n_missing - n_inf > 0:
        parts.append(f"{n_missing - n_inf} undefined, left out")
    return f" ({'; '.join(parts)})" if parts else ""


def base_metric(key: str) -> str:
    """``hd95[lesion]`` -> ``hd95``."""
    return key.split("[", 1)[0]


def metric_unit(audit: Mapping[str, Any], key: str) -> str | None:
    """Unit of a distance metric block (``mm``, ``pixels``, ``voxels`` or ``unknown``); None for
    metrics without a unit (Dice, IoU, NSD)."""
    metric = base_metric(key)
    if metric != "hd95":
        return None
    units = audit.get("units") or {}
    return str(units.get(metric, "unknown"))


def metric_title(audit: Mapping[str, Any], key: str) -> str:
    """``hd95[lesion], mm`` / ``hd95, unit unknown`` for distances; the key for the rest."""
    unit = metric_unit(audit, key)
    if unit is None:
        return key
    return f"{key}, unit unknown" if unit == "unknown" else f"{key}, {unit}"
