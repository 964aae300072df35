"""Attribute values and one attribute's spec: missing values, canonical text, bins.

The value-level half of :mod:`duetfair.data.groups` (which re-exports every name here): what a
missing value is (:data:`MISSING_TOKENS`, :func:`is_missing`), the canonical text of a raw value
(:func:`canonical`), one attribute's groups (:class:`AttributeSpec`: categorical names or bins with
their closure, :func:`bin_labels`, :func:`parse_bins`) and the papers' standard age binnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require

UNKNOWN = -1
"""Code of a missing or unseen attribute value."""

MISSING_TOKENS = frozenset({"", "nan", "-1", "missing", "unknown"})
"""Raw strings (stripped, case-insensitive) read as a missing attribute value. Words such as
``NA``, ``None`` or ``null`` are not among them: they can be group names (North America); a
table's own missing words are declared where it is read (``duetfair audit --missing NA``,
:func:`duetfair.io.read_table`), and in a column of numbers they are missing numbers."""

MAX_NUMERIC_LEVELS = 12
"""A column of numbers with more distinct values than this is continuous and must be binned."""

INTERSECTION_SEP = "+"
"""Separator of attributes in an intersection spec (``"race+sex"``)."""

LABEL_JOIN = " & "
"""Separator of the labels of an intersection group (``"Black & F"``)."""

# Standard binnings used by the papers (docs/conventions.md).
FAIRSEG_AGE_EDGES = (60.0,)
FAIRSEG_AGE_LABELS = ("<60", ">=60")
HAM_AGE_EDGES = (20.0, 40.0, 60.0, 80.0)
HAM_AGE_LABELS = ("<20", "20-39", "40-59", "60-79", ">=80")
MAMAMIA_AGE_EDGES = (40.0, 50.0, 60.0, 70.0)
MAMAMIA_AGE_LABELS = ("0-40", "41-50", "51-60", "61-70", "71+")


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, ``pd.NA``/``NaT``, the number -1 and the strings of
    :data:`MISSING_TOKENS` (empty, ``nan``, ``unknown``, ``missing``, ``-1``)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    if (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and value == -1
    ):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def is_missing_number(value: Any) -> bool:
    """:func:`is_missing`, or a word for a missing number (``NA``, ``n/a``, ``null``, ``None``;
    :data:`duetfair.io.NUMBER_NA_TOKENS`): in a column of numbers (an attribute cut into bins) such
    a word cannot be a group name."""
    from duetfair.io import NUMBER_NA_TOKENS

    return is_missing(value) or (isinstance(value, str) and value.strip().lower() in NUMBER_NA_TOKENS)


def canonical(value: Any) -> str:
    """Canonical string of a raw categorical value: ``1``, ``1.0``, ``"1.0"`` and ``" 1 "`` -> ``"1"``.

    Numbers with an integral value lose their decimal part; strings are stripped (case kept).
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return canonical(value.item())
    s = str(value).strip()
    try:  # numeric strings from text tables: "1.0" -> "1"
        f = float(s)
        if f.is_integer() and s.lower() not in ("inf", "-inf", "nan"):
            return str(int(f))
    except ValueError:
        pass
    return s


@dataclass
class AttributeSpec:
    """How one attribute becomes a code.

    Args:
        name: attribute name (the key in a case's ``attrs`` and the metadata column).
        values: group names, in code order (code ``k`` = ``values[k]``). For binned attributes
            these are the interval labels (``len(edges) + 1`` of them).
        edges: bin edges for a continuous attribute (e.g. age in years); ``None`` = categorical.
        right: binned only; ``False`` (default) -> intervals ``[e_k, e_{k+1})`` (``age < 60`` vs
            ``age >= 60``); ``True`` -> ``(e_k, e_{k+1}]`` (MAMA-MIA ``(40, 50]`` = ``41-50``).
        value_map: categorical only; raw value (canonical string) -> group name, applied before
            matching. Keys are compared case-insensitively.
        match: how ``value_map`` keys match a raw string: ``"exact"`` (default) or ``"prefix"``
            (the raw value starts with the key, e.g. ``"peri"`` matches ``"perimenopausal"``).
        missing: group name given to *missing* raw values; ``None`` (default) -> unknown (-1).
            MAMA-MIA treats missing menopause as its own ``"unknown"`` group.
        case_sensitive: categorical only; compare raw strings to ``values`` case-sensitively
            (default ``False``).
    """

    name: str
    values: list[str]
    edges: list[float] | None = None
    right: bool = False
    value_map: dict[str, str] | None = None
    match: Literal["exact", "prefix"] = "exact"
    missing: str | None = None
    case_sensitive: bool = False
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.values = [str(v) for v in self.values]
        require(len(self.values) >= 1, f"attribute '{self.name}': needs at least one group value")
        require(
            len(set(self.values)) == len(self.values), f"attribute '{self.name}': duplicate group values {self.values}"
        )
        require(
            self.match in ("exact", "prefix"),
            f"attribute '{self.name}': match must be 'exact' or 'prefix', got '{self.match}'",
        )
        if self.edges is not None:
            self.edges = [float(e) for e in self.edges]
            require(
                all(a < b for a, b in zip(self.edges, self.edges[1:])),
                f"attribute '{self.name}': bin edges must increase strictly, got {self.edges}",
            )
            require(
                len(self.values) == len(self.edges) + 1,
                f"attribute '{self.name}': {len(self.edges)} edges need {len(self.edges) + 1} "
                f"labels, got {len(self.values)}",
            )
        if self.value_map is not None:
            self.value_map = {self._key(canonical(k)): str(v) for k, v in self.value_map.items()}
            bad = sorted(set(self.value_map.values()) - set(self.values))
            require(not bad, f"attribute '{self.name}': value_map targets {bad} are not in values {self.values}")
        require(
            self.missing is None or self.missing in self.values,
            f"attribute '{self.name}': missing group '{self.missing}' is not in values {self.values}",
        )
        self._lookup = {self._key(v): i for i, v in enumerate(self.values)}

    @property
    def binned(self) -> bool:
        """True when the attribute is continuous and cut into bins."""
        return self.edges is not None

    @property
    def cardinality(self) -> int:
        """Number of groups (codes ``0 .. cardinality - 1``)."""
        return len(self.values)

    def _key(self, s: str) -> str:
        return s if self.case_sensitive else s.lower()

    def encode(self, value: Any) -> int:
        """Code of one raw value; ``-1`` when missing (unless ``missing`` names a group) or unseen."""
        if is_missing_number(value) if self.binned else is_missing(value):
            return self._lookup[self._key(self.missing)] if self.missing is not None else UNKNOWN
        if self.binned:
            try:
                x = float(value)
            except (TypeError, ValueError):
                return UNKNOWN
            if not math.isfinite(x):
                return UNKNOWN
            return int(np.digitize([x], self.edges or [], right=self.right)[0])  # binned: edges set
        key = self._key(canonical(value))
        if self.value_map is not None:
            mapped = self._map(key)
            if mapped is not None:
                key = self._key(mapped)
        return self._lookup.get(key, UNKNOWN)

    def _map(self, key: str) -> str | None:
        assert self.value_map is not None
        if key in self.value_map:
            return self.value_map[key]
        if self.match == "prefix":
            for k in sorted(self.value_map, key=len, reverse=True):
                if key.startswith(k):
                    return self.value_map[k]
        return None

    def encode_series(self, values: pd.Series | Sequence[Any]) -> np.ndarray:
        """Codes of many raw values -> int64 array ``[N]`` (each distinct value encoded once)."""
        s = (values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)).reset_index(drop=True)
        if self.binned:
            return self._encode_numeric(s)
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        table = np.array([self.encode(u) for u in uniques] + [self.encode(None)], dtype=np.int64)
        return table[codes]  # code -1 (NaN) takes the last entry, the code of a missing value

    def _encode_numeric(self, s: pd.Series) -> np.ndarray:
        assert self.edges is not None
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.digitize(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), self.edges, right=self.right).astype(
            np.int64
        )
        missing = s.map(is_missing_number).to_numpy(dtype=bool)
        codes[~np.isfinite(x)] = UNKNOWN
        codes[missing] = self.encode(None)
        return codes

    def labels(self, values: pd.Series | Sequence[Any]) -> pd.Categorical:
        """Group label of every raw value (categories = :attr:`values` in code order, NaN = unknown)."""
        return pd.Categorical.from_codes(self.encode_series(values), categories=list(self.values))

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe description."""
        d: dict[str, Any] = {"name": self.name, "values": list(self.values)}
        if self.edges is not None:
            d["edges"] = list(self.edges)
            d["right"] = self.right
        if self.value_map is not None:
            d["value_map"] = dict(self.value_map)
            d["match"] = self.match
        if self.missing is not None:
            d["missing"] = self.missing
        if self.case_sensitive:
            d["case_sensitive"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AttributeSpec":
        """Inverse of :meth:`to_dict`."""
        require(
            isinstance(d, Mapping) and "name" in d and "values" in d,
            f"attribute spec must be a mapping with 'name' and 'values', got {d!r}",
        )
        allowed = {"name", "values", "edges", "right", "value_map", "match", "missing", "case_sensitive"}
        extra = sorted(set(d) - allowed)
        require(not extra, f"attribute spec '{d['name']}': unknown keys {extra}; expected {sorted(allowed)}")
        return cls(**dict(d))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bin_labels(edges: Sequence[float], right: bool = False) -> list[str]:
    """Labels of the intervals cut at ``edges`` (the one definition of bin labels).

    ``right=False`` (left-closed, ``[a, b)``): ``[20, 40]`` -> ``<20, 20-39, >=40``;
    ``right=True`` (right-closed, ``(a, b]``): ``[40, 50]`` -> ``<=40, 41-50, >50``.
    Integer edges give inclusive integer ranges; other edges give interval notation.
    """
    e = [float(x) for x in edges]
    integral = all(x.is_integer() for x in e)
    labels = [f"<={_fmt(e[0])}" if right else f"<{_fmt(e[0])}"]
    for lo, hi in zip(e, e[1:]):
        if not integral:
            labels.append(f"({_fmt(lo)}, {_fmt(hi)}]" if right else f"[{_fmt(lo)}, {_fmt(hi)})")
        elif hi - lo == 1:
            labels.append(_fmt(hi) if right else _fmt(lo))
        else:
            labels.append(f"{_fmt(lo + 1)}-{_fmt(hi)}" if right else f"{_fmt(lo)}-{_fmt(hi - 1)}")
    labels.append(f">{_fmt(e[-1])}" if right else f">={_fmt(e[-1])}")
    return labels


def parse_bins(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"age=20,40,60,80"`` (left-closed) or ``"age=40,50,60,70:right"`` (right-closed)
    -> ``("age", {"edges": [...], "right": bool})``, the ``bins`` entry of :meth:`GroupSpec.infer`."""
    require("=" in text, f"--bins '{text}': expected ATTR=EDGE,EDGE,... such as age=20,40,60,80")
    name, _, rest = text.partition("=")
    name = name.strip()
    require(name != "", f"--bins '{text}': missing attribute name before '='")
    edges_txt, _, closed = rest.partition(":")
    closed = closed.strip().lower() or "left"
    require(closed in ("left", "right"), f"--bins '{text}': closure '{closed}' must be 'left' or 'right'")
    try:
        edges = [float(x) for x in edges_txt.split(",") if x.strip() != ""]
    except ValueError:
        raise DuetfairError(
            f"--bins '{text}': edges must be numbers separated by commas, such as age=20,40,60,80"
        ) from None
    require(len(edges) >= 1, f"--bins '{text}': expected at least one edge")
    require(all(math.isfinite(x) for x in edges), f"--bins '{text}': edges must be finite")
    require(all(b > a for a, b in zip(edges, edges[1:])), f"--bins '{text}': edges must be strictly increasing")
    return name, {"edges": edges, "right": closed == "right"}


def binned(
    name: str, edges: Sequence[float], labels: Sequence[str] | None = None, *, right: bool = False
) -> AttributeSpec:
    """Spec of a continuous attribute cut at ``edges``; default labels from :func:`bin_labels`."""
    edges = [float(e) for e in edges]
    labels = bin_labels(edges, right) if labels is None else labels
    return AttributeSpec(name=name, values=list(labels), edges=edges, right=right)


def categorical(
    name: str,
    values: Sequence[Any],
    *,
    value_map: Mapping[Any, str] | None = None,
    match: Literal["exact", "prefix"] = "exact",
    missing: str | None = None,
) -> AttributeSpec:
    """Spec of a categorical attribute with group names ``values`` (code order)."""
    vm = {canonical(k): str(v) for k, v in value_map.items()} if value_map is not None else None
    return AttributeSpec(name=name, values=[canonical(v) for v in values], value_map=vm, match=match, missing=missing)
