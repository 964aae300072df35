"""Checks of score files written by other tools (nnU-Net's ``summary.json``, MONAI CSVs).

A reader that accepts what it should question gives a silent wrong number: a JSON ``true`` read as
Dice 1, a key given twice of which the last silently wins, a negative or fractional voxel count.
These helpers refuse such values with one line naming the file, the entry and the value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from duetfair.errors import DuetfairError
from duetfair.io import MAX_JSON_BYTES as MAX_JSON_BYTES  # re-exported
from duetfair.io import read_json

load_json_strict = read_json
"""Parse a JSON file strictly (:func:`duetfair.io.read_json`: a key given twice, deep nesting and
files over :data:`duetfair.io.MAX_JSON_BYTES` refused with one line naming the file)."""


def score_value(value: Any, where: str) -> float:
    """A metric value of a score file: a number or null (NaN); a boolean, text, list or object is
    refused (``where`` names the file and entry)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DuetfairError(f"{where}: value {_show(value)} is not a number; expected a number or null")
    return float(value)


def count_value(value: Any, where: str) -> float:
    """A voxel count (``n_ref``, ``n_pred``): a whole number >= 0 or null (NaN)."""
    x = score_value(value, where)
    if math.isnan(x):
        return x
    if not math.isfinite(x) or x < 0 or not x.is_integer():
        raise DuetfairError(f"{where}: value {_show(value)} is not a voxel count; expected a whole number >= 0")
    return x


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def numeric_column(values: Any, where: str, *, counts: bool = False) -> Any:
    """A column of a score CSV as float numbers: empty cells and missing-number words (``nan``,
    ``NA``) are NaN; any other text (``good``, ``True``) is refused naming the first such value;
    with ``counts`` the numbers must be whole and >= 0 (voxel counts)."""
    import pandas as pd

    from duetfair.io import NUMBER_NA_TOKENS

    series = pd.Series(values)
    if series.dtype == bool:
        raise DuetfairError(f"{where}: value {series.iloc[0]} is not a number; expected numbers")
    text = series.astype(object).where(series.notna(), "").astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = numbers.isna() & (text != "") & ~text.str.lower().isin(NUMBER_NA_TOKENS)
    if bad.any():
        raise DuetfairError(f"{where}: value '{_cut(text[bad].iloc[0])}' is not a number; expected numbers")
    out = numbers.astype("float64")
    if counts:
        finite = out.dropna()
        wrong = finite[(finite < 0) | ~finite.map(lambda x: math.isfinite(x) and float(x).is_integer())]
        if len(wrong):
            raise DuetfairError(f"{where}: value {wrong.iloc[0]:g} is not a voxel count; expected a whole number >= 0")
    return out.to_numpy()


def _cut(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
