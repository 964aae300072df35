"""Every setting of an audit in one typed, keyword-only object (:class:`AuditSettings`).

:func:`duetfair.audit.table.audit_table` takes one (``settings=``) and single settings by name on
top (``n_boot=0``); the CLI builds one from its shared options, ``evaluate`` from the run's config.
The ``settings`` block of the audit JSON is written from it (:meth:`AuditSettings.to_dict`), so a
setting is named, checked and recorded in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from duetfair.audit.certify import CertifySettings, parse_detect
from duetfair.audit.discovery import DEFAULT_REDUNDANCY_Z
from duetfair.audit.slices import SliceSettings
from duetfair.data.groups import GroupSpec, HiddenColumn
from duetfair.errors import require
from duetfair.metrics.bootstrap import MAX_RESAMPLES
from duetfair.metrics.frame import MIN_GROUP_N
from duetfair.options import HIDDEN_COLUMN

__all__ = ["AuditSettings"]


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """Settings of an audit (defaults: the papers' and duetfair's).

    Attributes:
        metrics: per-case metric columns (default ``("dice",)``).
        bins: edges per continuous attribute, e.g. ``{"age": [20, 40, 60, 80]}`` (left-closed) or
            ``{"age": {"edges": [40, 50, 60, 70], "right": True}}``.
        es_variant: ``"sum_abs"`` (default; FairSeg/dMoE/DuetFair) or ``"std"`` (FairMedFM).
        n_boot: bootstrap resamples for the intervals (0: none).
        seed: bootstrap seed.
        min_support: minimum subgroup support of the discovery (fraction of cases).
        max_length: longest attribute conjunction of the discovery.
        level: confidence level of the intervals.
        cvar_alpha: CVaR fraction of the per-group tail (``cvar10`` = worst 10 %).
        cvar_method: ``"fractional"`` (default) or ``"discrete"`` CVaR (:func:`duetfair.metrics.hidden.cvar`).
        failure_threshold: per-metric failure cut-offs overriding the defaults, e.g.
            ``["hd95>10", "dice<0.6"]`` (defaults: Dice 0.5, IoU 1/3, NSD 0.5, none for distances).
        discovery: run divergent-subgroup discovery (DivExplorer).
        max_subgroups: keep at most this many subgroups per metric (worst first; None: all).
        redundancy_threshold: DivExplorer's absolute redundancy pruning threshold (None: not used).
        redundancy_z: prune an itemset whose divergence changes by at most ``z`` standard errors
            when one item is removed (default 3; None: no such pruning).
        fdr: false discovery rate of the Benjamini-Hochberg ``significant`` flag of subgroups.
        class_: audit only this class of a multi-class table.
        spec: group spec of the table's attributes (e.g. the ``group_spec.json`` of the run that
            wrote it); attributes it lacks are inferred from the table.
        hidden: analysis-only column of known hard cases (``"hidden_subtype"``, ``"morphology"``,
            ``"morphology=irregular"``; :class:`~duetfair.data.groups.HiddenColumn`), reported as
            ``hidden_subtype`` when the table has it.
        confidence: confidence of the guarantees, tests and new intervals
            (:mod:`duetfair.audit.certify`; default ``level``).
        detect: gap of the mean to detect per metric (``0.05``, ``"hd95=5"``, a list or a mapping;
            default 0.05 for metrics in [0, 1], not assessed for distances).
        reference: group every other group is tested against (a value, or ``ATTRIBUTE=VALUE``;
            None: the rest of the population).
        gap_test: ``"permutation"`` (default; studentized, exact when no group differs) or
            ``"welch"`` test of a group against its reference.
        fdr_method: ``"bh"`` (Benjamini-Hochberg, default) or ``"by"`` (Benjamini-Yekutieli) over
            every gap test of the audit.
        adjust: columns the group gaps are also stratified by (``adjusted_gaps``, e.g. the site).
        slices: settings of the hidden failure slices, searched for the first metric when the table
            has case descriptors (``desc_*``; :mod:`duetfair.audit.slices`); None: no slices.
    """

    metrics: Sequence[str] = ("dice",)
    bins: Mapping[str, Sequence[float] | Mapping[str, Any]] | None = None
    es_variant: str = "sum_abs"
    n_boot: int = 1000
    seed: int = 0
    min_support: float = 0.05
    max_length: int | None = 3
    level: float = 0.95
    cvar_alpha: float = 0.1
    cvar_method: str = "fractional"
    failure_threshold: Sequence[str] | None = None
    discovery: bool = True
    max_subgroups: int | None = 20
    redundancy_threshold: float | None = None
    redundancy_z: float | None = DEFAULT_REDUNDANCY_Z
    fdr: float = 0.05
    class_: Any | None = None
    spec: GroupSpec | None = None
    hidden: str | HiddenColumn | None = HIDDEN_COLUMN
    confidence: float | None = None
    detect: float | str | Sequence[float | str] | Mapping[str, float | None] | None = None
    reference: str | None = None
    gap_test: str = "permutation"
    fdr_method: str = "bh"
    adjust: Sequence[str] = ()
    slices: SliceSettings | None = SliceSettings()

    @classmethod
    def resolve(cls, settings: "AuditSettings | None" = None, **options: Any) -> "AuditSettings":
        """``settings`` (default: the defaults) with ``options`` replacing single settings by name."""
        return dataclasses.replace(settings if settings is not None else cls(), **options)

    def check(self) -> None:
        """One-line errors for values no audit can use (named as the CLI options)."""
        require(len(self.metrics) >= 1, "expected at least one metric (--metric)")
        require(0.0 < self.min_support <= 1.0, f"--min-support {self.min_support}: expected a fraction in (0, 1]")
        require(
            0 <= int(self.n_boot) <= MAX_RESAMPLES,
            f"--bootstrap {self.n_boot}: expected 0 to at most {MAX_RESAMPLES} resamples",
        )
        require(0 <= int(self.seed) < 2**63, f"--seed {self.seed}: expected an integer in [0, 2^63)")
        require(self.max_length is None or self.max_length >= 1, f"--max-length {self.max_length}: expected at least 1")
        require(0.0 < self.fdr < 1.0, f"--fdr {self.fdr}: expected a false discovery rate in (0, 1)")

    @property
    def hidden_column(self) -> HiddenColumn:
        """:attr:`hidden` parsed."""
        return HiddenColumn.parse(self.hidden)

    def certify_settings(self, n_views: int) -> CertifySettings:
        """The settings of the certified statements for an audit of ``n_views`` metric views."""
        return CertifySettings(
            confidence=self.level if self.confidence is None else float(self.confidence),
            detect=parse_detect(self.detect, self.metrics),
            reference=None if self.reference is None else str(self.reference),
            gap_test=self.gap_test,
            fdr_method=self.fdr_method,
            fdr=self.fdr,
            n_views=n_views,
        )

    def to_dict(self, cutoffs: Mapping[str, Any], certify: CertifySettings) -> dict[str, Any]:
        """The ``settings`` block of the audit JSON (``cutoffs``: the failure cut-off per metric)."""
        return {
            "es_variant": self.es_variant,
            "n_boot": int(self.n_boot),
            "seed": int(self.seed),
            "level": float(self.level),
            "cvar_alpha": float(self.cvar_alpha),
            "cvar_method": self.cvar_method,
            "failure_thresholds": dict(cutoffs),
            "redundancy_z": self.redundancy_z,
            "fdr": float(self.fdr),
            "min_support": float(self.min_support),
            "min_group_n": MIN_GROUP_N,
            "max_length": self.max_length,
            "class": None if self.class_ is None else str(self.class_),
            "hidden_column": str(self.hidden_column),
            **certify.to_dict(),
        }
