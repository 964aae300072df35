"""Every closed set of option names in duetfair, defined once.

Configs, the CLI and the library validate option values through these enums (:func:`parse`), so a
name is spelled in one place and an error always lists the allowed values. Members compare equal to
their string value (``Method.ERM == "erm"``), so plain strings keep working everywhere.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from duetfair.errors import DuetfairError


class StrEnum(str, Enum):
    """A string enum whose ``str()`` is its value (``enum.StrEnum`` of Python 3.11+)."""

    def __str__(self) -> str:
        return str(self.value)


class Method(StrEnum):
    """Method shortcuts of an experiment config (``method:``); see ``engine.config.METHODS``."""

    ERM = "erm"
    GROUP_DRO = "group_dro"
    FEBS = "febs"
    ADVERSARIAL = "adversarial"
    CVAR = "cvar"
    FOCAL = "focal"
    MOE = "moe"
    DMOE = "dmoe"
    FAIR_DRO = "fair_dro"
    SUBGROUP_DRO = "subgroup_dro"
    DIVERGENCE = "divergence"
    JTT = "jtt"
    SUBCLASS_DRO = "subclass_dro"
    ORACLE = "oracle"


class SelectRule(StrEnum):
    """Model-selection rule on validation Dice: overall mean, worst group mean, equity-scaled."""

    OVERALL = "overall"
    WORST_GROUP = "worst_group"
    ES = "es"


class DatasetKind(StrEnum):
    """Data sources of ``duetfair.data.build_datasets``."""

    SYNTHETIC = "synthetic"
    MANIFEST = "manifest"
    FAIRSEG = "fairseg"
    HAM10000 = "ham10000"
    MAMAMIA = "mamamia"


class EsVariant(StrEnum):
    """Equity-scaled metric: ``sum_abs`` (FairSeg / dMoE / DuetFair) or ``std`` (FairMedFM)."""

    SUM_ABS = "sum_abs"
    STD = "std"


class EmptyPolicy(StrEnum):
    """What a metric is when a mask is empty: ``nnunet`` (default: nnU-Net v2's evaluator; a
    structure predicted where the reference has none, or missed, is a failure), ``nan`` (undefined
    whenever the reference is empty), ``fairseg`` or ``mamamia`` (those papers' evaluation code);
    see ``metrics.per_case``."""

    NNUNET = "nnunet"
    NAN = "nan"
    FAIRSEG = "fairseg"
    MAMAMIA = "mamamia"


class MultiAttribute(StrEnum):
    """How dMoE routes on several attributes: summed per-attribute router logits, or one router
    per combination of values."""

    SUM = "sum"
    INTERSECTION = "intersection"


HIDDEN_COLUMN = "hidden_subtype"
"""Default name of the analysis-only column of a known hard subtype (1) vs the rest (0): never an
input of training, reported in audits as hidden failures. Another column is named with
``data.hidden_column`` / ``duetfair audit --hidden`` (``morphology`` or ``morphology=irregular``,
parsed by :class:`duetfair.data.groups.HiddenColumn`)."""

E = TypeVar("E", bound=StrEnum)


def choices(enum: type[StrEnum]) -> list[str]:
    """The allowed values of ``enum``, in definition order."""
    return [m.value for m in enum]


def parse(enum: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``enum``; a one-line error naming ``what`` and the allowed values."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(c) for c in choices(enum))
        raise DuetfairError(f"{what}: {value!r} is not one of {allowed}") from None
