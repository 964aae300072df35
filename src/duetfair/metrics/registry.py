"""The metric registry: every fact about a metric, in one record per metric.

Each :class:`MetricInfo` states how a metric is computed (which :func:`per_case_metrics` request
yields it), its direction, its bounds, the value of a perfect prediction, the default failure
cut-off, what it scores on empty masks under every empty-mask policy, and how it is displayed.
Every list of metric names in duetfair is derived from :data:`REGISTRY`:

================================= ================================================================
derived name                      what it is
================================= ================================================================
:data:`SCORED_METRICS`            requests of ``per_case_metrics`` / ``eval.metrics`` / ``--metric``
:data:`TABLE_METRICS`             metric columns of a per-case table (``normhd`` comes with HD95)
:data:`METRIC_COLUMNS`            every per-class column that is not an attribute (+ voxel counts)
:data:`BOUNDED_METRICS`           metrics that lie in [0, 1]
:data:`LOWER_IS_BETTER`           metrics whose worst cases are the largest values
:data:`DEFAULT_FAILURE_THRESHOLDS` failure cut-offs used unless the user sets one
:data:`EMPTY_FILL`                ``{policy: {cell: {metric: value}}}`` of the empty-mask table
:data:`METRIC_LABELS`             display names (``Dice``, ``HD95``)
================================= ================================================================

A metric key of a per-class audit (``hd95[1]``, ``dice[rim]``) has the facts of its base metric
(:func:`lookup`). Names the registry does not know are not guessed at where it matters: a column
that is neither a registered metric nor a known non-metric column cannot silently become an
attribute of the per-case table (:func:`duetfair.metrics.cases.case_level` refuses it).

Adding a metric: one record here, and its computation in :mod:`duetfair.metrics.per_case`;
``tests/metrics/test_registry.py`` runs every registered metric through the same checks.

Example:
    >>> from duetfair.metrics.registry import lookup, BOUNDED_METRICS
    >>> lookup("hd95[1]").higher_is_better
    False
    >>> lookup("dice").failure_cutoff
    0.5
    >>> sorted(BOUNDED_METRICS & {"dice", "hd95"})
    ['dice']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from duetfair.errors import DuetfairError

EMPTY_CELLS = ("both", "ref", "pred")
"""Cells of the empty-mask table: both masks empty, only the reference empty, only the prediction empty."""

_NAN, _INF = float("nan"), float("inf")

EmptyRow = tuple[float, float, float]
"""Values of one metric in the cells ``("both", "ref", "pred")`` of one empty-mask policy."""


@dataclass(frozen=True)
class MetricInfo:
    """Facts of one metric.

    Args:
        name: column name in per-case tables (lower case).
        label: display name (``"Dice"``).
        higher_is_better: direction; False for distances and losses (the worst cases are the largest).
        bounds: ``(low, high)`` of valid values; ``high`` is ``inf`` for distances. A metric is
            "bounded" (clipped intervals, skewness, equity-scaled value) when it lies in [0, 1].
        perfect: value of a prediction equal to the reference (1 for Dice, 0 for HD95).
        failure_cutoff: default per-case failure cut-off (a case fails beyond it), or None.
        scored_by: the ``metrics=`` request of :func:`duetfair.metrics.per_case.per_case_metrics`
            that yields this column (``"hd95"`` for ``normhd``); None for metrics only read from
            users' tables (sensitivity, ASSD, ...).
        empty: ``{policy: (both, ref, pred)}`` values on empty masks, for metrics whose empty-mask
            values are set by the policy (``normhd`` follows HD95 instead); empty otherwise.
        unit: ``"spacing"`` for distances in the unit of the voxel spacing (mm, pixels), None for
            unit-free scores.
    """

    name: str
    label: str
    higher_is_better: bool
    bounds: tuple[float, float]
    perfect: float
    failure_cutoff: float | None = None
    scored_by: str | None = None
    empty: Mapping[str, EmptyRow] = field(default_factory=dict)
    unit: str | None = None

    @property
    def bounded(self) -> bool:
        """True for metrics in [0, 1]."""
        return self.bounds == (0.0, 1.0)

    @property
    def is_distance(self) -> bool:
        """True for metrics in the unit of the voxel spacing (HD95)."""
        return self.unit == "spacing"


def _overlap_empty() -> dict[str, EmptyRow]:
    """Empty-mask rows of Dice and IoU (the same under every policy)."""
    return {
        "nnunet": (_NAN, 0.0, 0.0),
        "nan": (_NAN, _NAN, 0.0),
        "fairseg": (0.0, 1.0, 0.0),
        "mamamia": (0.0, 0.0, 0.0),
    }


_UNIT = (0.0, 1.0)
_DISTANCE = (0.0, _INF)

REGISTRY: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("dice", "Dice", True, _UNIT, 1.0, failure_cutoff=0.5, scored_by="dice", empty=_overlap_empty()),
        # IoU < 1/3 is the same cases as Dice < 0.5 (IoU = Dice / (2 - Dice)).
        MetricInfo("iou", "IoU", True, _UNIT, 1.0, failure_cutoff=1.0 / 3.0, scored_by="iou", empty=_overlap_empty()),
        MetricInfo(
            "hd95",
            "HD95",
            False,
            _DISTANCE,
            0.0,
            scored_by="hd95",
            unit="spacing",
            empty={
                "nnunet": (_NAN, _INF, _INF),
                "nan": (_NAN, _NAN, _INF),
                "fairseg": (0.0, 0.0, 0.0),
                "mamamia": (0.0, _INF, _INF),
            },
        ),
        # NormHD = HD95 / 150 mm (MAMA-MIA), 1 where HD95 is infinite: no unit, not bounded by 1.
        MetricInfo("normhd", "NormHD", False, _DISTANCE, 0.0, scored_by="hd95"),
        MetricInfo(
            "nsd",
            "NSD",
            True,
            _UNIT,
            1.0,
            failure_cutoff=0.5,
            scored_by="nsd",
            empty={
                "nnunet": (_NAN, 0.0, 0.0),
                "nan": (_NAN, _NAN, 0.0),
                "fairseg": (_NAN, 0.0, 0.0),
                "mamamia": (0.0, 0.0, 0.0),
            },
        ),
        # Read from users' tables only: their direction and bounds are known, duetfair does not compute them.
        MetricInfo("sensitivity", "Sensitivity", True, _UNIT, 1.0),
        MetricInfo("specificity", "Specificity", True, _UNIT, 1.0),
        MetricInfo("precision", "Precision", True, _UNIT, 1.0),
        MetricInfo("recall", "Recall", True, _UNIT, 1.0),
        MetricInfo("hd", "HD", False, _DISTANCE, 0.0, unit="spacing"),
        MetricInfo("assd", "ASSD", False, _DISTANCE, 0.0, unit="spacing"),
        MetricInfo("masd", "MASD", False, _DISTANCE, 0.0, unit="spacing"),
        MetricInfo("loss", "Loss", False, _DISTANCE, 0.0),
    )
}
"""Every metric duetfair knows, by name."""

COUNT_COLUMNS = ("n_ref", "n_pred")
"""Voxel counts of the reference and prediction masks: per-class columns, neither metric nor attribute."""


def base_name(key: str) -> str:
    """``"HD95[lesion]"`` -> ``"hd95"``: the metric of a per-class key, lower case."""
    return key.partition("[")[0].strip().lower()


def get(key: str) -> MetricInfo | None:
    """Facts of the metric of ``key`` (a name or a per-class key such as ``dice[1]``), or None."""
    return REGISTRY.get(base_name(key))


def lookup(key: str) -> MetricInfo:
    """Facts of the metric of ``key``; a one-line error listing the known metrics when there are none."""
    info = get(key)
    if info is None:
        raise DuetfairError(f"metric '{key}': not a known metric; expected one of {', '.join(REGISTRY)}")
    return info


def higher_is_better(key: str) -> bool:
    """Direction of a metric key: False for distances and losses; True for scores and unknown names."""
    info = get(key)
    return True if info is None else info.higher_is_better


def is_bounded(key: str) -> bool:
    """True for keys of metrics in [0, 1] (``dice``, ``nsd[2]``)."""
    info = get(key)
    return info is not None and info.bounded


def label(key: str) -> str:
    """Display name of a metric key: ``dice`` -> ``Dice``, ``hd95[1]`` -> ``HD95 1``; unknown keys as given."""
    info = get(key)
    if info is None:
        return key
    _, _, cls = key.partition("[")
    return f"{info.label} {cls.rstrip(']')}" if cls else info.label


def column_label(column: str) -> str:
    """Display name of a comparison column: ``es_dice`` -> ``ES-Dice``, ``worst_dice`` ->
    ``Worst-group Dice``, ``hidden_dice`` -> ``Hidden-subtype Dice``, ``cvar10`` -> ``Worst-group CVaR10``."""
    if column in ("cvar10", "worst_cvar10"):
        return "Worst-group CVaR10"
    prefixes = {"es_": "ES-", "worst_group_": "Worst-group ", "worst_": "Worst-group ", "hidden_": "Hidden-subtype "}
    for prefix, words in prefixes.items():
        if column.startswith(prefix) and get(column[len(prefix) :]) is not None:
            return words + label(column[len(prefix) :])
    return label(column)


def check_scored(metrics: object, what: str = "metrics") -> list[str]:
    """``metrics`` as a list of :data:`SCORED_METRICS` names; a one-line error naming the first unknown one."""
    names = [str(m) for m in metrics] if isinstance(metrics, (list, tuple)) else [str(metrics)]
    unknown = [m for m in names if m not in SCORED_METRICS]
    if unknown:
        raise DuetfairError(f"{what}: unknown metric '{unknown[0]}'; expected a subset of {', '.join(SCORED_METRICS)}")
    return names


def _empty_fill() -> dict[str, dict[str, dict[str, float]]]:
    policies = dict.fromkeys(p for m in REGISTRY.values() for p in m.empty)
    return {
        policy: {
            cell: {m.name: m.empty[policy][i] for m in REGISTRY.values() if policy in m.empty}
            for i, cell in enumerate(EMPTY_CELLS)
        }
        for policy in policies
    }


SCORED_METRICS: tuple[str, ...] = tuple(m.name for m in REGISTRY.values() if m.scored_by == m.name)
"""Requests of :func:`~duetfair.metrics.per_case.per_case_metrics` (``eval.metrics``, ``--metric``)."""

TABLE_METRICS: tuple[str, ...] = tuple(m.name for m in REGISTRY.values() if m.scored_by is not None)
"""Metric columns duetfair writes and reads in per-case tables (``normhd`` comes with ``hd95``)."""

METRIC_COLUMNS: tuple[str, ...] = (*TABLE_METRICS, *COUNT_COLUMNS)
"""Per-class columns of :func:`~duetfair.metrics.per_case.per_case_metrics` besides ``case_id`` and ``class``."""

BOUNDED_METRICS = frozenset(m.name for m in REGISTRY.values() if m.bounded)
"""Metrics that must lie in [0, 1]."""

LOWER_IS_BETTER = frozenset(m.name for m in REGISTRY.values() if not m.higher_is_better)
"""Metric names whose worst cases are the largest values."""

DISTANCE_METRICS: tuple[str, ...] = tuple(
    m.name for m in REGISTRY.values() if m.scored_by is not None and not m.higher_is_better
)
"""Distances of per-case tables (``normhd`` is HD95 / 150 mm: no unit, only meaningful in mm)."""

DEFAULT_FAILURE_THRESHOLDS: Mapping[str, float] = {
    m.name: m.failure_cutoff for m in REGISTRY.values() if m.failure_cutoff is not None
}
"""Per-metric failure cut-offs used unless the user sets one (Dice < 0.5, IoU < 1/3, NSD < 0.5)."""

EMPTY_FILL: dict[str, dict[str, dict[str, float]]] = _empty_fill()
"""Metric values of empty-mask cells per policy: ``{policy: {cell: {metric: value}}}``."""

METRIC_LABELS: dict[str, str] = {m.name: m.label for m in REGISTRY.values()}
"""Display names of the metrics."""
