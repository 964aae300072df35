"""Options shared by several commands, each declared once.

A group of options is a dataclass whose fields carry their typer declaration
(``Annotated[type, typer.Option(...)]``) and default; :func:`with_options` gives a command one CLI
option per field and hands the command the filled dataclass. :class:`AuditOptions` are the audit
settings that ``duetfair audit`` and ``duetfair score`` both take (a test compares the two
commands' options). Closed sets are typed by the enums of :mod:`duetfair.options`, so ``--help``
lists the choices and a bad value is a one-line error naming them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, Optional, TypeVar, get_type_hints

import typer

from duetfair.errors import DuetfairError, require
from duetfair.options import CvarMethod, EsVariant

F = TypeVar("F", bound=Callable[..., Any])

MISSING_HELP = (
    "A word your table uses for a missing attribute value, e.g. NA (repeatable). Empty cells, nan, "
    "unknown, missing and -1 are always missing; NA, None or null are group names unless given here."
)
ADJUST_HELP = (
    "Also stratify every group gap by this column (repeatable, e.g. site), besides structure size "
    "(desc_size): a confounder-controlled gap next to the raw one."
)
FAIL_HELP = (
    "Failure cut-off of a metric, e.g. hd95>10 or dice<0.6 (repeatable; defaults: Dice 0.5, IoU 1/3, "
    "NSD 0.5, none for distances)."
)


def with_options(**groups: type) -> Callable[[F], F]:
    """Give a command the options of dataclasses: ``@with_options(settings=AuditOptions)`` adds one
    CLI option per field of :class:`AuditOptions` and calls the command with ``settings=`` the
    filled dataclass (every other parameter is passed on as it is)."""

    def wrap(func: F) -> F:
        hints = get_type_hints(func, include_extras=True)
        own = [
            inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=hints[p.name])
            for p in inspect.signature(func).parameters.values()
            if p.name not in groups
        ]
        added = [_parameter(cls, f.name) for cls in groups.values() for f in fields(cls)]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            built = {name: cls(**{f.name: kwargs.pop(f.name) for f in fields(cls)}) for name, cls in groups.items()}
            return func(**kwargs, **built)

        params = [*own, *added]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return wrap


def _parameter(cls: type, name: str) -> inspect.Parameter:
    """The command parameter of field ``name`` of the option dataclass ``cls``."""
    field = next(f for f in fields(cls) if f.name == name)
    annotation = get_type_hints(cls, include_extras=True)[name]
    default = inspect.Parameter.empty if field.default is MISSING else field.default  # no default: required
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def option_names(command: Any) -> set[str]:
    """The option flags (``--by``, ...) of a typer/click command (for tests and docs)."""
    return {opt for param in command.params for opt in getattr(param, "opts", []) if opt.startswith("--")}


@dataclass(frozen=True)
class AuditOptions:
    """The audit settings of ``duetfair audit`` and ``duetfair score`` (see
    :func:`duetfair.audit.audit_table` for their meaning). ``None`` is "not given": a run's own
    setting (``duetfair audit RUN/cases.csv``), else the default in the help."""

    by: Annotated[
        Optional[list[str]],
        typer.Option(
            "--by",
            help="Attribute to audit (repeatable); 'race+sex' audits the intersection. Default: a run's audited "
            "attributes (its cases.csv), for score every metadata column except the id.",
        ),
    ] = None
    metric: Annotated[
        Optional[list[str]],
        typer.Option(
            "--metric",
            help="Per-case metric column: dice, iou, hd95, nsd, ... (repeatable). Default: dice (a run's "
            "cases.csv: dice and iou, as evaluated); score: the metrics scored.",
        ),
    ] = None
    bins: Annotated[
        Optional[list[str]],
        typer.Option(
            "--bins",
            help="Bin a continuous attribute, e.g. age=20,40,60,80 -> <20, 20-39, ..., >=80 (repeatable); "
            "required for numeric columns with more than 12 distinct values.",
        ),
    ] = None
    es_variant: Annotated[
        Optional[EsVariant],
        typer.Option(
            "--es-variant",
            help="Equity-scaled variant: sum_abs (FairSeg/dMoE/DuetFair; default) or std (FairMedFM).",
        ),
    ] = None
    bootstrap: Annotated[
        Optional[int],
        typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none; default 1000)."),
    ] = None
    seed: Annotated[Optional[int], typer.Option("--seed", help="Bootstrap seed (default 0).")] = None
    min_support: Annotated[
        float, typer.Option("--min-support", help="Minimum share of cases of a divergent subgroup.")
    ] = 0.05
    max_length: Annotated[
        int, typer.Option("--max-length", help="Longest attribute conjunction of a divergent subgroup.")
    ] = 3
    class_: Annotated[
        Optional[str],
        typer.Option("--class", help="Audit only this class of a multi-class table (default: every class)."),
    ] = None
    no_discovery: Annotated[bool, typer.Option("--no-discovery", help="Skip divergent subgroup discovery.")] = False
    fail: Annotated[Optional[list[str]], typer.Option("--fail", help=FAIL_HELP)] = None
    cvar_method: Annotated[
        CvarMethod,
        typer.Option(
            "--cvar-method",
            help="CVaR of a group's tail: fractional (exactly 10 % of the cases, the boundary case weighted) "
            "or discrete (worst ceil(0.1 n) cases).",
        ),
    ] = CvarMethod.FRACTIONAL
    redundancy_z: Annotated[
        float,
        typer.Option(
            "--redundancy-z",
            help="Drop a subgroup whose divergence changes by at most this many standard errors when one "
            "attribute is removed (0: keep all).",
        ),
    ] = 3.0
    fdr: Annotated[
        float,
        typer.Option("--fdr", help="False discovery rate of the Benjamini-Hochberg 'significant' flag of subgroups."),
    ] = 0.05
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence of every interval, per-group guarantee and test.")
    ] = 0.95
    detect: Annotated[
        Optional[list[str]],
        typer.Option(
            "--detect",
            help="Gap of the mean to detect with 80% power: 0.05 (every metric in [0, 1]) or METRIC=GAP, e.g. "
            "hd95=5 (repeatable; default 0.05 for Dice, IoU, NSD). Groups that cannot are flagged "
            "'insufficient evidence'.",
        ),
    ] = None
    reference: Annotated[
        Optional[str],
        typer.Option(
            "--reference",
            help="Group every other group is tested against, e.g. White or race=White (default: the rest of "
            "the cases).",
        ),
    ] = None
    missing: Annotated[Optional[list[str]], typer.Option("--missing", help=MISSING_HELP)] = None
    group_spec: Annotated[
        Optional[str],
        typer.Option(
            "--group-spec",
            help="Group spec (group_spec.json of a run) that defines the attributes' groups; default: the "
            "run's own when CASES is a run's cases.csv.",
        ),
    ] = None
    hidden: Annotated[
        Optional[str],
        typer.Option(
            "--hidden",
            help="Analysis-only column of known hard cases, shown as hidden failures: COLUMN (values 0/1, "
            "yes/no) or COLUMN=VALUE[,VALUE] (those values are hard), e.g. morphology=irregular. Default: "
            "hidden_subtype, or the run's data.hidden_column.",
        ),
    ] = None
    adjust: Annotated[Optional[list[str]], typer.Option("--adjust", help=ADJUST_HELP)] = None

    def check_bootstrap(self) -> None:
        """``--bootstrap`` below 0 is an error."""
        if self.bootstrap is not None and self.bootstrap < 0:
            raise DuetfairError(f"--bootstrap {self.bootstrap}: expected a number of resamples >= 0")

    def edges(self) -> dict[str, Any]:
        """``--bins`` as the ``bins`` of :func:`duetfair.audit.audit_table`."""
        from duetfair.data.groups import parse_bins

        return dict(parse_bins(spec) for spec in (self.bins or []))

    def certify(self) -> dict[str, object]:
        """``--confidence``, ``--detect``, ``--reference`` as keyword arguments of the audit: the
        confidence sets the level of every interval, guarantee and test."""
        require(
            0.5 <= self.confidence < 1.0,
            f"--confidence {self.confidence}: expected a confidence level in [0.5, 1), e.g. 0.95",
        )
        return {"level": self.confidence, "confidence": self.confidence, "detect": self.detect or None,
                "reference": self.reference}  # fmt: skip

    def audit_kwargs(self, *, es_variant: str = "sum_abs", n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Keyword arguments of :func:`duetfair.audit.audit_table` (and ``write_audit``), besides the
        attributes, metrics, spec and hidden column; settings not given take the defaults passed."""
        self.check_bootstrap()
        return {
            "bins": self.edges(),
            "es_variant": str(self.es_variant or es_variant),
            "n_boot": n_boot if self.bootstrap is None else self.bootstrap,
            "seed": seed if self.seed is None else self.seed,
            "min_support": self.min_support,
            "max_length": self.max_length,
            "discovery": not self.no_discovery,
            "class_": self.class_,
            "failure_threshold": self.fail,
            "cvar_method": str(self.cvar_method),
            "redundancy_z": self.redundancy_z or None,
            "fdr": self.fdr,
            **self.certify(),
            "adjust": list(self.adjust or []),
        }
