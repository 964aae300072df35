"""Statements an audit can rely on: per-group guarantees, enough-evidence verdicts, tested gaps.

:func:`certify_metric` adds to one metric's audit block (:func:`duetfair.audit.audit_table`), for
the overall population and every group of every attribute:

* ``certificate``: at the metric's failure cut-off, ``failures`` of ``n``, the observed ``share``,
  its exact two-sided interval ``share_ci``, the one-sided upper bound ``upper`` (Clopper-Pearson)
  and ``upper_all_groups``, which holds for all groups of the attribute at once (Šidák);
* ``failure_curve``: the same at every cut-off of a grid (``cutoffs``, ``failures``, pointwise
  ``upper``), with a ``band`` that holds at all cut-offs at once and ``band_all_groups`` at all
  cut-offs and all groups of the attribute at once (exact one-sided Kolmogorov margins);
* ``new_case``: the order-statistic bound on a new case's metric (``bound``; None below ``min_n``);
* ``evidence``: the smallest gap to the reference the data could detect (``detectable_gap``, 80 %
  power at level ``1 - confidence``), the cases needed for the chosen gap (``n_needed``,
  ``more_cases``) and ``verdict`` ``enough evidence`` / ``insufficient evidence`` / ``not assessed``;
* ``gap_test``: difference to the reference with its interval, the p-value, and after
  :func:`finish_gap_tests` the Benjamini-Hochberg ``q_value`` over every test of the audit,
  ``significant`` and ``direction`` (``worse`` / ``better``);
* ``cvar10_ci``: a percentile bootstrap interval of the group's CVaR; ``verdict`` sums it up.

Per attribute: ``selection`` (worst-group mean, gap and worst-group CVaR with the worst group
re-selected in every bootstrap resample), ``reference`` and ``insufficient_groups``. Every block
names its ``method``. The statistics live in :mod:`duetfair.metrics.certify`,
:mod:`duetfair.metrics.power` and :mod:`duetfair.metrics.gaps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from duetfair.errors import DuetfairError, require
from duetfair.metrics import certify as cert
from duetfair.metrics.certify import cvar_bounds, simultaneous_confidence
from duetfair.metrics.frame import GroupMetricFrame
from duetfair.metrics.gaps import (
    FDR_METHODS,
    GAP_TESTS,
    bh_qvalues,
    permutation_pvalue,
    permutation_pvalues,
    selection_bootstrap,
    simultaneous_mean_intervals,
    spread_interval,
    welch_gap,
    worst_interval,
)
from duetfair.metrics.power import detectable_gap, required_n
from duetfair.metrics.registry import is_bounded

DEFAULT_DETECT = 0.05
"""Gap of the mean to detect for metrics in [0, 1] (Dice, IoU, NSD) unless set (``--detect``)."""

POWER = 0.8
"""Power of the enough-evidence verdict."""

NEW_CASE_CONTENT = 0.9
"""Probability content of the new-case bound ("a new case has Dice >= x with probability 0.9")."""

CURVE_POINTS = 21
"""Cut-offs of a failure curve (every 0.05 for metrics in [0, 1])."""

REST = "rest"
"""The default reference: every other case of the metric (unknown attribute values included)."""

VERDICTS = (
    "worse than the reference",
    "better than the reference",
    "no detectable gap",
    "insufficient evidence",
    "no significant gap",
    "reference",
)
"""``verdict`` of a group: significant after correction (worse / better); else enough evidence to
see a gap of ``detect`` (no detectable gap) or not (insufficient evidence); ``no significant gap``
when no gap to detect is set (distances without ``--detect``); the reference group itself."""


@dataclass(frozen=True)
class CertifySettings:
    """Options of the statements (``settings`` of the audit JSON)."""

    confidence: float = 0.95
    detect: Mapping[str, float | None] = field(default_factory=dict)
    reference: str | None = None
    power: float = POWER
    content: float = NEW_CASE_CONTENT
    gap_test: str = "permutation"
    n_perm: int | None = None
    fdr: float = 0.05
    n_views: int = 1
    fdr_method: str = "bh"
    correction: str = "sidak"
    band: str = "ksone"

    def __post_init__(self) -> None:
        require(0.0 < self.confidence < 1.0, f"--confidence {self.confidence}: expected a confidence level in (0, 1)")
        require(self.gap_test in GAP_TESTS, f"gap_test={self.gap_test!r}; expected one of {', '.join(GAP_TESTS)}")
        require(self.fdr_method in FDR_METHODS, f"fdr_method={self.fdr_method!r}; expected bh or by")
        require(self.correction in cert.CORRECTIONS, f"correction={self.correction!r}; expected sidak or bonferroni")
        require(self.band in cert.BAND_METHODS, f"band={self.band!r}; expected ksone or dkw")

    def permutations(self, n_tests: int) -> int:
        """Permutations of the gap tests: ``n_perm``, or (None) enough that the smallest possible
        p-value ``1 / (n_perm + 1)`` is at most half the first Benjamini-Hochberg threshold
        ``fdr / n_tests``, and at least 1999."""
        if self.n_perm is not None:
            return int(self.n_perm)
        return max(1999, math.ceil(2 * n_tests / self.fdr) - 1)

    @property
    def alpha(self) -> float:
        """Level of the tests and the power figures: ``1 - confidence``."""
        return round(1.0 - self.confidence, 12)

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in the audit JSON."""
        return {
            "confidence": self.confidence,
            "detect": dict(self.detect),
            "reference": self.reference,
            "power": self.power,
            "new_case_content": self.content,
            "gap_test": self.gap_test,
            "n_perm": self.n_perm,
            "fdr_method": self.fdr_method,
            "group_correction": self.correction,
            "band_method": self.band,
        }


def parse_detect(
    settings: float | str | Sequence[float | str] | Mapping[str, float | None] | None, metrics: Iterable[str]
) -> dict[str, float | None]:
    """Gap to detect per metric: a number applies to every metric in [0, 1]; ``"hd95=5"`` sets one
    metric; defaults: :data:`DEFAULT_DETECT` for metrics in [0, 1], None (not assessed) otherwise."""
    metrics = list(metrics)
    out: dict[str, float | None] = {m: DEFAULT_DETECT if is_bounded(m) else None for m in metrics}
    if settings is None:
        return out
    if isinstance(settings, Mapping):
        items: list[Any] = [f"{k}={v}" for k, v in settings.items()]
    elif isinstance(settings, (str, float, int)):
        items = [settings]
    else:
        items = list(settings)
    by_lower = {m.lower(): m for m in metrics}
    for item in items:
        name, _, raw = str(item).rpartition("=")
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        require(
            math.isfinite(value) and value > 0,
            f"--detect {item}: expected a positive gap, e.g. 0.05 or hd95=5",
        )
        if not name:
            out.update({m: value for m in metrics if is_bounded(m)})
            continue
        require(
            name.lower() in by_lower,
            f"--detect {item}: metric '{name}' is not audited; expected one of {', '.join(metrics)}",
        )
        out[by_lower[name.lower()]] = value
    return out


def resolve_reference(reference: str | None, attributes: Mapping[str, Sequence[str]]) -> dict[str, str | None]:
    """The reference group of every attribute (None: the rest of the population).

    ``reference`` is a group value (used by every attribute that has such a group, the others
    compare with the rest) or ``ATTRIBUTE=VALUE`` (that attribute only). A value that is a group of
    no audited attribute is an error (one line, listing the groups).
    """
    out: dict[str, str | None] = {attr: None for attr in attributes}
    if reference is None:
        return out
    target, sep, value = reference.partition("=")
    if sep and target in attributes:
        listed = list(attributes[target])
        require(value in listed, f"--reference {reference}: '{value}' is not a group of {target} ({', '.join(listed)})")
        out[target] = value
        return out
    for attr, names in attributes.items():
        out[attr] = reference if reference in names else None
    if all(v is None for v in out.values()):
        listing = "; ".join(f"{a}: {', '.join(map(str, n))}" for a, n in attributes.items())
        raise DuetfairError(f"--reference {reference}: not a group of any audited attribute ({listing})")
    return out


# ---- the blocks of one group ---------------------------------------------------------------


def _certificate(
    values: np.ndarray, cutoff: float | None, hb: bool, s: CertifySettings, conf_all: float | None
) -> dict[str, Any]:
    n = int(values.size)
    if cutoff is None:
        return {"cutoff": None, "n": n, "method": "no failure cut-off set"}
    k = int(cert.failure_counts(values, np.array([cutoff]), higher_better=hb)[0])
    out = {
        "cutoff": float(cutoff),
        "failures": k,
        "n": n,
        "share": k / n if n else float("nan"),
        "share_ci": list(cert.clopper_pearson_interval(k, n, s.confidence)),
        "share_ci_method": cert.METHOD_NAMES["clopper_pearson_interval"],
        "upper": float(cert.clopper_pearson_upper(k, n, s.confidence)),
        "confidence": s.confidence,
        "method": cert.METHOD_NAMES["clopper_pearson"],
    }
    if conf_all is not None:
        out["upper_all_groups"] = float(cert.clopper_pearson_upper(k, n, conf_all))
        out["all_groups_method"] = cert.METHOD_NAMES[s.correction]
    return out


def _curve(
    values: np.ndarray, grid: np.ndarray, hb: bool, s: CertifySettings, conf_all: float | None
) -> dict[str, Any]:
    n = int(values.size)
    k = cert.failure_counts(values, grid, higher_better=hb)
    share = k / max(n, 1)
    margin = cert.band_margin(n, s.confidence, s.band)
    out: dict[str, Any] = {
        "cutoffs": [float(t) for t in grid],
        "failures": [int(x) for x in k],
        "upper": cert.ceil_digits(cert.clopper_pearson_upper(k, n, s.confidence)),
        "band": cert.ceil_digits(share + margin),
        "band_margin": margin,
        "method": cert.METHOD_NAMES["clopper_pearson"] + " at each cut-off; bounds rounded up to 4 decimals",
        "band_method": cert.METHOD_NAMES[s.band],
    }
    if conf_all is not None:
        margin_all = cert.band_margin(n, conf_all, s.band)
        out["band_all_groups"] = cert.ceil_digits(share + margin_all)
        out["band_margin_all_groups"] = margin_all
    return out


def _new_case(values: np.ndarray, hb: bool, s: CertifySettings) -> dict[str, Any]:
    bound, rank = cert.new_case_bound(values, content=s.content, confidence=s.confidence, higher_better=hb)
    return {
        "bound": bound,
        "rank": rank,
        "content": s.content,
        "confidence": s.confidence,
        "direction": ">=" if hb else "<=",
        "min_n": cert.new_case_min_n(s.content, s.confidence),
        "method": cert.METHOD_NAMES["order_statistic"],
    }


def population_blocks(values: np.ndarray, cutoff: float | None, grid: np.ndarray, hb: bool, s: CertifySettings) -> dict:
    """``certificate``, ``failure_curve`` and ``new_case`` of a set of cases (no correction)."""
    return {
        "certificate": _certificate(values, cutoff, hb, s, None),
        "failure_curve": _curve(values, grid, hb, s, None),
        "new_case": _new_case(values, hb, s),
    }


def _evidence(test: Any, detect: float | None, s: CertifySettings) -> dict[str, Any]:
    mde = detectable_gap(sd1=test.sd, n1=test.n, sd2=test.sd_ref, n2=test.n_ref, alpha=s.alpha, power=s.power)
    needed = (
        required_n(detect, sd1=test.sd, sd2=test.sd_ref, n2=test.n_ref, alpha=s.alpha, power=s.power)
        if detect is not None
        else None
    )
    if detect is None:
        verdict = "not assessed"
    else:
        verdict = "enough evidence" if mde is not None and mde <= detect else "insufficient evidence"
    return {
        "detectable_gap": mde,
        "detect": detect,
        "n_needed": needed,
        "more_cases": None if needed is None else max(0, needed - test.n),
        "sd": test.sd,
        "sd_ref": test.sd_ref,
        "n_ref": test.n_ref,
        "power": s.power,
        "alpha": s.alpha,
        "verdict": verdict,
        "method": "Welch two-sided t-test power (noncentral t), observed spreads taken as known",
    }


def _gap_test(group: np.ndarray, ref: np.ndarray, reference: str, s: CertifySettings) -> tuple[dict[str, Any], Any]:
    """The gap test block of one group (its p-value from Welch; a permutation p-value replaces it
    in :func:`_permutation_pvalues`)."""
    test = welch_gap(group, ref, confidence=s.confidence)
    block = {
        "reference": reference,
        "n_ref": test.n_ref,
        "diff": test.diff,
        "ci": list(test.ci),
        "ci_method": "Welch t interval",
        "t": test.t,
        "df": test.df,
        "p_value": test.p_value,
        "test": "welch",
        "method": "Welch two-sided t-test",
    }
    return block, test


def _permutation_pvalues(
    frame: GroupMetricFrame, reference: str | None, n_perm: int, rng: np.random.Generator
) -> list[float]:
    """Studentized permutation p-value of every group against the rest (all groups at once) or
    against the reference group (its cases and the group's relabelled); NaN for the reference."""
    names = list(frame.group_names)
    if reference is None:
        return [float(p) for p in permutation_pvalues(frame.values, frame.codes, len(names), n_perm=n_perm, rng=rng)]
    ref = frame.values[frame.codes == names.index(reference)]
    return [
        float("nan")
        if name == reference
        else permutation_pvalue(frame.values[frame.codes == g], ref, n_perm=n_perm, rng=rng)
        for g, name in enumerate(names)
    ]


# ---- one attribute -------------------------------------------------------------------------


def _support(metric: str, hb: bool) -> tuple[float, float]:
    """Possible range of a metric: [0, 1] for Dice-like metrics, [0, inf) for distances."""
    if is_bounded(metric):
        return 0.0, 1.0
    return (0.0, math.inf) if not hb else (-math.inf, math.inf)


def _finite_pair(pair: tuple[float, float]) -> list[float | None]:
    return [float(x) if math.isfinite(x) else None for x in pair]


def _selection(
    frame: GroupMetricFrame, summary: Mapping[str, Any], n_boot: int, seed: int, index: int, s: CertifySettings
) -> dict[str, Any]:
    """Worst-group mean, gap and worst-group CVaR with intervals that include the selection of the
    worst group; per-group CVaR intervals under ``group_cvar10_ci`` (popped by the caller)."""
    hb, G = bool(frame.higher_better), len(frame.group_names)
    low, high = simultaneous_mean_intervals(
        frame.values, frame.codes, G, confidence=s.confidence, correction=s.correction
    )
    each = simultaneous_confidence(s.confidence, G, s.correction)
    support = _support(frame.metric, hb)
    groups = [frame.values[frame.codes == g] for g in range(G)]
    bounds = [
        cvar_bounds(x, alpha=frame.cvar_alpha, confidence=each, higher_better=hb, support=support) for x in groups
    ]
    together = f"; {cert.METHOD_NAMES[s.correction].lower()}, projected on the worst group"
    out: dict[str, Any] = {
        "worst_mean": {
            "estimate": float(summary["worst_mean"]),
            "ci": _finite_pair(worst_interval(low, high, higher_better=hb)),
            "method": "t intervals of every group mean holding together" + together,
        },
        "gap": {
            "estimate": float(summary["gap"]),
            "ci": _finite_pair(spread_interval(low, high)),
            "method": "t intervals of every group mean holding together, projected on max - min",
        },
        "worst_cvar10": {
            "estimate": float(summary["worst_cvar10"]),
            "ci": _finite_pair(worst_interval(*map(np.array, zip(*bounds)), higher_better=hb)),
            "method": "distribution-free CVaR bounds (two-sided DKW band) of every group" + together,
        },
        "group_cvar10_ci": [
            _finite_pair(
                cvar_bounds(x, alpha=frame.cvar_alpha, confidence=s.confidence, higher_better=hb, support=support)
            )
            for x in groups
        ],
        "confidence": s.confidence,
        "n_boot": n_boot,
    }
    if n_boot > 0:
        boot = selection_bootstrap(
            frame.values, frame.codes, G, n_boot=n_boot, rng=np.random.default_rng((seed, 5, index)), higher_better=hb
        )
        out["worst_mean"]["bias_corrected"] = boot.bias_corrected(float(summary["worst_mean"]))
        out["worst_share"] = {name: float(x) for name, x in zip(frame.group_names, boot.selected)}
        out["worst_share_method"] = "stratified bootstrap, the worst group re-selected in every resample"
    return out


def certify_attribute(
    frame: GroupMetricFrame,
    summary: dict[str, Any],
    *,
    grid: np.ndarray,
    settings: CertifySettings,
    detect: float | None,
    reference: str | None,
    n_boot: int,
    seed: int,
    index: int,
    n_perm: int = 1999,
) -> None:
    """Add the statements of one attribute to its audit block ``summary`` (in place); ``reference``:
    a group of the attribute, or None for the rest of the population."""
    ref_name = reference
    s, hb = settings, bool(frame.higher_better)
    names = list(frame.group_names)
    conf_all = cert.simultaneous_confidence(s.confidence, len(names), s.correction)
    selection = _selection(frame, summary, n_boot, seed, index, s)
    cvar_cis = selection.pop("group_cvar10_ci")
    for g, group in enumerate(summary["groups"]):
        values = frame.values[frame.codes == g]
        group["certificate"] = _certificate(values, frame.cutoff, hb, s, conf_all)
        group["failure_curve"] = _curve(values, grid, hb, s, conf_all)
        group["new_case"] = _new_case(values, hb, s)
        group["cvar10_ci"] = cvar_cis[g]
        group["cvar10_ci_method"] = "distribution-free CVaR bounds (two-sided DKW band)"
        if ref_name is not None and names[g] == ref_name:
            group["gap_test"], group["evidence"], group["verdict"] = None, None, "reference"
            continue
        ref = (
            frame.values[frame.codes == names.index(ref_name)]
            if ref_name is not None
            else frame.values[frame.codes != g]
        )
        group["gap_test"], test = _gap_test(values, ref, ref_name or REST, s)
        group["evidence"] = _evidence(test, detect, s)
    if s.gap_test == "permutation":
        perm = _permutation_pvalues(frame, ref_name, n_perm, np.random.default_rng((seed, 6, index)))
        for group, p in zip(summary["groups"], perm):
            if group.get("gap_test"):
                method = f"studentized permutation test (Welch t, {n_perm} permutations of the group labels)"
                group["gap_test"].update(p_value=p, test="permutation", method=method, n_perm=n_perm)
    summary["selection"] = selection
    summary["reference"] = ref_name or REST
    summary["group_correction"] = {
        "groups": len(names),
        "confidence_each": conf_all,
        "method": cert.METHOD_NAMES[s.correction],
    }


def certify_metric(
    result: dict[str, Any],
    frames: Sequence[GroupMetricFrame],
    *,
    metric: str,
    settings: CertifySettings,
    n_boot: int,
    seed: int,
) -> None:
    """Add the statements of one metric (overall population and every attribute) to ``result``."""
    first = frames[0]
    references = resolve_reference(settings.reference, {f.by: list(f.group_names) for f in frames})
    grid = cert.cutoff_grid(first.values, bounded=is_bounded(metric), points=CURVE_POINTS)
    hb = bool(first.higher_better)
    result["overall"].update(population_blocks(first.values, first.cutoff, grid, hb, settings))
    detect = settings.detect.get(metric)
    n_perm = settings.permutations(settings.n_views * sum(len(f.group_names) for f in frames))
    for index, frame in enumerate(frames):
        certify_attribute(
            frame,
            result["attributes"][frame.by],
            grid=grid,
            settings=settings,
            detect=detect,
            reference=references[frame.by],
            n_boot=n_boot,
            seed=seed,
            index=index,
            n_perm=n_perm,
        )


def _verdict(group: dict[str, Any], fdr: float) -> str:
    test, evidence = group.get("gap_test"), group.get("evidence") or {}
    if test is None:
        return "reference"
    if test.get("significant"):
        return f"{test['direction']} than the reference"
    if evidence.get("verdict") == "insufficient evidence":
        return "insufficient evidence"
    if evidence.get("verdict") == "enough evidence":
        return "no detectable gap"
    return "no significant gap"


def finish_gap_tests(metrics: dict[str, Any], *, fdr: float, method: str = "bh") -> dict[str, Any]:
    """Benjamini-Hochberg over every gap test of the audit (all metrics, attributes and groups):
    each test gets ``q_value``, ``significant`` (``q_value <= fdr``) and ``direction``; each group
    its ``verdict``; each attribute its ``insufficient_groups``. Returns the family's description."""
    tests: list[tuple[dict[str, Any], bool]] = []
    for m in metrics.values():
        for a in m["attributes"].values():
            tests += [(g["gap_test"], bool(m["higher_is_better"])) for g in a["groups"] if g.get("gap_test")]
    q = bh_qvalues(np.array([t["p_value"] for t, _ in tests], dtype=np.float64), method)
    for (test, hb), qv in zip(tests, q):
        test["q_value"] = float(qv)
        test["significant"] = bool(np.isfinite(qv) and qv <= fdr)
        test["fdr_method"] = FDR_METHODS[method]
        worse = test["diff"] < 0 if hb else test["diff"] > 0
        test["direction"] = ("worse" if worse else "better") if test["significant"] else None
    for m in metrics.values():
        for a in m["attributes"].values():
            for g in a["groups"]:
                g["verdict"] = _verdict(g, fdr)
            a["insufficient_groups"] = [str(g["value"]) for g in a["groups"] if g["verdict"] == "insufficient evidence"]
    return {
        "n_tests": len(tests),
        "n_defined": int(np.isfinite(q).sum()),
        "fdr": fdr,
        "method": FDR_METHODS[method] + " over every group of every attribute and metric of the audit",
    }
