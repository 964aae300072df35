"""duetfair.metrics: predictions -> per-case table -> fairness numbers.

* :func:`~duetfair.metrics.per_case.per_case_metrics`: Dice, IoU, HD95, NormHD, NSD per case/class;
* :class:`~duetfair.metrics.frame.GroupMetricFrame`: overall / per group / worst / gap /
  equity-scaled values with bootstrap intervals;
* :mod:`~duetfair.metrics.hidden`: intra-group tail (CVaR, failure rate);
* :func:`~duetfair.metrics.challenge.mamamia_scores`: MAMA-MIA performance / fairness / total.

Pure functions of tensors and tables: this layer never imports models.
"""

from duetfair.metrics.bootstrap import bootstrap_means, equity_scaled, percentile_ci, stratified_bootstrap_means
from duetfair.metrics.challenge import mamamia_scores
from duetfair.metrics.frame import GroupMetricFrame
from duetfair.metrics.hidden import cvar, tail_stats
from duetfair.metrics.per_case import per_case_metrics

__all__ = [
    "GroupMetricFrame",
    "bootstrap_means",
    "cvar",
    "equity_scaled",
    "mamamia_scores",
    "per_case_metrics",
    "percentile_ci",
    "stratified_bootstrap_means",
    "tail_stats",
]
