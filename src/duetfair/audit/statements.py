"""The certified statements of an audit in plain words (the findings' lead).

:func:`certified_findings` turns the blocks that :mod:`duetfair.audit.certify` adds to a metric
into findings (the same ``{"kind", "level", "metric", "attribute", "text", ...}`` dicts as
:func:`duetfair.audit.findings.build_findings`), in this order:

* ``certificate`` (overall, then per attribute): "with 95% confidence, at most 39.3% of site D
  cases have dice < 0.5 (0 of 6 observed)", and the bounds that hold for all groups at once; for
  the overall population also the new-case bound;
* ``new_case`` (per attribute): "a new case of A has dice >= 0.61 with probability 0.9", and the
  groups too small for such a bound;
* ``gap_test`` (per attribute): which groups are worse (or better) than the reference after
  Benjamini-Hochberg correction over every test of the audit, else that none is, with the largest
  difference; the worst-group mean and the gap with intervals that include the selection of the
  worst group.

:func:`evidence_warnings` gives the ``insufficient_evidence`` warnings (which groups need more cases
and how many); it replaces the fixed ``small_group`` warning when the audit carries the verdicts.
An audit written before these blocks existed gives no certified findings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from duetfair.audit.formatting import cutoff_text, fmt, fmt_ci, fmt_signed_ci, join_names, num, pct


def _conf(c: Any) -> str:
    """0.95 -> ``95%`` (0.975 -> ``97.5%``)."""
    v = 100 * float(c)
    return f"{v:.0f}%" if abs(v - round(v)) < 1e-9 else f"{v:g}%"


def _q(p: Any) -> str:
    v = num(p)
    if v is None:
        return "n/a"
    return "< 0.001" if v < 0.001 else f"= {v:.3f}"


def _finding(kind: str, key: str, attr: str | None, text: str, level: str = "info", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "level": level, "metric": key, "attribute": attr, "text": text, **extra}


# ---- certificates --------------------------------------------------------------------------


def _overall(key: str, m: Mapping[str, Any], hb: bool) -> dict[str, Any] | None:
    cert, new = m["overall"].get("certificate"), m["overall"].get("new_case")
    if not cert or not new:
        return None
    conf = _conf(cert.get("confidence", new["confidence"]))
    parts = []
    if cert.get("cutoff") is not None:
        parts.append(
            f"at most {pct(cert['upper'])} of all {cert['n']} cases have {cutoff_text(key, cert['cutoff'], hb)} "
            f"({cert['failures']} observed)"
        )
    if new.get("bound") is not None:
        parts.append(f"a new case has {key} {new['direction']} {fmt(new['bound'])} with probability {new['content']:g}")
    if not parts:
        return None
    text = f"With {conf} confidence, " + ", and ".join(parts) + " (cases exchangeable, no distribution assumed)."
    return _finding(
        "certificate",
        key,
        None,
        text,
        upper=num(cert.get("upper")),
        cutoff=cert.get("cutoff"),
        new_case=num(new.get("bound")),
    )


def _certificate(key: str, attr: str, a: Mapping[str, Any], hb: bool) -> dict[str, Any] | None:
    groups = [g for g in a["groups"] if (g.get("certificate") or {}).get("cutoff") is not None]
    if not groups:
        return None
    ranked = sorted(groups, key=lambda g: -float(g["certificate"]["upper"]))
    first = ranked[0]["certificate"]
    cutoff = cutoff_text(key, first["cutoff"], hb)
    head = (
        f"With {_conf(first['confidence'])} confidence, at most {pct(first['upper'])} of {attr} {ranked[0]['value']} "
        f"cases have {cutoff} ({first['failures']} of {first['n']} observed)"
    )
    rest = [
        f"{pct(g['certificate']['upper'])} of {g['value']} ({g['certificate']['failures']}/{g['n']})"
        for g in ranked[1:]
    ]
    text = head + (f"; at most {', '.join(rest)}." if rest else ".")
    if len(groups) > 1 and ranked[0]["certificate"].get("upper_all_groups") is not None:
        together = [f"{g['value']} {pct(g['certificate']['upper_all_groups'])}" for g in ranked]
        text += f" Holding for all {attr} groups at once: {', '.join(together)}."
    bounds = [
        {
            "group": str(g["value"]),
            "n": int(g["n"]),
            "failures": int(g["certificate"]["failures"]),
            "upper": num(g["certificate"]["upper"]),
            "upper_all_groups": num(g["certificate"].get("upper_all_groups")),
        }
        for g in ranked
    ]
    return _finding("certificate", key, attr, text, cutoff=float(first["cutoff"]), bounds=bounds)


def _new_case(key: str, attr: str, a: Mapping[str, Any]) -> dict[str, Any] | None:
    groups = [g for g in a["groups"] if g.get("new_case")]
    if not groups:
        return None
    new = groups[0]["new_case"]
    have = [g for g in groups if g["new_case"].get("bound") is not None]
    lacking = [str(g["value"]) for g in groups if g["new_case"].get("bound") is None]
    direction, content = new["direction"], f"{new['content']:g}"
    if have:
        first, *others = have
        text = (
            f"With {_conf(new['confidence'])} confidence, a new {attr} {first['value']} case has {key} {direction} "
            f"{fmt(first['new_case']['bound'])} with probability {content}"
        )
        more = [f"{g['value']} {direction} {fmt(g['new_case']['bound'])}" for g in others]
        text += f"; likewise {', '.join(more)}." if more else "."
    else:
        text = f"No {attr} group has enough cases for a bound on a new case's {key}."
    if lacking and have:
        text += f" {join_names(lacking)}: too few cases for this bound (at least {new['min_n']} needed)."
    elif lacking:
        text += f" It needs at least {new['min_n']} cases per group."
    bounds = {str(g["value"]): num(g["new_case"].get("bound")) for g in groups}
    return _finding("new_case", key, attr, text, content=new["content"], bounds=bounds, min_n=new["min_n"])


# ---- tested gaps ---------------------------------------------------------------------------


def _selection_text(key: str, a: Mapping[str, Any]) -> str:
    sel = a.get("selection") or {}
    if "worst_mean" not in sel:
        return ""
    worst = sel["worst_mean"]
    share = (sel.get("worst_share") or {}).get(str(a.get("worst_group")))
    text = (
        f" With intervals that hold whichever group is the worst, the worst-group mean {key} is "
        f"{fmt_ci(worst['estimate'], worst['ci'])} and the gap between the best and worst group "
        f"{fmt_ci(sel['gap']['estimate'], sel['gap']['ci'])}"
    )
    if share is not None:
        text += f"; {a.get('worst_group')} is the worst group in {pct(share)} of bootstrap resamples"
    return text + "."


def _gap_tests(key: str, attr: str, a: Mapping[str, Any], n_tests: int) -> dict[str, Any] | None:
    tested = [g for g in a["groups"] if g.get("gap_test") and num(g["gap_test"].get("p_value")) is not None]
    if not tested:
        return None
    ref = a.get("reference", "rest")
    against = "the rest" if ref == "rest" else ref
    sig = [g for g in tested if g["gap_test"].get("significant")]
    family = f"Benjamini-Hochberg over the audit's {n_tests} tests"
    conf = _conf((a.get("selection") or {}).get("confidence", 0.95))
    parts = [
        f"{g['value']} is {g['gap_test']['direction']} than {against} (difference in mean {key} "
        f"{fmt_signed_ci(g['gap_test']['diff'], g['gap_test']['ci'])}, q {_q(g['gap_test']['q_value'])})"
        for g in sorted(sig, key=lambda g: float(g["gap_test"]["q_value"]))
    ]
    if parts:
        text = f"{attr}: " + "; ".join(parts) + f"; {family} ({conf} intervals, each on its own)."
    else:
        best = min(tested, key=lambda g: float(g["gap_test"]["p_value"]))
        top, name = best["gap_test"], best["value"]
        text = (
            f"{attr}: no group differs from {against} after {family}; the smallest q is {name}'s "
            f"(difference {fmt_signed_ci(top['diff'], top['ci'])}, q {_q(top['q_value'])}; the interval is not "
            "corrected for the number of tests)."
        )
    text += _selection_text(key, a)
    tests = [
        {
            "group": str(g["value"]),
            "diff": num(g["gap_test"]["diff"]),
            "ci": list(g["gap_test"]["ci"]),
            "q_value": num(g["gap_test"].get("q_value")),
            "significant": bool(g["gap_test"].get("significant")),
            "direction": g["gap_test"].get("direction"),
        }
        for g in tested
    ]
    return _finding("gap_test", key, attr, text, reference=ref, tests=tests, selection=a.get("selection"))


def certified_findings(key: str, m: Mapping[str, Any], audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The certified findings of one metric (none for an audit without the certify blocks)."""
    hb = bool(m.get("higher_is_better", True))
    n_tests = int((audit.get("gap_tests") or {}).get("n_tests", 0))
    out = [_overall(key, m, hb)]
    for attr, a in m["attributes"].items():
        out.append(_certificate(key, attr, a, hb))
    for attr, a in m["attributes"].items():
        out.append(_new_case(key, attr, a))
    for attr, a in m["attributes"].items():
        out.append(_gap_tests(key, attr, a, n_tests))
    return [f for f in out if f]


# ---- enough evidence -----------------------------------------------------------------------


def _need_text(g: Mapping[str, Any]) -> str:
    e = g["evidence"]
    mde = f"smallest detectable gap {fmt(e['detectable_gap'])}" if num(e.get("detectable_gap")) else None
    if e.get("n_needed") is not None:
        need = f"about {e['n_needed']} cases needed, {e['more_cases']} more"
    elif num(e.get("sd")) is None or int(g["n"]) < 3:
        need = "too few cases to estimate its spread"
    else:
        need = "more cases of this group alone would not suffice (the reference varies too much)"
    return f"{g['value']} (n={g['n']}; {mde + '; ' if mde else ''}{need})"


def _detectable_gaps(key: str, m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Without a gap to detect (a distance without ``--detect``): each attribute's detectable gaps."""
    out = []
    for attr, a in m["attributes"].items():
        gaps = [(g, (g.get("evidence") or {}).get("detectable_gap")) for g in a["groups"] if g.get("evidence")]
        if not gaps:
            continue
        parts = [f"{g['value']} {fmt(d) if d is not None else 'n/a (n < 3)'}" for g, d in gaps]
        text = (
            f"{attr}: no gap to detect is set for {key} (--detect {key.partition('[')[0]}=GAP); the smallest gaps "
            f"to the reference the data could detect (80% power) are {', '.join(parts)}."
        )
        found = {str(g["value"]): num(d) for g, d in gaps}
        out.append(_finding("detectable_gaps", key, attr, text, detectable_gaps=found))
    return out


def evidence_warnings(audit: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """``insufficient_evidence`` warnings of the first metric with a gap to detect (without one, the
    first metric's ``detectable_gaps``); None when the audit carries no verdicts (then the caller
    keeps the fixed small-group warning)."""
    metrics = audit.get("metrics", {})
    for key, m in metrics.items():
        attrs = m["attributes"]
        if not all("verdict" in g for a in attrs.values() for g in a["groups"]):
            return None
        detect = next((g["evidence"]["detect"] for a in attrs.values() for g in a["groups"] if g.get("evidence")), None)
        if detect is None:
            continue
        out = []
        for attr, a in attrs.items():
            short = [g for g in a["groups"] if g.get("verdict") == "insufficient evidence"]
            if not short:
                continue
            e = short[0]["evidence"]
            listed = join_names([_need_text(g) for g in short])
            text = (
                f"{attr}: insufficient evidence to detect a gap of {fmt(detect)} in mean {key} "
                f"({_conf(e['power'])} power, two-sided test at {_conf(e['alpha'])}) for {listed}."
            )
            groups = [
                {
                    "group": str(g["value"]),
                    "n": int(g["n"]),
                    "detectable_gap": num(g["evidence"].get("detectable_gap")),
                    "n_needed": g["evidence"].get("n_needed"),
                    "more_cases": g["evidence"].get("more_cases"),
                }
                for g in short
            ]
            out.append(_finding("insufficient_evidence", key, attr, text, "warning", detect=detect, groups=groups))
        return out
    first = next(iter(metrics.items()), None)
    return None if first is None else _detectable_gaps(*first)


def certified_cards(key: str, m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Summary card of the highest certified failure share of a metric's groups (none without
    certificates): ``{"label", "value", "ci", "text", "note"}`` as :func:`headline_cards`."""
    bounds = [
        (attr, g)
        for attr, a in m["attributes"].items()
        for g in a["groups"]
        if (g.get("certificate") or {}).get("cutoff") is not None
    ]
    if not bounds:
        return []
    hb = bool(m.get("higher_is_better", True))
    attr, g = max(bounds, key=lambda t: float(t[1]["certificate"]["upper"]))
    c = g["certificate"]
    return [
        {
            "label": f"failure share, {_conf(c['confidence'])} bound",
            "value": num(c["upper"]),
            "ci": [],
            "text": f"\u2264 {pct(c['upper'])}",
            "note": f"{g['value']} ({attr}): {c['failures']}/{c['n']} with {cutoff_text(key, c['cutoff'], hb)}",
        }
    ]


def selection_cis(a: Mapping[str, Any], fallback: Sequence[Any]) -> tuple[list[Any], list[Any] | None]:
    """Intervals of an attribute's worst-group mean and gap that hold whichever group is the worst
    (``fallback`` for the mean, None for the gap, in an audit without them)."""
    sel = a.get("selection") or {}
    return list((sel.get("worst_mean") or {}).get("ci") or fallback), (sel.get("gap") or {}).get("ci")
