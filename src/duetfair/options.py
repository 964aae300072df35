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


class NormalizeMode(StrEnum):
    """Intensity normalisation of an image (``data.transforms.normalize``): ``auto`` (2D integer
    images scaled to [0, 1], the rest z-scored per channel), ``scale``, ``zscore`` (per channel),
    ``zscore_global`` (over all channels), ``none``."""

    AUTO = "auto"
    SCALE = "scale"
    ZSCORE = "zscore"
    ZSCORE_GLOBAL = "zscore_global"
    NONE = "none"


class ChannelSource(StrEnum):
    """Where a case's image channels come from (``CaseDataset.channel_source``): the file's own
    channels (``native``), one file per channel (``files``), or a grey image repeated (``repeat``)."""

    NATIVE = "native"
    FILES = "files"
    REPEAT = "repeat"


class MoeKind(StrEnum):
    """Mixture-of-experts variant of a backbone: none, attribute-blind experts, attribute-routed (dMoE)."""

    NONE = "none"
    MOE = "moe"
    DMOE = "dmoe"


class OutputFormat(StrEnum):
    """Formats of a comparison table (``duetfair compare --format``; ``html`` is a report)."""

    MD = "md"
    CSV = "csv"
    JSON = "json"
    LATEX = "latex"


class Checkpoint(StrEnum):
    """Checkpoint of a run to evaluate or predict with: selected on validation (``best``) or the last epoch."""

    BEST = "best"
    LAST = "last"


class OnError(StrEnum):
    """What a loader does with an unreadable case: stop (``raise``) or leave it out and report it (``skip``)."""

    RAISE = "raise"
    SKIP = "skip"


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
