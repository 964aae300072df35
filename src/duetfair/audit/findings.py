"""Findings of an audit in plain words: what a reader should see first.

:func:`build_findings` turns an audit dict (:func:`duetfair.audit.audit_table`) into a list of
findings, each a JSON-ready dict with a ``kind``, a ``level`` (``info`` or ``warning``), the
``metric`` / ``attribute`` it concerns, one plain sentence ``text`` and the numbers behind it. The
audit JSON carries the list under ``findings``; the Markdown and HTML reports print the same
sentences, so the three forms say the same thing with the same numbers. Kinds:

* ``worst_group`` (per metric and attribute): the worst group with its mean, interval and n, the
  best group and the gap, and whether the worst group's interval separates from the other groups'
  intervals (``separated_from`` / ``overlaps``; intervals that do not overlap are a conservative
  sign of a real difference, overlapping ones do not prove its absence);
* ``failures`` (per metric with a failure cut-off, per attribute): the hidden-failure share of every
  group, i.e. the share of its cases beyond the metric's ``failure_threshold``, highest first, and
  the group whose worst 10 % of cases score worst (CVaR10);
* ``tail`` (per metric without a cut-off, e.g. HD95): the group with the worst CVaR10;
* ``subgroup`` (per metric, with discovery): the most divergent subgroup whose Benjamini-Hochberg
  ``q_value`` passes the false discovery rate, or that none does;
* ``hidden_subtype`` (per metric, when the table knows the hidden column);
* first of every metric, the certified statements of :mod:`duetfair.audit.statements`; its
  ``insufficient_evidence`` warnings replace ``small_group`` (n < ``min_n``; old audits only);
* ``unknowns`` (warning): attributes whose value is unknown for at least ``unknown_share`` of the
  cases (they count in the overall mean only).

:func:`headline_cards` gives the report's summary cards (headline numbers with intervals);
:mod:`duetfair.audit.method_findings` the plain-words summary of a method comparison.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from duetfair.audit.discovery import itemset_label
from duetfair.audit.formatting import cutoff_text, fmt, fmt_ci, join_names, num, p_equals, pct
from duetfair.audit.statements import certified_cards, certified_findings, evidence_warnings, selection_cis
from duetfair.metrics.frame import MIN_GROUP_N

MIN_N = MIN_GROUP_N
"""Groups (and heatmap cells) with fewer cases are flagged as too small for a stable estimate
(:data:`duetfair.metrics.frame.MIN_GROUP_N`, the audit's ``settings.min_group_n``)."""

UNKNOWN_SHARE = 0.10
"""Attributes whose value is unknown for at least this share of the cases are flagged."""


def _base(key: str) -> str:
    return key.partition("[")[0]


# ---- findings of an audit ----------------------------------------------------------------------


def _separation(a: Mapping[str, Any], higher_better: bool) -> tuple[list[str], list[str]] | None:
    """Groups whose interval lies entirely on the better side of the worst group's interval, and
    the others; None without intervals."""
    groups = a["groups"]
    worst = next((g for g in groups if str(g["value"]) == str(a.get("worst_group"))), None)
    if worst is None or num(worst["ci"][0]) is None:
        return None
    separated: list[str] = []
    overlaps: list[str] = []
    for g in groups:
        if g is worst or g.get("n", 0) == 0:
            continue
        lo, hi = num(g["ci"][0]), num(g["ci"][1])
        if lo is None or hi is None:
            return None
        apart = worst["ci"][1] < lo if higher_better else worst["ci"][0] > hi
        (separated if apart else overlaps).append(str(g["value"]))
    return separated, overlaps


def _worst_group(key: str, attr: str, a: Mapping[str, Any], hb: bool, level: float = 0.95) -> dict[str, Any] | None:
    groups = a["groups"]
    worst = next((g for g in groups if str(g["value"]) == str(a.get("worst_group"))), None)
    if worst is None:
        return None
    best = a.get("best_group")
    sep = _separation(a, hb)
    text = (
        f"{key} by {attr}: the worst group is {worst['value']} with {fmt_ci(worst['mean'], worst['ci'])} "
        f"(n={worst['n']})"
    )
    if len(groups) > 1:
        text += f", against {fmt(a.get('best_mean'))} for {best}; gap {fmt(a.get('gap'))}."
    else:
        text += "; it is the only group."
    side, share = ("below" if hb else "above"), f"{100 * level:g}%"
    if int(worst.get("n", 0)) < 2 and len(groups) > 1:
        text += " One case has no interval: too few cases to call it worse than the others."
    elif sep is not None and len(groups) > 1:
        separated, overlaps = sep
        if separated and not overlaps:
            text += f" Its {share} interval lies {side} those of all other groups."
        elif separated:
            text += (
                f" Its {share} interval lies {side} {'that' if len(separated) == 1 else 'those'} of "
                f"{join_names(separated)} but overlaps {'that' if len(overlaps) == 1 else 'those'} of "
                f"{join_names(overlaps)}."
            )
        else:
            text += f" Its {share} interval overlaps those of all other groups, so the gap may be chance."
    elif len(groups) > 1:
        text += " No intervals (bootstrap off): separation not assessed."
    return {
        "kind": "worst_group",
        "level": "info",
        "metric": key,
        "attribute": attr,
        "text": text,
        "group": str(worst["value"]),
        "n": int(worst["n"]),
        "mean": num(worst["mean"]),
        "ci": list(worst["ci"]),
        "best_group": None if best is None else str(best),
        "best_mean": num(a.get("best_mean")),
        "gap": num(a.get("gap")),
        "separated_from": None if sep is None else sep[0],
        "overlaps": None if sep is None else sep[1],
    }


def _failures(key: str, attr: str, a: Mapping[str, Any], higher_better: bool) -> dict[str, Any] | None:
    threshold = a.get("failure_threshold")
    groups = [g for g in a["groups"] if g.get("n", 0) > 0 and num(g.get("failure_rate")) is not None]
    if threshold is None or not groups:
        return None
    ranked = sorted(groups, key=lambda g: -float(g["failure_rate"]))
    shares = [
        {
            "group": str(g["value"]),
            "n": int(g["n"]),
            "failures": int(round(float(g["failure_rate"]) * g["n"])),
            "share": float(g["failure_rate"]),
            "cvar10": num(g.get("cvar10")),
        }
        for g in ranked
    ]
    parts = [f"{s['group']} {pct(s['share'])} ({s['failures']}/{s['n']})" for s in shares]
    cutoff = cutoff_text(_base(key), threshold, higher_better)
    tail = [g for g in groups if num(g.get("cvar10")) is not None]
    text = f"Hidden failures in {key} by {attr} (share of cases with {cutoff}): {', '.join(parts)}."
    worst_tail = None
    if tail:
        worst_tail = (min if higher_better else max)(tail, key=lambda g: float(g["cvar10"]))
        text += (
            f" The worst 10% of {worst_tail['value']} cases average {fmt(worst_tail['cvar10'])} (CVaR10), "
            f"against a group mean of {fmt(worst_tail['mean'])}."
        )
    return {
        "kind": "failures",
        "level": "info",
        "metric": key,
        "attribute": attr,
        "text": text,
        "threshold": float(threshold),
        "shares": shares,
        "worst_cvar_group": None if worst_tail is None else str(worst_tail["value"]),
        "worst_cvar10": None if worst_tail is None else num(worst_tail["cvar10"]),
    }


def _tail(key: str, m: Mapping[str, Any], higher_better: bool) -> dict[str, Any] | None:
    candidates = [
        (attr, g)
        for attr, a in m["attributes"].items()
        for g in a["groups"]
        if g.get("n", 0) > 0 and num(g.get("cvar10")) is not None
    ]
    if not candidates:
        return None
    attr, g = (min if higher_better else max)(candidates, key=lambda t: float(t[1]["cvar10"]))
    text = (
        f"Hidden failures in {key}: the worst tail is in {g['value']} ({attr}), whose worst 10% of cases "
        f"average {fmt(g['cvar10'])} (CVaR10) against a group mean of {fmt(g['mean'])}; no failure cut-off is "
        f"set for {_base(key)} (--fail {_base(key)}{'<' if higher_better else '>'}VALUE)."
    )
    return {
        "kind": "tail",
        "level": "info",
        "metric": key,
        "attribute": attr,
        "text": text,
        "group": str(g["value"]),
        "cvar10": num(g["cvar10"]),
        "mean": num(g["mean"]),
    }


def _subgroup(key: str, m: Mapping[str, Any], fdr: float) -> dict[str, Any] | None:
    subgroups = m.get("subgroups") or []
    if not subgroups:
        return None
    sig = next((s for s in subgroups if s.get("significant")), None)
    if sig is None:
        top = subgroups[0]
        text = (
            f"No subgroup of {key} diverges significantly (Benjamini-Hochberg q <= {fmt(fdr, 2)}); the most "
            f"divergent, {itemset_label(top['itemset'])} (n={top['n']}), has {p_equals('q', top.get('q_value'))}."
        )
        return _subgroup_finding(key, top, text, significant=False)
    d = float(sig["divergence"])
    where = "below" if d < 0 else "above"
    text = (
        f"Most divergent significant subgroup of {key}: {itemset_label(sig['itemset'])} (n={sig['n']}, "
        f"{pct(sig['support'])} of cases) with mean {fmt(sig['mean'])}, {fmt(abs(d))} {where} the overall mean "
        f"(Welch t = {fmt(sig.get('welch_t'), 1)}, {p_equals('q', sig.get('q_value'))})."
    )
    return _subgroup_finding(key, sig, text, significant=True)


def _subgroup_finding(key: str, sg: Mapping[str, Any], text: str, *, significant: bool) -> dict[str, Any]:
    """The finding of one subgroup of the audit (its numbers and the sentence that states them)."""
    return {
        "kind": "subgroup",
        "level": "info",
        "metric": key,
        "attribute": None,
        "text": text,
        "significant": significant,
        "itemset": dict(sg["itemset"]),
        "n": int(sg["n"]),
        "support": num(sg["support"]),
        "mean": num(sg["mean"]),
        "divergence": num(sg["divergence"]),
        "welch_t": num(sg.get("welch_t")),
        "p_value": num(sg.get("p_value")),
        "q_value": num(sg.get("q_value")),
    }


def _hidden(key: str, m: Mapping[str, Any]) -> dict[str, Any] | None:
    h = m.get("hidden_subtype")
    if not h:
        return None
    name = str(h.get("column", "hidden_subtype"))
    if h.get("hard"):
        name = f"{name} = {', '.join(map(str, h['hard']))}"
    text = (
        f"Hidden hard subtype ({name}): {h['n']} cases with mean {key} {fmt(h['mean'])} against "
        f"{fmt(h['mean_rest'])} for the rest; they are {pct(h['share_in_worst_decile'])} of the worst 10% of "
        f"cases."
    )
    return {
        "kind": "hidden_subtype",
        "level": "info",
        "metric": key,
        "attribute": None,
        "text": text,
        "column": name,
        "n": int(h["n"]),
        "mean": num(h["mean"]),
        "mean_rest": num(h["mean_rest"]),
        "share_in_worst_decile": num(h["share_in_worst_decile"]),
    }


def _warnings(key: str, m: Mapping[str, Any], min_n: int, unknown_share: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n_cases = int(m.get("n_cases") or 0)
    for attr, a in m["attributes"].items():
        small = [g for g in a["groups"] if 0 < g.get("n", 0) < min_n]
        if small:
            listed = join_names([f"{g['value']} (n={g['n']})" for g in small])
            text = (
                f"{attr}: {'group' if len(small) == 1 else 'groups'} {listed} "
                f"{'has' if len(small) == 1 else 'have'} fewer than {min_n} cases; "
                f"{'its' if len(small) == 1 else 'their'} mean and interval are unstable."
            )
            out.append(
                {
                    "kind": "small_group",
                    "level": "warning",
                    "metric": key,
                    "attribute": attr,
                    "text": text,
                    "min_n": int(min_n),
                    "groups": [{"group": str(g["value"]), "n": int(g["n"])} for g in small],
                }
            )
        n_unknown = int(a.get("n_unknown") or 0)
        if n_cases and n_unknown / n_cases >= unknown_share:
            text = (
                f"{attr}: {n_unknown} of {n_cases} cases ({pct(n_unknown / n_cases)}) have an unknown value; they "
                f"count in the overall mean only, so the groups describe {pct(1 - n_unknown / n_cases)} of the "
                f"cases."
            )
            out.append(
                {
                    "kind": "unknowns",
                    "level": "warning",
                    "metric": key,
                    "attribute": attr,
                    "text": text,
                    "n_unknown": n_unknown,
                    "n_cases": n_cases,
                    "share": n_unknown / n_cases,
                }
            )
    return out


def build_findings(
    audit: Mapping[str, Any], *, min_n: int | None = None, unknown_share: float = UNKNOWN_SHARE
) -> list[dict[str, Any]]:
    """The findings of an audit dict, most important first (see the module docstring).

    Per metric: the worst group of every attribute, the hidden failures (or the worst tail), the
    most divergent significant subgroup and the hidden subtype; then the warnings (of the first
    metric, since group sizes hardly differ between metrics). ``min_n``: default the audit's
    ``settings.min_group_n`` (the groups it flags ``small``).
    """
    settings = audit.get("settings", {})
    if min_n is None:
        min_n = int(settings.get("min_group_n", MIN_N))
    fdr = float(settings.get("fdr", 0.05))
    out: list[dict[str, Any]] = []
    for key, m in audit["metrics"].items():
        hb = bool(m.get("higher_is_better", True))
        out.extend(certified_findings(key, m, audit))  # the certified statements lead
        for attr, a in m["attributes"].items():
            found = _worst_group(key, attr, a, hb, float(settings.get("level", 0.95)))
            if found:
                out.append(found)
            failures = _failures(key, attr, a, hb)
            if failures:
                out.append(failures)
        if all(a.get("failure_threshold") is None for a in m["attributes"].values()):
            tail = _tail(key, m, hb)
            if tail:
                out.append(tail)
        for extra in (_subgroup(key, m, fdr), _hidden(key, m)):
            if extra:
                out.append(extra)
    first = next(iter(audit["metrics"].items()), None)
    out.extend((evidence := evidence_warnings(audit)) or [])  # replaces the small-group flag when present
    if first is not None:
        out.extend(_warnings(first[0], first[1], min_n if evidence is None else 0, unknown_share))
    return out


def findings_of(audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The audit's ``findings`` (built on the fly for an audit written before they existed)."""
    found = audit.get("findings")
    return list(found) if isinstance(found, list) else build_findings(audit)


# ---- summary cards -----------------------------------------------------------------------------


def _card(label: str, value: Any, ci: Sequence[Any] | None, text: str, note: str) -> dict[str, Any]:
    return {"label": label, "value": num(value), "ci": list(ci or []), "text": text, "note": note}


def _worst_cards(attrs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The worst group of every attribute, with intervals that hold whichever group is the worst."""
    cards = []
    for attr, a in attrs:
        worst = next((g for g in a["groups"] if str(g["value"]) == str(a.get("worst_group"))), None)
        if worst is None:
            continue
        ci, gap_ci = selection_cis(a, worst["ci"])
        note = f"n={worst['n']}; gap {fmt_ci(a.get('gap'), gap_ci)}"
        cards.append(_card(f"worst {attr}: {worst['value']}", worst["mean"], ci, fmt_ci(worst["mean"], ci), note))
    return cards


def _tail_cards(key: str, m: Mapping[str, Any], attrs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The worst-group CVaR10 and the highest failure share (with its interval)."""
    hb = bool(m.get("higher_is_better", True))
    cards = []
    tails = [(attr, g) for attr, a in attrs for g in a["groups"] if g.get("n", 0) and num(g.get("cvar10")) is not None]
    if tails:
        attr, g = (min if hb else max)(tails, key=lambda t: float(t[1]["cvar10"]))
        ci = list(((m["attributes"][attr].get("selection") or {}).get("worst_cvar10") or {}).get("ci") or [])
        note = f"{g['value']} ({attr}): mean of its worst 10% of cases"
        cards.append(_card("worst-group CVaR10", g["cvar10"], ci, fmt_ci(g["cvar10"], ci), note))
    rates = [
        (attr, a, g)
        for attr, a in attrs
        for g in a["groups"]
        if g.get("n", 0) and num(g.get("failure_rate")) is not None
    ]
    if rates:
        attr, a, g = max(rates, key=lambda t: float(t[2]["failure_rate"]))
        ci = list((g.get("certificate") or {}).get("share_ci") or [])
        text = pct(g["failure_rate"]) + (f" ({pct(ci[0])}-{pct(ci[1])})" if len(ci) == 2 else "")
        note = f"{g['value']} ({attr}): {cutoff_text(key, a['failure_threshold'], hb)}"
        cards.append(_card("highest failure share", g["failure_rate"], ci, text, note))
    return cards


def headline_cards(audit: Mapping[str, Any], *, max_attributes: int = 4) -> list[dict[str, Any]]:
    """Headline numbers of the first metric: overall, the worst group of each attribute, the
    equity-scaled value, the worst-group CVaR10 and the highest failure share; each card is
    ``{"label", "value", "ci", "text", "note"}`` with ``text`` the formatted value."""
    if not audit.get("metrics"):
        return []
    key, m = next(iter(audit["metrics"].items()))
    o = m["overall"]
    cards = [_card(f"overall {key}", o["mean"], o["ci"], fmt_ci(o["mean"], o["ci"]), f"{m['n_cases']} cases")]
    attrs = list(m["attributes"].items())
    cards += _worst_cards(attrs[:max_attributes])
    if attrs and num(attrs[0][1].get("es")) is not None:
        attr, a = attrs[0]
        variant = audit.get("settings", {}).get("es_variant", "sum_abs")
        cards.append(
            _card(f"ES-{key} ({attr})", a["es"], a.get("es_ci"), fmt_ci(a["es"], a.get("es_ci")), f"{variant} variant")
        )
    return cards + _tail_cards(key, m, attrs) + certified_cards(key, m)
