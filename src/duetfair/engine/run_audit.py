"""How a run's per-case table is audited: the attributes, metrics, granularity and settings of
``duetfair evaluate``, in one place, so that ``duetfair audit RUN/cases.csv`` (no ``--by``)
reproduces the numbers of ``RUN/audit.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from duetfair.data.groups import GroupSpec, HiddenColumn
from duetfair.errors import require
from duetfair.options import Granularity

if TYPE_CHECKING:
    import pandas as pd

    from duetfair.engine.config import ExperimentConfig
    from duetfair.rundir import RunDir

AUDITED_METRICS = ("dice", "iou")
"""Metrics ``duetfair evaluate`` audits (those the per-case table has)."""


@dataclass(frozen=True)
class RunAudit:
    """The audit of a run's per-case table.

    Attributes:
        attributes: ``data.audit_attributes`` of the config, else every attribute of the group spec.
        metrics: :data:`AUDITED_METRICS` (those present in the table are audited).
        es_variant: ``eval.es_variant``.
        n_boot: ``eval.n_boot`` (bootstrap resamples of the intervals; for a run folder, that of
            its ``audit.json``).
        seed: the run's ``seed`` (the bootstrap's).
        spec: the run's ``group_spec.json``.
        hidden: the analysis-only column of known hard cases (``data.hidden_column``).
        granularity: ``case``: each metric the mean over a case's classes.
    """

    attributes: tuple[str, ...]
    metrics: tuple[str, ...]
    es_variant: str
    n_boot: int
    seed: int
    spec: GroupSpec
    hidden: HiddenColumn
    granularity: Granularity = Granularity.CASE

    @classmethod
    def of_config(cls, cfg: ExperimentConfig, spec: GroupSpec, hidden: HiddenColumn) -> RunAudit:
        """The audit of a run with config ``cfg`` and group spec ``spec``."""
        return cls(
            attributes=tuple(audited_attributes(cfg, spec)),
            metrics=AUDITED_METRICS,
            es_variant=str(cfg.eval.es_variant),
            n_boot=int(cfg.eval.n_boot),
            seed=int(cfg.seed),
            spec=spec,
            hidden=hidden,
        )

    @classmethod
    def of_run(cls, run: RunDir) -> RunAudit:
        """The audit of the run folder ``run`` (its ``config.yaml`` and ``group_spec.json``); the
        bootstrap size that of its ``audit.json`` when there is one (``evaluate --bootstrap N``
        overrides the config's)."""
        from duetfair.engine.config import load_config

        cfg = load_config(run.config)
        plan = cls.of_config(cfg, GroupSpec.load(run.group_spec), HiddenColumn.parse(cfg.data.hidden_column))
        if not run.audit.is_file():
            return plan
        n_boot = run.read_json(run.audit, "audit").get("settings", {}).get("n_boot")
        return replace(plan, n_boot=n_boot) if isinstance(n_boot, int) and n_boot >= 0 else plan

    def present(self, frame: pd.DataFrame) -> tuple[str, ...]:
        """The audited metrics that ``frame`` has."""
        return tuple(m for m in self.metrics if m in frame.columns)


def audited_attributes(cfg: ExperimentConfig, spec: GroupSpec) -> list[str]:
    """``data.audit_attributes``, else every attribute of ``spec`` but the derived ``subclass`` (a
    run's own clusters; audit it by naming it)."""
    from duetfair.engine.subclasses import SUBCLASS

    attrs = list(cfg.data.audit_attributes or [a for a in spec.attributes if a != SUBCLASS])
    for a in attrs:
        require(a in spec.attributes, f"config data.audit_attributes: '{a}' is not one of {spec.attributes}")
    return attrs
