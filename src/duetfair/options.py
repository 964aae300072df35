"""Every closed set of option names in duetfair, defined once.

Configs, the CLI and the library validate option values through these enums (:func:`parse`), so a
name is spelled in one place and an error always lists the allowed values. Members compare equal to
their string value (``Method.ERM == "erm"``), so plain strings keep working everywhere.
"""

from __future__ import annotations

from enum import Enum
from typing import Sequence, TypeVar

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
    SUBCLASS_MOE = "subclass_moe"
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


class CvarMethod(StrEnum):
    """CVaR of a group's tail: ``fractional`` (exactly ``alpha n`` cases, the boundary case weighted)
    or ``discrete`` (the worst ``ceil(alpha n)`` cases); see ``metrics.hidden.cvar``."""

    FRACTIONAL = "fractional"
    DISCRETE = "discrete"


class Granularity(StrEnum):
    """What one row of an audited per-case table is: ``case`` (the mean over a case's classes, as
    ``duetfair evaluate`` audits) or ``class`` (each class on its own, ``dice[rim]``); see
    ``metrics.cases.audit_view``."""

    CASE = "case"
    CLASS = "class"


class ReportFormat(StrEnum):
    """Output of ``duetfair audit``: the audit JSON, Markdown or an HTML report."""

    JSON = "json"
    MD = "md"
    HTML = "html"


class TableFormat(StrEnum):
    """Output of ``duetfair compare``: the papers' table as Markdown, CSV, JSON or LaTeX, or an
    HTML report."""

    MD = "md"
    CSV = "csv"
    JSON = "json"
    LATEX = "latex"
    HTML = "html"


class DistanceUnit(StrEnum):
    """Unit of a distance metric (HD95) read from another tool's table."""

    MM = "mm"
    VOXELS = "voxels"
    PIXELS = "pixels"
    UNKNOWN = "unknown"


HIDDEN_COLUMN = "hidden_subtype"
"""Default name of the analysis-only column of a known hard subtype (1) vs the rest (0): never an
input of training, reported in audits as hidden failures. Another column is named with
``data.hidden_column`` / ``duetfair audit --hidden`` (``morphology`` or ``morphology=irregular``,
parsed by :class:`duetfair.data.groups.HiddenColumn`)."""

E = TypeVar("E", bound=StrEnum)


def choices(enum: type[StrEnum]) -> list[str]:
    """The allowed values of ``enum``, in definition order."""
    return [m.value for m in enum]


def not_one_of(what: str, value: object, allowed: Sequence[str]) -> str:
    """The one-line message of a value outside a closed set, with the closest allowed value when
    one is close: ``--empty: 'nnunt' is not one of 'nnunet', 'nan' (did you mean 'nnunet'?)``."""
    from difflib import get_close_matches

    near = get_close_matches(str(value), list(allowed), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{what}: {value!r} is not one of {', '.join(repr(c) for c in allowed)}{hint}"


def parse(enum: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``enum``; a one-line error naming ``what`` and the allowed values."""
    try:
        return enum(value)
    except ValueError:
        raise DuetfairError(not_one_of(what, value, choices(enum))) from None
