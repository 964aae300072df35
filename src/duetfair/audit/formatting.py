"""Numbers as the audit's words print them: one owner for every report form.

The findings (:mod:`duetfair.audit.findings`), the certified statements
(:mod:`duetfair.audit.statements`), the Markdown, HTML and console reports and the comparison
tables format their numbers here, so the same value reads the same everywhere: 3 decimals, ``n/a``
for a missing value, ``value (low-high)`` for an interval (``low to high`` when a bound is
negative), ``+0.012 (-0.003 to +0.027)`` for a difference, ``12.3%`` for a share and ``<0.001``
for a tiny p- or q-value.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["cutoff_text", "fmt", "fmt_ci", "fmt_signed_ci", "join_names", "num", "p_equals", "pct", "pvalue"]


def num(x: Any) -> float | None:
    """``x`` as a float; None for None, NaN and what is not a number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def fmt(x: Any, digits: int = 3) -> str:
    """Number -> fixed-point text; None/NaN -> ``n/a``; text stays text."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def fmt_ci(mean: Any, ci: Sequence[Any] | None, digits: int = 3) -> str:
    """``value (low-high)`` as the papers print it (``low to high`` when a bound is negative)."""
    if not ci or len(ci) < 2 or num(ci[0]) is None or num(ci[1]) is None:
        return fmt(mean, digits)
    lo, hi = float(ci[0]), float(ci[1])
    sep = " to " if lo < 0 or hi < 0 else "-"
    return f"{fmt(mean, digits)} ({fmt(lo, digits)}{sep}{fmt(hi, digits)})"


def fmt_signed_ci(value: Any, ci: Sequence[Any] | None, digits: int = 3) -> str:
    """A difference with its interval: ``+0.012 (-0.003 to +0.027)``."""
    v = num(value)
    if v is None:
        return "n/a"
    text = f"{v:+.{digits}f}"
    if ci and len(ci) == 2 and num(ci[0]) is not None and num(ci[1]) is not None:
        text += f" ({float(ci[0]):+.{digits}f} to {float(ci[1]):+.{digits}f})"
    return text


def pct(x: Any) -> str:
    """Share -> ``12.3%``; None/NaN -> ``n/a``."""
    v = num(x)
    return "n/a" if v is None else f"{100 * v:.1f}%"


def pvalue(p: Any) -> str:
    """A p- or q-value: 3 decimals, ``<0.001`` below that, ``-`` when undefined."""
    v = num(p)
    if v is None or not math.isfinite(v):
        return "-"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def cutoff_text(key: str, threshold: Any, higher_better: bool) -> str:
    """``dice < 0.5``: the failure cut-off of a metric key (``dice[1]`` -> ``dice``)."""
    return f"{key.partition('[')[0]} {'<' if higher_better else '>'} {fmt(threshold, 3).rstrip('0').rstrip('.')}"


def join_names(values: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    values = list(values)
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def p_equals(name: str, p: Any) -> str:
    """``q = 0.012`` or ``q < 0.001`` (:func:`pvalue` in a sentence)."""
    text = pvalue(p)
    return f"{name} < {text[1:]}" if text.startswith("<") else f"{name} = {text}"
