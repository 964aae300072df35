"""Checks of ``duetfair score`` options whose wrong values would give silent wrong numbers or an
internal error rather than a clear message: label names that merge structures, an NSD tolerance
that is not a distance."""

from __future__ import annotations

import math
import re

from duetfair.errors import require


def check_label_names(text: str, names: dict[int, str]) -> dict[int, str]:
    """Refuse names that would merge structures in the ``class`` column: an empty name, a name
    given to two labels, or a number (``--label-names 1=2`` would read as label 2). Returns ``names``."""
    values = list(names.values())
    require(all(values), f"--label-names '{text}': a name is empty; expected ID=NAME pairs such as 1=rim,2=cup")
    twice = sorted({v for v in values if values.count(v) > 1})
    require(not twice, f"--label-names '{text}': the name '{twice[0] if twice else ''}' is given to two labels")
    numeric = [v for v in values if re.fullmatch(r"[+-]?\d+(\.0*)?", v)]
    require(
        not numeric,
        f"--label-names '{text}': the name '{numeric[0] if numeric else ''}' is a number and would read as a "
        f"label id; use a word such as rim or cup",
    )
    return names


def check_nsd_tolerance(value: float) -> float:
    """The NSD tolerance must be a finite distance > 0 (``inf`` would count every voxel as close)."""
    require(
        math.isfinite(value) and value > 0,
        f"--nsd-tolerance {value:g}: expected a finite distance > 0 (in the reference's unit, mm for NIfTI)",
    )
    return value
